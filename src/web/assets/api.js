// The REST API of scepd: every call goes through call(). The session cookie
// is HttpOnly (the page never sees it); the CSRF token the login returned is
// kept in memory and sent with every change. X-Requested-With keeps the
// browser's Basic-authentication dialog away on 401.

export const session = { user: null, role: null, csrf: null };

export function isAdmin() {
  return session.role === 'admin';
}

export function roleLabel(role) {
  return role === 'admin' ? 'System Manager' : role === 'viewer' ? 'read-only' : role || '';
}

export class ApiError extends Error {
  constructor(status, e) {
    super((e && e.message) || 'The operation failed.');
    this.status = status;
    this.code = (e && e.code) || 'internal';
    this.remedy = (e && e.remedy) || '';
    this.detail = (e && e.detail) || '';
    // "key_name: must be ..." names the field first
    const m = /^([A-Za-z_][A-Za-z0-9_.]*): (.*)$/.exec(this.detail);
    this.field = m ? m[1] : null;
    this.reason = m ? m[2] : this.detail;
  }
}

let unauthorizedHandler = null;
export function onUnauthorized(fn) {
  unauthorizedHandler = fn;
}

const TIMEOUT_MS = 20000;

export async function call(method, path, body, opts) {
  const o = opts || {};
  const headers = { 'X-Requested-With': 'scepd-ui', Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && session.csrf) headers['X-CSRF-Token'] = session.csrf;
  const ctrl = new AbortController();
  const waitMs = o.timeoutMs || TIMEOUT_MS;
  const timer = setTimeout(() => ctrl.abort(), waitMs);
  let resp;
  try {
    resp = await fetch(`/api/v1${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
      signal: ctrl.signal,
    });
  } catch (e) {
    throw new ApiError(0, {
      code: 'network',
      message: 'The device did not answer.',
      remedy: 'Check the network connection to the device and try again.',
      detail: e && e.name === 'AbortError' ? `no answer within ${waitMs / 1000} s` : '',
    });
  } finally {
    clearTimeout(timer);
  }
  let doc = null;
  const type = resp.headers.get('Content-Type') || '';
  if (resp.status !== 204 && type.startsWith('application/json')) {
    try {
      doc = await resp.json();
    } catch {
      doc = null;
    }
  }
  if (resp.ok) return doc;
  const err = new ApiError(resp.status, doc && doc.error ? doc.error : {
    code: 'internal', message: `The device answered with HTTP ${resp.status}.`, remedy: 'Reload the page and try again.', detail: '',
  });
  if (resp.status === 401 && !o.noAuthRedirect && unauthorizedHandler) unauthorizedHandler(err);
  throw err;
}

export const get = (path, opts) => call('GET', path, undefined, opts);
export const put = (path, body) => call('PUT', path, body);
export const post = (path, body, opts) => call('POST', path, body, opts);
export const del = (path) => call('DELETE', path);

export async function login(user, password) {
  const doc = await call('POST', '/session', { user, password }, { noAuthRedirect: true });
  session.user = doc.user;
  session.role = doc.role;
  session.csrf = doc.csrf_token;
  return doc;
}

// Recovers the session after a reload: the cookie is still there, the CSRF
// token is asked for again. False when not logged in.
export async function resume() {
  try {
    const doc = await call('GET', '/session', undefined, { noAuthRedirect: true });
    session.user = doc.user;
    session.role = doc.role;
    session.csrf = doc.csrf_token;
    return true;
  } catch (e) {
    if (e.status === 401) return false;
    throw e;
  }
}

export async function logout() {
  try {
    await call('DELETE', '/session', undefined, { noAuthRedirect: true });
  } finally {
    forget();
  }
}

export function forget() {
  session.user = null;
  session.role = null;
  session.csrf = null;
}

export const enc = encodeURIComponent;
