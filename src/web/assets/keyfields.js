// The key and certificate fields shared by the issuance request and the
// auto request: key name, algorithms, organization, common name, challenge
// password, key usage, alternative names, extended key usage.
import { h } from './dom.js';
import { rules, textField, selectField, textareaField, checkField, fieldset, splitList, setOptions } from './forms.js';

export const SIGNATURE_ALGORITHMS = [['sha1', 'SHA1'], ['sha256', 'SHA256'], ['sha384', 'SHA384'], ['sha512', 'SHA512']];
export const KEY_ALGORITHMS = [['rsa', 'RSA'], ['ecdsa', 'ECDSA']];
export const KEY_LENGTHS = {
  rsa: [[1024, '1024 bit'], [2048, '2048 bit'], [3072, '3072 bit'], [4096, '4096 bit']],
  ecdsa: [[256, 'P-256 (256 bit)'], [384, 'P-384 (384 bit)']],
};
export const KEY_STORAGES = [['software', 'Software (in scepd\'s store)'], ['tpm2', 'TPM 2.0 (never leaves the TPM)']];
export const KEY_USAGES = [
  ['none', 'None'],
  ['digital_signature', 'Digital Signature'],
  ['key_encipherment', 'Key Encipherment'],
  ['both', 'Digital Signature and Key Encipherment'],
];

export const labelOf = (list, v) => {
  const hit = list.find(([k]) => String(k) === String(v));
  return hit ? hit[1] : v;
};

export function algorithmText(p) {
  if (!p) return '';
  const len = labelOf(KEY_LENGTHS[p.key_algorithm] || [], p.key_length);
  const tpm = p.key_storage === 'tpm2' ? ', in the TPM' : '';
  return `${labelOf(KEY_ALGORITHMS, p.key_algorithm)} ${len}${tpm}, ${labelOf(SIGNATURE_ALGORITHMS, p.signature_algorithm)}`;
}

// "Software" or "TPM 2.0": where a stored key's private key lives.
export const storageText = (s) => (s === 'tpm2' ? 'TPM 2.0' : 'Software');

export function subjectText(p) {
  if (!p) return '';
  return `CN=${p.common_name}${p.organization ? `, O=${p.organization}` : ''}`;
}

