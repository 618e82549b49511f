// The Google Calendar settings page. Everything shown comes from the JSON API (CONTRACT §5);
// this script keeps no state of its own beyond what it is waiting for. The DOM of each
// connection card is built once and then updated in place, so polling never steals the
// keyboard focus.

const API = '/api/integrations/google';
const PAGE = '/settings/integrations/google-calendar';
const LEVELS = /** @type {const} */ (['org', 'user']);
const POLL_ACTIVE_MS = 1000;
const POLL_IDLE_MS = 10000;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** JSON API call. Writes always carry Content-Type: application/json (the server's CSRF guard). */
async function api(method, path, body) {
  const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body ?? {});
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'Cassius could not be reached. Check your connection and try again.');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const err = data && data.error ? data.error : {};
    throw new ApiError(res.status, err.code || `http_${res.status}`, err.message || `The server answered ${res.status}.`);
  }
  return data;
}

// ---------------------------------------------------------------- words for people

// The `?error=` codes of the OAuth callback (src/integrations/google/connect.ts) and Google's own.
const MISSING_SCOPE =
  'Google Calendar was not connected: Cassius needs permission to see your list of calendars and to edit their events. Press Connect again and tick every box on Google’s screen.';
const CALLBACK_ERRORS = {
  access_denied: 'Google Calendar was not connected: access was declined on Google’s consent screen. Press Connect to try again.',
  missing_scope: MISSING_SCOPE,
  insufficient_scope: MISSING_SCOPE,
  invalid_state: 'The connection attempt was not recognised (it was already used, or started from another sign-in). Please press Connect again.',
  state_expired: 'The connection attempt took too long and expired. Please press Connect again.',
  exchange_failed: 'Google did not confirm the sign-in (the authorization code could not be exchanged). Please press Connect again.',
  no_refresh_token:
    'Google did not grant lasting access. Remove Cassius from your Google Account’s third-party access, then press Connect again.',
  forbidden: 'Only an administrator can connect the clinic’s Google Calendar.',
  unauthenticated: 'Your Cassius session ended while you were at Google. Sign in again, then press Connect.',
  disconnect_in_progress: 'The previous disconnection is still removing events from Google. Wait a moment, then press Connect again.',
  invalid_request: 'Google sent back an incomplete answer. Please press Connect again.',
  oauth_error: 'Google reported an error during the connection. Please press Connect again.',
  server_error: 'Something went wrong on our side while connecting. Please try again in a minute.',
  temporarily_unavailable: 'Google is temporarily unavailable. Please try again in a minute.',
};

function callbackErrorText(code, description) {
  const known = CALLBACK_ERRORS[code];
  if (known) return known;
  const tail = description ? ` (${description})` : '';
  return `Google Calendar could not be connected: ${code.replace(/_/g, ' ')}${tail}. Please try again.`;
}

// Google's reason codes (google-api.md §5) in plain words. The relay stores last_error as
// "Google <status> <reason>: <explanation>" (src/integrations/google/errors.ts).
const REASONS = {
  requiredAccessLevel:
    'This Google account can only view the chosen calendar, so Cassius cannot add events to it. Choose a calendar you can edit, or ask its owner for edit access.',
  forbidden: 'Google refused the change (forbidden). The event may have been deleted in Google, or the calendar is no longer shared for editing.',
  forbiddenForNonOrganizer: 'Only the organiser of this event can change it in Google.',
  notFound: 'Google could not find the calendar. It may have been deleted or is no longer shared with this account; choose another calendar.',
  invalid_grant: 'Google no longer accepts this connection (access was removed or has expired). Reconnect the Google account.',
  insufficientPermissions: 'The Google account did not allow Cassius to edit events. Reconnect and allow every permission.',
  ACCESS_TOKEN_SCOPE_INSUFFICIENT: 'The Google account did not allow Cassius to edit events. Reconnect and allow every permission.',
  quotaExceeded: 'Google made this calendar read-only for a while because of its usage limits. Sync resumes by itself, usually within a few hours.',
  rateLimitExceeded: 'Google asked Cassius to slow down. It retries by itself.',
  userRateLimitExceeded: 'Google asked Cassius to slow down for this account. It retries by itself.',
  backendError: 'Google had a temporary problem. Cassius retries by itself.',
  invalid: 'Google rejected the appointment’s details as invalid.',
  required: 'Google rejected the appointment because a required detail is missing.',
  timeRangeEmpty: 'Google rejected the appointment because its end is not after its start.',
  invalid_client: 'Google rejected Cassius’s OAuth client. An administrator must check the Google client settings.',
};

