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
//
// Served as one script: this file, jobs.js, feed.js, then the call to
// init(), inside one function (see mod.rs), so they share these names.

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
    // job id → { rotation, step, outcome }: the last step of its running rotation.
    liveSteps: new Map(),
    // The number of the last rotation event seen (`seq`), to resume after it.
    lastSeq: null,
    // True while the feed replays the recent past, before the live events.
    replaying: false,
    // The job the dialog shows: { id, job, error }, or null.
    detail: null,
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
      else if (key === 'dataset') {
        for (const [name, v] of Object.entries(value)) if (v != null) el.dataset[name] = v;
      }
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

  /** Move a `#token=…` fragment into session storage and out of sight,
   *  keeping the rest of the fragment (`#token=…&job=…` opens that job). */
  function takeTokenFromFragment() {
    const params = new URLSearchParams(location.hash.slice(1));
    const token = params.get('token');
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      params.delete('token');
      const rest = params.toString();
      history.replaceState(null, '', location.pathname + location.search + (rest ? `#${rest}` : ''));
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
    if ($('job-dialog').open) $('job-dialog').close();
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
    const [jobs, leases, vaultToken, status] = await Promise.allSettled([
      api('GET', '/scheduler/jobs'),
      api('GET', '/leases'),
      api('GET', '/token'),
      api('GET', '/status'),
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
    state.replica = take(status, 'status', (v) => v.replica) ?? state.replica;
    renderJobs();
    renderLeases();
    renderToken();
    renderReplica();
    tick();
    if (state.detail) loadJob();
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
      // 202: the new value is current and `finish` waits for the job's
      // consumers (its adoption gate); the answer says until when.
      const text = r.status === 'awaiting-adoption'
        ? `Version ${r.version} is current; finish waits for its consumers until ${new Date(r.until).toLocaleTimeString()}`
        : `Rotated${version}`;
      state.rotateMessages.set(id, { ok: true, text });
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

  /** With replicas: who this one is, what it owns, and the others it sees. */
  function renderReplica() {
    const r = state.replica;
    $('replica-card').hidden = !r;
    if (!r) return;
    $('replica-id').textContent = r.id;
    $('replica-jobs').textContent = `${r.jobs_owned} (${plural(r.shards_owned, 'shard')})`;
    const badge = $('replica-state');
    badge.textContent = r.holding ? 'holding' : 'not holding';
    badge.className = `badge ${r.holding ? 'ok' : 'bad'}`;
    $('replica-members').replaceChildren(...r.members.map((m) => h('li', {},
      h('span', { class: m.id === r.id ? 'me' : '' }, m.id),
      ` · ${plural(m.shards, 'shard')} · ${plural(m.takeovers, 'takeover')}`,
      m.api ? h('span', { class: 'muted' }, ` · ${m.api}`) : '')));
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
    showJob();
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
    $('filter-text').addEventListener('input', renderJobs);
    $('filter-trouble').addEventListener('change', renderJobs);
    $('job-close').addEventListener('click', () => $('job-dialog').close());
    $('job-dialog').addEventListener('close', onDialogClosed);
    window.addEventListener('popstate', showJob);
    window.addEventListener('hashchange', () => {
      takeTokenFromFragment();
      const token = sessionStorage.getItem(TOKEN_KEY);
      if (token && token !== state.token) {
        if (state.token) signOut('');
        start(token);
      }
    });
    // Opened at a job's address: put the page itself under it in the
    // history, so closing the job's view goes back to the page, not away.
    const linked = routedJob();
    if (linked) {
      history.replaceState(null, '', location.pathname + location.search);
      history.pushState(null, '', `#job=${encodeURIComponent(linked)}`);
    }
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) start(token);
    else showLogin('');
  }
