// The device status (GET /api/v1/status): fetched on every page, refreshed
// live every 2 s while an issuance request is active or the auto request
// is about to run, and never longer than MAX_POLLS in a row. Also the
// "restart to register" banner and the status panel of the SCEP page.
import { h, replace, clear, timeEl, details, errorBox, notice, confirmDialog, button } from './dom.js';
import { get, post, del, session, isAdmin } from './api.js';

const POLL_MS = 2000;
const MAX_POLLS = 450; // 15 minutes of live refresh, then a button resumes it
const ACTIVE = new Set(['queued', 'generating_key', 'contacting_server', 'sent', 'pending']);

let current = null;
let clockOffset = 0; // server time - browser time, ms
let timer = null;
let polls = 0;
let failures = 0;
let stopped = false;
let lastError = null;
const listeners = new Set();

export const stateLabels = {
  queued: 'Queued',
  generating_key: 'Generating key',
  contacting_server: 'Contacting server',
  sent: 'Sent',
  pending: 'Pending',
  acquired: 'Acquired',
  registered: 'Registered',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export function latestStatus() {
  return current;
}

export function requestActive(s) {
  const r = s && s.latest_request;
  return !!(r && ACTIVE.has(r.state));
}

function autoDueSoon(s) {
  const a = s && s.auto_request;
  if (!a || !a.enabled || !a.next_run) return false;
  const now = Date.now() + clockOffset;
  return new Date(a.next_run).getTime() - now < 120000;
}

export function liveRefreshing() {
  return timer !== null;
}

export function liveStopped() {
  return stopped;
}

export function onStatus(fn) {
  listeners.add(fn);
  if (current) fn(current);
  return () => listeners.delete(fn);
}

function notify() {
  for (const fn of [...listeners]) {
    try {
      fn(current, lastError);
    } catch {
      // a listener of a page that is gone: ignore
    }
  }
}

export function stopLive() {
  if (timer) clearTimeout(timer);
  timer = null;
}

function schedule() {
  stopLive();
  if (!session.user) return;
  if (!(requestActive(current) || autoDueSoon(current))) {
    polls = 0;
    stopped = false;
    return;
  }
  if (polls >= MAX_POLLS) {
    stopped = true;
    return;
  }
  polls += 1;
  timer = setTimeout(() => {
    timer = null;
    refreshStatus().catch(() => {});
  }, failures ? POLL_MS * Math.min(5, failures + 1) : POLL_MS);
}

// Fetches the status and tells every listener; restarts the live refresh.
export async function refreshStatus(opts) {
  if (opts && opts.resume) {
    polls = 0;
    stopped = false;
  }
  try {
    const s = await get('/status');
    current = s;
    lastError = null;
    failures = 0;
    if (s.time) clockOffset = new Date(s.time).getTime() - Date.now();
    schedule();
    notify();
    return s;
  } catch (e) {
    lastError = e;
    failures += 1;
    if (failures >= 5 || e.status === 401) {
      stopped = failures >= 5;
      stopLive();
    } else {
      schedule();
    }
    notify();
    throw e;
  }
}

export function resetStatus() {
  stopLive();
  current = null;
  polls = 0;
  stopped = false;
  failures = 0;
  const banner = document.getElementById('banner');
  if (banner) {
    clear(banner);
    banner.hidden = true;
  }
}

// ---- restart ----

export async function restartFlow(after) {
  const keys = await get('/keys').catch(() => null);
  const waiting = keys ? keys.filter((k) => k.state === 'acquired') : [];
  const n = keys ? waiting.length : (current ? current.pending_registration : 0);
  const one = n === 1;
  const names = waiting.map((k) => (k.replaces ? `${k.name} (replaces ${k.replaces})` : k.name));
  const ok = await confirmDialog({
    title: 'Restart to register',
    body: [
      h('p', { class: 'restart-count' }, n === 0 ? 'No acquired key pair waits for registration.'
        : `${one ? 'One acquired key pair waits' : `${n} acquired key pairs wait`} for registration${names.length ? `: ${names.join(', ')}` : ''}.`),
      n ? h('p', {}, `Restart registers ${one ? 'it' : 'them'} now. A function bound to a replaced key switches to its new key at once; with "Delete old key and certificate" the replaced pair is deleted.`) : null,
    ],
    confirm: 'Restart',
  });
  if (!ok) return null;
  const result = await post('/restart');
  await refreshStatus().catch(() => {});
  if (after) after(result);
  return result;
}

export function restartResult(result) {
  const reg = (result && result.registered) || [];
  const gone = (result && result.deleted) || [];
  return notice('success',
    h('p', { class: 'alert-message' }, reg.length ? `Registered: ${reg.join(', ')}.` : 'Nothing was waiting for registration.'),
    gone.length ? h('p', {}, `Deleted (replaced): ${gone.join(', ')}.`) : null);
}

// ---- the banner ----

export function renderBanner(s, onRestarted) {
  const banner = document.getElementById('banner');
  if (!banner) return;
  const n = s ? s.pending_registration : 0;
  if (!session.user || !n) {
    if (banner.firstChild) clear(banner);
    banner.hidden = true;
    return;
  }
  banner.hidden = false;
  const text = `${n === 1 ? 'An acquired key pair waits' : `${n} acquired key pairs wait`} for registration: restart to register ${n === 1 ? 'it' : 'them'}.`;
  const existing = banner.querySelector('.banner-text');
  if (existing && existing.textContent === text && banner.querySelector('.banner-action')) return;
  const slot = h('div', { class: 'banner-result' });
  let action;
  if (isAdmin()) {
    const btn = button('Restart', { class: 'btn btn-primary' });
    btn.addEventListener('click', async () => {
      btn.disabled = true;
      try {
        const result = await restartFlow();
        if (result && onRestarted) onRestarted(result);
      } catch (e) {
        replace(slot, errorBox(e, { title: 'Restart failed' }));
      } finally {
        btn.disabled = false;
      }
    });
    action = h('div', { class: 'banner-action' }, btn);
  } else {
    action = h('p', { class: 'banner-action hint' }, 'An administrator (System Manager) must restart to register.');
  }
  replace(banner, h('div', { class: 'banner-inner' },
    h('p', { class: 'banner-text' }, text), action), slot);
}

// ---- the status panel ----

const STEPS = [
  ['queued', 'Queued'],
  ['generating_key', 'Key generation'],
  ['contacting_server', 'Contacting server'],
  ['sent', 'Sent'],
  ['pending', 'Pending approval'],
  ['acquired', 'Acquired'],
  ['registered', 'Registered'],
];

// Requests seen deferred in this page: their "Pending approval" step stays
// shown once they moved on (the API keeps no history of states).
const seenPending = new Set();

function stepper(r) {
  if (r.state === 'pending') seenPending.add(r.id);
  const showPending = r.state === 'pending' || seenPending.has(r.id) || r.attempts > 1;
  const steps = STEPS.filter(([state]) => state !== 'pending' || showPending);
  const order = steps.map(([s]) => s);
  const at = order.indexOf(r.state);
  const ol = h('ol', { class: `steps steps-${steps.length}`, 'aria-label': 'Progress of the request' });
  steps.forEach(([state, label], i) => {
    let cls = 'todo';
    let sr = 'not reached';
    if (i < at || (i === at && state === 'registered')) {
      cls = 'done';
      sr = 'done';
    } else if (i === at) {
      cls = 'current';
      sr = 'current step';
    }
    ol.appendChild(h('li', { class: `step step-${cls}`, 'aria-current': cls === 'current' ? 'step' : null },
      h('span', { class: 'step-mark', 'aria-hidden': 'true' }), h('span', { class: 'step-label' }, label),
      h('span', { class: 'sr-only' }, ` (${sr})`)));
  });
  return ol;
}

export function stateBadge(state) {
  return h('span', { class: `badge badge-${state}` }, stateLabels[state] || state);
}

function kindLabel(kind) {
  return kind === 'auto' ? 'Auto request' : kind === 'manual' ? 'Manual request' : kind;
}

function resultLabel(code) {
  if (!code) return null;
  if (stateLabels[code]) return stateLabels[code];
  return `Failed (${code})`;
}

// The last refusal of a cancellation, shown while its request is the latest.
let cancelRefused = null;

// [Cancel] of an unfinished request: asks, then DELETE /scep/requests/{id}.
async function cancelRequest(r) {
  const ok = await confirmDialog({
    title: `Cancel request #${r.id}?`,
    body: [
      h('p', {}, `The request for key "${r.key_name}" ends as cancelled: its key is discarded and the device sends the server nothing more. A new request can be sent at once.`),
      r.transaction_id ? h('p', {}, 'The server has received it already: ask its administrator to reject it there.') : null,
    ],
    confirm: 'Cancel Request',
    danger: true,
  });
  if (!ok) return;
  cancelRefused = null;
  try {
    await del(`/scep/requests/${r.id}`);
  } catch (e) {
    cancelRefused = { id: r.id, err: e };
  }
  await refreshStatus().catch(() => {});
  notify();
}

function latestRequestView(r) {
  if (!r) return h('p', { class: 'muted' }, 'No issuance request has been sent yet.');
  const out = [];
  const label = stateLabels[r.state] || r.state;
  // the state's text, unless the badge or the box below already says it
  const boxed = r.error && (r.state === 'failed' || r.state === 'cancelled');
  const text = r.status_text && r.status_text.toLowerCase() !== label.toLowerCase() && !boxed ? r.status_text : null;
  out.push(h('p', { class: 'state-line' }, stateBadge(r.state), text ? [' ', h('span', { class: 'state-text' }, text)] : null));
  if (r.state !== 'failed' && r.state !== 'cancelled') out.push(stepper(r));
  out.push(details([
    ['Request', `#${r.id} · ${kindLabel(r.kind)}`],
    ['Key name', r.key_name],
    ['Attempts', String(r.tries === undefined ? r.attempts : r.tries)],
    r.next_attempt_at ? ['Next attempt', timeEl(r.next_attempt_at)] : null,
    ['Sent', timeEl(r.created_at)],
    ['Last change', timeEl(r.updated_at)],
    ['Transaction ID', r.transaction_id ? h('span', { class: 'mono break' }, r.transaction_id) : null],
  ]));
  if (r.error && r.state === 'pending') {
    out.push(notice('info',
      h('p', { class: 'alert-message' }, r.error.message),
      r.error.detail ? h('p', { class: 'alert-detail' }, h('span', { class: 'label' }, 'Detail: '), r.error.detail) : null,
      h('p', { class: 'alert-remedy' }, h('span', { class: 'label' }, 'What to do: '),
        'Ask the CA administrator to approve the request; the device asks the server again automatically.')));
  } else if (r.error && r.state === 'failed') {
    out.push(errorBox(r.error, { title: 'The request failed' }));
  } else if (r.state === 'acquired') {
    out.push(notice('warning', h('p', { class: 'alert-message' }, 'The certificate was acquired. Restart to register the key pair.')));
  } else if (r.state === 'cancelled') {
    out.push(notice('info', h('p', { class: 'alert-message' }, 'The request was cancelled; its key was discarded.')));
  }
  if (cancelRefused && cancelRefused.id === r.id) out.push(errorBox(cancelRefused.err, { title: 'The request was not cancelled' }));
  if (isAdmin() && ACTIVE.has(r.state)) {
    const b = button('Cancel', { class: 'btn btn-small', 'aria-label': `Cancel request #${r.id}` });
    b.addEventListener('click', () => cancelRequest(r));
    out.push(h('div', { class: 'actions' }, b));
  }
  return out;
}

function autoView(a) {
  if (!a) return null;
  return details([
    ['Timer', a.enabled ? (a.done ? 'On, done: the one-time request has run' : 'On') : 'Off'],
    ['Next run', a.enabled && a.done ? h('span', { class: 'muted' }, 'None') : a.enabled ? h('span', {}, timeEl(a.next_run, 'Not scheduled'),
      a.jitter_s ? h('span', { class: 'muted' }, ` (includes a random delay of ${a.jitter_s} s)`) : null) : h('span', { class: 'muted' }, 'Timer off')],
    ['Last result', resultLabel(a.last_result)],
    ['Attempts left', String(a.attempts_left)],
    ['Last request', a.last_request_id ? `#${a.last_request_id}` : null],
  ]);
}

// The panel of the SCEP page. Returns the element; unsubscribe is called
// by the page when it is left.
export function statusPanel(register) {
  const latest = h('div', { class: 'status-latest' });
  const auto = h('div', { class: 'status-auto' });
  const live = h('p', { class: 'sr-only', 'aria-live': 'polite', role: 'status' });
  const meta = h('p', { class: 'status-meta' });
  const refreshBtn = button('Refresh', { class: 'btn btn-small' });
  const errSlot = h('div', {});
  refreshBtn.addEventListener('click', () => refreshStatus({ resume: true }).catch(() => {}));
  let lastAnnounced = '';
  const panel = h('section', { class: 'card status-card', 'aria-labelledby': 'status-title' },
    h('div', { class: 'card-head' }, h('h2', { id: 'status-title' }, 'Status of Certificate Issuance Request'), refreshBtn),
    live, errSlot,
    h('div', { class: 'status-grid' },
      h('div', { class: 'status-part' }, h('h3', {}, 'Latest issuance request'), latest),
      h('div', { class: 'status-part' }, h('h3', {}, 'Auto request'), auto)),
    meta);
  const update = (s, err) => {
    replace(errSlot, err ? errorBox(err, { title: 'The status could not be refreshed' }) : null);
    if (!s) return;
    replace(latest, latestRequestView(s.latest_request));
    replace(auto, autoView(s.auto_request));
    const r = s.latest_request;
    const say = r ? `Request ${r.id}: ${stateLabels[r.state] || r.state}, ${r.status_text}` : '';
    if (say !== lastAnnounced) {
      live.textContent = say;
      lastAnnounced = say;
    }
    const when = new Date().toLocaleTimeString();
    let mode = 'Live refresh: off (nothing in progress).';
    if (liveRefreshing()) mode = 'Live refresh: every 2 s while the request is in progress.';
    else if (liveStopped()) mode = 'Live refresh paused: press Refresh to resume.';
    replace(meta, `Updated ${when}. ${mode}`);
  };
  register(onStatus(update));
  return panel;
}