/** {text, detail}: a sentence for people and the raw code for support. */
function plainReason(raw) {
  if (!raw) return { text: 'Google refused this appointment for an unknown reason.', detail: '' };
  const gaveUp = /^gave up after (\d+) attempts/.exec(raw);
  const m = /Google (\d{3}|unreachable) ([A-Za-z_]+): ([\s\S]*)$/.exec(raw);
  if (!m) {
    const reason = Object.keys(REASONS).find((r) => new RegExp(`\\b${r}\\b`).test(raw));
    return { text: reason ? REASONS[reason] : capitalise(raw), detail: reason ? `Google said: ${reason}` : '' };
  }
  const [, status, reason, explanation] = m;
  let text = REASONS[reason] || (/^5\d\d$/.test(status) || status === 'unreachable' ? REASONS.backendError : capitalise(explanation));
  if (gaveUp) {
    text = `Google kept failing, so Cassius stopped after ${gaveUp[1]} attempts: ${lowerFirst(REASONS[reason] || explanation)} Press Retry to try again.`;
  }
  return { text, detail: `Google said: ${status === 'unreachable' ? 'no answer' : `${status} ${reason}`}` };
}

function capitalise(s) {
  return s ? s.charAt(0).toUpperCase() + s.slice(1) : s;
}

function lowerFirst(s) {
  return s ? s.charAt(0).toLowerCase() + s.slice(1) : s;
}

/** One sentence, for the needs_reconnect / error notice. */
function oneLine(raw, fallback) {
  if (!raw) return fallback;
  const text = plainReason(raw).text;
  return (text.match(/^.*?[.!?](\s|$)/)?.[0] ?? text).trim() || fallback;
}

const STATUS_LABEL = {
  not_connected: 'Not connected',
  active: 'Active',
  paused: 'Paused',
  needs_reconnect: 'Reconnect needed',
  error: 'Error',
};

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
function relative(iso) {
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 45) return 'just now';
  if (abs < 2700) return rtf.format(Math.round(seconds / 60), 'minute');
  if (abs < 64800) return rtf.format(Math.round(seconds / 3600), 'hour');
  return rtf.format(Math.round(seconds / 86400), 'day');
}
const absolute = (iso, timeZone) => {
  try {
    return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short', timeZone }).format(new Date(iso));
  } catch {
    return new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(iso));
  }
};
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// ---------------------------------------------------------------- DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));
const show = (el, visible) => {
  el.hidden = !visible;
};

function flash(text, kind = 'bad') {
  const box = $('flash');
  $('flash-text').textContent = text;
  box.className = `flash ${kind === 'ok' ? 'ok' : ''}`;
  box.setAttribute('role', kind === 'ok' ? 'status' : 'alert');
  show(box, true);
}

// ---------------------------------------------------------------- state

const state = {
  me: null, // {user_id?, email, role, ...} when the server exposes GET /api/me
  orgReadOnly: false, // members: from /api/me, or learnt from a 403 on an org write
  cards: {}, // level -> Card
  errors: [], // appointments whose sync.status is 'error'
  retrying: new Map(), // appointment id -> {since, failedAgain}
  timer: null,
  refreshing: null,
  badgeKey: '',
  badgeAt: 0,
  fastUntil: 0, // poll every second until then
  writes: 0, // bumped when a write starts and ends: statuses fetched across it are stale
  again: false,
};

const canEdit = (level) => level === 'user' || !state.orgReadOnly;

// ---------------------------------------------------------------- a connection card

class Card {
  constructor(level) {
    this.level = level;
    this.status = null;
    this.calendars = null; // null: not loaded
    this.calendarsError = null;
    this.calendarsFor = null; // the account the list belongs to
    this.loadingCalendars = false;
    this.saving = false;
    this.run = null; // Sync now: {phase: queuing|running|done|failed, queued, backlogId, error}
    this.build();
  }

