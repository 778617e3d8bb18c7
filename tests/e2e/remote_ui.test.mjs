// Browser tests of the scepd Remote UI: Debian's chromium driven by
// playwright-core, against a real scepd and scepca on loopback started by
// run.sh. The tests run in order and share one admin page; each asserts on
// what a person sees. Screenshots of every page go to $E2E_SCREENSHOTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { chromium } from 'playwright-core';

const run = promisify(execFile);
const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run tests/e2e/run.sh)`);
  return v;
};
const BASE = env('E2E_BASE');               // http://127.0.0.1:PORT
const TLS_ADDR = env('E2E_TLS');            // 127.0.0.1:PORT
const CA_URL = env('E2E_CA_URL');           // http://127.0.0.1:PORT
const CA_DIR = env('E2E_CA_DIR');
// the SCEP URL saved without its port: the port is given in its own field
const SCEP_URL = `${new URL(CA_URL).protocol}//${new URL(CA_URL).hostname}/scep`;
const SCEPCA = env('SCEPCA');
const ADMIN_PW = env('E2E_ADMIN_PASSWORD');
const SHOTS = env('E2E_SCREENSHOTS');
const VIEWER_PW = 'viewerpass1';
const TZ = 'Europe/Berlin';
const CHALLENGE = 'secret';

const LAUNCH = {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
};
const WAIT = { timeout: 20000 };

let browser;
let context;
let page;
const problems = { dialogs: [], csp: [], errors: [] };

// Every page is watched: no JavaScript dialog may open (an injected
// alert() would), no CSP violation and no uncaught error may happen.
function watch(p) {
  p.on('dialog', (d) => {
    problems.dialogs.push(d.message());
    d.dismiss().catch(() => {});
  });
  p.on('console', (m) => {
    if (/Content Security Policy|Refused to/i.test(m.text())) problems.csp.push(m.text());
  });
  p.on('pageerror', (e) => problems.errors.push(e.message));
  return p;
}

async function newContext(opts) {
  const c = await browser.newContext(Object.assign({ viewport: { width: 1280, height: 900 }, timezoneId: TZ, locale: 'en-GB' }, opts || {}));
  c.setDefaultTimeout(15000);
  return c;
}

