  // The activity feed: the recent past on load, then the live events of
  // `GET /events`. Part of the dashboard script (see app.js).

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
    // A replayed event this page has shown already (a reconnect).
    if (e.seq != null && state.lastSeq != null && e.seq <= state.lastSeq) return;
    if (e.seq != null) state.lastSeq = e.seq;
    const past = state.replaying;
    if (!past) trackStep(e);
    if (e.duration_ms != null) state.stepTime.set(e.rotation_id, (state.stepTime.get(e.rotation_id) || 0) + e.duration_ms);
    let duration = e.duration_ms;
    if (e.step === 'rotation' && e.outcome !== 'started') {
      duration = state.stepTime.get(e.rotation_id);
      state.stepTime.delete(e.rotation_id);
    }
    const kind = OUTCOME_KIND[e.outcome] || 'info';
    const at = e.at ? new Date(e.at) : new Date();
    const summary = e.step === 'rotation';
    const row = h('li', {
      class: `ev ${summary ? 'summary' : 'step'} ${kind === 'bad' ? 'failed' : ''} ${past ? 'past' : ''}`,
      dataset: { kind: 'rotation', job: e.job, step: e.step, outcome: e.outcome, rotation: e.rotation_id, past: past ? 'yes' : null },
    },
    h('time', { title: at.toLocaleString() }, clock(at)),
    h('span', { class: 'ev-main' },
      h('strong', {}, e.job), ' ',
      h('span', { class: 'step-name' }, summary ? 'rotation' : e.step),
      ' ', badge(e.outcome, kind),
      summary && h('span', { class: 'actor' }, ` by ${e.actor}`),
      e.denied_calls ? badge(`${plural(e.denied_calls, 'denied call')}`, 'bad') : ''),
    h('span', { class: 'ev-dur' }, millis(duration)),
    e.error ? h('div', { class: 'ev-error' }, e.kind ? `${e.kind}: ` : '', e.error) : '');
    addFeedRow(row);
    if (summary && !past) refreshSoon(e.outcome === 'started' ? 0 : 200);
  }

  /** Keep each running rotation's latest step, for the job's view. */
  function trackStep(e) {
    if (e.step === 'rotation' && e.outcome !== 'started') state.liveSteps.delete(e.job);
    else if (e.step !== 'rotation') state.liveSteps.set(e.job, { rotation: e.rotation_id, step: e.step, outcome: e.outcome });
    if (state.detail?.id === e.job) renderDetail();
  }

  /** Where the replayed recent past ends and the live events begin. */
  function onBacklogEnd(count) {
    state.replaying = false;
    if (count > 0) {
      addFeedRow(h('li', { class: 'ev divider', dataset: { kind: 'divider' } },
        h('span', { class: 'ev-main muted small' }, `Live above; below, ${plural(count, 'rotation event')} from before this page connected.`)));
    }
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
      else if (event === 'backlog') onBacklogEnd(Number(text));
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
        // The recent past first (after the last event seen, on a reconnect).
        const headers = { Authorization: `Bearer ${state.token}`, Accept: 'text/event-stream' };
        if (state.lastSeq != null) headers['Last-Event-ID'] = String(state.lastSeq);
        const resp = await fetch(`/events?recent=${FEED_MAX}`, {
          headers,
          cache: 'no-store',
          signal: abort.signal,
        });
        if (resp.status === 401) {
          signOut('The daemon refused this token (401). Paste a valid API token.');
          return;
        }
        if (!resp.ok || !resp.body) throw new Error(`HTTP ${resp.status}`);
        setLive('on', 'live');
        state.replaying = true;
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
