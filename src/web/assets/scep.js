// Settings/Registration > Device Management > Settings for Certificate
// Issuance Request (SCEP): the status, Communication Settings, Certificate
// Issuance Request and Settings for Certificate Issuance Auto Request.
import {
  h, replace, clear, details, timeEl, notice, confirmDialog, pageHeading, breadcrumb, section, yesNo,
  localInputToUtc, utcToLocalInput, localZone, formatLocal,
} from './dom.js';
import { get, put, post, isAdmin } from './api.js';
import { Form, rules, textField, numberField, selectField, checkField, fieldset, actions } from './forms.js';
import { keyFields, algorithmText, subjectText, labelOf, KEY_USAGES } from './keyfields.js';
import { statusPanel, refreshStatus, latestStatus, onStatus, requestActive, stateLabels } from './status.js';

export const SCEP_TITLE = 'Settings for Certificate Issuance Request (SCEP)';
const crumbs = (...more) => breadcrumb([
  { label: 'Settings/Registration' },
  { label: 'Device Management' },
  { label: SCEP_TITLE, href: '#/scep' },
  ...more,
]);

const METHODS = [['auto', 'Automatic'], ['get', 'GET'], ['post', 'POST']];

function readOnlyNote() {
  return isAdmin() ? null : notice('info', h('p', { class: 'alert-message' },
    'You are logged in as a viewer: settings are shown read-only. Log in as the System Manager (admin) to change them.'));
}

function linkButton(label, href, attrs) {
  return h('a', Object.assign({ class: 'btn', href }, attrs || {}), label);
}

// The URL requests really go to: the URL with the settings' port (the
// device keeps them apart; a port the URL's scheme implies is not written).
export function endpointOf(s) {
  if (!s || !s.url) return '';
  try {
    const u = new URL(s.url);
    if (s.port) u.port = String(s.port);
    return u.href;
  } catch (e) {
    return s.url;
  }
}

// ---- overview ----

function communicationFacts(s) {
  if (!s || !s.url) return h('p', { class: 'muted' }, 'No SCEP server is set.');
  const https = /^https:/i.test(s.url);
  return details([
    ['SCEP Server URL', h('span', { class: 'break' }, s.url)],
    ['Port Number', String(s.port)],
    ['Communication Timeout', `${s.timeout_s} s`],
    ['HTTPS', https ? `Yes${s.tls_pin ? ', server certificate pinned' : ''}${s.ca_file ? ', own CA file' : ''}` : 'No'],
    ['Proxy', s.proxy],
    ['CA Identifier', s.ca_identifier],
    ['CA Certificate Fingerprint', s.ca_fingerprint ? h('span', { class: 'mono break' }, s.ca_fingerprint) : null],
    ['HTTP Method', labelOf(METHODS, s.method)],
    ['Polling While Pending', `every ${s.poll_interval_s} s, at most ${s.poll_max} times`],
    ['Subject Characters', s.subject_utf8 ? 'UTF-8 allowed' : 'Printable single-byte only'],
  ]);
}

function autoFacts(a) {
  const k = a.key;
  return details([
    ['Enable Timer', yesNo(a.enabled)],
    ['Start Date and Time', timeEl(a.start, 'Not set')],
    ['Next Run', a.enabled && a.done ? h('span', { class: 'timer-done' }, 'Done: the one-time request has run; manual requests are allowed again.')
      : a.enabled ? h('span', {}, timeEl(a.next_run, 'Not scheduled'),
      a.jitter_s ? h('span', { class: 'muted' }, ` (random delay ${a.jitter_s} s included)`) : null) : h('span', { class: 'muted' }, 'Timer off')],
    ['Auto Adjust Issuance Request Time', yesNo(a.auto_adjust)],
    ['Retries', a.polling.enabled ? `On: ${a.polling.retries} times, every ${a.polling.interval_s} s` : 'Off'],
    ['Periodic Issuance Requests', a.periodic.enabled ? `On: every ${a.periodic.interval_days} days` : 'Off'],
    ['Renew Before Expiry', a.renew_at_remaining_percent
      ? h('span', {}, `When ${a.renew_at_remaining_percent} % of the certificate's lifetime is left`,
        a.enabled && a.renew_at ? [': ', timeEl(a.renew_at)] : null)
      : 'Off'],
    ['Automatic Restart After Acquiring', yesNo(a.auto_restart)],
    ['Delete Old Key and Certificate', yesNo(a.delete_old)],
    ['Name of the Next Key', a.next_key_name ? h('span', { 'data-field': 'next-key-name' }, a.next_key_name,
      a.renew_key_name === 'replace' && a.delete_old ? ' (takes the old key\'s place)' : '') : null],
    ['Key', k ? `${k.key_name} (${algorithmText(k)})` : null],
    ['Subject', k ? subjectText(k) : null],
    ['Key Usage', k ? labelOf(KEY_USAGES, k.key_usage) : null],
    ['Challenge Password', k ? (k.challenge_password_set ? 'Set' : 'Not set') : null],
  ]);
}