async function shot(name, p) {
  await (p || page).screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

async function api(method, p, body, auth) {
  const headers = { Authorization: `Basic ${Buffer.from(auth || `admin:${ADMIN_PW}`).toString('base64')}`, 'X-Requested-With': 'scepd-ui' };
  if (body) headers['Content-Type'] = 'application/json';
  const r = await fetch(`${BASE}/api/v1${p}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
  const text = await r.text();
  return { status: r.status, headers: r.headers, json: text ? JSON.parse(text) : null };
}

const heading = (p, name) => p.getByRole('heading', { level: 1, name, exact: true });

async function goto(p, hash, title) {
  await p.goto(`${BASE}/ui/${hash}`);
  await heading(p, title).waitFor(WAIT);
}

async function loginAs(p, user, password, base) {
  await p.goto(`${base || BASE}/ui/`);
  await heading(p, 'Login').waitFor(WAIT);
  await p.getByLabel('User Name').fill(user);
  await p.getByLabel('Password').fill(password);
  await p.getByRole('button', { name: 'Log In' }).click();
  await heading(p, 'Portal').waitFor(WAIT);
}

// The CA side of "pending": approve the request scepca holds.
async function approvePending() {
  const deadline = Date.now() + 15000;
  while (Date.now() < deadline) {
    const { stdout } = await run(SCEPCA, ['list', '--dir', CA_DIR, '--pending']);
    const ids = [...stdout.matchAll(/^request\s+(\d+)\s+pending/gm)].map((m) => m[1]);
    if (ids.length) {
      for (const id of ids) await run(SCEPCA, ['approve', '--dir', CA_DIR, id]);
      return ids;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('scepca holds no pending request');
}

// SHA-256 of the certificate the HTTPS listener presents, as "AB:CD:...".
function presentedFingerprint() {
  const [host, port] = TLS_ADDR.split(':');
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port: Number(port), rejectUnauthorized: false }, () => {
      const fp = s.getPeerCertificate().fingerprint256;
      s.end();
      resolve(fp);
    });
    s.setTimeout(5000, () => {
      s.destroy();
      reject(new Error('TLS handshake timed out'));
    });
    s.on('error', reject);
  });
}

// The Europe/Berlin wall-clock time y-m-d hh:mm as a UTC ISO string.
function berlinToUtc(y, m, d, hh, mm) {
  const guess = Date.UTC(y, m - 1, d, hh, mm);
  const name = new Intl.DateTimeFormat('en-US', { timeZone: TZ, timeZoneName: 'shortOffset' })
    .formatToParts(new Date(guess)).find((x) => x.type === 'timeZoneName').value; // "GMT+1"
  const mo = /GMT([+-])(\d+)(?::(\d+))?/.exec(name);
  const off = mo ? (mo[1] === '-' ? -1 : 1) * (Number(mo[2]) * 60 + Number(mo[3] || 0)) : 0;
  return new Date(guess - off * 60000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// Sends an issuance request through the form, confirms it, sees it pending,
// approves it on the CA and sees it acquired.
async function issueThroughPending(fields, shots) {
  await goto(page, '#/scep/request', 'Certificate Issuance Request');
  await page.getByLabel('Key Name').fill(fields.key);
  if (fields.org) await page.getByLabel('Organization').fill(fields.org);
  await page.getByLabel('Common Name').fill(fields.cn);
  await page.getByLabel('Challenge Password').fill(CHALLENGE);
  await page.getByRole('button', { name: 'Issuance Request', exact: true }).click();
  const dlg = page.getByRole('dialog', { name: 'Send the issuance request?' });
  await dlg.waitFor(WAIT);
  assert.match(await dlg.innerText(), new RegExp(`Key Name\\s+${fields.key}`));
  assert.ok((await dlg.innerText()).includes(`CN=${fields.cn}`), 'the dialog shows the subject as typed');
  // the endpoint really used: the URL with the port of the settings
  assert.equal(await dlg.locator('[data-endpoint]').innerText(), `${CA_URL}/scep`);
  if (shots) await shot(shots.confirm);
  await dlg.getByRole('button', { name: 'Send Request' }).click();
  const status = page.locator('.status-card');
  await status.locator('.badge', { hasText: 'Pending' }).waitFor(WAIT);
  await status.locator('.state-text', { hasText: 'deferred by the server; polling' }).waitFor(WAIT);
  // while it is in progress the form explains why it is disabled
  await page.getByText(/Request #\d+ is in progress \(Pending\)/).waitFor(WAIT);
  assert.equal(await page.getByRole('button', { name: 'Issuance Request', exact: true }).isDisabled(), true);
  if (shots) await shot(shots.pending);
  await approvePending();
  await status.locator('.badge', { hasText: 'Acquired' }).waitFor({ timeout: 30000 });
  await page.locator('#banner').getByText(/acquired key pair waits? for registration/).waitFor(WAIT);
}

async function restartFromBanner(key) {
  await page.locator('#banner').getByRole('button', { name: 'Restart' }).click();
  const dlg = page.getByRole('dialog', { name: 'Restart to register' });
  await dlg.waitFor(WAIT);
  // one key: "it", named
  if (key) assert.match(await dlg.innerText(), new RegExp(`One acquired key pair waits for registration: ${key}\\.\\s+Restart registers it now\\.`));
  await dlg.getByRole('button', { name: 'Restart' }).click();
  await page.getByText(/^Registered: /).waitFor(WAIT);
  await page.locator('#banner').waitFor({ state: 'hidden', timeout: 10000 });
}

// The tests build on each other (a key enrolled in one is verified in the
// next): after a failure the dependent ones are skipped, not timed out.
let broken = null;
function step(name, fn, opts) {
  test(name, async (t) => {
    if (broken && !(opts && opts.independent)) {
      t.skip(`needs "${broken}", which failed`);
      return;
    }
    try {
      await fn(t);
    } catch (e) {
      broken = broken || name;
      throw e;
    }
  });
}

before(async () => {
  fs.mkdirSync(SHOTS, { recursive: true });
  browser = await chromium.launch(LAUNCH); // a fresh temporary profile each run
  context = await newContext();
  page = watch(await context.newPage());
  const r = await api('PUT', '/users/viewer', { password: VIEWER_PW, role: 'viewer' });
  assert.equal(r.status, 200, `creating the viewer: ${JSON.stringify(r.json)}`);
});

after(async () => {
  if (browser) await browser.close();
});

step('login: a wrong password is refused, the System Manager logs in by keyboard, the portal shows who', async () => {
  await page.goto(`${BASE}/ui/`);
  await heading(page, 'Login').waitFor(WAIT);
  assert.equal(new URL(page.url()).hash, '#/login');
  await shot('01-login');
  await page.getByLabel('User Name').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log In' }).click();
  const failed = page.getByRole('alert').filter({ hasText: 'Login failed' });
  await failed.waitFor(WAIT);
  assert.match(await failed.innerText(), /Authentication is required or the user name or password is wrong\.\s+Detail: the user name or password is wrong/);
  await shot('01-login-failed');
  // keyboard only: the password field has focus after the failure
  await page.getByLabel('User Name').focus();
  await page.keyboard.press('Tab');
  await page.keyboard.type(ADMIN_PW);
  await page.keyboard.press('Enter');
  await heading(page, 'Portal').waitFor(WAIT);
  assert.equal(await page.locator('#who').innerText().then((t) => t.replace(/\s+/g, ' ').trim()), 'Logged in as admin (System Manager) Log Out');
  const cookie = (await context.cookies()).find((c) => c.name === 'scepd_session');
  assert.ok(cookie, 'the session cookie is set');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  await shot('02-portal');
});

step('communication settings: errors next to the fields, then saved and shown', async () => {
  await page.getByRole('link', { name: 'Settings for Certificate Issuance Request (SCEP)' }).click();
  await heading(page, 'Settings for Certificate Issuance Request (SCEP)').waitFor(WAIT);
  // no SCEP server yet: the request button is disabled and says why
  await page.getByText('Set the SCEP server URL under Communication Settings first.').waitFor(WAIT);
  assert.equal(await page.getByRole('button', { name: 'Issuance Request...' }).isDisabled(), true);
  await page.getByRole('link', { name: 'Edit Communication Settings' }).click();
  await heading(page, 'Communication Settings').waitFor(WAIT);
  const url = page.getByLabel('SCEP Server URL');
  await url.fill('ftp://ca.example.com/scep');
  await page.getByLabel('Communication Timeout (seconds)').fill('900');
  await page.getByRole('button', { name: 'Save' }).click();
  const urlError = page.getByText('SCEP Server URL must start with http:// or https://.');
  await urlError.waitFor(WAIT);
  await page.getByText('Communication Timeout (seconds) must be from 1 to 600.').waitFor(WAIT);
  // the error is tied to its field for screen readers, and the field has focus
  const errId = await urlError.getAttribute('id');
  assert.ok((await url.getAttribute('aria-describedby')).split(' ').includes(errId));
  assert.equal(await url.getAttribute('aria-invalid'), 'true');
  assert.equal(await url.evaluate((el) => el === document.activeElement), true);
  await shot('03-communication-errors');
  const port = new URL(CA_URL).port;
  // a port that contradicts the URL's is refused by the device, on its field
  await url.fill(`${CA_URL}/scep`);
  await page.getByLabel('Port Number').fill(String(Number(port) + 1));
  await page.getByLabel('Communication Timeout (seconds)').fill('10');
  await page.getByLabel('Polling Interval While Pending (seconds)').fill('5');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText(`Port Number ${Number(port) + 1} contradicts the port ${port} in the url`).waitFor(WAIT);
  assert.equal(await page.getByLabel('Port Number').getAttribute('aria-invalid'), 'true');
  // a URL without a port takes the port field's (the dialog of the request shows the result)
  await url.fill(SCEP_URL);
  await page.getByLabel('Port Number').fill(port);
  await page.getByRole('button', { name: 'Save' }).click();
  await heading(page, 'Settings for Certificate Issuance Request (SCEP)').waitFor(WAIT);
  await page.getByText('Communication Settings saved.').waitFor(WAIT);
  const comm = page.locator('section', { has: page.getByRole('heading', { name: 'Communication Settings' }) });
  await comm.getByText(SCEP_URL).waitFor(WAIT);
  await comm.getByText('10 s').waitFor(WAIT);
  await comm.getByText('every 5 s, at most 60 times').waitFor(WAIT);
  const saved = await api('GET', '/scep/settings');
  assert.equal(saved.json.url, SCEP_URL);
  assert.equal(saved.json.port, Number(port));
  assert.equal(saved.json.timeout_s, 10);
  await shot('04-scep');
});

step('issuance request: checked client-side, then pending, approved on the CA, acquired; restart registers it', async () => {
  await page.getByRole('link', { name: 'Issuance Request...' }).click();
  await heading(page, 'Certificate Issuance Request').waitFor(WAIT);
  await page.getByLabel('Key Name').fill('Web Key!');
  await page.getByRole('button', { name: 'Issuance Request', exact: true }).click();
  await page.getByText('Key Name must be 1-24 single-byte letters and digits.').waitFor(WAIT);
  await page.getByText('Common Name is required.').waitFor(WAIT);
  assert.equal(await page.getByRole('dialog').count(), 0, 'no confirmation for an invalid form');
  await shot('05-request-errors');
  await issueThroughPending({ key: 'WebKey1', org: 'Example Corp', cn: 'printer1.example.com' },
    { confirm: '06-request-confirm', pending: '07-request-pending' });
  await shot('08-request-acquired');
  await restartFromBanner('WebKey1');
  await page.getByRole('link', { name: 'Registered Key and Certificate' }).click();
  await heading(page, 'Registered Key and Certificate').waitFor(WAIT);
  const row = page.getByRole('row', { name: /WebKey1/ });
  await row.getByText('Registered').waitFor(WAIT);
  await row.getByText('CN=printer1.example.com').waitFor(WAIT);
  assert.match(await row.innerText(), /RSA 2048/);
  // a key with a certificate carries the certificate icon
  assert.equal(await row.getByRole('img', { name: 'has a certificate' }).count(), 1);
  await shot('09-keys');
});

step('the subject keeps to single-byte characters; a failed request leaves one state and keeps what was typed', async () => {
  await goto(page, '#/scep/request', 'Certificate Issuance Request');
  assert.match(await page.locator('.field', { has: page.getByLabel('Common Name') }).innerText(), /Printable single-byte characters only/);
  await page.getByLabel('Key Name').fill('FailKey1');
  await page.getByLabel('Organization').fill('Caf\u00e9 Corp');
  await page.getByLabel('Common Name').fill('printer2.example.com');
  await page.getByLabel('Challenge Password').fill('not-the-challenge');
  await page.getByRole('button', { name: 'Issuance Request', exact: true }).click();
  await page.getByText(/^Organization must be printable single-byte characters/).waitFor(WAIT);
  assert.equal(await page.getByRole('dialog').count(), 0, 'no confirmation for a refused subject');
  await shot('08a-request-subject-refused');
  await page.getByLabel('Organization').fill('Example Corp');
  await page.getByRole('button', { name: 'Issuance Request', exact: true }).click();
  await page.getByRole('dialog', { name: 'Send the issuance request?' }).getByRole('button', { name: 'Send Request' }).click();
  const status = page.locator('.status-card');
  await status.locator('.badge', { hasText: 'Failed' }).waitFor(WAIT);
  await status.getByText('The request failed').waitFor(WAIT);
  // one state: the acceptance notice is gone, the state is not said twice
  await page.locator('.form-summary .alert').waitFor({ state: 'detached', timeout: 10000 });
  assert.equal(await status.locator('.state-text').count(), 0);
  const attempts = status.locator('.fact', { has: page.locator('dt', { hasText: /^Attempts$/ }) }).locator('dd');
  assert.equal(await attempts.innerText(), '1', 'one attempt was made');
  const latest = (await api('GET', '/status')).json.latest_request;
  assert.equal(latest.state, 'failed');
  assert.equal(latest.tries, 1);
  // what was typed stays, except the challenge password
  assert.equal(await page.getByLabel('Key Name').inputValue(), 'FailKey1');
  assert.equal(await page.getByLabel('Organization').inputValue(), 'Example Corp');
  assert.equal(await page.getByLabel('Common Name').inputValue(), 'printer2.example.com');
  assert.equal(await page.getByLabel('Challenge Password').inputValue(), '');
  await shot('08b-request-failed-one-state');

  // the portal names the SCEP URL and why the last request failed
  await goto(page, '#/portal', 'Portal');
  const facts = page.locator('section', { has: page.getByRole('heading', { name: 'Certificate Issuance Request' }) });
  assert.equal(await facts.locator('[data-field=scep-url]').innerText(), `${CA_URL}/scep`);
  assert.match(await facts.locator('.fact', { hasText: 'Last failure' }).innerText(),
    new RegExp(`Request #${latest.id}: .*the challenge password is wrong`));
  await shot('08c-portal-last-failure');

  // a server that accepts UTF-8: the setting lifts the rule
  await goto(page, '#/scep/communication', 'Communication Settings');
  await page.getByLabel('Allow UTF-8 in Organization and Common Name').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Communication Settings saved.').waitFor(WAIT);
  assert.equal((await api('GET', '/scep/settings')).json.subject_utf8, true);
  await goto(page, '#/scep/request', 'Certificate Issuance Request');
  assert.match(await page.locator('.field', { has: page.getByLabel('Common Name') }).innerText(), /UTF-8 is allowed/);
  await page.getByLabel('Key Name').fill('Utf8Key');
  await page.getByLabel('Organization').fill('Caf\u00e9 Corp');
  await page.getByLabel('Common Name').fill('printer2.example.com');
  await page.getByRole('button', { name: 'Issuance Request', exact: true }).click();
  const dlg = page.getByRole('dialog', { name: 'Send the issuance request?' });
  await dlg.waitFor(WAIT);
  assert.ok((await dlg.innerText()).includes('O=Caf\u00e9 Corp'));
  await dlg.getByRole('button', { name: 'Cancel' }).click();
  const back = (await api('GET', '/scep/settings')).json;
  const off = await api('PUT', '/scep/settings', { url: back.url, port: back.port, timeout_s: back.timeout_s, poll_interval_s: back.poll_interval_s, subject_utf8: false });
  assert.equal(off.status, 200, JSON.stringify(off.json));
  // and the device refuses it by itself, on the field
  const refused = await api('POST', '/scep/requests', { key_name: 'Utf8Key', common_name: 'Dr\u00fccker', challenge_password: CHALLENGE });
  assert.equal(refused.status, 400);
  assert.match(refused.json.error.detail, /^common_name: must be printable single-byte characters/);
});

step('a certificate whose subject holds <script> and <img onerror> is shown as text', async () => {
  const cn = '<script>alert(1)</script>';
  const org = '<img src=x onerror=alert(2)>';
  await issueThroughPending({ key: 'XssKey', org, cn });
  await restartFromBanner('XssKey');
  await goto(page, '#/keys', 'Registered Key and Certificate');
  await page.getByRole('row', { name: /XssKey/ }).getByText('alert(1)', { exact: false }).waitFor(WAIT);
  await page.getByRole('link', { name: 'XssKey' }).click();
  await heading(page, 'XssKey').waitFor(WAIT);
  const subject = await page.locator('.subject').innerText();
  const stored = await api('GET', '/keys/XssKey');
  assert.equal(subject, stored.json.subject, 'the subject is shown exactly as the API gives it');
  // (the device escapes < and > with a backslash, as RFC 4514 allows)
  assert.ok(subject.includes('<script\\>alert(1)') && subject.includes('<img src=x onerror=alert(2)'), subject);
  assert.equal(await page.locator('main script, main img').count(), 0, 'nothing was parsed as HTML');
  assert.deepEqual(problems.dialogs, [], 'no alert() ran');
  await shot('10-key-with-markup-in-subject');
});

step('verify fetches the CRL first: a certificate revoked a moment ago reads revoked on the first click', async () => {
  // a self-signed certificate: no CA publishes a CRL for it, and the page says so
  await goto(page, '#/keys/DefaultTLS', 'DefaultTLS');
  await page.getByRole('button', { name: 'Verify Certificate' }).click();
  const rev = page.locator('.check[data-check="revocation"]');
  await rev.waitFor(WAIT);
  assert.match(await rev.innerText(), /Revocation\s+Not checked\s+the certificate is self-signed: no CA publishes a CRL for it/);
  // revoked on the CA just now; nothing has asked the CA for its CRL since the key was registered
  const serial = (await api('GET', '/keys/XssKey')).json.serial;
  await run(SCEPCA, ['revoke', '--dir', CA_DIR, serial]);
  await goto(page, '#/keys/XssKey', 'XssKey');
  await page.getByRole('button', { name: 'Verify Certificate' }).click();
  await page.getByText('The certificate is not valid.').waitFor({ timeout: 30000 });
  const text = await rev.innerText();
  assert.match(text, /Revocation\s+Failed\s+revoked/);
  // the CRL's source and age
  assert.match(text, new RegExp(`CRL from ${CA_URL.replace(/[.]/g, '\\.')}/scep \\(GetCRL\\), fetched .* \\(\\d+ s ago\\)`));
  await shot('10a-key-revoked-first-click');
});

step('verify certificate shows each check', async () => {
  // (the CRL fetched a moment ago answers: the CA is asked at most every 30 s)
  await goto(page, '#/keys/WebKey1', 'WebKey1');
  await page.getByRole('button', { name: 'Verify Certificate' }).click();
  await page.getByText('The certificate is valid.').waitFor(WAIT);
  const check = (name) => page.locator(`.check[data-check="${name}"]`);
  assert.match(await check('chain').innerText(), /Certificate chain\s+OK\s+signed by a stored CA certificate/);
  assert.match(await check('revocation').innerText(), /Revocation\s+OK\s+not revoked\s+CRL from .* \(GetCRL\), fetched .* ago\)/);
  assert.match(await check('validity').innerText(), /Validity period\s+OK/);
  assert.match(await check('key_match').innerText(), /Key pair\s+OK\s+the private key matches the certificate/);
  // every certificate field is listed
  const facts = await page.locator('.facts').first().innerText();
  for (const label of ['Subject', 'Issuer', 'Serial Number', 'Valid From', 'Valid Until', 'Public Key', 'Key Storage',
    'Signature Algorithm', 'Key Usage', 'SHA-256 Fingerprint', 'SHA-1 Fingerprint']) assert.ok(facts.includes(label), `${label} is shown`);
  const k = (await api('GET', '/keys/WebKey1')).json;
  const row = (label) => page.locator('.fact', { has: page.locator('dt', { hasText: new RegExp(`^${label}$`) }) }).locator('dd');
  assert.equal(k.key_storage, 'software', 'a request without key_storage makes a software key');
  assert.equal(await row('Key Storage').innerText(), 'Software');
  assert.equal(await row('Issuer').innerText(), k.issuer);
  assert.equal(await row('Serial Number').innerText(), k.serial);
  assert.equal(await row('SHA-256 Fingerprint').innerText(), k.sha256);
  assert.equal(await row('Valid Until').locator('time').getAttribute('title'), `UTC: ${k.not_after}`);
  await shot('11-key-verified');
});

