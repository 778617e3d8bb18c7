// DOM helpers. Every value from the device or the user is put into the page
// as text (textContent, setAttribute): nothing is ever parsed as HTML.

// h('p', {class: 'hint', id: 'x'}, 'text', child, ...): an element.
// Attributes: strings are set with setAttribute; functions named on* become
// event listeners; true sets a boolean attribute, false/null/undefined skip.
// Children: strings and numbers become text nodes; arrays are flattened;
// null/undefined/false are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2).toLowerCase(), value);
    } else if (name === 'value' && (tag === 'input' || tag === 'textarea' || tag === 'select')) {
      el.value = String(value);
    } else if (name === 'checked' && tag === 'input') {
      el.checked = !!value;
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  return append(el, children);
}

let counter = 0;
export function uid(prefix) {
  counter += 1;
  return `${prefix || 'id'}-${counter}`;
}

// ---- times ----
// The API speaks UTC ("2026-12-01T09:30:00Z"); the page shows the browser's
// local time with the UTC value in the title.

const dateTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

export function localZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
  } catch {
    return 'local time';
  }
}

export function formatLocal(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : dateTimeFormat.format(d);
}

export function timeEl(iso, empty) {
  if (!iso) return h('span', { class: 'muted' }, empty || 'None');
  return h('time', { datetime: iso, title: `UTC: ${iso}` }, formatLocal(iso));
}

const pad = (n) => String(n).padStart(2, '0');

// "2026-12-01T09:30" (datetime-local, browser time) -> "2026-12-01T08:30:00Z"
export function localInputToUtc(value) {
  if (!value) return null;
  const d = new Date(value.length === 16 ? `${value}:00` : value);
  if (Number.isNaN(d.getTime())) return null;
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`;
}

// "2026-12-01T08:30:00Z" -> "2026-12-01T09:30" in browser time
export function utcToLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

// ---- building blocks ----

// A definition list from [label, value] rows; value is text or a node.
export function details(rows, cls) {
  const dl = h('dl', { class: cls || 'facts' });
  for (const row of rows) {
    if (!row) continue;
    const [label, value] = row;
    dl.appendChild(h('div', { class: 'fact' }, h('dt', {}, label),
      h('dd', {}, value === null || value === undefined || value === '' ? h('span', { class: 'muted' }, 'None') : value)));
  }
  return dl;
}

// A distinguished name or fingerprint that may wrap after its separators:
// <wbr> after each comma (textContent stays the same).
export function dn(text, cls) {
  const span = h('span', { class: cls || 'dn' });
  const parts = String(text || '').split(/(?<=,)/);
  parts.forEach((part, i) => {
    span.appendChild(document.createTextNode(part));
    if (i < parts.length - 1) span.appendChild(document.createElement('wbr'));
  });
  return span;
}

export function yesNo(v) {
  return v ? 'On' : 'Off';
}

// A box for an API error: the catalogue's message and remedy, and the detail.
export function errorBox(err, opts) {
  const o = opts || {};
  const box = h('div', { class: 'alert alert-error', role: 'alert' });
  if (o.title) box.appendChild(h('p', { class: 'alert-title' }, o.title));
  box.appendChild(h('p', { class: 'alert-message' }, err.message || 'The operation failed.'));
  if (err.detail) box.appendChild(h('p', { class: 'alert-detail' }, h('span', { class: 'label' }, 'Detail: '), err.detail));
  if (err.remedy) box.appendChild(h('p', { class: 'alert-remedy' }, h('span', { class: 'label' }, 'What to do: '), err.remedy));
  return box;
}

export function notice(kind, ...children) {
  return h('div', { class: `alert alert-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...children);
}

export function button(label, attrs) {
  const a = Object.assign({ type: 'button', class: 'btn' }, attrs || {});
  return h('button', a, label);
}

// A modal confirmation with <dialog>. Resolves true for the confirm button.
export function confirmDialog({ title, body, confirm, danger }) {
  return new Promise((resolve) => {
    const titleId = uid('dlg-title');
    const bodyId = uid('dlg-body');
    const ok = h('button', { type: 'button', class: danger ? 'btn btn-danger' : 'btn btn-primary', 'data-action': 'confirm' }, confirm || 'OK');
    const cancel = h('button', { type: 'button', class: 'btn', 'data-action': 'cancel' }, 'Cancel');
    const dlg = h('dialog', { class: 'dialog', 'aria-labelledby': titleId, 'aria-describedby': bodyId },
      h('h2', { id: titleId }, title),
      h('div', { id: bodyId, class: 'dialog-body' }, body),
      h('div', { class: 'actions' }, cancel, ok));
    let answered = false;
    const close = (value) => {
      if (answered) return;
      answered = true;
      if (dlg.open) dlg.close();
      dlg.remove();
      resolve(value);
    };
    ok.addEventListener('click', () => close(true));
    cancel.addEventListener('click', () => close(false));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); close(false); });
    dlg.addEventListener('close', () => close(false));
    document.body.appendChild(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

// Sets the page's <h1>, document title and moves focus there (screen
// readers announce the new page).
export function pageHeading(text, sub) {
  document.title = `${text} | scepd Remote UI`;
  const head = h('div', { class: 'page-head' }, h('h1', { tabindex: '-1', id: 'page-title' }, text));
  if (sub) head.appendChild(h('p', { class: 'page-sub' }, sub));
  return head;
}

export function breadcrumb(items) {
  const ol = h('ol', {});
  items.forEach((item, i) => {
    const last = i === items.length - 1;
    const content = item.href && !last ? h('a', { href: item.href }, item.label) : h('span', last ? { 'aria-current': 'page' } : {}, item.label);
    ol.appendChild(h('li', {}, content));
  });
  return h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, ol);
}

export function section(title, ...children) {
  const id = uid('sec');
  return h('section', { class: 'card', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}