  build() {
    const L = this.level;
    const id = (s) => `${L}-${s}`;
    const which = L === 'org' ? 'clinic calendar' : 'my calendar';
    this.which = which;
    // Both cards have the same buttons: their accessible names say which card they act on.
    const named = (text) => `${text} (${which})`;
    this.el = h('section', { class: 'card connection', id: `connection-${L}`, 'aria-labelledby': id('title'), 'data-level': L });
    this.statusPill = h('span', { class: 'pill', id: id('status') });
    this.el.append(
      h(
        'div',
        { class: 'card-head' },
        h('h2', { id: id('title'), text: L === 'org' ? 'Clinic calendar' : 'My calendar' }),
        h('span', { class: 'pill level', id: id('level'), text: L === 'org' ? 'Organisation' : 'Personal' }),
        this.statusPill,
      ),
      h('p', {
        class: 'scope-note',
        text:
          L === 'org'
            ? 'Receives every appointment that is unassigned, or whose assignee has not connected a personal calendar.'
            : 'Receives the appointments assigned to you, instead of the clinic calendar.',
      }),
    );

    this.account = h('p', { class: 'account', id: id('account') });
    this.readonlyNote = h('p', {
      class: 'notice info',
      id: id('readonly'),
      text: 'Only an administrator can change the clinic’s Google Calendar connection. You can see how it is doing here.',
    });
    this.problem = h('div', { class: 'notice bad', id: id('problem') });
    this.problemText = h('p', { id: id('problem-text') });
    this.reconnect = h('a', { class: 'button', id: id('reconnect'), href: connectUrl(L), text: 'Reconnect', 'aria-label': named('Reconnect') });
    this.problem.append(this.problemText, h('p', {}, this.reconnect));
    this.disconnecting = h('p', {
      class: 'notice info',
      id: id('disconnecting'),
      role: 'status',
      text: 'Disconnecting: Cassius is removing the events it added to this Google calendar, then it will forget the account.',
    });

    // Not connected
    this.connectBox = h('div', { id: id('connect-box') });
    this.connectText = h('p', { class: 'muted', id: id('connect-text') });
    this.connect = h('a', { class: 'button', id: id('connect'), href: connectUrl(L), text: 'Connect Google Calendar', 'aria-label': named('Connect Google Calendar') });
    this.connectBox.append(this.connectText, h('div', { class: 'row actions' }, this.connect));

    // Connected
    this.details = h('div', { id: id('details') });
    this.picker = h('select', { id: id('calendar'), 'aria-describedby': id('calendar-hint'), onchange: () => this.chooseCalendar() });
    this.pickerHint = h('span', { class: 'hint', id: id('calendar-hint') });
    this.readonlyCals = h('ul', { class: 'readonly-cals', id: id('readonly-calendars'), 'aria-label': 'Calendars that cannot be chosen' });
    this.pickerField = h(
      'div',
      { class: 'field' },
      h('label', { for: id('calendar'), text: 'Target calendar' }),
      this.picker,
      this.pickerHint,
      this.readonlyCals,
    );
    this.calendarText = h('div', { class: 'field' });

    this.toggle = h('input', { type: 'checkbox', role: 'switch', id: id('sync-enabled'), onchange: () => this.setSync() });
    this.toggleField = h('div', { class: 'toggle' }, this.toggle, h('label', { for: id('sync-enabled'), text: 'Sync appointments to Google' }));

    this.counts = {};
    const dl = h('dl', { class: 'counts', 'aria-label': 'Appointments by sync state', id: id('counts') });
    for (const [key, label] of [
      ['pending', 'Pending'],
      ['synced', 'Synced'],
      ['error', 'Errors'],
    ]) {
      this.counts[key] = h('dd', { id: id(`count-${key}`), text: '–' });
      dl.append(h('div', {}, h('dt', { text: label }), this.counts[key]));
    }
    this.lastSync = h('p', { class: 'lastsync', id: id('last-sync') });

    this.syncNow = h('button', { type: 'button', id: id('sync-now'), text: 'Sync now', 'aria-label': named('Sync now'), onclick: () => this.startSync() });
    this.disconnect = h('button', {
      type: 'button',
      class: 'danger-outline',
      id: id('disconnect'),
      text: 'Disconnect',
      'aria-label': named('Disconnect'),
      onclick: () => this.askDisconnect(),
    });
    this.progress = h('div', { class: 'progress', id: id('progress'), role: 'status' });
    this.progressText = h('span', { id: id('progress-text') });
    this.progressBar = h('progress', { max: '1', value: '0', 'aria-labelledby': id('progress-text') });
    this.progress.append(this.progressText, this.progressBar);
    this.actions = h('div', { class: 'row actions' }, this.syncNow, this.disconnect);
    this.details.append(this.pickerField, this.calendarText, this.toggleField, dl, this.lastSync, this.actions, this.progress);

    this.message = h('p', { class: 'message', id: id('message'), role: 'status' });
    this.el.append(this.account, this.readonlyNote, this.problem, this.disconnecting, this.connectBox, this.details, this.message);
    show(this.progress, false);
  }

  say(text, kind = '') {
    this.message.textContent = text;
    this.message.className = `message ${kind}`;
  }

