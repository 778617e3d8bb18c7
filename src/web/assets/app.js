// The Remote UI of scepd: a single page with hash routes. Loaded as an ES
// module (script-src 'self'); builds the DOM with createElement and
// textContent only. See docs/remote-ui.md.
import { h, replace, clear, errorBox, notice, pageHeading, section, details, timeEl, button } from './dom.js';
import { session, login, logout, resume, forget, onUnauthorized, roleLabel, get, isAdmin } from './api.js';
import { Form, textField, actions } from './forms.js';
import { refreshStatus, resetStatus, onStatus, renderBanner, restartResult, stateBadge, stateLabels } from './status.js';
import { scepPage, communicationPage, requestPage, autoPage, SCEP_TITLE, endpointOf } from './scep.js';
import { keysPage, keyPage, KEYS_TITLE } from './keys.js';
import { usersPage, USERS_TITLE } from './users.js';

const IDLE_MS = 15 * 60 * 1000; // as the device's session idle timeout

const mainEl = document.getElementById('main');
const navEl = document.getElementById('nav');
const whoEl = document.getElementById('who');

let navGen = 0;
let cleanups = [];
let flashNode = null;
let loginMessage = null;
let wanted = null;
let lastActivity = Date.now();

// ---- pages: login and portal ----

function loginPage(ctx) {
  const form = new Form({ label: 'Login' });
  const user = textField(form, { name: 'user', label: 'User Name', required: true, autocomplete: 'username', maxlength: 63 });
  const pw = textField(form, { name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password', trim: false, maxlength: 1024 });
  form.add(user.wrap, pw.wrap, actions(h('button', { type: 'submit', class: 'btn btn-primary' }, 'Log In')));
  form.onSubmit = async (v) => {
    form.setBusy(true, 'Logging in...');
    try {
      await login(v.user, v.password);
      loginMessage = null;
      startSession();
      const to = wanted && wanted !== '#/login' ? wanted : '#/portal';
      wanted = null;
      location.hash = to;
    } catch (e) {
      pw.input.value = '';
      form.showError(e, e.status === 401 ? 'Login failed' : null);
      if (e.status === 401) pw.input.focus();
    } finally {
      form.setBusy(false);
    }
  };
  const msg = loginMessage ? notice('info', h('p', { class: 'alert-message' }, loginMessage)) : null;
  replace(ctx.main, h('div', { class: 'login' },
    h('div', { class: 'card login-card' },
      pageHeading('Login', 'Remote UI of the device\'s certificate agent'),
      msg,
      h('p', { class: 'hint' }, 'Log in as the System Manager (admin) to change settings, or as a viewer to look at them.'),
      form.el)));
  ctx.focus = () => user.input.focus();
}

// The last failure the portal names: the latest request's, else the auto
// request's last result when it is an error code.
function lastFailure(s) {
  const r = s.latest_request;
  if (r && r.state === 'failed' && r.error) {
    return h('span', { class: 'expired' }, `Request #${r.id}: ${r.error.message}`, r.error.detail ? ` (${r.error.detail})` : '');
  }
  // an auto request refused before any request was made (key_store_full, ...)
  const last = s.auto_request && s.auto_request.last_result;
  if (last && !stateLabels[last]) return h('span', { class: 'expired' }, `Auto request: failed (${last})`);
  return null;
}

function portalPage(ctx) {
  return Promise.all([refreshStatus(), get('/scep/settings').catch(() => null)]).then(([s, settings]) => {
    const r = s.latest_request;
    const a = s.auto_request;
    const url = settings && settings.url ? endpointOf(settings) : null;
    const reqCard = section('Certificate Issuance Request',
      r ? h('p', { class: 'state-line' }, stateBadge(r.state), ' ', `#${r.id} for key "${r.key_name}": ${r.status_text}`)
        : h('p', { class: 'muted' }, 'No issuance request has been sent yet.'),
      details([
        ['Auto request timer', a.enabled ? 'On' : 'Off'],
        a.enabled ? ['Next run', timeEl(a.next_run, 'Not scheduled')] : null,
        ['SCEP server', url ? h('span', { class: 'break', 'data-field': 'scep-url' }, url) : h('span', { class: 'expiring' }, 'Not set')],
        ['Last failure', lastFailure(s)],
      ]),
      h('div', { class: 'actions' }, h('a', { class: 'btn', href: '#/scep' }, 'Open SCEP settings')));
    const keyCard = section('Keys and Certificates',
      details([
        ['Registered key pairs', `${s.registered_keys} of at most ${s.max_keys}`],
        ['Waiting for restart', String(s.pending_registration)],
      ]),
      h('div', { class: 'actions' }, h('a', { class: 'btn', href: '#/keys' }, 'Open Registered Key and Certificate')));
    const who = section('Session', details([
      ['Logged in as', `${session.user} (${roleLabel(session.role)})`],
      ['Device time', timeEl(s.time)],
      ['Software', `scepd ${s.version}`],
    ]));
    replace(ctx.main, pageHeading('Portal', 'Overview of the device\'s certificates'), ctx.flash(),
      h('div', { class: 'cards' }, reqCard, keyCard, who));
  });
}

function notFoundPage(ctx) {
  replace(ctx.main, pageHeading('Page not found'), section('Page not found',
    h('p', {}, 'There is no page at this address.'), h('p', {}, h('a', { href: '#/portal' }, 'Go to the portal'))));
}

// ---- routing ----

const routes = [
  { re: /^#\/login$/, page: loginPage, public: true, nav: null },
  { re: /^#\/portal$/, page: portalPage, nav: '#/portal' },
  { re: /^#\/scep$/, page: scepPage, nav: '#/scep' },
  { re: /^#\/scep\/communication$/, page: communicationPage, nav: '#/scep' },
  { re: /^#\/scep\/request$/, page: requestPage, nav: '#/scep' },
  { re: /^#\/scep\/auto$/, page: autoPage, nav: '#/scep' },
  { re: /^#\/keys$/, page: keysPage, nav: '#/keys' },
  { re: /^#\/users$/, page: usersPage, nav: '#/users' },
  { re: /^#\/keys\/([^/]+)$/, page: (ctx, m) => keyPage(ctx, decodeURIComponent(m[1])), nav: '#/keys' },
];

function match(hash) {
  for (const r of routes) {
    const m = r.re.exec(hash);
    if (m) return { route: r, m };
  }
  return { route: { page: notFoundPage, nav: null }, m: null };
}

function runCleanups() {
  const list = cleanups;
  cleanups = [];
  for (const fn of list) {
    try {
      fn();
    } catch {
      // ignore
    }
  }
}

async function render() {
  const hash = location.hash || '#/portal';
  const gen = ++navGen;
  runCleanups();
  const { route, m } = match(hash);
  if (!session.user && !route.public) {
    wanted = hash;
    location.replace('#/login');
    return;
  }
  if (session.user && route.public) {
    location.replace('#/portal');
    return;
  }
  renderChrome(route.nav);
  const page = h('div', { class: 'page' });
  const mine = [];
  const ctx = {
    main: page,
    register: (fn) => mine.push(fn),
    go: (to, flash) => {
      flashNode = flash || null;
      if (location.hash === to) render();
      else location.hash = to;
    },
    reload: (flash) => {
      flashNode = flash || null;
      render();
    },
    flash: () => {
      const f = flashNode;
      flashNode = null;
      return f;
    },
    focus: null,
  };
  const slow = setTimeout(() => {
    if (gen === navGen) replace(mainEl, h('p', { class: 'loading', role: 'status' }, 'Loading...'));
  }, 300);
  mainEl.setAttribute('aria-busy', 'true');
  try {
    await route.page(ctx, m);
  } catch (e) {
    if (e.status === 401) {
      clearTimeout(slow);
      return; // the login page takes over
    }
    const retry = button('Try Again', { class: 'btn' });
    retry.addEventListener('click', () => render());
    replace(page, pageHeading('The page could not be loaded'), errorBox(e), h('div', { class: 'actions' }, retry));
  } finally {
    clearTimeout(slow);
  }
  if (gen !== navGen) {
    for (const fn of mine) fn();
    return;
  }
  cleanups = mine;
  if (flashNode) {
    // a page that has no place of its own for the message: under the heading
    const head = page.querySelector('.page-head');
    if (head) head.after(flashNode);
    flashNode = null;
  }
  mainEl.removeAttribute('aria-busy');
  replace(mainEl, page);
  if (ctx.focus) ctx.focus();
  else {
    const h1 = page.querySelector('h1');
    if (h1) h1.focus({ preventScroll: true });
  }
  window.scrollTo(0, 0);
}

// ---- header, menu, banner ----

function renderChrome(active) {
  if (!session.user) {
    whoEl.hidden = true;
    clear(whoEl);
    navEl.hidden = true;
    clear(navEl);
    document.body.classList.add('logged-out');
    return;
  }
  document.body.classList.remove('logged-out');
  if (!whoEl.firstChild) {
    const out = button('Log Out', { class: 'btn btn-small btn-ghost' });
    out.addEventListener('click', () => doLogout(null));
    replace(whoEl, h('span', { class: 'who-text' }, 'Logged in as ', h('strong', { class: 'who-user' }, session.user),
      h('span', { class: 'who-role' }, ` (${roleLabel(session.role)})`)), out);
  }
  whoEl.hidden = false;
  navEl.hidden = false;
  const link = (href, label) => h('a', { href, 'aria-current': href === active ? 'page' : null }, label);
  replace(navEl,
    h('ul', { class: 'nav-list' },
      h('li', {}, link('#/portal', 'Portal')),
      h('li', {}, h('span', { class: 'nav-group' }, 'Settings/Registration'),
        h('ul', {}, h('li', {}, h('span', { class: 'nav-sub' }, 'Device Management'),
          h('ul', {},
            h('li', {}, link('#/scep', SCEP_TITLE)),
            h('li', {}, h('span', { class: 'nav-sub' }, 'Key and Certificate Settings'),
              h('ul', {}, h('li', {}, link('#/keys', KEYS_TITLE)))),
            isAdmin() ? h('li', {}, link('#/users', USERS_TITLE)) : null))))));
}

let statusUnsub = null;
function startSession() {
  lastActivity = Date.now();
  whoEl.hidden = true;
  clear(whoEl);
  if (statusUnsub) statusUnsub();
  statusUnsub = onStatus((s) => renderBanner(s, (result) => {
    flashNode = restartResult(result);
    render();
  }));
}

function endSession(message) {
  forget();
  resetStatus();
  if (statusUnsub) statusUnsub();
  statusUnsub = null;
  loginMessage = message;
  renderChrome(null);
}

async function doLogout(message) {
  try {
    await logout();
  } catch {
    // the session is gone either way
  }
  endSession(message || 'You have logged out.');
  wanted = null;
  location.hash = '#/login';
}

onUnauthorized((err) => {
  if (!session.user) return;
  const h0 = location.hash;
  // without a cookie the API says "no credentials": the session is gone
  const why = err.detail && !/^no credentials/.test(err.detail) ? `You were logged out: ${err.detail}.` : 'Your session has ended: log in again.';
  endSession(why);
  wanted = h0 && h0 !== '#/login' ? h0 : null;
  if (location.hash === '#/login') render();
  else location.hash = '#/login';
});

// The device ends a session after 15 minutes without requests; the live
// refresh would keep it open, so the page also logs out after 15 minutes
// without a key press or click.
for (const ev of ['keydown', 'pointerdown']) {
  document.addEventListener(ev, () => { lastActivity = Date.now(); }, { passive: true });
}
setInterval(() => {
  if (session.user && Date.now() - lastActivity > IDLE_MS) {
    doLogout('You were logged out after 15 minutes without activity.');
  }
}, 30000);

const skip = document.getElementById('skip');
if (skip) {
  skip.addEventListener('click', (e) => {
    e.preventDefault();
    const h1 = mainEl.querySelector('h1');
    (h1 || mainEl).focus();
  });
}

window.addEventListener('hashchange', () => render());

async function boot() {
  try {
    if (await resume()) startSession();
  } catch (e) {
    replace(mainEl, pageHeading('The device did not answer'), errorBox(e));
    return;
  }
  render();
}

boot();
