// The sync status badge of the Cassius calendar header (the V1 indicator): one short line,
// "Google Calendar: synced / N pending / N errors / reconnect needed", computed from the
// status API of the org-level connection and the caller's own user-level one.

export type BadgeStatus = {
  connected?: boolean;
  status?: string;
  counts?: { pending?: number; synced?: number; error?: number };
};

export type BadgeState = 'reconnect' | 'error' | 'pending' | 'synced' | 'paused' | 'not_connected' | 'unknown';

export type BadgeSummary = { state: BadgeState; text: string; title: string };

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

export function summariseBadge(statuses: readonly (BadgeStatus | null)[]): BadgeSummary {
  const known = statuses.filter((s): s is BadgeStatus => s !== null);
  if (known.length === 0) return { state: 'unknown', text: 'Google Calendar: status unavailable', title: 'The sync status could not be read' };
  const connected = known.filter((s) => s.connected && s.status !== 'not_connected');
  if (connected.length === 0) {
    return { state: 'not_connected', text: 'Google Calendar: not connected', title: 'Appointments are not copied to Google Calendar' };
  }
  const pending = connected.reduce((n, s) => n + (s.counts?.pending ?? 0), 0);
  const errors = connected.reduce((n, s) => n + (s.counts?.error ?? 0), 0);
  if (connected.some((s) => s.status === 'needs_reconnect')) {
    return { state: 'reconnect', text: 'Google Calendar: reconnect needed', title: 'Google no longer accepts a connection; open the settings to reconnect' };
  }
  if (errors > 0) {
    return { state: 'error', text: `Google Calendar: ${plural(errors, 'error', 'errors')}`, title: 'Some appointments could not be synced; open the settings to see why' };
  }
  if (pending > 0) return { state: 'pending', text: `Google Calendar: ${pending} pending`, title: 'Appointments are being copied to Google Calendar' };
  if (connected.some((s) => s.status === 'error')) {
    return { state: 'error', text: 'Google Calendar: sync error', title: 'The last sync attempt failed; open the settings to see why' };
  }
  if (connected.every((s) => s.status === 'paused')) return { state: 'paused', text: 'Google Calendar: paused', title: 'Sync is turned off' };
  return { state: 'synced', text: 'Google Calendar: synced', title: 'Every appointment is in Google Calendar' };
}

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * An HTML fragment linking to the settings page. No inline style (the Content-Security-Policy
 * forbids it): style it with badge.css, which <cassius-gcal-badge> loads in its shadow root.
 */
export function renderBadge(summary: BadgeSummary, href: string): string {
  return (
    `<a class="cassius-gcal-badge" data-state="${summary.state}" href="${escape(href)}" title="${escape(summary.title)}">` +
    `<span class="dot" aria-hidden="true"></span><span class="text">${escape(summary.text)}</span></a>`
  );
}
