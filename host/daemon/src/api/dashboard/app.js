// The rotator dashboard. Plain JavaScript, no build step, nothing from
// elsewhere: everything it shows comes from this daemon's operator API,
// called with the API token as `Authorization: Bearer`.
//
// The token comes from the URL fragment (`#token=…`, which a browser never
// sends to a server) and is then removed from the address bar and kept in
// this tab's session storage; or it is typed into the sign-in form.
//
// Data: jobs, leases and the daemon's Vault token are fetched every 10 s and
// whenever a rotation ends; countdowns tick every second in between. The
// live feed reads `GET /events` with fetch() and a stream reader, because
// EventSource cannot send the Authorization header, and reconnects with
// backoff when the stream breaks.
'use strict';

(() => {
  const TOKEN_KEY = 'rotator.api-token';
  const REFRESH_MS = 10000;
  const FEED_MAX = 200;
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;

  const $ = (id) => document.getElementById(id);

  // The SVG namespace, read off an element the HTML parser made, so this file
  // needs to spell no URL.
  const SVG_NS = (() => {
    const t = document.createElement('template');
    t.innerHTML = '<svg></svg>';
    return t.content.firstChild.namespaceURI;
  })();

  const state = {
    token: null,
    jobs: [],
    leases: [],
    vaultToken: null,
    // performance.now() when the data above arrived: countdowns start there.
    loadedAt: 0,
    errors: { jobs: null, leases: null, token: null },
    // job id → true while its "Rotate now" request is out.
    rotating: new Set(),
    // job id → { ok, text }: the last "Rotate now" answer.
    rotateMessages: new Map(),
    // rotation id → milliseconds spent in its steps so far.
    stepTime: new Map(),
    feedAbort: null,
    // Bumped on every sign-in, so a feed reader of an old session stops.
    session: 0,
    refreshTimer: null,
    timers: [],
  };

  // ---------------------------------------------------------------- helpers

  /** An element with properties and children; text is never parsed as HTML. */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === 'class') el.className = value;
      else if (key === 'dataset') Object.assign(el.dataset, value);
      else if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child == null || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function svg(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
    return el;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

  /** "in 59 min", "3 h 5 min ago", "due now". */
  function relative(ms) {
    const s = Math.floor(Math.abs(ms) / 1000);
    if (s < 5) return ms >= 0 ? 'due now' : 'just now';
    let text;
    if (s < 60) text = `${s} s`;
    else if (s < 3600) text = `${Math.floor(s / 60)} min`;
    else if (s < 2 * 86400) {
      const m = Math.floor((s % 3600) / 60);
      text = `${Math.floor(s / 3600)} h${m ? ` ${m} min` : ''}`;
    } else text = `${Math.floor(s / 86400)} days`;
    return ms >= 0 ? `in ${text}` : `${text} ago`;
  }

  /** A countdown: "1 h 02 min", "12 min 05 s", "42 s". */
  function countdown(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const pad = (n) => String(n).padStart(2, '0');
    if (s >= 3600) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
    if (s >= 60) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
    return `${s} s`;
  }

  const clock = (date) =>
    date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });

  function millis(ms) {
    if (ms == null) return '';
    if (ms < 1) return `${ms.toFixed(2)} ms`;
    return ms < 10 ? `${ms.toFixed(1)} ms` : ms < 10000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  /** Seconds left of a countdown the API reported at `state.loadedAt`. */
  const remaining = (seconds) => seconds - (performance.now() - state.loadedAt) / 1000;

  // ------------------------------------------------------------- the token

  /** Move a `#token=…` fragment into session storage and out of sight. */
  function takeTokenFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get('token');
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      history.replaceState(null, '', location.pathname + location.search);
    }
  }

  function showLogin(message) {
    $('app').hidden = true;
    $('sign-out').hidden = true;
    $('login').hidden = false;
    $('login-error').hidden = !message;
    $('login-error').textContent = message || '';
    setLive('off', 'signed out');
    $('token-input').focus();
  }

  /** Forget the token and stop every call that uses it. */
  function signOut(message) {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    state.session += 1;
    if (state.feedAbort) state.feedAbort.abort();
    state.timers.forEach(clearInterval);
    state.timers = [];
    clearTimeout(state.refreshTimer);
    showLogin(message);
  }

  // ------------------------------------------------------------ API calls

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function api(method, path) {
    const token = state.token;
    const resp = await fetch(path, {
      method,
      headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' },
      cache: 'no-store',
    });
    let body = null;
    try {
      body = await resp.json();
    } catch {
      // Not JSON: the status says enough.
    }
    if (resp.status === 401 && token === state.token) {
      signOut('The daemon refused this token (401). Paste a valid API token.');
    }
    if (!resp.ok) throw new ApiError(resp.status, (body && body.error) || resp.statusText);
    return body;
  }

  async function refresh() {
    clearTimeout(state.refreshTimer);
    const [jobs, leases, vaultToken] = await Promise.allSettled([
      api('GET', '/scheduler/jobs'),
      api('GET', '/leases'),
      api('GET', '/token'),
    ]);
    if (!state.token) return;
    state.loadedAt = performance.now();
    const take = (result, key, pick) => {
      if (result.status === 'fulfilled') {
        state.errors[key] = null;
        return pick(result.value);
      }
      state.errors[key] = result.reason.message || String(result.reason);
      return undefined;
    };
    state.jobs = take(jobs, 'jobs', (v) => v.jobs) ?? state.jobs;
    state.leases = take(leases, 'leases', (v) => v.leases) ?? state.leases;
    state.vaultToken = take(vaultToken, 'token', (v) => v) ?? state.vaultToken;
    renderJobs();
    renderLeases();
    renderToken();
    tick();
  }

  /** Refresh once, soon: several rotations ending together cost one refresh. */
  function refreshSoon(delay) {
    clearTimeout(state.refreshTimer);
    state.refreshTimer = setTimeout(() => refresh().catch(() => {}), delay);
  }

  async function rotateNow(id) {
    state.rotating.add(id);
    state.rotateMessages.delete(id);
    renderJobs();
    try {
      const r = await api('POST', `/jobs/${encodeURIComponent(id)}/rotate`);
      const version = r.version != null ? `: version ${r.version}` : '';
      state.rotateMessages.set(id, { ok: true, text: `Rotated${version}` });
      setTimeout(() => {
        if (state.rotateMessages.get(id)?.ok) {
          state.rotateMessages.delete(id);
          renderJobs();
        }
      }, 8000);
    } catch (e) {
      const status = e.status ? ` (${e.status})` : '';
      state.rotateMessages.set(id, { ok: false, text: `Rotate now refused${status}: ${e.message}` });
    } finally {
      state.rotating.delete(id);
      renderJobs();
      refreshSoon(0);
    }
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
    const next = job.running
      ? badge('rotating…', 'info')
      : job.needs_attention
        ? h('span', { class: 'muted' }, 'paused')
        : job.next_due
          ? h('span', { dataset: { at: job.next_due }, title: new Date(job.next_due).toLocaleString() })
          : h('span', { class: 'muted' }, '–');
    // A job whose last attempt failed (it is retrying, or waits for its
    // next cycle) is failing, whatever its last finished rotation says:
    // that success may be days old.
    const failing = !job.running && (job.retries > 0 || job.failed_cycles > 0);
    const failure = job.retries > 0 ? `failing · retry ${job.retries}` : `failing · ${plural(job.failed_cycles, 'cycle')}`;
    const when = last && h('span', { class: 'muted small', dataset: { at: last.finished }, title: new Date(last.finished).toLocaleString() });
    const outcome = failing
      ? h('div', { class: 'stack' }, badge(failure, 'bad'), when)
      : last
        ? h('div', { class: 'stack' }, badge(last.outcome, last.outcome === 'rotated' ? 'ok' : 'bad'), when)
        : h('span', { class: 'muted' }, 'never');
    const health = job.needs_attention ? 'attention' : failing ? 'failing' : 'ok';
    const row = h('tr', { class: job.needs_attention ? 'attention' : '', dataset: { job: job.id, health } },
      h('td', {},
        h('div', { class: 'job-id' },
          h('strong', {}, job.id),
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
    const rows = state.jobs.flatMap(jobRows);
    if (!rows.length) {
      rows.push(h('tr', {}, h('td', { colspan: 7, class: 'empty' }, 'No jobs. Add one to the config or with POST /scheduler/jobs.')));
    }
    body.replaceChildren(...rows);
    const attention = state.jobs.filter((j) => j.needs_attention).length;
    $('jobs-summary').replaceChildren(
      plural(state.jobs.length, 'job'),
      attention ? h('span', { class: 'alert-text' }, ` · ${attention} need${attention === 1 ? 's' : ''} attention`) : '');
    document.title = attention ? `(${attention}) rotator` : 'rotator';
    showError('jobs-error', state.errors.jobs && `Could not load jobs: ${state.errors.jobs}`);
  }

  function renderLeases() {
    const body = $('leases-body');
    if (state.errors.leases) {
      body.replaceChildren(h('tr', {}, h('td', { colspan: 5, class: 'error' }, `Could not load leases: ${state.errors.leases}`)));
      return;
    }
    const rows = state.leases.map((l) => h('tr', {},
      h('td', { class: 'mono' }, l.path),
      h('td', { class: 'mono ellipsis', title: l.lease_id }, l.lease_id),
      h('td', { class: 'num', dataset: { ttl: l.ttl_seconds } }),
      h('td', {}, `${l.next_action} in `, h('span', { dataset: { ttl: l.next_action_in_seconds } }),
        l.consecutive_failures ? badge(plural(l.consecutive_failures, 'failure'), 'bad') : ''),
      h('td', { class: 'num', dataset: { ttl: l.budget_seconds } })));
    if (!rows.length) {
      rows.push(h('tr', {}, h('td', { colspan: 5, class: 'empty' },
        'No leases tracked. Dynamic credentials fetched through the daemon (GET /dynamic/<role>) appear here.')));
    }
    body.replaceChildren(...rows);
    const shortest = Math.min(...state.leases.map((l) => l.budget_seconds));
    $('leases-summary').replaceChildren(state.leases.length
      ? h('span', {}, `${plural(state.leases.length, 'lease')} · budget `, h('span', { dataset: { ttl: shortest } }))
      : '');
  }

  function renderToken() {
    const t = state.vaultToken;
    if (state.errors.token) {
      $('token-note').textContent = `Could not load the token: ${state.errors.token}`;
      $('token-note').className = 'error small';
    }
    if (!t) return;
    const ttl = $('token-ttl');
    const budget = $('token-budget');
    if (t.expires) {
      ttl.replaceChildren(h('span', { dataset: { ttl: t.ttl_seconds } }));
    } else ttl.replaceChildren(h('span', { class: 'muted' }, 'does not expire'));
    if (t.budget_seconds != null) {
      budget.replaceChildren(h('span', { dataset: { ttl: t.budget_seconds } }));
    } else budget.replaceChildren(h('span', { class: 'muted' }, 'unlimited'));
    $('token-renewals').textContent = String(t.renewals);
    $('token-logins').textContent = String(t.logins);
    const stateBadge = $('token-state');
    if (t.stranded) {
      stateBadge.textContent = 'expiring: supply a new token';
      stateBadge.className = 'badge bad';
    } else if (t.consecutive_failures) {
      stateBadge.textContent = `${plural(t.consecutive_failures, 'failure')}`;
      stateBadge.className = 'badge bad';
    } else if (t.renew_denied) {
      stateBadge.textContent = 'renewal denied';
      stateBadge.className = 'badge warn';
    } else {
      stateBadge.textContent = t.renewable ? 'renewable' : 'not renewable';
      stateBadge.className = `badge ${t.renewable ? 'ok' : 'muted-badge'}`;
    }
    const note = $('token-note');
    note.className = 'muted small';
    note.replaceChildren(
      `Policies: ${(t.policies || []).join(', ') || 'none'}.`,
      t.next_action_in_seconds != null
        ? h('span', {}, ' Next renewal in ', h('span', { dataset: { ttl: t.next_action_in_seconds } }), '.')
        : '');
  }

  function showError(id, message) {
    $(id).hidden = !message;
    $(id).textContent = message || '';
  }

  /** Every second: move the relative times and the countdowns on. */
  function tick() {
    const now = Date.now();
    for (const el of document.querySelectorAll('[data-at]')) el.textContent = relative(Date.parse(el.dataset.at) - now);
    for (const el of document.querySelectorAll('[data-ttl]')) {
      const left = remaining(Number(el.dataset.ttl));
      el.textContent = countdown(left);
      el.classList.toggle('expiring', left < 60);
    }
  }

  // ------------------------------------------------------------ live feed

  function setLive(kind, text) {
    $('live').dataset.state = kind;
    $('live-text').textContent = text;
  }

  function addFeedRow(row) {
    const feed = $('feed');
    feed.prepend(row);
    while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
    $('feed-empty').hidden = true;
  }

  const OUTCOME_KIND = { ok: 'ok', rotated: 'ok', started: 'info', failed: 'bad', 'rolled-back': 'bad', 'kept-pending': 'warn' };

  function onRotation(e) {
    if (e.duration_ms != null) state.stepTime.set(e.rotation_id, (state.stepTime.get(e.rotation_id) || 0) + e.duration_ms);
    let duration = e.duration_ms;
    if (e.step === 'rotation' && e.outcome !== 'started') {
      duration = state.stepTime.get(e.rotation_id);
      state.stepTime.delete(e.rotation_id);
    }
    const kind = OUTCOME_KIND[e.outcome] || 'info';
    const summary = e.step === 'rotation';
    const row = h('li', {
      class: `ev ${summary ? 'summary' : 'step'} ${kind === 'bad' ? 'failed' : ''}`,
      dataset: { kind: 'rotation', job: e.job, step: e.step, outcome: e.outcome, rotation: e.rotation_id },
    },
    h('time', {}, clock(new Date())),
    h('span', { class: 'ev-main' },
      h('strong', {}, e.job), ' ',
      h('span', { class: 'step-name' }, summary ? 'rotation' : e.step),
      ' ', badge(e.outcome, kind),
      summary && h('span', { class: 'actor' }, ` by ${e.actor}`),
      e.denied_calls ? badge(`${plural(e.denied_calls, 'denied call')}`, 'bad') : ''),
    h('span', { class: 'ev-dur' }, millis(duration)),
    e.error ? h('div', { class: 'ev-error' }, e.kind ? `${e.kind}: ` : '', e.error) : '');
    addFeedRow(row);
    if (summary) refreshSoon(e.outcome === 'started' ? 0 : 200);
  }

  const LEASE_KIND = { tracked: 'info', renewed: 'ok', refetched: 'ok', dropped: 'bad', revoked: 'warn' };

  function onLease(e) {
    const kind = LEASE_KIND[e.kind] || 'info';
    const detail = e.kind === 'dropped' ? e.reason : e.ttl_seconds != null ? `TTL ${countdown(e.ttl_seconds)}` : '';
    addFeedRow(h('li', { class: `ev lease ${kind === 'bad' ? 'failed' : ''}`, dataset: { kind: 'lease', lease: e.kind } },
      h('time', {}, clock(new Date())),
      h('span', { class: 'ev-main' }, 'lease ', badge(e.kind, kind), ' ', h('span', { class: 'mono small' }, e.path)),
      h('span', { class: 'ev-dur' }, detail || ''),
      e.capped ? h('div', { class: 'ev-note' }, 'Vault capped the renewal at the max TTL; fresh credentials follow.') : ''));
    refreshSoon(500);
  }

  /** One server-sent-events frame: `event:` and `data:` lines. */
  function onFrame(frame) {
    let event = 'message';
    const data = [];
    for (const line of frame.split(/\r?\n/)) {
      if (!line || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'event') event = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return;
    const text = data.join('\n');
    try {
      if (event === 'rotation') onRotation(JSON.parse(text));
      else if (event === 'lease') onLease(JSON.parse(text));
      else if (event === 'lagged') {
        addFeedRow(h('li', { class: 'ev failed', dataset: { kind: 'lagged' } }, h('time', {}, clock(new Date())),
          h('span', { class: 'ev-main' }, `Missed ${plural(Number(text), 'event')}: this page fell behind.`)));
        refreshSoon(0);
      }
    } catch (err) {
      console.warn('unreadable feed event', event, err);
    }
  }

  /** Read the feed until signed out; reconnect with backoff and jitter. */
  async function readFeed(session) {
    let backoff = BACKOFF_MIN_MS;
    while (state.token && state.session === session) {
      const abort = new AbortController();
      state.feedAbort = abort;
      try {
        const resp = await fetch('/events', {
          headers: { Authorization: `Bearer ${state.token}`, Accept: 'text/event-stream' },
          cache: 'no-store',
          signal: abort.signal,
        });
        if (resp.status === 401) {
          signOut('The daemon refused this token (401). Paste a valid API token.');
          return;
        }
        if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
        setLive('on', 'live');
        backoff = BACKOFF_MIN_MS;
        // Catch up on whatever happened while the feed was away.
        refreshSoon(0);
        const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            onFrame(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
        throw new Error('the feed ended');
      } catch (err) {
        if (abort.signal.aborted || state.session !== session) return;
        const wait = backoff + Math.random() * backoff * 0.3;
        setLive('retry', `reconnecting in ${Math.round(wait / 1000)} s`);
        await sleep(wait);
        backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
      }
    }
  }

  // ------------------------------------------------------------------ start

  function start(token) {
    state.token = token;
    state.session += 1;
    $('login').hidden = true;
    $('app').hidden = false;
    $('sign-out').hidden = false;
    setLive('retry', 'connecting');
    refresh().catch(() => {});
    readFeed(state.session);
    state.timers.push(setInterval(() => refresh().catch(() => {}), REFRESH_MS), setInterval(tick, 1000));
  }

  function init() {
    takeTokenFromFragment();
    $('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      const token = $('token-input').value.trim();
      $('token-input').value = '';
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      start(token);
    });
    $('sign-out').addEventListener('click', () => signOut(''));
    window.addEventListener('hashchange', () => {
      takeTokenFromFragment();
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token && token !== state.token) {
        if (state.token) signOut('');
        start(token);
      }
    });
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) start(token);
    else showLogin('');
  }

  init();
})();