step('deleting the key the Remote UI uses is disabled, naming the function; the API refuses it too', async () => {
  await goto(page, '#/keys/DefaultTLS', 'DefaultTLS');
  const del = page.getByRole('button', { name: 'Delete' });
  assert.equal(await del.isDisabled(), true);
  const why = await page.locator('#delete-why').innerText();
  assert.equal(why, 'Cannot be deleted while in use by Remote UI and HTTPS (tls): bind that function to another key first.');
  assert.equal(await del.getAttribute('aria-describedby'), 'delete-why');
  const r = await api('DELETE', '/keys/DefaultTLS');
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'key_in_use');
  assert.equal(r.json.error.detail, 'used by tls');
  assert.equal((await api('GET', '/keys/DefaultTLS')).status, 200, 'the key is still there');
  // a key in no use can be deleted: its button is enabled
  await goto(page, '#/keys/WebKey1', 'WebKey1');
  assert.equal(await page.getByRole('button', { name: 'Delete' }).isDisabled(), false);
  await shot('12-delete-disabled');
});

step('binding the enrolled key to tls switches the HTTPS listener to it', async () => {
  const before = await presentedFingerprint();
  assert.equal(before, (await api('GET', '/keys/DefaultTLS')).json.sha256, 'first start: the self-signed pair');
  await goto(page, '#/keys/WebKey1', 'WebKey1');
  const shown = await page.locator('[data-field=sha256]').innerText();
  assert.equal(shown, (await api('GET', '/keys/WebKey1')).json.sha256);
  await page.getByLabel('Function').selectOption('tls');
  await page.getByRole('button', { name: 'Apply' }).click();
  const dlg = page.getByRole('dialog', { name: 'Change the key of a function?' });
  await dlg.waitFor(WAIT);
  await dlg.getByRole('button', { name: 'Apply' }).click();
  await page.getByText('Remote UI and HTTPS (tls) now uses the key "WebKey1".').waitFor(WAIT);
  await page.locator('.fact', { hasText: 'Used by' }).getByText('Remote UI and HTTPS (tls)').first().waitFor(WAIT);
  assert.equal(await presentedFingerprint(), shown, 'the HTTPS listener presents the enrolled certificate');
  await shot('13-key-bound-to-tls');

  // the UI over HTTPS: the cookie is Secure there, with the __Host- prefix
  const https = await newContext({ ignoreHTTPSErrors: true });
  const p = watch(await https.newPage());
  await loginAs(p, 'admin', ADMIN_PW, `https://${TLS_ADDR}`);
  const cookie = (await https.cookies()).find((c) => c.name === '__Host-scepd_session');
  assert.ok(cookie, 'the session cookie over HTTPS is __Host-scepd_session');
  assert.equal(cookie.path, '/');
  assert.equal(cookie.secure, true);
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  await shot('14-portal-over-https', p);
  await https.close();
});