// Why a manual request cannot be sent now, or null. The status's view of
// the timer is the newer one (a one-shot timer that has run is done).
function requestBlocker(status, auto) {
  if (!isAdmin()) return 'Only the System Manager (admin) can send issuance requests.';
  const timer = (status && status.auto_request) || auto;
  if (timer && timer.enabled && !timer.done) {
    return 'Not available while the auto request timer is on: switch the timer off under Settings for Certificate Issuance Auto Request to send a request by hand.';
  }
  if (requestActive(status)) {
    const r = status.latest_request;
    return `Request #${r.id} is in progress (${stateLabels[r.state] || r.state}): wait until it is acquired or has failed, or cancel it in the status.`;
  }
  if (status && !status.scep_configured) return 'Set the SCEP server URL under Communication Settings first.';
  return null;
}

// A key of what the status says about the timer: when it changes, the
// auto request card is fetched again.
const timerKey = (s) => JSON.stringify(s && s.auto_request
  ? [s.auto_request.enabled, s.auto_request.done, s.auto_request.next_run, s.auto_request.last_result, s.auto_request.last_request_id]
  : null);

export async function scepPage(ctx) {
  const [settings, firstAuto] = await Promise.all([get('/scep/settings'), get('/scep/auto-request'), refreshStatus()]);
  let auto = firstAuto;
  const admin = isAdmin();
  const requestCard = section('Certificate Issuance Request',
    h('p', {}, 'Generates a key pair on the device and asks the SCEP server to issue its certificate.'));
  const blockSlot = h('div', {});
  requestCard.appendChild(blockSlot);
  const renderBlock = (s) => {
    const why = requestBlocker(s, auto);
    const id = 'request-blocked';
    if (!admin) {
      replace(blockSlot, h('p', { class: 'hint' }, why));
      return;
    }
    replace(blockSlot,
      h('div', { class: 'actions' }, why
        ? h('button', { type: 'button', class: 'btn btn-primary', disabled: true, 'aria-describedby': id }, 'Issuance Request...')
        : linkButton('Issuance Request...', '#/scep/request', { class: 'btn btn-primary' })),
      why ? h('p', { class: 'hint disabled-why', id }, why) : null);
  };
  ctx.register(onStatus(renderBlock));

  const comm = section('Communication Settings', communicationFacts(settings));
  if (admin) comm.appendChild(h('div', { class: 'actions' }, linkButton('Edit', '#/scep/communication', { 'aria-label': 'Edit Communication Settings' })));
  const autoSlot = h('div', {}, autoFacts(auto));
  const autoCard = section('Settings for Certificate Issuance Auto Request', autoSlot);
  let seenTimer = timerKey(latestStatus());
  ctx.register(onStatus((s) => {
    const key = timerKey(s);
    if (key === seenTimer) return;
    seenTimer = key;
    get('/scep/auto-request').then((a) => {
      auto = a;
      replace(autoSlot, autoFacts(a));
      renderBlock(latestStatus());
    }).catch(() => {});
  }));
  if (admin) autoCard.appendChild(h('div', { class: 'actions' }, linkButton('Edit', '#/scep/auto', { 'aria-label': 'Edit Settings for Certificate Issuance Auto Request' })));

  replace(ctx.main, crumbs(), pageHeading(SCEP_TITLE), readOnlyNote(), ctx.flash(),
    statusPanel(ctx.register), comm, requestCard, autoCard);
}

// ---- Communication Settings ----

