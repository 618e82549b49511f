// <cassius-gcal-badge>: the Google Calendar sync indicator for the Cassius calendar header.
//   <script type="module" src="/settings/integrations/google-calendar/badge.js"></script>
//   <cassius-gcal-badge refresh="30"></cassius-gcal-badge>
// It shows the server-rendered fragment of GET /settings/integrations/google-calendar/badge
// (fed by the status API) and refreshes it every `refresh` seconds (default 30) while the
// page is visible. Same-origin only: the status is read with the Cassius session cookie.
// The element's `state` attribute mirrors the badge (synced, pending, error, reconnect,
// paused, not_connected, unknown) for the host page's own styling.

const BASE = '/settings/integrations/google-calendar';

class CassiusGcalBadge extends HTMLElement {
  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    const style = document.createElement('link');
    style.rel = 'stylesheet';
    style.href = `${BASE}/badge.css`;
    this.slotEl = document.createElement('span');
    this.slotEl.setAttribute('role', 'status');
    this.slotEl.innerHTML = '<span class="cassius-gcal-badge" data-state="unknown"><span class="dot" aria-hidden="true"></span><span class="text">Google Calendar…</span></span>';
    root.append(style, this.slotEl);
    this.timer = null;
    this.onVisible = () => {
      if (document.visibilityState === 'visible') void this.load();
    };
  }

  connectedCallback() {
    document.addEventListener('visibilitychange', this.onVisible);
    void this.load();
  }

  disconnectedCallback() {
    clearTimeout(this.timer);
    document.removeEventListener('visibilitychange', this.onVisible);
  }

  async load() {
    clearTimeout(this.timer);
    try {
      const res = await fetch(`${BASE}/badge`, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
      const html = await res.text();
      if (html.startsWith('<a class="cassius-gcal-badge"') && html !== this.lastHtml) {
        this.lastHtml = html;
        this.slotEl.innerHTML = html;
        const state = this.slotEl.firstElementChild?.getAttribute('data-state');
        if (state) this.setAttribute('state', state);
      }
    } catch {
      // keep the last known badge; the next refresh tries again
    }
    if (!this.isConnected) return;
    const seconds = Math.max(2, Number(this.getAttribute('refresh')) || 30);
    this.timer = setTimeout(() => {
      if (document.visibilityState !== 'hidden') void this.load();
    }, seconds * 1000);
  }
}

if (!customElements.get('cassius-gcal-badge')) customElements.define('cassius-gcal-badge', CassiusGcalBadge);
