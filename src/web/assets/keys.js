// Key and Certificate Settings > Registered Key and Certificate: the list,
// the functions that use keys, and the details of one key and certificate
// with [Verify Certificate] and [Delete].
import { h, replace, details, timeEl, errorBox, notice, confirmDialog, pageHeading, breadcrumb, section, button, dn } from './dom.js';
import { get, put, post, del, isAdmin, enc } from './api.js';
import { setOptions } from './forms.js';
import { storageText } from './keyfields.js';
import { refreshStatus, latestStatus } from './status.js';

export const KEYS_TITLE = 'Registered Key and Certificate';

const FUNCTION_LABELS = {
  tls: 'Remote UI and HTTPS (tls)',
  ieee8021x: 'IEEE 802.1X (ieee8021x)',
  ipsec: 'IPSec (ipsec)',
};
export const functionLabel = (f) => FUNCTION_LABELS[f] || f;

const CHECK_LABELS = {
  chain: 'Certificate chain',
  revocation: 'Revocation',
  validity: 'Validity period',
  key_match: 'Key pair',
};

const crumbs = (...more) => breadcrumb([
  { label: 'Settings/Registration' },
  { label: 'Device Management' },
  { label: 'Key and Certificate Settings' },
  { label: KEYS_TITLE, href: '#/keys' },
  ...more,
]);

function keyState(k) {
  if (k.state === 'registered') return h('span', { class: 'badge badge-registered' }, 'Registered');
  if (k.state === 'acquired') return h('span', { class: 'badge badge-acquired' }, 'Waiting for restart');
  return h('span', { class: 'badge' }, k.state);
}

function expiry(iso) {
  if (!iso) return h('span', { class: 'muted' }, 'Unknown');
  const left = (new Date(iso).getTime() - Date.now()) / 86400000;
  const t = timeEl(iso);
  if (left < 0) return h('span', { class: 'expired' }, t, ' (expired)');
  if (left < 30) return h('span', { class: 'expiring' }, t, ` (in ${Math.ceil(left)} days)`);
  return t;
}

// Marks a key that has a certificate, as the device's list does.
function certIcon() {
  return h('span', { class: 'cert-icon', role: 'img', 'aria-label': 'has a certificate', title: 'Has a certificate' });
}

function usedBy(list) {
  if (!list || !list.length) return h('span', { class: 'muted' }, 'Not used');
  return list.map(functionLabel).join(', ');
}

// A table that turns into labelled cards at phone width (data-label).
function table(caption, headers, rows) {
  const thead = h('thead', {}, h('tr', {}, headers.map((t) => h('th', { scope: 'col' }, t))));
  const tbody = h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((c, i) => (i === 0
    ? h('th', { scope: 'row', 'data-label': headers[i] }, c)
    : h('td', { 'data-label': headers[i] }, c))))));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table' }, h('caption', { class: 'sr-only' }, caption), thead, tbody));
}

// Binding: a select of registered keys and [Apply], with a confirmation.
async function bindFlow(fn, key, slot, after) {
  const body = [h('p', {}, `The function ${functionLabel(fn)} will use the key "${key}" from now on.`)];
  if (fn === 'tls') {
    body.push(h('p', {}, 'The Remote UI\'s HTTPS switches to this key\'s certificate at once. Browsers that do not trust its CA will warn on the next HTTPS connection.'));
  }
  const ok = await confirmDialog({ title: 'Change the key of a function?', body, confirm: 'Apply' });
  if (!ok) return;
  try {
    await put(`/bindings/${enc(fn)}`, { key_name: key });
    const done = notice('success', h('p', { class: 'alert-message' }, `${functionLabel(fn)} now uses the key "${key}".`));
    // the page is drawn again with the new binding: the confirmation goes with it
    if (after) await after(done);
    else replace(slot, done);
  } catch (e) {
    replace(slot, errorBox(e, { title: 'The key was not bound' }));
  }
}

function bindingsSection(bindings, keys, onChanged) {
  const admin = isAdmin();
  const registered = keys.filter((k) => k.state === 'registered').map((k) => [k.name, k.name]);
  const slot = h('div', { 'aria-live': 'polite' });
  const rows = bindings.map((b) => {
    const exports = [b.export && b.export.key, b.export && b.export.cert, b.export && b.export.chain].filter(Boolean);
    const info = h('div', {}, h('span', { class: 'fn-name' }, functionLabel(b.function)),
      exports.length ? h('span', { class: 'hint block' }, `Writes ${exports.join(', ')}`) : null,
      b.command ? h('span', { class: 'hint block' }, `Then runs: ${b.command}`) : null);
    const current = b.key_name ? h('a', { href: `#/keys/${enc(b.key_name)}` }, b.key_name) : h('span', { class: 'muted' }, 'None');
    if (!admin) return [info, current];
    const selId = `bind-${b.function}`;
    const sel = h('select', { id: selId, 'aria-label': `Key for ${functionLabel(b.function)}` });
    setOptions(sel, registered, b.key_name);
    const apply = button('Apply', { class: 'btn btn-small' });
    apply.addEventListener('click', async () => {
      if (sel.value === b.key_name) {
        replace(slot, notice('info', h('p', { class: 'alert-message' }, `${functionLabel(b.function)} already uses "${sel.value}".`)));
        return;
      }
      apply.disabled = true;
      try {
        await bindFlow(b.function, sel.value, slot, onChanged);
      } finally {
        apply.disabled = false;
      }
    });
    return [info, current, h('div', { class: 'inline-form' }, sel, apply)];
  });
  const headers = admin ? ['Function', 'Key in use', 'Change key'] : ['Function', 'Key in use'];
  return section('Functions Using Keys',
    h('p', { class: 'hint' }, 'Each function uses one registered key pair. Key pairs that wait for registration can be chosen after Restart.'),
    slot, table('Functions and their keys', headers, rows));
}