// Adds the fields to form, named prefix + API name ("key.common_name").
// needed(): whether the key settings must be complete (else blank is fine).
// existing: the stored parameters (auto request), to show and to keep the
// write-only challenge password.
export function keyFields(form, opts) {
  const o = opts || {};
  const prefix = o.prefix || '';
  const v = o.values || {};
  const needed = o.needed || (() => true);
  const whenNeeded = (rule) => (x) => (needed() ? rule(x) : null);
  const requiredWhenNeeded = (x) => (needed() && !x ? 'is required' : null);

  const keyName = textField(form, {
    name: `${prefix}key_name`, label: 'Key Name', value: v.key_name, required: !o.needed, maxlength: 24,
    hint: 'Up to 24 single-byte letters and digits. This is the name under Registered Key and Certificate.',
    rules: [whenNeeded(rules.keyName), ...(o.keyNameRules || [])],
  });
  const sig = selectField(form, {
    name: `${prefix}signature_algorithm`, label: 'Signature Algorithm', options: SIGNATURE_ALGORITHMS,
    value: v.signature_algorithm || 'sha256',
  });
  const alg = selectField(form, {
    name: `${prefix}key_algorithm`, label: 'Key Algorithm', options: KEY_ALGORITHMS, value: v.key_algorithm || 'rsa',
  });
  const len = selectField(form, {
    name: `${prefix}key_length`, label: 'Key Length', options: KEY_LENGTHS[alg.get()] || KEY_LENGTHS.rsa,
    value: v.key_length || (alg.get() === 'ecdsa' ? 256 : 2048),
  });
  alg.input.addEventListener('change', () => {
    const list = KEY_LENGTHS[alg.get()];
    setOptions(len.input, list, alg.get() === 'ecdsa' ? 256 : 2048);
  });
  // the device's rule unless the communication settings allow UTF-8 (subject_utf8)
  const charset = o.utf8 ? [] : [rules.singleByte];
  const why = o.utf8 ? ' UTF-8 is allowed (Communication Settings).'
    : ' Printable single-byte characters only, as many SCEP servers accept no others; allow UTF-8 under Communication Settings if yours does.';
  const storage = selectField(form, {
    name: `${prefix}key_storage`, label: 'Key Storage', options: KEY_STORAGES, value: v.key_storage || 'software',
    hint: 'TPM 2.0: the key is generated and kept inside the device\'s TPM (RSA 2048 or ECDSA P-256 only).',
  });
  const org = textField(form, {
    name: `${prefix}organization`, label: 'Organization', value: v.organization, maxlength: 64,
    hint: `Optional (O= in the subject).${why}`, rules: [rules.text(64), ...charset],
  });
  const cn = textField(form, {
    name: `${prefix}common_name`, label: 'Common Name', value: v.common_name, required: !o.needed, maxlength: 64,
    hint: `CN= in the subject, usually the device's host name, e.g. printer1.example.com.${why}`,
    rules: [requiredWhenNeeded, rules.text(64), ...charset],
  });
  const pwHint = o.challengeSet
    ? 'A challenge password is stored. Leave empty to keep it, or type a new one.'
    : 'As given by the SCEP server\'s administrator (NDES: from /certsrv/mscep_admin/). Optional if the server needs none.';
  const pw = textField(form, {
    name: `${prefix}challenge_password`, label: 'Challenge Password', type: 'password', autocomplete: 'new-password',
    maxlength: 255, hint: pwHint, trim: false, rules: [rules.text(255)],
    placeholder: o.challengeSet ? 'Stored; leave empty to keep' : null,
  });
  const clearPw = o.challengeSet ? checkField(form, {
    name: `${prefix}challenge_clear`, label: 'Remove the stored challenge password',
  }) : null;
  const usage = selectField(form, {
    name: `${prefix}key_usage`, label: 'Key Usage', options: KEY_USAGES, value: v.key_usage || 'both',
  });
  const sans = textareaField(form, {
    name: `${prefix}sans`, label: 'Subject Alternative Names', value: (v.sans || []).join('\n'), rows: 3,
    placeholder: 'dns:printer1.example.com', hint: 'Optional, one a line: dns:NAME, ip:ADDRESS, email:ADDRESS or uri:URI (at most 16).',
    rules: [rules.sans], wide: true,
  });
  const eku = textareaField(form, {
    name: `${prefix}eku`, label: 'Extended Key Usage', value: (v.eku || []).join('\n'), rows: 2,
    placeholder: 'clientAuth', hint: 'Optional, one a line: names such as serverAuth, clientAuth or dotted OIDs (at most 8).',
    rules: [rules.eku], wide: true,
  });
  const main = h('div', { class: 'grid' }, keyName.wrap, sig.wrap, alg.wrap, len.wrap, storage.wrap, org.wrap, cn.wrap, pw.wrap,
    clearPw ? clearPw.wrap : null, usage.wrap);
  const more = h('details', { class: 'more' }, h('summary', {}, 'Alternative names and extended key usage'),
    h('div', { class: 'grid' }, sans.wrap, eku.wrap));
  if ((v.sans && v.sans.length) || (v.eku && v.eku.length)) more.open = true;
  const group = fieldset(o.legend || 'Key and Certificate Settings', main, more);

  // The JSON the API takes; the challenge only when typed (or cleared).
  const toJson = () => {
    const p = {
      key_name: keyName.get(),
      signature_algorithm: sig.get(),
      key_algorithm: alg.get(),
      key_length: Number(len.get()),
      common_name: cn.get(),
      key_usage: usage.get(),
      key_storage: storage.get(),
    };
    if (org.get()) p.organization = org.get();
    if (pw.get()) p.challenge_password = pw.get();
    else if (clearPw && clearPw.get()) p.challenge_password = '';
    const s = splitList(sans.get());
    const e = splitList(eku.get());
    if (s.length) p.sans = s;
    if (e.length) p.eku = e;
    return p;
  };
  return { group, toJson, keyName, cn, pw, org, alg, len, sig, usage, storage, isBlank: () => !keyName.get() && !cn.get() };
}
