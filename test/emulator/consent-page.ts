// HTML a person can click: the account chooser + granular-consent screen (google-api.md §2.3)
// and Google's own error page for requests that must never redirect (§1.1).

import { isSignInScope, SCOPE } from './scopes.js';
import type { Account, PendingConsent } from './state.js';

export const CONSENT_PATH = '/signin/oauth/consent';

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const SCOPE_LABELS: Record<string, string> = {
  [SCOPE.openid]: 'Associate you with your personal info on Google',
  [SCOPE.email]: 'See your primary Google Account email address',
  [SCOPE.profile]: 'See your personal info, including any personal info you\u2019ve made publicly available',
  [SCOPE.calendar]: 'See, edit, share, and permanently delete all the calendars you can access using Google Calendar',
  [SCOPE.calendarReadonly]: 'See and download any calendar you can access using your Google Calendar',
  [SCOPE.events]: 'View and edit events on all your calendars',
  [SCOPE.eventsReadonly]: 'View events on all your calendars',
  [SCOPE.eventsOwned]: 'See, create, change, and delete events on Google calendars you own',
  [SCOPE.calendarListReadonly]: 'See the list of Google calendars you\u2019re subscribed to',
  [SCOPE.calendarList]: 'See, add, and remove Google calendars you\u2019re subscribed to',
  [SCOPE.appCreated]: 'Make secondary Google calendars, and see, create, change, and delete events on them',
};

export function scopeLabel(scope: string): string {
  return SCOPE_LABELS[scope] ?? scope;
}

const STYLE = `body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#202124}
.banner{background:#fef7e0;border:1px solid #f9ab00;padding:.5rem .75rem;border-radius:4px;font-size:.9rem}
fieldset{border:1px solid #dadce0;border-radius:8px;margin:1rem 0;padding:.75rem 1rem}
legend{font-weight:600;padding:0 .25rem}
label{display:block;margin:.4rem 0}
.actions{display:flex;gap:1rem;margin-top:1.5rem}
button{font-size:1rem;padding:.5rem 1.5rem;border-radius:4px;border:1px solid #dadce0;background:#fff;cursor:pointer}
button[value=allow]{background:#1a73e8;color:#fff;border-color:#1a73e8}
small{color:#5f6368}`;

export function renderConsentPage(opts: {
  pending: PendingConsent;
  accounts: Account[];
  appName: string;
}): string {
  const { pending, accounts, appName } = opts;
  const hint = pending.loginHint?.toLowerCase() ?? null;
  const hinted = accounts.find((a) => a.email === hint || a.sub === pending.loginHint);
  const optional = pending.scopes.filter((s) => !isSignInScope(s));
  const signIn = pending.scopes.filter((s) => isSignInScope(s));
  // Granular consent: checkboxes only when more than one non-sign-in scope is requested (§2.3).
  const granular = optional.length > 1;

  const accountRadios = accounts
    .map((a, i) => {
      const checked = hinted ? a === hinted : i === 0;
      const id = `account-${i}`;
      return `<label for="${id}"><input type="radio" id="${id}" name="account" value="${escapeHtml(a.email)}"${checked ? ' checked' : ''}> ${escapeHtml(a.name)} &lt;${escapeHtml(a.email)}&gt;</label>`;
    })
    .join('\n');
  const newAccount = `<label for="account-new"><input type="radio" id="account-new" name="account" value="__new__"${accounts.length === 0 ? ' checked' : ''}> Use another account</label>
<label for="new-email">Email of the other account <input type="email" id="new-email" name="new_email" autocomplete="email"${hint && !hinted ? ` value="${escapeHtml(hint)}"` : ''}></label>`;

  const signInItems = signIn.map((s) => `<li>${escapeHtml(scopeLabel(s))} <small>(${escapeHtml(s)})</small></li>`).join('\n');
  const optionalItems = optional
    .map((s, i) => {
      const id = `scope-${i}`;
      if (!granular) {
        return `<li>${escapeHtml(scopeLabel(s))} <small>(${escapeHtml(s)})</small><input type="hidden" name="scope" value="${escapeHtml(s)}"></li>`;
      }
      return `<label for="${id}"><input type="checkbox" id="${id}" name="scope" value="${escapeHtml(s)}"> ${escapeHtml(scopeLabel(s))} <small>(${escapeHtml(s)})</small></label>`;
    })
    .join('\n');

  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in - Google Accounts (emulator)</title><style>${STYLE}</style></head>
<body>
<main>
<p class="banner" role="note">Local Google emulator: no real Google account is involved.</p>
<h1>${escapeHtml(appName)} wants access to your Google Account</h1>
<form method="post" action="${CONSENT_PATH}">
<input type="hidden" name="request_id" value="${escapeHtml(pending.id)}">
<fieldset>
<legend>Choose an account</legend>
${accountRadios}
${newAccount}
</fieldset>
${signInItems ? `<fieldset><legend>${escapeHtml(appName)} will be able to</legend><ul>${signInItems}</ul></fieldset>` : ''}
${
  optional.length > 0
    ? `<fieldset><legend>${granular ? `Select what ${escapeHtml(appName)} can access` : `${escapeHtml(appName)} also wants to`}</legend>
${granular ? optionalItems : `<ul>${optionalItems}</ul>`}
</fieldset>`
    : ''
}
<div class="actions">
<button type="submit" name="decision" value="deny">Deny</button>
<button type="submit" name="decision" value="allow">Allow</button>
</div>
</form>
</main>
</body>
</html>`;
}

/** Google's own error page: status 400, never a redirect (§1.1). */
export function errorPage(error: string, description: string): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Error 400: ${escapeHtml(error)}</title><style>${STYLE}</style></head>
<body>
<main>
<p class="banner" role="note">Local Google emulator</p>
<h1>Access blocked: this app\u2019s request is invalid</h1>
<p>Error 400: <strong id="error-code">${escapeHtml(error)}</strong></p>
<p id="error-description">${escapeHtml(description)}</p>
</main>
</body>
</html>`;
}
