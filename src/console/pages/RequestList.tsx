import { useEffect, useState } from 'preact/hooks';
import type { Auth } from '../App';
import { api, ApiError, requestPath, type RequestPage, type RequestRecord, type RequestStatus, type RequestSummary } from '../api';
import { ListTable } from '../components/ListTable';
import { ProgressBar } from '../components/ProgressBar';
import { StatusBadge } from '../components/StatusBadge';
import { formatDateTime, formatPeriod, stageNames } from '../format';
import { href } from '../router';

const statuses: RequestStatus[] = ['Pending', 'Approved', 'Imaging', 'Provisioning', 'Configuring', 'Fulfilled', 'Failed', 'Rejected', 'Expired', 'Cancelled', 'Cancelling', 'Completing', 'Completed'];
const BUILDING: RequestStatus[] = ['Imaging', 'Provisioning', 'Configuring', 'Cancelling'];
/** The latest build's outcome, as the list has it (no request to ask once the build is over). */
const buildOutcome: Record<string, string> = { completed: 'Built', failed: 'Build failed', cancelled: 'Build cancelled', cancelling: 'Cancelling', building: 'Building' };

interface Filters {
  status: string;
  client: string;
  from: string;
  to: string;
  /** The e-mail to list the VMs of, as a consultant: "my VMs" (the verified e-mail the session carries). */
  consultant?: string;
}

function listUrl(f: Filters, token?: string): string {
  const q = new URLSearchParams();
  if (f.status) q.set('status', f.status);
  if (f.consultant) q.set('consultant', f.consultant);
  if (f.client.trim()) q.set('org', f.client.trim());
  // Whole days in the reader's time zone: from the first day's start to the last day's end.
  if (f.from) q.set('from', new Date(`${f.from}T00:00:00`).toISOString());
  if (f.to) q.set('to', new Date(`${f.to}T23:59:59.999`).toISOString());
  if (token) q.set('page_token', token);
  return `/api/device_requests?${q}`;
}