  update(status) {
    this.status = status;
    const L = this.level;
    const editable = canEdit(L);
    const s = status.disconnecting ? 'disconnecting' : status.status;
    this.statusPill.textContent = s === 'disconnecting' ? 'Disconnecting' : STATUS_LABEL[s] || s;
    this.statusPill.className = `pill status-${s === 'disconnecting' ? 'paused' : s}`;
    this.el.dataset.status = s;

    show(this.readonlyNote, !editable);
    const connected = Boolean(status.connected) && s !== 'not_connected';
    show(this.connectBox, !connected);
    show(this.disconnecting, s === 'disconnecting');
    show(this.details, connected && s !== 'disconnecting');

    if (!connected) {
      show(this.account, false);
      show(this.problem, false);
      this.connectText.textContent =
        L === 'org'
          ? editable
            ? 'The clinic’s appointments are not copied to Google Calendar. Connect a Google account, then choose the calendar that receives them.'
            : 'The clinic’s appointments are not copied to Google Calendar yet. Ask an administrator to connect it.'
          : 'Connect your own Google account to receive the appointments assigned to you in your calendar.';
      show(this.connect, editable);
      this.calendars = null;
      this.calendarsFor = null;
      this.pickerKey = null;
      return;
    }

    show(this.account, true);
    this.account.replaceChildren('Google account: ', h('strong', { text: status.account_email || 'unknown account' }));

    if (s === 'needs_reconnect') {
      this.problemText.textContent = `${oneLine(status.last_error, 'Google no longer accepts this connection.')} Nothing is lost: waiting changes are sent once you reconnect.`;
      show(this.reconnect, editable);
      show(this.problem, true);
    } else if (s === 'error') {
      this.problemText.textContent = `The last sync failed. ${oneLine(status.last_error, 'Google refused it.')}`;
      show(this.reconnect, false);
      show(this.problem, true);
    } else {
      show(this.problem, false);
    }

    // The calendar: a picker for editors, plain text for read-only viewers.
    // The list of calendars needs Google: while the connection needs reconnecting, the target
    // is shown as text (unless the list was loaded before).
    const picking = editable && (s !== 'needs_reconnect' || this.calendars !== null);
    show(this.pickerField, picking);
    show(this.calendarText, !picking);
    if (picking) {
      if (this.calendarsFor !== status.account_email && !this.loadingCalendars && s !== 'needs_reconnect') void this.loadCalendars();
      this.renderPicker();
    } else {
      this.calendarText.replaceChildren(
        h('span', { class: 'label', text: 'Target calendar' }),
        h('span', { id: `${L}-calendar-readonly`, text: status.calendar_id || 'none chosen yet' }),
        editable ? h('span', { class: 'hint', text: 'Reconnect to choose another calendar.' }) : null,
      );
    }

    this.toggle.checked = Boolean(status.sync_enabled);
    this.toggle.disabled = !editable;

    const counts = status.counts || { pending: 0, synced: 0, error: 0 };
    for (const k of ['pending', 'synced', 'error']) this.counts[k].textContent = String(counts[k] ?? 0);
    this.counts.error.parentElement.classList.toggle('err', (counts.error ?? 0) > 0);
    this.lastSync.replaceChildren(
      ...(status.last_sync_at
        ? ['Last sync: ', h('time', { datetime: status.last_sync_at, title: absolute(status.last_sync_at), text: relative(status.last_sync_at) })]
        : ['Not synced yet.']),
    );

    show(this.actions, editable);
    this.updateRun(status);
  }

  // ---- calendars

  async loadCalendars() {
    this.loadingCalendars = true;
    const account = this.status?.account_email ?? null;
    try {
      const data = await api('GET', `${API}/calendars?level=${this.level}`);
      this.calendars = Array.isArray(data) ? data : [];
      this.calendarsError = null;
    } catch (e) {
      this.calendars = [];
      this.calendarsError = e;
    } finally {
      this.calendarsFor = account;
      this.loadingCalendars = false;
      this.pickerKey = null;
    }
    this.renderPicker();
    // A refused authorization turns the integration to needs_reconnect: show it now.
    if (this.calendarsError?.code === 'needs_reconnect') void refresh();
  }