export async function keysPage(ctx) {
  const [keys, bindings] = await Promise.all([get('/keys'), get('/bindings'), refreshStatus().catch(() => null)]);
  const s = latestStatus();
  const rows = keys.map((k) => [
    h('span', { class: 'key-name' }, k.sha256 ? certIcon() : null, h('a', { href: `#/keys/${enc(k.name)}` }, k.name)),
    keyState(k),
    h('span', { class: 'nowrap' }, k.key_algorithm || ''),
    h('span', { class: 'nowrap', 'data-field': 'key_storage' }, storageText(k.key_storage)),
    dn(k.subject),
    expiry(k.not_after),
    usedBy(k.functions),
  ]);
  const count = s ? h('p', { class: 'hint' }, `${s.registered_keys} of at most ${s.max_keys} key pairs registered${s.pending_registration ? `, ${s.pending_registration} waiting for restart` : ''}.`) : null;
  const list = section('Key and Certificate List', count,
    keys.length ? table('Registered keys and certificates', ['Key Name', 'State', 'Key', 'Key Storage', 'Subject', 'Expires', 'Used by'], rows)
      : h('p', { class: 'muted' }, 'No key pair is registered.'));
  replace(ctx.main, crumbs(), pageHeading(KEYS_TITLE), ctx.flash(), list,
    bindingsSection(bindings, keys, (done) => ctx.reload(done)));
}