export async function communicationPage(ctx) {
  const s = await get('/scep/settings');
  const admin = isAdmin();
  const form = new Form({ label: 'Communication Settings' });
  const url = textField(form, {
    name: 'url', label: 'SCEP Server URL', value: s.url, required: true, maxlength: 511, wide: true,
    hint: 'http:// or https:// with the host and the path of the SCEP service, e.g. http://ca.example.com/certsrv/mscep/mscep.dll.',
    rules: [rules.url], inputmode: 'url', placeholder: 'http://ca.example.com/certsrv/mscep/mscep.dll',
  });
  const port = numberField(form, {
    name: 'port', label: 'Port Number', value: s.url ? s.port : '', min: 1, max: 65535,
    hint: 'Leave empty for the port in the URL, else 80 for http and 443 for https.',
  });
  const timeout = numberField(form, {
    name: 'timeout_s', label: 'Communication Timeout (seconds)', value: s.timeout_s || 30, min: 1, max: 600,
    hint: '1 to 600.', required: true,
  });
  const caFile = textField(form, {
    name: 'ca_file', label: 'CA Certificate File for HTTPS', value: s.ca_file, maxlength: 255, rules: [rules.text(255)], wide: true,
    hint: 'Path on the device of the PEM file with the CA that issued the server\'s HTTPS certificate. Empty: the system\'s CAs.',
  });
  const pin = textField(form, {
    name: 'tls_pin', label: 'HTTPS Certificate Pin', value: s.tls_pin, rules: [rules.fingerprint], wide: true,
    hint: 'Optional: sha256: and the 64 hex digits of a certificate in the server\'s HTTPS chain.',
  });
  const proxy = textField(form, {
    name: 'proxy', label: 'Proxy', value: s.proxy, rules: [rules.proxy], maxlength: 255, wide: true,
    hint: 'Optional: http://host:port of an HTTP proxy. Empty: direct connection.',
  });
  const caId = textField(form, {
    name: 'ca_identifier', label: 'CA Identifier', value: s.ca_identifier, maxlength: 127, rules: [rules.text(127)],
    hint: 'Optional: the CA name some servers need to tell their CAs apart.',
  });
  const caFp = textField(form, {
    name: 'ca_fingerprint', label: 'CA Certificate Fingerprint', value: s.ca_fingerprint, rules: [rules.fingerprint], wide: true,
    hint: 'Optional: sha256: and 64 hex digits; the CA certificate the server sends must match it.',
  });
  const method = selectField(form, { name: 'method', label: 'HTTP Method', options: METHODS, value: s.method || 'auto',
    hint: 'Automatic: POST when the server offers it, else GET.' });
  const pollInt = numberField(form, {
    name: 'poll_interval_s', label: 'Polling Interval While Pending (seconds)', value: s.poll_interval_s || 60, min: 5, max: 86400,
    hint: 'How often the device asks again about a deferred request: 5 to 86400.',
  });
  const pollMax = numberField(form, {
    name: 'poll_max', label: 'Maximum Number of Polls', value: s.poll_max === undefined ? 60 : s.poll_max, min: 0, max: 10000,
    hint: '0 to 10000.',
  });
  const utf8 = checkField(form, { name: 'subject_utf8', label: 'Allow UTF-8 in Organization and Common Name', checked: !!s.subject_utf8,
    hint: 'Off (as on the device): printable single-byte characters only. Switch on only for a server that accepts UTF-8 subjects.' });
  const body = h('fieldset', { class: 'plain', disabled: !admin },
    fieldset('SCEP Server', h('div', { class: 'grid' }, url.wrap, port.wrap, timeout.wrap)),
    fieldset('Certificate Subject', utf8.wrap),
    fieldset('HTTPS', h('p', { class: 'hint group-hint' }, 'Used when the URL starts with https://.'), h('div', { class: 'grid' }, caFile.wrap, pin.wrap)),
    fieldset('Proxy and CA', h('div', { class: 'grid' }, proxy.wrap, caId.wrap, method.wrap, caFp.wrap)),
    fieldset('Deferred Requests', h('div', { class: 'grid' }, pollInt.wrap, pollMax.wrap)));
  form.add(body);
  if (admin) form.add(actions(h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save'), h('a', { class: 'btn', href: '#/scep' }, 'Cancel')));
  else form.add(actions(h('a', { class: 'btn', href: '#/scep' }, 'Back')));
  form.onSubmit = async (v) => {
    const doc = { url: v.url, timeout_s: Number(v.timeout_s), method: v.method, subject_utf8: utf8.get() };
    if (v.port !== '') doc.port = Number(v.port);
    for (const k of ['ca_file', 'tls_pin', 'proxy', 'ca_identifier', 'ca_fingerprint']) if (v[k]) doc[k] = v[k];
    if (v.poll_interval_s !== '') doc.poll_interval_s = Number(v.poll_interval_s);
    if (v.poll_max !== '') doc.poll_max = Number(v.poll_max);
    form.setBusy(true, 'Saving...');
    try {
      await put('/scep/settings', doc);
      ctx.go('#/scep', notice('success', h('p', { class: 'alert-message' }, 'Communication Settings saved.')));
    } catch (e) {
      form.showError(e, 'The settings were not saved');
    } finally {
      form.setBusy(false);
    }
  };
  replace(ctx.main, crumbs({ label: 'Communication Settings' }), pageHeading('Communication Settings'),
    readOnlyNote(), h('div', { class: 'card' }, form.el));
}

// ---- Certificate Issuance Request ----

export async function requestPage(ctx) {
  const [keys, settings] = await Promise.all([get('/keys'), get('/scep/settings'), refreshStatus()]);
  let auto = await get('/scep/auto-request');
  const admin = isAdmin();
  const names = new Set(keys.map((k) => k.name.toLowerCase()));
  const form = new Form({ label: 'Certificate Issuance Request' });
  const kf = keyFields(form, {
    legend: 'Key and Certificate',
    utf8: !!settings.subject_utf8,
    keyNameRules: [(v) => (names.has(String(v).toLowerCase()) ? 'is taken: a key with this name already exists' : null)],
  });
  const why = h('p', { class: 'hint disabled-why', id: 'request-why', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Issuance Request');
  const fs = h('fieldset', { class: 'plain' }, kf.group);
  form.add(fs, why, actions(submit, h('a', { class: 'btn', href: '#/scep' }, 'Back')));
  // The request this form sent last: its acceptance notice stays only while
  // it runs; once it has ended the status below is the one answer.
  let sent = null;
  const followSent = (s) => {
    const r = s && s.latest_request;
    if (!sent || !r || r.id !== sent.id || requestActive(s)) return;
    if (form.summary.contains(sent.notice)) clear(form.summary);
    if (r.state === 'acquired' || r.state === 'registered') kf.keyName.input.value = '';
    sent = null;
  };
  const update = (s) => {
    followSent(s);
    const reason = requestBlocker(s, auto);
    fs.disabled = !!reason;
    submit.disabled = !!reason || form.busy;
    why.hidden = !reason;
    why.textContent = reason || '';
    if (reason) submit.setAttribute('aria-describedby', 'request-why');
    else submit.removeAttribute('aria-describedby');
  };
  ctx.register(onStatus(update));
  update(latestStatus());

  form.onSubmit = async () => {
    const p = kf.toJson();
    const ok = await confirmDialog({
      title: 'Send the issuance request?',
      body: [
        h('p', {}, 'The device generates a new key pair and sends its certificate request to the SCEP server.'),
        details([
          ['Key Name', p.key_name],
          ['Key', algorithmText(p)],
          ['Subject', subjectText(p)],
          ['Key Usage', labelOf(KEY_USAGES, p.key_usage)],
          ['SCEP Server', h('span', { class: 'break', 'data-endpoint': '' }, endpointOf(settings))],
        ]),
      ],
      confirm: 'Send Request',
    });
    if (!ok) return;
    form.setBusy(true, 'Sending...');
    try {
      const res = await post('/scep/requests', p);
      names.add(p.key_name.toLowerCase());
      // the one-time password is not kept; the rest stays for a retry until the key is acquired
      kf.pw.input.value = '';
      const accepted = notice('info', h('p', { class: 'alert-message' },
        `Request #${res.id} for key "${p.key_name}" was accepted. Its progress is shown below.`));
      replace(form.summary, accepted);
      sent = { id: res.id, notice: accepted };
      await refreshStatus().catch(() => {});
      const panel = document.querySelector('.status-card');
      if (panel) panel.scrollIntoView({ block: 'nearest' });
    } catch (e) {
      // what was typed stays, except the challenge password (it may be used up)
      kf.pw.input.value = '';
      form.showError(e, 'The request was not sent');
      if (e.code === 'auto_request_enabled' || e.code === 'request_busy') {
        // the device changed meanwhile: show why the form is now disabled
        auto = await get('/scep/auto-request').catch(() => auto);
        await refreshStatus().catch(() => {});
      }
    } finally {
      form.setBusy(false);
      update(latestStatus());
    }
  };
  replace(ctx.main, crumbs({ label: 'Certificate Issuance Request' }), pageHeading('Certificate Issuance Request'),
    readOnlyNote(), admin ? h('div', { class: 'card' }, form.el) : null, statusPanel(ctx.register));
}

// ---- Settings for Certificate Issuance Auto Request ----

export async function autoPage(ctx) {
  const [a, settings, keys] = await Promise.all([get('/scep/auto-request'), get('/scep/settings'), get('/keys')]);
  const admin = isAdmin();
  const form = new Form({ label: 'Settings for Certificate Issuance Auto Request', aliases: { key: 'key.key_name' } });
  const enabled = checkField(form, { name: 'enabled', label: 'Enable Timer', checked: a.enabled,
    hint: 'Sends the issuance request at the start date and time. While the timer is on, requests cannot be sent by hand.' });
  const startPreview = h('p', { class: 'hint', id: 'start-utc', 'aria-live': 'polite' });
  const start = textField(form, {
    name: 'start', label: 'Start Date and Time', type: 'datetime-local', value: utcToLocalInput(a.start),
    rules: [
      (v) => (enabled.get() && !v ? 'is required when the timer is enabled' : null),
      (v) => (v && !localInputToUtc(v) ? 'must be a date and time such as 2026-12-01T09:30:00Z' : null),
    ],
    hint: `In this browser's time zone (${localZone()}); the device stores it in UTC.`, after: startPreview,
  });
  const showUtc = () => {
    const utc = localInputToUtc(start.get());
    startPreview.textContent = utc ? `= ${utc} (UTC)` : '';
  };
  start.input.addEventListener('input', showUtc);
  start.input.addEventListener('change', showUtc);
  showUtc();
  const adjust = checkField(form, { name: 'auto_adjust', label: 'Auto Adjust Issuance Request Time', checked: a.auto_adjust,
    hint: 'Adds a random delay of up to 10 minutes, so that many devices do not reach the server at the same moment.' });
  const polling = checkField(form, { name: 'polling.enabled', label: 'Retry While Pending or Unreachable', checked: a.polling.enabled,
    hint: 'When the server defers the request or cannot be reached, the device tries again.' });
  const retries = numberField(form, { name: 'polling.retries', label: 'Number of Retries', value: a.polling.retries, min: 0, max: 100, hint: '0 to 100.' });
  const interval = numberField(form, { name: 'polling.interval_s', label: 'Retry Interval (seconds)', value: a.polling.interval_s, min: 10, max: 86400, hint: '10 to 86400.' });
  const periodic = checkField(form, { name: 'periodic.enabled', label: 'Periodic Issuance Requests', checked: a.periodic.enabled,
    hint: 'Renews the certificate every interval. As on the device, switching this on sets the start to now: the first request is sent at once.' });
  const days = numberField(form, { name: 'periodic.interval_days', label: 'Interval (days)', value: a.periodic.interval_days, min: 1, max: 3650, hint: '1 to 3650.' });
  const renewPct = numberField(form, {
    name: 'renew_at_remaining_percent', label: 'Renew When Lifetime Left (%)', value: a.renew_at_remaining_percent || '', min: 1, max: 99,
    hint: 'Optional, 1 to 99: the request is also sent when the registered certificate has this share of its lifetime left (with the random delay when Auto Adjust is on). Empty: off.',
  });
  const restart = checkField(form, { name: 'auto_restart', label: 'Automatic Restart After Acquiring Certificate', checked: a.auto_restart,
    hint: 'Registers the new key pair as soon as its certificate is acquired.' });
  const naming = selectField(form, {
    name: 'renew_key_name', label: 'Name of the Renewed Key', value: a.renew_key_name || 'numbered',
    options: [['numbered', 'Key name with a number (Key2, Key3, ...)'], ['replace', 'The old key\'s name (with Delete Old Key)']],
    hint: 'Numbered: the key name, or while a key of that name exists the first free one with 2, 3, ... appended. The old key\'s name: with Delete Old Key and Certificate, the new pair takes the old pair\'s name (and its functions) when it is registered.',
  });
  const newName = h('p', { class: 'hint', id: 'renew-name', 'aria-live': 'polite' });
  const delOld = checkField(form, { name: 'delete_old', label: 'Delete Old Key and Certificate', checked: a.delete_old,
    hint: 'When a renewed key pair is registered, the pair it replaces is deleted.', after: newName });
  const kf = keyFields(form, {
    prefix: 'key.', values: a.key || {}, utf8: !!settings.subject_utf8, challengeSet: !!(a.key && a.key.challenge_password_set),
    needed: () => enabled.get() || !!form.field('key.key_name').get() || !!form.field('key.common_name').get(),
    legend: 'Key and Certificate Settings',
  });
  // The name the next request's key will carry, as the device computes it
  // (GET auto-request's next_key_name for what is stored).
  const names = new Map(keys.map((k) => [k.name, k]));
  const showNewName = () => {
    const base = form.field('key.key_name').get();
    if (!base) {
      newName.textContent = 'The new key\'s name follows from the Key Name below.';
      return;
    }
    const old = names.get(base);
    let name = base;
    if (old && old.state === 'registered' && delOld.get() && naming.get() === 'replace') name = base;
    else if (names.has(base)) {
      for (let i = 2; i < 1000; i++) {
        const suffix = String(i);
        const candidate = base.slice(0, 24 - suffix.length) + suffix;
        if (!names.has(candidate)) {
          name = candidate;
          break;
        }
      }
    }
    const replacing = old && old.state === 'registered' && delOld.get();
    newName.textContent = `The new key will be named "${name}"${replacing ? `; "${base}" is deleted when it is registered` : ''}.`;
    newName.dataset.name = name;
  };
  const syncDisabled = () => {
    retries.input.disabled = !polling.get();
    interval.input.disabled = !polling.get();
    days.input.disabled = !periodic.get();
  };
  for (const el of [delOld.input, naming.input, form.field('key.key_name').input]) {
    el.addEventListener('change', showNewName);
    el.addEventListener('input', showNewName);
  }
  showNewName();
  polling.input.addEventListener('change', syncDisabled);
  periodic.input.addEventListener('change', syncDisabled);
  syncDisabled();

  const body = h('fieldset', { class: 'plain', disabled: !admin },
    fieldset('Timer', enabled.wrap, h('div', { class: 'grid' }, start.wrap), adjust.wrap),
    fieldset('Retries', polling.wrap, h('div', { class: 'grid' }, retries.wrap, interval.wrap)),
    fieldset('Periodic Issuance Requests', periodic.wrap, h('div', { class: 'grid' }, days.wrap, renewPct.wrap)),
    fieldset('After Acquiring', restart.wrap, h('div', { class: 'grid' }, naming.wrap), delOld.wrap),
    kf.group);
  form.add(body);
  if (admin) form.add(actions(h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save'), h('a', { class: 'btn', href: '#/scep' }, 'Cancel')));
  else form.add(actions(h('a', { class: 'btn', href: '#/scep' }, 'Back')));

  form.onSubmit = async () => {
    const doc = {
      enabled: enabled.get(),
      start: localInputToUtc(start.get()),
      auto_adjust: adjust.get(),
      polling: { enabled: polling.get() },
      periodic: { enabled: periodic.get() },
      auto_restart: restart.get(),
      delete_old: delOld.get(),
      renew_key_name: naming.get(),
    };
    if (retries.get() !== '') doc.polling.retries = Number(retries.get());
    if (interval.get() !== '') doc.polling.interval_s = Number(interval.get());
    if (days.get() !== '') doc.periodic.interval_days = Number(days.get());
    doc.renew_at_remaining_percent = renewPct.get() === '' ? null : Number(renewPct.get());
    if (!kf.isBlank()) doc.key = kf.toJson();
    if (doc.enabled && doc.periodic.enabled && !a.periodic.enabled) {
      const ok = await confirmDialog({
        title: 'Send the first request now?',
        body: h('p', {}, 'Switching periodic issuance requests on sets the start to now: the first request is sent at once, then every interval.'),
        confirm: 'Save',
      });
      if (!ok) return;
    }
    form.setBusy(true, 'Saving...');
    try {
      const saved = await put('/scep/auto-request', doc);
      await refreshStatus().catch(() => {});
      const next = saved.enabled && saved.next_run
        ? `The next issuance request is scheduled for ${formatLocal(saved.next_run)}.`
        : 'The timer is off.';
      ctx.go('#/scep', notice('success', h('p', { class: 'alert-message' }, `Auto request settings saved. ${next}`)));
    } catch (e) {
      form.showError(e, 'The settings were not saved');
    } finally {
      form.setBusy(false);
    }
  };
  replace(ctx.main, crumbs({ label: 'Settings for Certificate Issuance Auto Request' }),
    pageHeading('Settings for Certificate Issuance Auto Request'), readOnlyNote(), h('div', { class: 'card' }, form.el));
}