  renderPicker() {
    const status = this.status;
    if (!status) return;
    const current = status.calendar_id;
    if (this.calendars === null) {
      if (this.pickerKey !== 'loading') {
        this.pickerKey = 'loading';
        this.picker.replaceChildren(h('option', { value: '', text: 'Loading calendars…' }));
      }
      this.picker.disabled = true;
      this.pickerHint.textContent = '';
      show(this.readonlyCals, false);
      return;
    }
    const key = JSON.stringify([current, this.calendars.map((c) => [c.id, c.summary, c.writable])]);
    if (this.pickerKey !== key) {
      this.pickerKey = key;
      const writable = this.calendars.filter((c) => c.writable);
      const readOnly = this.calendars.filter((c) => !c.writable);
      const options = [];
      if (!current || !this.calendars.some((c) => c.id === current)) {
        options.push(h('option', { value: '', text: current ? `${current} (no longer available)` : 'Choose a calendar…', selected: true }));
      }
      for (const c of writable) {
        options.push(h('option', { value: c.id, text: c.primary ? `${c.summary} (primary)` : c.summary, selected: c.id === current }));
      }
      for (const c of readOnly) {
        options.push(h('option', { value: c.id, disabled: true, text: `${c.summary} (read-only)` }));
      }
      this.picker.replaceChildren(...options);
      this.picker.value = current && this.calendars.some((c) => c.id === current) ? current : '';
      this.readonlyCals.replaceChildren(
        ...readOnly.map((c) =>
          h('li', {
            text: `${c.summary}: cannot be chosen, this Google account can only ${c.access_role === 'freeBusyReader' ? 'see when it is busy' : 'view it'}, not add events.`,
          }),
        ),
      );
      show(this.readonlyCals, readOnly.length > 0);
    }
    this.picker.disabled = this.calendars.length === 0;
    if (this.calendarsError) {
      this.pickerHint.textContent = `The list of calendars could not be loaded: ${this.calendarsError.message}`;
    } else if (this.calendars.length === 0) {
      this.pickerHint.textContent = 'This Google account has no calendars.';
    } else {
      this.pickerHint.textContent = 'Only calendars this Google account can edit can be chosen. Changing it moves the events already sent.';
    }
  }

  async chooseCalendar() {
    if (this.saving) {
      // One change at a time: the select keeps the keyboard focus, the extra change is undone.
      this.pickerKey = null;
      this.renderPicker();
      return;
    }
    const calendarId = this.picker.value;
    if (!calendarId || calendarId === this.status?.calendar_id) return;
    const name = this.calendars?.find((c) => c.id === calendarId)?.summary ?? calendarId;
    await this.write({ calendar_id: calendarId }, `Saved: appointments now go to “${name}”; the events already sent are being moved there.`, () => {
      this.pickerKey = null;
      this.renderPicker();
    });
  }

  async setSync() {
    if (this.saving) {
      this.toggle.checked = Boolean(this.status?.sync_enabled);
      return;
    }
    const enabled = this.toggle.checked;
    await this.write(
      { sync_enabled: enabled },
      enabled ? 'Sync is on: appointments are copied to Google again.' : 'Sync is off: nothing is sent to Google until you turn it back on.',
      () => {
        this.toggle.checked = !enabled;
      },
    );
  }

  /**
   * PATCH settings, one at a time; undo() restores the control on failure. The controls stay
   * enabled meanwhile (a disabled control would drop the keyboard focus); they are marked busy.
   */
  async write(body, okText, undo) {
    if (this.saving) return;
    this.saving = true;
    state.writes++;
    this.details.setAttribute('aria-busy', 'true');
    this.say('Saving…');
    try {
      const status = await api('PATCH', `${API}/settings?level=${this.level}`, body);
      state.writes++;
      this.say(okText, 'ok');
      this.saving = false;
      if (status) this.update(status);
    } catch (e) {
      state.writes++;
      this.saving = false;
      undo();
      if (e.status === 403 && this.level === 'org') markOrgReadOnly();
      this.say(`Not saved: ${e.message}`, 'bad');
    }
    this.details.removeAttribute('aria-busy');
    state.fastUntil = Date.now() + 6000;
    await refresh();
  }

  // ---- Sync now

  async startSync() {
    if (this.syncNow.getAttribute('aria-disabled') === 'true') return; // no double submission
    if (this.run && (this.run.phase === 'queuing' || this.run.phase === 'running')) return;
    this.run = { phase: 'queuing', queued: 0, backlogId: null, error: null };
    this.renderRun(this.status?.counts);
    state.writes++;
    try {
      const data = await api('POST', `${API}/sync-now?level=${this.level}`, {});
      this.run.queued = Number(data?.queued ?? 0);
      this.run.backlogId = data?.backlog_id ?? null;
      this.run.phase = 'running';
    } catch (e) {
      this.run.phase = 'failed';
      this.run.error = e.message;
      if (e.status === 403 && this.level === 'org') markOrgReadOnly();
    }
    state.writes++;
    this.renderRun(this.status?.counts);
    state.fastUntil = Date.now() + 6000;
    await refresh();
  }

  /** Advances the Sync now run from a fresh status: done once the relay has taken the whole
   * backlog job and nothing of this integration is pending any more. */
  updateRun(status) {
    const run = this.run;
    const counts = status.counts || { pending: 0, synced: 0, error: 0 };
    if (run?.phase === 'running') {
      const job = status.backlog;
      const jobExpanded = !job || job.id !== run.backlogId || !job.running;
      if (jobExpanded && counts.pending === 0) run.phase = 'done';
    }
    this.renderRun(counts);
  }

