// Forms: labelled fields with their hint and error next to them
// (aria-describedby), client-side checks that mirror the API's
// (src/agent/validate.c), and API errors mapped back to their field.
// The server stays the authority: these checks only save a round trip.
import { h, uid, errorBox, replace, clear } from './dom.js';

const utf8 = new TextEncoder();
export const byteLength = (s) => utf8.encode(s).length;

// ---- rules: each returns null or the reason, worded as the API words it ----

export const rules = {
  required: (v) => (v === '' || v === null || v === undefined ? 'is required' : null),
  // get_text(): at most max-1 bytes, no control characters
  text: (max) => (v) => {
    if (!v) return null;
    if (byteLength(v) > max) return `must be at most ${max} characters`;
    if (/[\u0000-\u001f\u007f]/.test(v)) return 'must not contain control characters';
    return null;
  },
  // validate.c subject_text_ok(): the words of the API's field error
  singleByte: (v) => (!v || /^[\x20-\x7e]*$/.test(v) ? null
    : 'must be printable single-byte characters (letters, digits, spaces and ASCII punctuation); the SCEP server may not accept others. Set subject_utf8 in the communication settings if it accepts UTF-8'),
  keyName: (v) => (!v ? 'is required' : /^[A-Za-z0-9]{1,24}$/.test(v) ? null : 'must be 1-24 single-byte letters and digits'),
  int: (min, max) => (v) => {
    if (v === '' || v === null || v === undefined) return null;
    if (!/^-?\d+$/.test(String(v))) return 'must be a whole number';
    const n = Number(v);
    return n < min || n > max ? `must be from ${min} to ${max}` : null;
  },
  url: (v) => {
    if (!v) return 'is required';
    if (!/^https?:\/\//i.test(v)) return 'must start with http:// or https://';
    const host = v.replace(/^https?:\/\//i, '');
    if (!host || host[0] === '/' || host[0] === ':') return 'must name a host';
    if (/[^\x21-\x7e]|#/.test(v)) return "must not contain spaces, '#' or non-ASCII characters";
    if (byteLength(v) > 511) return 'must be at most 511 characters';
    return null;
  },
  proxy: (v) => (!v ? null : /^https?:\/\//i.test(v) ? rules.text(255)(v) : 'must start with http:// or https://'),
  fingerprint: (v) => {
    if (!v) return null;
    const m = /^(?:(sha256|sha1):)?([0-9A-Fa-f:]+)$/i.exec(v.trim());
    const hex = m ? m[2].replace(/:/g, '') : '';
    const ok = m && (hex.length === 64 || (hex.length === 40 && (m[1] || '').toLowerCase() !== 'sha256'));
    return ok ? null : 'must be sha256:HEX (64 hex digits)';
  },
  sans: (v) => {
    const list = splitList(v);
    if (list.length > 16) return 'at most 16 entries';
    for (const s of list) {
      if (/[^\x21-\x7e]/.test(s)) return 'entries must be printable ASCII without spaces';
      if (s.length > 127) return 'entries must be non-empty strings';
      if (!/^(dns|ip|email|uri):./i.test(s)) return 'entries must be dns:NAME, ip:ADDRESS, email:ADDRESS or uri:URI';
    }
    return null;
  },
  eku: (v) => {
    const list = splitList(v);
    if (list.length > 8) return 'at most 8 entries';
    for (const s of list) {
      if (s.length > 63 || /[^A-Za-z0-9.]/.test(s)) return 'entries must be dotted OIDs or names such as clientAuth';
    }
    return null;
  },
};

// One entry a line (or comma separated), blanks dropped.
export function splitList(v) {
  return String(v || '').split(/[\n,]/).map((s) => s.trim()).filter((s) => s !== '');
}

// ---- the form ----

export class Form {
  // Fields are named as the API names them ("key.common_name"), so that an
  // API error's detail finds its field; aliases map other names the API
  // uses ({key: 'key.key_name'}).
  constructor(opts) {
    const o = opts || {};
    this.fields = new Map();
    this.aliases = o.aliases || {};
    this.summary = h('div', { class: 'form-summary', 'aria-live': 'polite' });
    this.el = h('form', { class: 'form', novalidate: true, 'aria-label': o.label || null });
    this.el.appendChild(this.summary);
    this.onSubmit = o.onSubmit;
    this.el.addEventListener('submit', (e) => {
      e.preventDefault();
      if (this.busy) return;
      this.clearErrors();
      if (!this.validate()) return;
      if (this.onSubmit) this.onSubmit(this.values());
    });
  }

  add(...nodes) {
    for (const n of nodes) if (n) this.el.appendChild(n instanceof Node ? n : n.wrap);
    return this;
  }

  register(f) {
    this.fields.set(f.name, f);
    return f;
  }

  field(name) {
    return this.fields.get(name);
  }

  values() {
    const out = {};
    for (const [name, f] of this.fields) out[name] = f.get();
    return out;
  }

  clearErrors() {
    clear(this.summary);
    for (const f of this.fields.values()) f.setError(null);
  }

  // Runs every rule; errors go next to their fields, focus to the first.
  validate() {
    let first = null;
    for (const f of this.fields.values()) {
      if (f.isDisabled()) continue;
      const reason = f.check();
      if (reason) {
        f.setError(`${f.label} ${reason}.`);
        if (!first) first = f;
      }
    }
    if (first) {
      replace(this.summary, h('div', { class: 'alert alert-error', role: 'alert' },
        h('p', { class: 'alert-message' }, 'Some settings are not valid: correct the fields marked below.')));
      first.input.focus();
      return false;
    }
    return true;
  }

  // An API error: next to its field when the detail names one, and the
  // catalogue message and remedy on top in any case.
  showError(err, title) {
    const name = err.field && this.aliases[err.field] ? this.aliases[err.field] : err.field;
    const f = name ? this.fields.get(name) : null;
    if (f) f.setError(`${f.label} ${err.reason}.`);
    replace(this.summary, errorBox(err, { title }));
    if (f) f.input.focus();
    else this.summary.scrollIntoView({ block: 'nearest' });
  }

  setBusy(busy, label) {
    this.busy = busy;
    for (const b of this.el.querySelectorAll('button[type=submit]')) {
      b.disabled = busy;
      if (busy) {
        b.dataset.label = b.textContent;
        if (label) b.textContent = label;
      } else if (b.dataset.label) {
        b.textContent = b.dataset.label;
      }
    }
    this.el.setAttribute('aria-busy', busy ? 'true' : 'false');
  }
}

// Shared parts of a field: label, control, hint, error slot.
function fieldShell(form, spec, control, kind) {
  const id = spec.id || uid(`f-${spec.name.replace(/\./g, '-')}`);
  control.id = id;
  control.name = spec.name;
  const hintId = `${id}-hint`;
  const errId = `${id}-error`;
  const hint = spec.hint ? h('p', { class: 'hint', id: hintId }, spec.hint) : null;
  const error = h('p', { class: 'field-error', id: errId, hidden: true });
  const describe = () => {
    const ids = [];
    if (hint) ids.push(hintId);
    if (!error.hidden) ids.push(errId);
    if (ids.length) control.setAttribute('aria-describedby', ids.join(' '));
    else control.removeAttribute('aria-describedby');
  };
  const label = h('label', { for: id }, spec.label, spec.required ? h('span', { class: 'req', 'aria-hidden': 'true' }, ' *') : null);
  if (spec.required) control.setAttribute('aria-required', 'true');
  let wrap;
  if (kind === 'check') {
    wrap = h('div', { class: 'field field-check' }, h('div', { class: 'check-row' }, control, label), hint, spec.after || null, error);
  } else {
    wrap = h('div', { class: `field${spec.wide ? ' field-wide' : ''}` }, label, control, spec.after || null, hint, error);
  }
  describe();
  const f = {
    name: spec.name,
    label: spec.label,
    input: control,
    wrap,
    setError(text) {
      if (text) {
        error.textContent = text;
        error.hidden = false;
        control.setAttribute('aria-invalid', 'true');
        wrap.classList.add('has-error');
      } else {
        error.textContent = '';
        error.hidden = true;
        control.removeAttribute('aria-invalid');
        wrap.classList.remove('has-error');
      }
      describe();
    },
    isDisabled() {
      return control.disabled || !!control.closest('fieldset:disabled');
    },
    check() {
      if (control.validity && control.validity.badInput) return 'must be a whole number';
      const v = f.get();
      for (const rule of spec.rules || []) {
        const reason = rule(v);
        if (reason) return reason;
      }
      return null;
    },
    get: null,
  };
  // re-check a field once it was marked, as the user corrects it
  control.addEventListener(kind === 'check' || kind === 'select' ? 'change' : 'input', () => {
    if (!wrap.classList.contains('has-error')) return;
    const reason = f.check();
    f.setError(reason ? `${f.label} ${reason}.` : null);
  });
  return f;
}

export function textField(form, spec) {
  const input = h('input', {
    type: spec.type || 'text',
    value: spec.value === null || spec.value === undefined ? '' : spec.value,
    autocomplete: spec.autocomplete || 'off',
    spellcheck: 'false',
    inputmode: spec.inputmode || null,
    placeholder: spec.placeholder || null,
    min: spec.min, max: spec.max,
    maxlength: spec.maxlength || null,
  });
  const rs = [];
  if (spec.required) rs.push(rules.required);
  rs.push(...(spec.rules || []));
  const f = fieldShell(form, Object.assign({}, spec, { rules: rs }), input, 'text');
  f.get = () => (spec.trim === false ? input.value : input.value.trim());
  return form.register(f);
}

export function numberField(form, spec) {
  return textField(form, Object.assign({ type: 'number', inputmode: 'numeric' }, spec,
    { rules: [rules.int(spec.min, spec.max), ...(spec.rules || [])] }));
}

export function textareaField(form, spec) {
  const ta = h('textarea', { rows: spec.rows || 3, spellcheck: 'false', placeholder: spec.placeholder || null });
  ta.value = spec.value || '';
  const f = fieldShell(form, spec, ta, 'text');
  f.get = () => ta.value;
  return form.register(f);
}

export function selectField(form, spec) {
  const sel = h('select', {});
  setOptions(sel, spec.options, spec.value);
  const f = fieldShell(form, spec, sel, 'select');
  f.get = () => sel.value;
  f.setOptions = (options, value) => setOptions(sel, options, value);
  return form.register(f);
}

export function setOptions(sel, options, value) {
  clear(sel);
  for (const [v, label] of options) sel.appendChild(h('option', { value: String(v) }, label));
  if (value !== undefined && value !== null && options.some(([v]) => String(v) === String(value))) sel.value = String(value);
}

export function checkField(form, spec) {
  const box = h('input', { type: 'checkbox', checked: !!spec.checked });
  const f = fieldShell(form, spec, box, 'check');
  f.get = () => box.checked;
  return form.register(f);
}

export function fieldset(legend, ...children) {
  return h('fieldset', { class: 'group' }, h('legend', {}, legend), ...children.map((c) => (c && c.wrap ? c.wrap : c)));
}

export function actions(...buttons) {
  return h('div', { class: 'actions' }, ...buttons);
}
