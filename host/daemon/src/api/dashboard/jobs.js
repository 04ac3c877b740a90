  // The jobs table, its filter, overdue marks and the per-job view.
  // Part of the dashboard script (see app.js).

  /** From how many jobs on the table offers its filter. */
  const FILTER_FROM = 8;
  /** How late a job may start before it is marked overdue: a due job
   * waits for a concurrency slot or the pace limit for a moment. */
  const OVERDUE_GRACE_MS = 60000;

  /** Due more than the grace ago, and neither running nor paused nor off. */
  function overdue(job) {
    if (job.running || job.needs_attention || !job.enabled || !job.next_due) return false;
    return Date.now() - Date.parse(job.next_due) > OVERDUE_GRACE_MS;
  }

  /** A failing job: its last attempt failed, whatever its last success says. */
  const isFailing = (job) => !job.running && (job.retries > 0 || job.failed_cycles > 0);

  /** Whether a job passes the filter: its id, plugin or secret holds the
   * text, and, with the toggle, it needs attention, is failing or overdue. */
  function matches(job) {
    const text = $('filter-text').value.trim().toLowerCase();
    const inText = !text || [job.id, job.plugin, job.secret].some((f) => f && f.toLowerCase().includes(text));
    const troubled = job.needs_attention || isFailing(job) || overdue(job);
    return inText && (!$('filter-trouble').checked || troubled);
  }

  /** A selector for the job button `el` (a job's name or its Rotate now), if it is one. */
  function sameButton(el) {
    if (!el || !$('jobs-body').contains(el)) return null;
    const [key, value] = el.dataset.open != null ? ['open', el.dataset.open] : ['rotate', el.dataset.rotate];
    return value == null ? null : `button[data-${key}="${CSS.escape(value)}"]`;
  }

  // --------------------------------------------------------------- render

  function badge(text, kind, extra) {
    return h('span', { class: `badge ${kind}`, ...extra }, text);
  }

  /** One mark per history entry, oldest on the left; height is duration. */
  function historyChart(history) {
    const width = 100;
    const height = 28;
    const slot = 5;
    const entries = history.slice(0, 20).reverse();
    const chart = svg('svg', {
      class: 'spark',
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': `${plural(history.length, 'recent rotation')}`,
    });
    chart.append(svg('line', { class: 'base', x1: 0, y1: height - 0.5, x2: width, y2: height - 0.5 }));
    const durations = entries.map((e) => Math.max(0, Date.parse(e.finished) - Date.parse(e.started)));
    const longest = Math.max(1, ...durations);
    entries.forEach((entry, i) => {
      const barHeight = Math.max(6, Math.round((durations[i] / longest) * (height - 2)));
      const rect = svg('rect', {
        class: entry.outcome === 'rotated' ? 'ok' : 'bad',
        x: width - (entries.length - i) * slot,
        y: height - 1 - barHeight,
        width: slot - 1.5,
        height: barHeight,
        rx: 1,
      });
      const when = new Date(entry.finished).toLocaleString();
      const title = svg('title');
      title.textContent = `${entry.outcome} · ${millis(durations[i])} · ${when} · ${entry.actor}` +
        (entry.version != null ? ` · v${entry.version}` : '') + (entry.error ? `\n${entry.error}` : '');
      rect.append(title);
      chart.append(rect);
    });
    return chart;
  }

  function jobRows(job) {
    const last = job.history[0];
    const busy = job.running || state.rotating.has(job.id);
    const message = state.rotateMessages.get(job.id);
    const late = overdue(job);
    const next = job.running
      ? badge('rotating…', 'info')
      : job.needs_attention
        ? h('span', { class: 'muted' }, 'paused')
        : job.next_due
          ? h('div', { class: 'stack' },
            late && badge('overdue', 'warn', { title: 'Due more than a minute ago and not running' }),
            h('span', { dataset: { at: job.next_due }, title: new Date(job.next_due).toLocaleString() }))
          : h('span', { class: 'muted' }, '–');
    // A job whose last attempt failed (it is retrying, or waits for its
    // next cycle) is failing, whatever its last finished rotation says:
    // that success may be days old.
    const failing = isFailing(job);
    const failure = job.retries > 0 ? `failing · retry ${job.retries}` : `failing · ${plural(job.failed_cycles, 'cycle')}`;
    const when = last && h('span', { class: 'muted small', dataset: { at: last.finished }, title: new Date(last.finished).toLocaleString() });
    const outcome = failing
      ? h('div', { class: 'stack' }, badge(failure, 'bad'), when)
      : last
        ? h('div', { class: 'stack' }, badge(last.outcome, last.outcome === 'rotated' ? 'ok' : 'bad'), when)
        : h('span', { class: 'muted' }, 'never');
    const health = job.needs_attention ? 'attention' : failing ? 'failing' : 'ok';
    const classes = [job.needs_attention && 'attention', late && 'overdue'].filter(Boolean).join(' ');
    const row = h('tr', { class: classes, dataset: { job: job.id, health, overdue: late ? 'yes' : 'no' } },
      h('td', {},
        h('div', { class: 'job-id' },
          h('button', {
            type: 'button',
            class: 'job-link',
            title: 'History, versions and last error',
            dataset: { open: job.id },
            onclick: () => openJob(job.id),
          }, job.id),
          job.needs_attention && badge('NEEDS ATTENTION', 'alert'),
          !job.enabled && badge('disabled', 'muted-badge')),
        h('div', { class: 'job-meta muted small mono' }, job.plugin),
        job.secret && h('div', { class: 'job-meta muted small mono' }, job.secret)),
      h('td', {}, job.schedule),
      h('td', {}, next),
      h('td', {}, outcome),
      h('td', { class: 'num rotations' }, String(job.rotations)),
      h('td', {}, job.history.length ? historyChart(job.history) : h('span', { class: 'muted small' }, 'no history')),
      h('td', { class: 'action' },
        h('button', {
          type: 'button',
          class: 'secondary',
          disabled: busy,
          dataset: { rotate: job.id },
          onclick: () => rotateNow(job.id),
        }, state.rotating.has(job.id) ? 'Rotating…' : 'Rotate now')));
    const rows = [row];
    const notes = [];
    if (message) notes.push(h('div', { class: message.ok ? 'note-ok' : 'note-bad' }, message.text));
    if (job.last_error && (job.needs_attention || failing || (last && last.outcome === 'failed'))) {
      notes.push(h('div', { class: 'note-bad' }, h('b', {}, 'Last error: '), job.last_error));
    }
    if (job.in_progress && !job.running) {
      const p = job.in_progress;
      notes.push(h('div', { class: 'note-warn' },
        `Unfinished rotation ${p.id} stopped after ${p.stage} (attempt ${p.attempt}); the next run resumes it.`));
    }
    if (notes.length) {
      rows.push(h('tr', { class: `detail${job.needs_attention ? ' attention' : ''}` }, h('td', { colspan: 7 }, notes)));
    }
    return rows;
  }

  function renderJobs() {
    const body = $('jobs-body');
    const filtering = state.jobs.length > FILTER_FROM;
    $('jobs-filter').hidden = !filtering;
    const shown = filtering ? state.jobs.filter(matches) : state.jobs;
    const rows = shown.flatMap(jobRows);
    if (!rows.length) {
      const text = state.jobs.length ? 'No job matches the filter.' : 'No jobs. Add one to the config or with POST /scheduler/jobs.';
      rows.push(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, text)));
    }
    // Redrawing replaces the buttons: keep the keyboard focus on the same one.
    const focus = sameButton(document.activeElement);
    body.replaceChildren(...rows);
    if (focus) body.querySelector(focus)?.focus();
    const attention = state.jobs.filter((j) => j.needs_attention).length;
    const late = state.jobs.filter(overdue).length;
    $('jobs-summary').replaceChildren(
      shown.length === state.jobs.length ? plural(state.jobs.length, 'job') : `${shown.length} of ${plural(state.jobs.length, 'job')}`,
      late ? h('span', { class: 'warn-text' }, ` · ${late} overdue`) : '',
      attention ? h('span', { class: 'alert-text' }, ` · ${attention} need${attention === 1 ? 's' : ''} attention`) : '');
    document.title = attention ? `(${attention}) rotator` : 'rotator';
    showError('jobs-error', state.errors.jobs && `Could not load jobs: ${state.errors.jobs}`);
    // Times are filled in by tick(): at once, not a second later.
    tick();
  }

  // ------------------------------------------------------------ one job

  /** The job the dialog shows, from the address: `#job=<id>`. */
  function routedJob() {
    const params = new URLSearchParams(location.hash.slice(1));
    return params.get('job');
  }

  /** Open a job's view; the address names it, so Back closes it. */
  function openJob(id) {
    if (routedJob() !== id) history.pushState(null, '', `#job=${encodeURIComponent(id)}`);
    showJob();
  }

  /** Show what the address names: a job's dialog, or none. */
  function showJob() {
    const id = routedJob();
    const dialog = $('job-dialog');
    if (!id || !state.token) {
      if (dialog.open) dialog.close();
      return;
    }
    if (state.detail?.id !== id) {
      state.detail = { id, job: null, error: null };
      renderDetail();
    }
    if (!dialog.open) dialog.showModal();
    loadJob();
  }

  /** The dialog closed (Close, Escape): take its entry off the history. */
  function onDialogClosed() {
    const id = state.detail?.id;
    state.detail = null;
    if (routedJob()) history.back();
    // Back to the job's name (the row it was opened from may have been redrawn).
    if (id) $('jobs-body').querySelector(`button[data-open="${CSS.escape(id)}"]`)?.focus();
  }

  async function loadJob() {
    const detail = state.detail;
    if (!detail) return;
    try {
      detail.job = await api('GET', `/jobs/${encodeURIComponent(detail.id)}`);
      detail.error = null;
    } catch (e) {
      detail.error = e.status === 404 ? `No job ${detail.id} (it was removed).` : `Could not load the job: ${e.message}`;
    }
    if (state.detail === detail) renderDetail();
  }

  /** "v3", or the fingerprint a KV v1 secret is versioned by. */
  const version = (v) => (v == null ? '–' : typeof v === 'number' ? `v${v}` : String(v));

  function fact(label, ...value) {
    return h('div', { dataset: { fact: label } }, h('dt', {}, label), h('dd', {}, ...value));
  }

  function when(at) {
    return at ? h('span', { dataset: { at }, title: new Date(at).toLocaleString() }) : h('span', { class: 'muted' }, '–');
  }

  function renderDetail() {
    const d = state.detail;
    if (!d) return;
    $('job-title').textContent = d.id;
    showError('job-error', d.error);
    const job = d.job;
    if (!job) {
      $('job-detail').replaceChildren(d.error ? '' : h('p', { class: 'muted' }, 'Loading…'));
      return;
    }
    const step = state.liveSteps.get(job.id);
    const now = job.running
      ? h('div', { class: 'note-info', dataset: { part: 'running' } }, 'Rotating now',
        step ? `: ${step.step} ${step.outcome} (rotation ${step.rotation})` : '', '.')
      : '';
    const p = job.in_progress;
    // The record's unfinished rotation: the one running now, or one a
    // failure or a restart left, which the next run resumes.
    const unfinished = p && h('div', { class: job.running ? 'note-info' : 'note-warn', dataset: { part: 'in-progress' } },
      job.running
        ? `Rotation ${p.id} has passed ${p.stage} (attempt ${p.attempt}), started `
        : `Unfinished rotation ${p.id}: stopped after ${p.stage} (attempt ${p.attempt}; the next run resumes it), started `,
      when(p.started), '.');
    const latest = job.history.find((e) => e.version != null);
    const states = [
      job.needs_attention && badge('NEEDS ATTENTION', 'alert'),
      overdue(job) && badge('overdue', 'warn'),
      isFailing(job) && badge('failing', 'bad'),
      !job.enabled && badge('disabled', 'muted-badge'),
    ];
    $('job-detail').replaceChildren(
      h('p', { class: 'job-meta mono small' }, job.plugin, job.secret ? ` · ${job.secret}` : '', ' ', ...states),
      h('dl', { class: 'facts wide' },
        fact('Schedule', h('span', { class: 'small' }, job.schedule)),
        fact('Next rotation', job.needs_attention ? h('span', { class: 'muted' }, 'paused') : when(job.next_due)),
        fact('Last rotation', when(job.last_rotation)),
        fact('Rotations', String(job.rotations)),
        fact('Current version', version(latest?.version)),
        fact('Failures', job.retries || job.failed_cycles
          ? [job.retries ? `retry ${job.retries} · ` : '', plural(job.failed_cycles, 'failed cycle')].join('')
          : 'none')),
      now,
      unfinished || '',
      job.last_error
        ? h('div', { class: 'note-bad', dataset: { part: 'last-error' } }, h('b', {}, 'Last error: '), job.last_error)
        : '',
      h('h3', {}, 'History'),
      job.history.length
        ? h('table', { class: 'history' },
          h('thead', {}, h('tr', {}, ['Finished', 'Outcome', 'Version', 'Took', 'By', 'Error'].map((t) => h('th', {}, t)))),
          h('tbody', {}, job.history.map((e) => h('tr', { dataset: { outcome: e.outcome } },
            h('td', {}, when(e.finished)),
            h('td', {}, badge(e.outcome, e.outcome === 'rotated' ? 'ok' : 'bad')),
            h('td', { class: 'mono' }, version(e.version)),
            h('td', { class: 'num' }, millis(Date.parse(e.finished) - Date.parse(e.started))),
            h('td', { class: 'small' }, e.actor),
            h('td', { class: 'small error-cell' }, e.error || '')))))
        : h('p', { class: 'muted' }, 'Not rotated yet.'));
    tick();
  }