  renderRun(counts = { pending: 0, synced: 0, error: 0 }) {
    const run = this.run;
    const busy = run?.phase === 'queuing' || run?.phase === 'running';
    const active = this.status?.status === 'active' || this.status?.status === 'error';
    // aria-disabled, not disabled: the button keeps the keyboard focus while it runs.
    this.syncNow.setAttribute('aria-disabled', String(busy || !active));
    this.syncNow.textContent = busy ? 'Syncing…' : 'Sync now';
    this.syncNow.setAttribute('aria-label', `${this.syncNow.textContent} (${this.which})`);
    if (busy) this.syncNow.setAttribute('aria-busy', 'true');
    else this.syncNow.removeAttribute('aria-busy');
    this.syncNow.title = this.status?.status === 'paused' ? 'Turn sync on first' : this.status?.status === 'needs_reconnect' ? 'Reconnect first' : '';
    if (!run) {
      show(this.progress, false);
      return;
    }
    show(this.progress, true);
    this.progress.dataset.phase = run.phase;
    this.progress.className = `progress ${run.phase === 'done' ? 'done' : run.phase === 'failed' ? 'failed' : ''}`;
    if (run.phase === 'queuing') {
      this.progressText.textContent = 'Queuing the appointments to sync…';
      this.progressBar.removeAttribute('value');
      show(this.progressBar, true);
    } else if (run.phase === 'running') {
      const total = Math.max(run.queued, counts.pending);
      const done = Math.max(0, total - counts.pending);
      this.progressText.textContent = `Queued ${plural(run.queued, 'appointment', 'appointments')}: ${done} of ${total} done…`;
      this.progressBar.max = Math.max(total, 1);
      this.progressBar.value = done;
      show(this.progressBar, true);
    } else if (run.phase === 'done') {
      show(this.progressBar, false);
      if (run.queued === 0) this.progressText.textContent = 'Done: nothing needed syncing, Google is up to date.';
      else if (counts.error > 0)
        this.progressText.textContent = `Done: ${plural(run.queued, 'appointment', 'appointments')} sent; ${plural(counts.error, 'appointment is', 'appointments are')} in error (see below).`;
      else this.progressText.textContent = `Done: ${plural(run.queued, 'appointment', 'appointments')} synced to Google.`;
    } else {
      show(this.progressBar, false);
      this.progressText.textContent = `Sync now failed: ${run.error}`;
    }
  }

  get busy() {
    return (
      this.saving ||
      this.run?.phase === 'queuing' ||
      this.run?.phase === 'running' ||
      Boolean(this.status?.disconnecting) ||
      Boolean(this.status?.backlog?.running) ||
      (this.status?.counts?.pending ?? 0) > 0
    );
  }

  // ---- Disconnect

  askDisconnect() {
    const dialog = /** @type {HTMLDialogElement} */ ($('confirm'));
    const who = this.status?.account_email ?? 'this Google account';
    $('confirm-text').textContent =
      this.level === 'org'
        ? `Cassius stops copying the clinic’s appointments to ${who} and forgets its authorization. You can connect again at any time.`
        : `Cassius stops copying your appointments to ${who} and forgets its authorization. Your appointments then go to the clinic calendar, if one is connected.`;
    /** @type {HTMLInputElement} */ ($('confirm-remove')).checked = false;
    dialog.returnValue = '';
    const onClose = async () => {
      dialog.removeEventListener('close', onClose);
      if (dialog.returnValue !== 'confirm') {
        this.disconnect.focus();
        return;
      }
      const removeEvents = /** @type {HTMLInputElement} */ ($('confirm-remove')).checked;
      this.disconnect.disabled = true;
      this.say('Disconnecting…');
      state.writes++;
      try {
        await api('POST', `${API}/disconnect?level=${this.level}`, removeEvents ? { remove_events: true } : {});
        this.run = null;
        this.say(
          removeEvents ? 'Disconnecting: the events Cassius added are being removed from Google first.' : `Disconnected from ${who}.`,
          'ok',
        );
      } catch (e) {
        if (e.status === 403 && this.level === 'org') markOrgReadOnly();
        this.say(`Not disconnected: ${e.message}`, 'bad');
      } finally {
        this.disconnect.disabled = false;
        state.writes++;
      }
      state.fastUntil = Date.now() + 6000;
      await refresh();
      const target = this.status?.connected && !this.status?.disconnecting ? this.disconnect : this.connect.hidden ? this.el : this.connect;
      if (target === this.el) this.el.setAttribute('tabindex', '-1');
      target.focus();
    };
    dialog.addEventListener('close', onClose);
    dialog.showModal();
  }
}

