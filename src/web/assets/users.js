// Settings/Registration > Device Management > User Management: the System
// Manager creates viewers (and other managers) and changes passwords with
// PUT /api/v1/users/{user}. The API lists no users: the page names the
// one that is saved.
import { h, replace, notice, pageHeading, breadcrumb, section } from './dom.js';
import { put, isAdmin, session, enc, roleLabel } from './api.js';
import { Form, textField, selectField, actions, byteLength } from './forms.js';

export const USERS_TITLE = 'User Management';

const ROLES = [['viewer', 'Viewer (read-only)'], ['admin', 'System Manager (admin)']];

export async function usersPage(ctx) {
  const crumbs = breadcrumb([{ label: 'Settings/Registration' }, { label: 'Device Management' }, { label: USERS_TITLE }]);
  if (!isAdmin()) {
    replace(ctx.main, crumbs, pageHeading(USERS_TITLE), notice('info', h('p', { class: 'alert-message' },
      'Only the System Manager (admin) can create users and change passwords.')));
    return;
  }
  const form = new Form({ label: 'Create a user or change a password' });
  const user = textField(form, {
    name: 'user', label: 'User Name', required: true, maxlength: 24, autocomplete: 'off',
    rules: [(v) => (/^[A-Za-z0-9]{1,24}$/.test(v) ? null : 'must be 1-24 single-byte letters and digits')],
    hint: 'A new name creates the user; an existing name changes its password and role.',
  });
  const role = selectField(form, { name: 'role', label: 'Role', options: ROLES, value: 'viewer',
    hint: 'A viewer sees every page read-only; the System Manager may change everything.' });
  const pw = textField(form, {
    name: 'password', label: 'New Password', type: 'password', required: true, trim: false, maxlength: 128,
    autocomplete: 'new-password',
    rules: [(v) => (byteLength(v) < 8 || byteLength(v) > 128 ? 'must be 8 to 128 characters' : /[\u0000-\u001f\u007f]/.test(v) ? 'must not contain control characters' : null)],
    hint: '8 to 128 characters (an accented letter counts as two).',
  });
  const again = textField(form, {
    name: 'password_again', label: 'Repeat the Password', type: 'password', required: true, trim: false, maxlength: 128,
    autocomplete: 'new-password', rules: [(v) => (v !== pw.get() ? 'does not match the new password' : null)],
  });
  form.add(h('div', { class: 'grid' }, user.wrap, role.wrap, pw.wrap, again.wrap),
    actions(h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save User')));
  form.onSubmit = async (v) => {
    form.setBusy(true, 'Saving...');
    try {
      const saved = await put(`/users/${enc(v.user)}`, { password: v.password, role: v.role });
      pw.input.value = '';
      again.input.value = '';
      const own = saved.name === session.user;
      replace(form.summary, notice('success', h('p', { class: 'alert-message' },
        `The user "${saved.name}" was saved as ${roleLabel(saved.role)}.`),
        own ? h('p', {}, 'Your own password or role changed: your session ends, log in again.') : null));
    } catch (e) {
      pw.input.value = '';
      again.input.value = '';
      form.showError(e, 'The user was not saved');
    } finally {
      form.setBusy(false);
    }
  };
  replace(ctx.main, crumbs, pageHeading(USERS_TITLE), ctx.flash(),
    section('Create a User or Change a Password', form.el));
}