step('the server stays the authority: a request refused by the API shows its message and remedy', async () => {
  await goto(page, '#/scep/request', 'Certificate Issuance Request');
  await page.getByLabel('Key Name').fill('RaceKey');
  await page.getByLabel('Common Name').fill('printer1.example.com');
  // meanwhile someone else switches the auto request timer on
  const start = new Date(Date.now() + 86400000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const on = await api('PUT', '/scep/auto-request', { enabled: true, start, key: { key_name: 'RaceKey', common_name: 'x.example' } });
  assert.equal(on.status, 200, JSON.stringify(on.json));
  await page.getByRole('button', { name: 'Issuance Request', exact: true }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Send Request' }).click();
  const box = page.getByRole('alert').filter({ hasText: 'The request was not sent' });
  await box.waitFor(WAIT);
  assert.match(await box.innerText(), /A manual issuance request cannot be sent while the auto request timer is enabled\.[\s\S]*What to do: Disable the timer in the auto request settings/);
  // and the form now says why it cannot be used
  await page.getByText(/Not available while the auto request timer is on/).waitFor(WAIT);
  await shot('15-request-refused-by-server');
  const off = await api('PUT', '/scep/auto-request', { enabled: false, start: null });
  assert.equal(off.status, 200, JSON.stringify(off.json));
});

step('a pending request is cancelled from the status, and the next one may be sent at once', async () => {
  const sent = await api('POST', '/scep/requests', { key_name: 'CancelKey', common_name: 'cancel.example.com', challenge_password: CHALLENGE });
  assert.equal(sent.status, 202, JSON.stringify(sent.json));
  const id = sent.json.id;
  await goto(page, '#/scep', 'Settings for Certificate Issuance Request (SCEP)');
  const status = page.locator('.status-card');
  await status.locator('.badge', { hasText: 'Pending' }).waitFor(WAIT);
  await page.getByText(new RegExp(`Request #${id} is in progress \\(Pending\\)`)).waitFor(WAIT);
  await status.getByRole('button', { name: `Cancel request #${id}` }).click();
  const dlg = page.getByRole('dialog', { name: `Cancel request #${id}?` });
  await dlg.waitFor(WAIT);
  assert.match(await dlg.innerText(), /The server has received it already/);
  await shot('15a-request-cancel-confirm');
  await dlg.getByRole('button', { name: 'Cancel Request' }).click();
  await status.locator('.badge', { hasText: 'Cancelled' }).waitFor(WAIT);
  await status.getByText('The request was cancelled; its key was discarded.').waitFor(WAIT);
  assert.equal(await status.getByRole('button', { name: `Cancel request #${id}` }).count(), 0, 'no Cancel for a finished request');
  assert.equal((await api('GET', `/scep/requests/${id}`)).json.state, 'cancelled');
  // the device is free again: the request button is enabled
  await page.getByRole('link', { name: 'Issuance Request...' }).waitFor(WAIT);
  await shot('15b-request-cancelled');
  // a cancelled request cannot be cancelled again: 409 with the catalogue's words
  const again = await api('DELETE', `/scep/requests/${id}`);
  assert.equal(again.status, 409);
  assert.equal(again.json.error.code, 'request_finished');
  // the CA still holds it: approved here, so that it does not stay pending there
  await approvePending();
});

step('auto request: the start is given in local time, saved in UTC, and the next run is shown', async () => {
  await goto(page, '#/scep', 'Settings for Certificate Issuance Request (SCEP)');
  await page.getByRole('link', { name: 'Edit Settings for Certificate Issuance Auto Request' }).click();
  await heading(page, 'Settings for Certificate Issuance Auto Request').waitFor(WAIT);
  await page.getByLabel('Enable Timer').check();
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Start Date and Time is required when the timer is enabled.').waitFor(WAIT);
  // the key settings set through the API above are shown for editing
  assert.equal(await page.getByLabel('Key Name').inputValue(), 'RaceKey');
  // three days ahead, 09:30 in Berlin
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-CA', { timeZone: TZ, year: 'numeric', month: '2-digit', day: '2-digit' })
    .formatToParts(new Date(Date.now() + 3 * 86400000)).map((x) => [x.type, x.value]));
  const local = `${parts.year}-${parts.month}-${parts.day}T09:30`;
  const utc = berlinToUtc(Number(parts.year), Number(parts.month), Number(parts.day), 9, 30);
  await page.getByLabel('Start Date and Time').fill(local);
  await page.getByText(`= ${utc} (UTC)`).waitFor(WAIT);
  await page.getByLabel('Retry While Pending or Unreachable').check();
  await page.getByLabel('Number of Retries').fill('2');
  await page.getByLabel('Retry Interval (seconds)').fill('60');
  // renewal: the new key's name is shown before Delete Old is switched on, and follows the choice
  const newName = page.locator('#renew-name');
  await page.getByLabel('Key Name').fill('WebKey1');
  assert.equal(await page.getByLabel('Delete Old Key and Certificate').isChecked(), false);
  assert.equal(await newName.innerText(), 'The new key will be named "WebKey12".');
  await page.getByLabel('Name of the Renewed Key').selectOption('replace');
  assert.equal(await newName.innerText(), 'The new key will be named "WebKey12".', 'without Delete Old the old key stays');
  await page.getByLabel('Delete Old Key and Certificate').check();
  assert.equal(await newName.innerText(), 'The new key will be named "WebKey1"; "WebKey1" is deleted when it is registered.');
  await page.getByLabel('Name of the Renewed Key').selectOption('numbered');
  assert.equal(await newName.innerText(), 'The new key will be named "WebKey12"; "WebKey1" is deleted when it is registered.');
  await shot('16a-auto-renewal-name');
  await page.getByLabel('Delete Old Key and Certificate').uncheck();
  // renewal before expiry: 1-99 %
  await page.getByLabel('Renew When Lifetime Left (%)').fill('100');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByText('Renew When Lifetime Left (%) must be from 1 to 99.').waitFor(WAIT);
  await page.getByLabel('Renew When Lifetime Left (%)').fill('20');
  await page.getByLabel('Key Name').fill('AutoKey');
  assert.equal(await newName.innerText(), 'The new key will be named "AutoKey".');
  await page.getByLabel('Common Name').fill('printer1.example.com');
  await page.getByLabel('Challenge Password').fill(CHALLENGE);
  await shot('16-auto-edit');
  await page.getByRole('button', { name: 'Save' }).click();
  await heading(page, 'Settings for Certificate Issuance Request (SCEP)').waitFor(WAIT);
  await page.getByText(/Auto request settings saved\. The next issuance request is scheduled for/).waitFor(WAIT);
  const saved = (await api('GET', '/scep/auto-request')).json;
  assert.equal(saved.start, utc);
  assert.equal(saved.next_run, utc);
  assert.equal(saved.polling.retries, 2);
  assert.equal(saved.key.challenge_password_set, true);
  assert.equal(saved.renew_at_remaining_percent, 20);
  assert.equal(saved.renew_key_name, 'numbered');
  assert.equal(saved.next_key_name, 'AutoKey');
  // the device checks the share itself: 400 on the field
  const bad = await api('PUT', '/scep/auto-request', { renew_at_remaining_percent: 100 });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.detail, 'renew_at_remaining_percent: must be from 1 to 99');
  const card = page.locator('section', { has: page.getByRole('heading', { name: 'Settings for Certificate Issuance Auto Request' }) });
  const next = card.locator('.fact', { hasText: 'Next Run' }).locator('time');
  assert.equal(await next.getAttribute('title'), `UTC: ${utc}`);
  assert.match(await next.innerText(), /09:30/);
  assert.match(await page.locator('.status-auto').innerText(), /Timer\s+On/);
  await card.getByText("When 20 % of the certificate's lifetime is left").waitFor(WAIT);
  assert.equal(await card.locator('[data-field=next-key-name]').innerText(), 'AutoKey');
  // a manual request is not possible while the timer is on, and it says so
  await page.getByText(/Not available while the auto request timer is on/).waitFor(WAIT);
  assert.equal(await page.getByRole('button', { name: 'Issuance Request...' }).isDisabled(), true);
  await shot('17-scep-auto-on');
});