function connectUrl(level) {
  return `${API}/connect?level=${level}`;
}

function markOrgReadOnly() {
  if (state.orgReadOnly) return;
  state.orgReadOnly = true;
  const card = state.cards.org;
  if (card?.status) card.update(card.status);
}

// ---------------------------------------------------------------- appointments in error

async function loadErrors() {
  // Errors on recent past appointments matter too: a retry can still fix them.
  const from = new Date(Date.now() - 31 * 86400000).toISOString();
  const to = new Date(Date.now() + 400 * 86400000).toISOString();
  const list = await api('GET', `/api/appointments?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}&limit=5000`);
  const all = Array.isArray(list) ? list : [];
  const byId = new Map(all.map((a) => [a.id, a]));
  for (const [id, retry] of state.retrying) {
    const a = byId.get(id);
    const status = a?.sync?.status;
    if (!a || status === 'synced' || status === 'disabled') state.retrying.delete(id);
    else if (status === 'pending') retry.seenPending = true;
    else if (status === 'error' && (retry.seenPending || Date.now() - retry.since > 6000)) retry.failedAgain = true;
  }
  state.errors = all.filter((a) => a.sync?.status === 'error' || (state.retrying.has(a.id) && a.sync?.status === 'pending'));
  renderErrors();
}

function renderErrors() {
  const section = $('errors');
  const list = $('errors-list');
  show(section, state.errors.length > 0);
  const key = JSON.stringify(
    state.errors.map((a) => [a.id, a.sync?.status, a.sync?.last_error, state.retrying.has(a.id), state.retrying.get(a.id)?.failedAgain ?? null]),
  );
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  const focusedId = document.activeElement?.closest?.('li[data-id]')?.getAttribute('data-id');
  const hadFocus = list.contains(document.activeElement);
  list.replaceChildren(
    ...state.errors.map((a) => {
      const reason = plainReason(a.sync?.last_error);
      const retry = state.retrying.get(a.id);
      const waiting = Boolean(retry && !retry.failedAgain);
      return h(
        'li',
        { 'data-id': a.id },
        h(
          'div',
          { class: 'err-main' },
          h('div', { class: 'err-title', text: a.title }),
          h('div', { class: 'err-when', text: absolute(a.starts_at, a.time_zone) }),
          h('p', { class: 'err-reason', text: reason.text }),
          reason.detail ? h('div', { class: 'err-detail', text: reason.detail }) : null,
          retry?.failedAgain ? h('div', { class: 'err-detail', text: 'Retried: Google refused it again.' }) : null,
        ),
        h('button', {
          type: 'button',
          class: 'secondary',
          'aria-label': `Retry “${a.title}”`,
          text: waiting ? 'Retrying…' : 'Retry',
          disabled: waiting,
          'aria-busy': waiting ? 'true' : null,
          onclick: () => retryAppointment(a.id),
        }),
      );
    }),
  );
  if (hadFocus) {
    const same = focusedId ? list.querySelector(`li[data-id="${CSS.escape(focusedId)}"] button`) : null;
    (same && !same.disabled ? same : $('errors-title')).focus();
  }
}

async function retryAppointment(id) {
  const current = state.retrying.get(id);
  if (current && !current.failedAgain) return; // no double submission
  state.retrying.set(id, { since: Date.now(), seenPending: false, failedAgain: false });
  renderErrors();
  state.writes++;
  try {
    await api('POST', `/api/appointments/${encodeURIComponent(id)}/sync`, {});
    state.writes++;
  } catch (e) {
    state.writes++;
    state.retrying.delete(id);
    renderErrors();
    flash(`Retry failed: ${e.message}`);
  }
  state.fastUntil = Date.now() + 6000;
  await refresh();
}

// ---------------------------------------------------------------- loading and polling

async function loadMe() {
  if (document.body.dataset.me !== '1') return; // the server has no GET /api/me: learn the role from a 403
  const me = await api('GET', '/api/me');
  state.me = me?.user ?? me;
  if (state.me?.role === 'member') state.orgReadOnly = true;
}

function showWhoAmI() {
  const me = state.me;
  if (!me?.email) return;
  const role = me.role === 'admin' ? 'administrator' : me.role === 'member' ? 'member' : '';
  $('whoami').replaceChildren(`Signed in as ${me.email}${role ? ` (${role})` : ''}`);
  if (document.body.dataset.demo === '1') $('whoami').append(' · ', h('a', { href: '/demo/logout', text: 'Switch user' }));
}

/**
 * Fetches both statuses and updates the page. A status fetched while a write was under way
 * may predate it: it is dropped and fetched again, so a poll never undoes what the user just
 * changed. A call made while a refresh runs gets that refresh, re-run with fresh data.
 */