export function RequestList({ auth }: { auth: Auth }) {
  const operator = auth.session.role === 'operator';
  const [filters, setFilters] = useState<Filters>({ status: '', client: '', from: '', to: '' });
  const [draft, setDraft] = useState<Filters>(filters);
  const [items, setItems] = useState<RequestSummary[]>();
  const [next, setNext] = useState<string>();
  const [error, setError] = useState<{ message: string; field?: string }>();
  const [loading, setLoading] = useState(false);

  const load = async (f: Filters, token?: string) => {
    setLoading(true);
    setError(undefined);
    try {
      const page = await api<RequestPage>(auth.key, listUrl(f, token));
      setItems((prev) => (token && prev ? [...prev, ...page.items] : page.items));
      setNext(page.next_page_token);
    } catch (err) {
      auth.onApiError(err);
      const issue = err instanceof ApiError ? err.issues[0] : undefined;
      setError({ message: issue ? `${fieldName(issue.field)}: ${issue.reason}` : err instanceof Error ? err.message : String(err), ...(issue ? { field: issue.field } : {}) });
      if (!token) setItems([]);
    } finally {
      setLoading(false);
    }
  };

  useEffect(() => {
    void load(filters);
  }, [filters]);

  const apply = (e: Event) => {
    e.preventDefault();
    setFilters({ ...draft });
  };
  const reset = () => {
    const empty = { status: '', client: '', from: '', to: '' };
    setDraft(empty);
    setFilters(empty);
  };

  return (
    <>
      <div class="page-head">
        <div>
          <h1>Requests</h1>
          <p class="muted">{operator ? 'Every organisation’s VM requests.' : `VM requests of ${auth.session.org}.`}</p>
        </div>
        <a class="button button-primary" href={href.new}>
          New request
        </a>
      </div>

      <form class="filters card" onSubmit={apply} aria-label="Filter requests" noValidate>
        <div class="field">
          <label for="filter-status">Status</label>
          <select id="filter-status" value={draft.status} onChange={(e) => setDraft({ ...draft, status: e.currentTarget.value })}>
            <option value="">Any status</option>
            {statuses.map((s) => (
              <option value={s}>{s}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="filter-client">Client</label>
          {operator ? (
            <input id="filter-client" type="text" placeholder="Any client" value={draft.client} onInput={(e) => setDraft({ ...draft, client: e.currentTarget.value })} />
          ) : (
            <input id="filter-client" type="text" value={auth.session.org} readOnly aria-describedby="filter-client-hint" />
          )}
          {!operator && (
            <p class="field-hint visually-hidden" id="filter-client-hint">
              Your key sees only its own organisation.
            </p>
          )}
        </div>
        <div class="field">
          <label for="filter-from">Period from</label>
          <input id="filter-from" type="date" value={draft.from} onInput={(e) => setDraft({ ...draft, from: e.currentTarget.value })} />
        </div>
        <div class="field">
          <label for="filter-to">Period to</label>
          <input id="filter-to" type="date" value={draft.to} onInput={(e) => setDraft({ ...draft, to: e.currentTarget.value })} />
        </div>
        {auth.session.email && (
          <div class="field">
            <label>
              <input
                type="checkbox"
                checked={draft.consultant !== undefined}
                onChange={(e) => {
                  const { consultant: _mine, ...rest } = draft;
                  setDraft(e.currentTarget.checked ? { ...rest, consultant: auth.session.email } : rest);
                }}
              />{' '}
              Only my VMs
            </label>
          </div>
        )}
        <div class="filters-actions">
          <button type="submit" class="button button-primary">
            Apply
          </button>
          <button type="button" class="button button-quiet" onClick={reset}>
            Reset
          </button>
        </div>
      </form>

      {error && (
        <p class="alert alert-danger" role="alert">
          {error.message}
        </p>
      )}

      <section aria-labelledby="results-title" aria-busy={loading}>
        <h2 id="results-title" class="visually-hidden">
          Results
        </h2>
        {items === undefined ? (
          <p class="muted">Loading requests…</p>
        ) : items.length === 0 ? (
          <div class="empty-state card">
            <p>No requests match.</p>
            <a href={href.new}>File a new request</a>
          </div>
        ) : (
          <ListTable columns={['Request', 'Name', 'Client', 'Status', 'Build', 'Period', 'VM']}>
            {items.map((r) => (
              <tr key={r.serial}>
                <td data-label="Request">
                  <div>
                    <a class="serial" href={href.request(r.serial)}>
                      {r.serial}
                    </a>
                    <div class="muted small">Submitted {formatDateTime(r.submitted_at)}</div>
                  </div>
                </td>
                <td data-label="Name" class="vm-name">
                  {r.name ?? <span class="muted">—</span>}
                </td>
                <td data-label="Client">{r.org}</td>
                <td data-label="Status">
                  <StatusBadge status={r.status} />
                </td>
                <td data-label="Build" class="cell-progress">
                  <RowProgress auth={auth} summary={r} />
                </td>
                <td data-label="Period">{formatPeriod(r.period)}</td>
                <td data-label="VM">{r.vm_id ? `${r.vm_id}${r.node ? ` on ${r.node}` : ''}` : <span class="muted">—</span>}</td>
              </tr>
            ))}
          </ListTable>
        )}
        {next && (
          <div class="more">
            <button type="button" class="button button-quiet" disabled={loading} onClick={() => void load(filters, next)}>
              {loading ? 'Loading…' : 'Show more'}
            </button>
          </div>
        )}
      </section>
    </>
  );
}

/**
 * The list comes from Temporal visibility, which has the status but not the build's progress; a row whose build is
 * running (or failed) asks its request for it, and keeps asking while the build runs.
 */
function RowProgress({ auth, summary }: { auth: Auth; summary: RequestSummary }) {
  const live = BUILDING.includes(summary.status) || summary.status === 'Failed';
  const [build, setBuild] = useState<RequestRecord['build']>();
  useEffect(() => {
    if (!live) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      try {
        const record = await api<RequestRecord>(auth.key, requestPath(summary.serial));
        if (stopped) return;
        setBuild(record.build);
        if (BUILDING.includes(record.status)) timer = setTimeout(poll, 3000);
      } catch {
        // The row keeps its badge; the request page says more.
      }
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, [summary.serial, live]);

  const label = `Build of ${summary.serial}`;
  if (summary.status === 'Fulfilled' || summary.status === 'Completing') return <ProgressBar value={100} label={label} caption="Ready" tone="success" />;
  if (summary.status === 'Pending' || summary.status === 'Approved') return <ProgressBar value={0} label={label} caption={summary.status === 'Pending' ? 'Awaiting approval' : 'Scheduled'} tone="idle" />;
  if (live) {
    const failed = build?.state === 'failed' || summary.status === 'Failed';
    return <ProgressBar value={build?.progress ?? 0} label={label} caption={failed ? 'Failed' : build ? (stageNames[build.stage] ?? build.stage) : 'Building'} tone={failed ? 'danger' : 'progress'} />;
  }
  const outcome = summary.build_status ? buildOutcome[summary.build_status] : undefined;
  return outcome ? <span class="build-outcome">{outcome}</span> : <span class="muted">—</span>;
}

function fieldName(field: string): string {
  return { org: 'Client', status: 'Status', from: 'Period from', to: 'Period to', page_token: 'Page' }[field] ?? field;
}