step('a one-shot timer that has run is shown as done, without a reload, and manual requests are allowed again', async () => {
  const minute = new Date(Math.floor(Date.now() / 60000) * 60000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const on = await api('PUT', '/scep/auto-request', {
    enabled: true, start: minute, auto_adjust: false, periodic: { enabled: false },
    polling: { enabled: true, retries: 5, interval_s: 10 },
  });
  assert.equal(on.status, 200, JSON.stringify(on.json));
  await goto(page, '#/portal', 'Portal'); // (the page was on #/scep: the same URL would not load it again)
  await goto(page, '#/scep', 'Settings for Certificate Issuance Request (SCEP)');
  const card = page.locator('section', { has: page.getByRole('heading', { name: 'Settings for Certificate Issuance Auto Request' }) });
  const status = page.locator('.status-card');
  // the timer has fired; the CA defers the request: the timer is not done while its request runs
  await status.locator('.badge', { hasText: 'Pending' }).waitFor(WAIT);
  assert.equal((await api('GET', '/scep/auto-request')).json.done, false);
  assert.equal(await card.getByText(/^Done:/).count(), 0);
  await approvePending();
  await status.locator('.badge', { hasText: 'Acquired' }).waitFor({ timeout: 30000 });
  // the same page, not reloaded: the card and the request button follow
  await card.getByText('Done: the one-time request has run; manual requests are allowed again.').waitFor(WAIT);
  await page.getByRole('link', { name: 'Issuance Request...' }).waitFor(WAIT);
  assert.match(await page.locator('.status-auto').innerText(), /Timer\s+On, done: the one-time request has run/);
  await shot('17a-scep-timer-done');
  const a = (await api('GET', '/scep/auto-request')).json;
  assert.equal(a.enabled, true);
  assert.equal(a.done, true);
  assert.equal(a.next_run, null);
  assert.equal((await api('GET', '/status')).json.auto_request.done, true);
  // back to where the following steps expect the device: no pair waiting, timer off
  assert.equal((await api('DELETE', '/keys/AutoKey')).status, 204);
  assert.equal((await api('PUT', '/scep/auto-request', { enabled: false, start: null })).status, 200);
});

step('the restart dialog names several waiting keys and reads "them"', async () => {
  for (const key of ['ReKeyA', 'ReKeyB']) {
    const sent = await api('POST', '/scep/requests', { key_name: key, common_name: `${key.toLowerCase()}.example.com`, challenge_password: CHALLENGE });
    assert.equal(sent.status, 202, JSON.stringify(sent.json));
    await approvePending();
    let state = '';
    for (let i = 0; i < 150 && state !== 'acquired'; i++) {
      state = (await api('GET', `/scep/requests/${sent.json.id}`)).json.state;
      if (state !== 'acquired') await new Promise((r) => setTimeout(r, 200));
    }
    assert.equal(state, 'acquired', `${key} acquired`);
  }
  await goto(page, '#/keys', 'Registered Key and Certificate');
  await page.locator('#banner').getByText('2 acquired key pairs wait for registration').waitFor(WAIT);
  await page.locator('#banner').getByRole('button', { name: 'Restart' }).click();
  const dlg = page.getByRole('dialog', { name: 'Restart to register' });
  await dlg.waitFor(WAIT);
  assert.match(await dlg.innerText(), /2 acquired key pairs wait for registration: ReKeyA, ReKeyB\.\s+Restart registers them now\./);
  await shot('17b-restart-several');
  await dlg.getByRole('button', { name: 'Restart' }).click();
  await page.getByText('Registered: ReKeyA, ReKeyB.').waitFor(WAIT);
  for (const key of ['ReKeyA', 'ReKeyB']) assert.equal((await api('DELETE', `/keys/${key}`)).status, 204);
});

step('binding a key shows its confirmation after the change', async () => {
  await goto(page, '#/keys', 'Registered Key and Certificate');
  await page.getByLabel('Key for Remote UI and HTTPS (tls)').selectOption('DefaultTLS');
  await page.locator('tr', { hasText: 'Remote UI and HTTPS (tls)' }).getByRole('button', { name: 'Apply' }).click();
  const dlg = page.getByRole('dialog', { name: 'Change the key of a function?' });
  await dlg.waitFor(WAIT);
  assert.match(await dlg.innerText(), /will use the key "DefaultTLS" from now on/);
  await dlg.getByRole('button', { name: 'Apply' }).click();
  // the list is drawn again with the new binding, and the confirmation stays
  await page.getByText('Remote UI and HTTPS (tls) now uses the key "DefaultTLS".').waitFor(WAIT);
  assert.equal(await page.getByLabel('Key for Remote UI and HTTPS (tls)').inputValue(), 'DefaultTLS');
  assert.equal((await api('GET', '/bindings')).json.find((b) => b.function === 'tls').key_name, 'DefaultTLS');
  await shot('17c-binding-confirmed');
});

step('the System Manager creates a viewer and changes its password in the UI', async () => {
  await goto(page, '#/portal', 'Portal');
  await page.getByRole('link', { name: 'User Management' }).click();
  await heading(page, 'User Management').waitFor(WAIT);
  await page.getByLabel('User Name').fill('viewer2');
  await page.getByLabel('Role').selectOption('viewer');
  await page.getByLabel('New Password').fill('first-pass-1');
  await page.getByLabel('Repeat the Password').fill('first-pass-X');
  await page.getByRole('button', { name: 'Save User' }).click();
  await page.getByText('Repeat the Password does not match the new password.').waitFor(WAIT);
  await page.getByLabel('Repeat the Password').fill('first-pass-1');
  await page.getByRole('button', { name: 'Save User' }).click();
  await page.getByText('The user "viewer2" was saved as read-only.').waitFor(WAIT);
  assert.equal(await page.getByLabel('New Password').inputValue(), '', 'the password is not kept in the form');
  await shot('18a-user-created');
  // a new password for the same user
  await page.getByLabel('New Password').fill('second-pass-2');
  await page.getByLabel('Repeat the Password').fill('second-pass-2');
  await page.getByRole('button', { name: 'Save User' }).click();
  await page.getByText('The user "viewer2" was saved as read-only.').waitFor(WAIT);
  assert.equal((await api('GET', '/session', undefined, 'viewer2:first-pass-1')).status, 401);
  const vctx = await newContext();
  const p = watch(await vctx.newPage());
  await loginAs(p, 'viewer2', 'second-pass-2');
  assert.match(await p.locator('#who').innerText(), /Logged in as viewer2 \(read-only\)/);
  assert.equal(await p.getByRole('link', { name: 'User Management' }).count(), 0, 'viewers do not manage users');
  await vctx.close();
});

step('the viewer sees everything read-only and the API refuses changes', async () => {
  const vctx = await newContext();
  const p = watch(await vctx.newPage());
  await loginAs(p, 'viewer', VIEWER_PW);
  assert.match(await p.locator('#who').innerText(), /Logged in as viewer \(read-only\)/);
  await goto(p, '#/scep', 'Settings for Certificate Issuance Request (SCEP)');
  await p.getByText('You are logged in as a viewer: settings are shown read-only.').waitFor(WAIT);
  await p.locator('.status-card').waitFor(WAIT);
  await p.getByText('Only the System Manager (admin) can send issuance requests.').waitFor(WAIT);
  assert.equal(await p.getByRole('link', { name: /^Edit/ }).count(), 0);
  assert.equal(await p.getByRole('button', { name: /Edit|Issuance Request|Save/ }).count(), 0);
  await shot('18-viewer-scep', p);
  await goto(p, '#/scep/communication', 'Communication Settings');
  assert.equal(await p.getByLabel('SCEP Server URL').isDisabled(), true);
  assert.equal(await p.getByRole('button', { name: 'Save' }).count(), 0);
  await goto(p, '#/scep/auto', 'Settings for Certificate Issuance Auto Request');
  assert.equal(await p.getByLabel('Enable Timer').isDisabled(), true);
  assert.equal(await p.getByRole('button', { name: 'Save' }).count(), 0);
  await goto(p, '#/keys', 'Registered Key and Certificate');
  assert.equal(await p.getByRole('button', { name: 'Apply' }).count(), 0);
  await goto(p, '#/keys/WebKey1', 'WebKey1');
  assert.equal(await p.getByRole('button', { name: 'Delete' }).count(), 0);
  assert.equal(await p.getByText('Use This Key').count(), 0);
  await p.getByRole('button', { name: 'Verify Certificate' }).click();
  await p.getByText('The certificate is valid.').waitFor(WAIT);
  // the API refuses changes even with the session's CSRF token
  const refused = await p.evaluate(async () => {
    const h = { 'X-Requested-With': 'scepd-ui', 'Content-Type': 'application/json' };
    const s = await (await fetch('/api/v1/session', { headers: h })).json();
    h['X-CSRF-Token'] = s.csrf_token;
    const put = await fetch('/api/v1/scep/settings', { method: 'PUT', headers: h, body: JSON.stringify({ url: 'http://evil.example/scep' }) });
    const del = await fetch('/api/v1/keys/WebKey1', { method: 'DELETE', headers: h });
    return { put: put.status, code: (await put.json()).error.code, del: del.status };
  });
  assert.deepEqual(refused, { put: 403, code: 'forbidden', del: 403 });
  assert.equal((await api('GET', '/scep/settings')).json.url, SCEP_URL, 'nothing changed');

  // a session that ended on the device sends the page to the login, with
  // the reason, and back to the page after logging in again
  await goto(p, '#/scep', 'Settings for Certificate Issuance Request (SCEP)');
  await p.evaluate(async () => {
    const h = { 'X-Requested-With': 'scepd-ui' };
    const s = await (await fetch('/api/v1/session', { headers: h })).json();
    await fetch('/api/v1/session', { method: 'DELETE', headers: Object.assign({ 'X-CSRF-Token': s.csrf_token }, h) });
  });
  await p.getByRole('link', { name: 'Registered Key and Certificate' }).click();
  await heading(p, 'Login').waitFor(WAIT);
  await p.getByText('Your session has ended: log in again.').waitFor(WAIT);
  await shot('19-session-ended', p);
  await p.getByLabel('User Name').fill('viewer');
  await p.getByLabel('Password').fill(VIEWER_PW);
  await p.getByRole('button', { name: 'Log In' }).click();
  await heading(p, 'Registered Key and Certificate').waitFor(WAIT);
  await vctx.close();
});

step('security: headers, no caching of API answers, CSRF required, no CSP violation on any page', async () => {
  const ui = await fetch(`${BASE}/ui/`);
  const csp = ui.headers.get('content-security-policy');
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /style-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.equal(ui.headers.get('x-frame-options'), 'DENY');
  const status = await api('GET', '/status');
  assert.equal(status.headers.get('cache-control'), 'no-store');
  // no inline script or style in the page the device serves
  const html = await ui.text();
  assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/i);
  assert.doesNotMatch(html, /\sstyle=|<style/i);
  // a change without the CSRF token is refused
  const noCsrf = await page.evaluate(async () => {
    const r = await fetch('/api/v1/restart', { method: 'POST', headers: { 'X-Requested-With': 'scepd-ui' } });
    return { status: r.status, code: (await r.json()).error.code };
  });
  assert.deepEqual(noCsrf, { status: 403, code: 'csrf' });
  assert.deepEqual(problems.csp, [], 'no Content-Security-Policy violation');
  assert.deepEqual(problems.errors, [], 'no uncaught script error');
  assert.deepEqual(problems.dialogs, [], 'no JavaScript dialog');
}, { independent: true });