async function refresh() {
  if (state.refreshing) {
    state.again = true;
    return state.refreshing;
  }
  state.refreshing = (async () => {
    try {
      for (let attempt = 0; ; attempt++) {
        state.again = false;
        const writes = state.writes;
        const statuses = await Promise.all(LEVELS.map((l) => api('GET', `${API}/status?level=${l}`)));
        if ((writes !== state.writes || state.again || Object.values(state.cards).some((c) => c.saving)) && attempt < 5) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        statuses.forEach((s, i) => state.cards[LEVELS[i]].update(s));
        const anyErrors = statuses.some((s) => (s.counts?.error ?? 0) > 0);
        if (anyErrors || state.errors.length > 0 || state.retrying.size > 0) await loadErrors();
        nudgeBadge(statuses);
        // Asked for fresher data while this one was applied (e.g. right after a write): again.
        if (state.again && attempt < 5) continue;
        break;
      }
    } catch (e) {
      if (e.status === 401) return signedOut();
      flash(`The status could not be refreshed: ${e.message}`);
    } finally {
      state.refreshing = null;
      schedule();
    }
  })();
  return state.refreshing;
}

/** The header badge reloads when the statuses change, and every 2 s while work is running
 * (its own fetch may have raced with the page's). */
function nudgeBadge(statuses) {
  const badge = document.querySelector('cassius-gcal-badge');
  if (!badge || typeof badge.load !== 'function') return;
  const key = JSON.stringify(statuses.map((s) => [s.status, s.counts]));
  const running = Date.now() < state.fastUntil && Date.now() - state.badgeAt > 2000;
  if (key === state.badgeKey && !running) return;
  state.badgeKey = key;
  state.badgeAt = Date.now();
  void badge.load();
}

function schedule() {
  clearTimeout(state.timer);
  if (!$('signed-out').hidden) return;
  const busy = Object.values(state.cards).some((c) => c.busy) || state.retrying.size > 0;
  // The relay keeps working a moment after the counts settle (a backlog's last rows): keep
  // polling fast for a few more seconds after any activity.
  if (busy) state.fastUntil = Date.now() + 6000;
  const active = busy || Date.now() < state.fastUntil;
  document.body.dataset.busy = String(busy);
  state.timer = setTimeout(() => {
    if (document.visibilityState === 'hidden') return schedule();
    void refresh();
  }, active ? POLL_ACTIVE_MS : POLL_IDLE_MS);
}

async function signedOut() {
  clearTimeout(state.timer);
  show($('loading'), false);
  show($('connections'), false);
  show($('errors'), false);
  show($('signed-out'), true);
  document.body.dataset.ready = 'signed-out';
  if (document.body.dataset.demo === '1') {
    try {
      const users = await api('GET', '/demo/users');
      $('demo-users').replaceChildren(
        ...(Array.isArray(users) ? users : []).map((u) =>
          h('li', {}, h('a', { href: u.login, text: u.email }), ` (${u.name}, ${u.role === 'admin' ? 'administrator' : 'member'})`),
        ),
      );
      show($('demo-logins'), true);
    } catch {
      // no demo users: the generic text stands
    }
  }
}

function readCallbackParams() {
  const url = new URL(location.href);
  const error = url.searchParams.get('error');
  const connected = url.searchParams.get('connected') === '1';
  const level = url.searchParams.get('level') === 'user' ? 'user' : 'org';
  if (error) flash(callbackErrorText(error, url.searchParams.get('error_description')));
  if (url.search) history.replaceState(null, '', PAGE + url.hash);
  return { error, connected, level };
}

async function main() {
  $('flash-close').addEventListener('click', () => show($('flash'), false));
  const callback = readCallbackParams();
  const container = $('connections');
  for (const level of LEVELS) {
    state.cards[level] = new Card(level);
    container.append(state.cards[level].el);
  }
  show(container, false);
  try {
    await loadMe();
  } catch (e) {
    if (e.status === 401) return signedOut();
  }
  await refresh();
  if (!$('signed-out').hidden) return;
  showWhoAmI();
  show($('loading'), false);
  show(container, true);
  $('badge-slot').append(h('cassius-gcal-badge', { refresh: '30' }));
  document.body.dataset.ready = 'true';
  if (callback.connected) {
    state.fastUntil = Date.now() + 8000;
    schedule();
  }
  const card = callback.connected ? state.cards[callback.level] : null;
  if (card?.status?.connected) {
    flash(`Connected to Google as ${card.status.account_email}. Check the target calendar below.`, 'ok');
  }
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'visible') void refresh();
  });
}

void main();
