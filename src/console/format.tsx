/** How the console writes dates, sizes and names: one place, the reader's locale. */

/**
 * The languages the reader set in their browser, not the browser's own UI language (an English Chromium on a German
 * desktop still reads 24-hour dates to a German reader); the locale decides the hour cycle.
 */
const locales = typeof navigator === 'undefined' ? undefined : [...navigator.languages];
const dateTime = new Intl.DateTimeFormat(locales, { dateStyle: 'medium', timeStyle: 'short' });
const dateOnly = new Intl.DateTimeFormat(locales, { dateStyle: 'medium' });
const timeOnly = new Intl.DateTimeFormat(locales, { timeStyle: 'medium' });

/** A log line's time of day, seconds included. */
export function formatTime(iso: string | undefined): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : timeOnly.format(t);
}

export function formatDateTime(iso: string | undefined): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : dateTime.format(t);
}

export function formatDate(iso: string | undefined): string {
  if (!iso) return '—';
  const t = Date.parse(iso);
  return Number.isNaN(t) ? iso : dateOnly.format(t);
}

export function formatPeriod(p: { start?: string; end?: string }): string {
  return `${formatDate(p.start)} – ${formatDate(p.end)}`;
}

export function formatMemory(mib: number | undefined): string {
  if (mib === undefined) return '—';
  return mib % 1024 === 0 ? `${mib / 1024} GiB` : `${mib} MiB`;
}

/** A value for <input type="datetime-local">, in the reader's time zone. */
export function toLocalInput(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** The ISO instant of a datetime-local value, or undefined when empty or not a date. */
export function fromLocalInput(value: string): string | undefined {
  if (!value) return undefined;
  const t = new Date(value).getTime();
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

export const stageNames: Record<string, string> = {
  queued: 'Queued',
  'reserving-vmid': 'Reserving a VMID',
  'choosing-node': 'Choosing a node',
  'waiting-for-clone-slot': 'Waiting for a clone slot',
  cloning: 'Cloning the template',
  migrating: 'Moving the VM to its node',
  'uploading-snippet': 'Uploading cloud-init',
  configuring: 'Configuring the VM',
  starting: 'Starting the VM',
  'waiting-for-ip': 'Waiting for the IP',
  'vpn-peer': 'Joining the VPN',
  'vpn-access': 'Granting VPN access',
  ready: 'Ready',
};