step('phone width (390 px): every page fits without sideways scrolling', async () => {
  const phone = await newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const p = watch(await phone.newPage());
  await loginAs(p, 'admin', ADMIN_PW);
  const pages = [
    ['#/portal', 'Portal', 'phone-portal'],
    ['#/scep', 'Settings for Certificate Issuance Request (SCEP)', 'phone-scep'],
    ['#/scep/communication', 'Communication Settings', 'phone-communication'],
    ['#/scep/request', 'Certificate Issuance Request', 'phone-request'],
    ['#/scep/auto', 'Settings for Certificate Issuance Auto Request', 'phone-auto'],
    ['#/keys', 'Registered Key and Certificate', 'phone-keys'],
    ['#/keys/WebKey1', 'WebKey1', 'phone-key'],
  ];
  for (const [hash, title, name] of pages) {
    await goto(p, hash, title);
    const width = await p.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `${hash} is ${width} px wide`);
    await shot(name, p);
  }
  await phone.close();
});

step('log out ends the session', async () => {
  await goto(page, '#/portal', 'Portal');
  await page.getByRole('button', { name: 'Log Out' }).click();
  await heading(page, 'Login').waitFor(WAIT);
  await page.getByText('You have logged out.').waitFor(WAIT);
  assert.equal(await page.locator('#nav').isHidden(), true);
  const after = await page.evaluate(async () => (await fetch('/api/v1/session', { headers: { 'X-Requested-With': 'scepd-ui' } })).status);
  assert.equal(after, 401);
  await page.goto(`${BASE}/ui/#/keys`);
  await heading(page, 'Login').waitFor(WAIT);
}, { independent: true });