// "3 min" from seconds, for the CRL's age.
function ageText(s) {
  if (s < 60) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} days`;
}

// Where the CRL of the revocation check came from and how old it is.
function crlLine(crl) {
  if (!crl) return null;
  return h('span', { class: 'check-crl block' },
    `CRL ${crl.source ? `from ${crl.source} (GetCRL)` : 'stored on the device'}, fetched `,
    timeEl(crl.fetched_at), ` (${ageText(crl.age_s)} ago)`,
    crl.next_update ? [', next update ', timeEl(crl.next_update)] : null, '.');
}

function verifyView(result) {
  const ul = h('ul', { class: 'checks' });
  for (const c of result.checks || []) {
    const status = c.skipped ? 'skipped' : c.ok ? 'ok' : 'failed';
    const notChecked = c.skipped && c.name === 'revocation';
    const word = notChecked ? 'Not checked' : c.skipped ? 'Skipped' : c.ok ? 'OK' : 'Failed';
    const detail = notChecked ? c.detail.replace(/^not checked: /, '') : c.detail;
    ul.appendChild(h('li', { class: `check check-${status}`, 'data-check': c.name },
      h('span', { class: 'check-mark', 'aria-hidden': 'true' }),
      h('span', { class: 'check-name' }, CHECK_LABELS[c.name] || c.name),
      h('span', { class: 'check-result' }, word),
      h('span', { class: 'check-detail' }, detail,
        c.name === 'revocation' && !c.skipped ? crlLine(result.crl) : null)));
  }
  return h('div', { class: result.valid ? 'alert alert-success verify' : 'alert alert-error verify', role: 'status' },
    h('p', { class: 'alert-message' }, result.valid ? 'The certificate is valid.' : 'The certificate is not valid.'), ul);
}

export async function keyPage(ctx, name) {
  const [k, bindings] = await Promise.all([get(`/keys/${enc(name)}`), get('/bindings')]);
  const admin = isAdmin();
  const slot = h('div', { class: 'result-slot', 'aria-live': 'polite' });
  const verifyBtn = button('Verify Certificate', { class: 'btn btn-primary' });
  verifyBtn.addEventListener('click', async () => {
    verifyBtn.disabled = true;
    replace(slot, h('p', { class: 'muted' }, 'Verifying: the device fetches the CA\'s CRL first (at most the communication timeout)...'));
    try {
      // the device waits for the CRL up to the communication timeout (at most 600 s)
      replace(slot, verifyView(await post(`/keys/${enc(name)}/verify`, undefined, { timeoutMs: 620000 })));
    } catch (e) {
      replace(slot, errorBox(e, { title: 'The certificate could not be verified' }));
    } finally {
      verifyBtn.disabled = false;
    }
  });
  const buttons = [verifyBtn];
  if (admin && k.functions.length) {
    // the API refuses it (409 key_in_use): say so before the click
    const id = 'delete-why';
    buttons.push(h('button', { type: 'button', class: 'btn btn-danger', disabled: true, 'aria-describedby': id }, 'Delete'));
    buttons.push(h('p', { class: 'hint disabled-why', id },
      `Cannot be deleted while in use by ${usedBy(k.functions)}: bind ${k.functions.length === 1 ? 'that function' : 'those functions'} to another key first.`));
  } else if (admin) {
    const delBtn = button('Delete', { class: 'btn btn-danger' });
    delBtn.addEventListener('click', async () => {
      const body = [h('p', {}, `Delete the key pair "${k.name}" and its certificate? This cannot be undone.`)];
      if (k.functions.length) body.push(h('p', { class: 'hint' }, `It is used by: ${usedBy(k.functions)}.`));
      const ok = await confirmDialog({ title: 'Delete the key and certificate?', body, confirm: 'Delete', danger: true });
      if (!ok) return;
      delBtn.disabled = true;
      try {
        await del(`/keys/${enc(name)}`);
        await refreshStatus().catch(() => {});
        ctx.go('#/keys', notice('success', h('p', { class: 'alert-message' }, `The key "${k.name}" was deleted.`)));
      } catch (e) {
        const box = errorBox(e, { title: `The key "${k.name}" was not deleted` });
        if (e.code === 'key_in_use' && k.functions.length) {
          box.appendChild(h('p', {}, h('span', { class: 'label' }, 'Used by: '), usedBy(k.functions)));
        }
        replace(slot, box);
      } finally {
        delBtn.disabled = false;
      }
    });
    buttons.push(delBtn);
  }

  const cert = section('Certificate', details([
    ['Key Name', k.name],
    ['State', keyState(k)],
    ['Used by', usedBy(k.functions)],
    ['Subject', dn(k.subject, 'dn subject')],
    ['Issuer', dn(k.issuer)],
    ['Serial Number', h('span', { class: 'mono break' }, k.serial || '')],
    ['Valid From', timeEl(k.not_before)],
    ['Valid Until', expiry(k.not_after)],
    ['Public Key', k.key_algorithm],
    ['Key Storage', h('span', { 'data-field': 'key_storage' }, storageText(k.key_storage))],
    ['Signature Algorithm', k.signature_algorithm],
    ['Key Usage', k.key_usage],
    ['Extended Key Usage', k.ext_key_usage],
    ['Subject Alternative Names', k.san ? h('span', { class: 'break' }, k.san) : null],
    ['SHA-256 Fingerprint', h('span', { class: 'mono break', 'data-field': 'sha256' }, k.sha256 || '')],
    ['SHA-1 Fingerprint', h('span', { class: 'mono break' }, k.sha1 || '')],
    ['Created', timeEl(k.created_at)],
    ['Registered', timeEl(k.registered_at, 'Not yet: restart to register')],
    ['Replaces', k.replaces],
  ]), h('details', { class: 'more' }, h('summary', {}, 'Certificate in PEM form'), h('pre', { class: 'pem' }, k.certificate_pem || '')));

  const chain = section('Certificate Chain', (k.chain && k.chain.length)
    ? table('Issuing CA certificates', ['Subject', 'Issuer', 'Expires', 'SHA-256'], k.chain.map((c) => [
      dn(c.subject), dn(c.issuer), expiry(c.not_after),
      h('span', { class: 'mono break' }, c.sha256)]))
    : h('p', { class: 'muted' }, 'No CA certificates are stored with this key (self-signed or issued without a chain).'));

  let use = null;
  if (admin) {
    const useSlot = h('div', { 'aria-live': 'polite' });
    if (k.state !== 'registered') {
      use = section('Use This Key', h('p', { class: 'hint' }, 'The key pair can be bound to a function once it is registered: restart to register it.'));
    } else {
      const sel = h('select', { id: 'use-function' });
      setOptions(sel, bindings.map((b) => [b.function, `${functionLabel(b.function)}${b.key_name ? ` (now: ${b.key_name})` : ''}`]));
      const apply = button('Apply', { class: 'btn' });
      apply.addEventListener('click', async () => {
        apply.disabled = true;
        try {
          await bindFlow(sel.value, k.name, useSlot, (done) => ctx.reload(done));
        } finally {
          apply.disabled = false;
        }
      });
      use = section('Use This Key', h('div', { class: 'field' }, h('label', { for: 'use-function' }, 'Function'),
        h('div', { class: 'inline-form' }, sel, apply)), useSlot);
    }
  }
  replace(ctx.main, crumbs({ label: k.name }), pageHeading(k.name, 'Key and Certificate Details'), ctx.flash(),
    h('div', { class: 'card' }, h('div', { class: 'actions actions-start' }, buttons), slot), cert, chain, use);
}
