import { useEffect, useRef, useState } from 'preact/hooks';
import type { Auth } from '../App';
import { actionText, allowedActions, answerText, transitional, type ActionName } from '../actions';
import { api, ApiError, requestPath, type Credentials, type RequestRecord, type RequestStatus, type UpdateAnswer } from '../api';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { ProgressBar } from '../components/ProgressBar';
import { StatusBadge } from '../components/StatusBadge';
import { VmOperations } from '../components/VmOperations';
import { formatDateTime, formatMemory, formatTime, fromLocalInput, stageNames, toLocalInput } from '../format';
import { href } from '../router';
import { followEventStream } from '../sse';
import { NotFound } from './NotFound';

type LogLine = { attempt: number; at: string; stage: string; message: string };
type TimelineEntry = RequestRecord['timeline'][number];
type LiveStatus = { status: RequestStatus; build?: { attempt: number; state: string; stage: string; progress: number } };

/**
 * One request: what it is, where its VM lives, the build as it happens (SSE), its timeline, and what the signed-in
 * key may do with it now. Everything it shows comes from the API; every change goes through it.
 */
export function RequestPage({ auth, serial }: { auth: Auth; serial: string }) {
  const [record, setRecord] = useState<RequestRecord>();
  const [missing, setMissing] = useState(false);
  const [loadError, setLoadError] = useState<string>();
  const [live, setLive] = useState<LiveStatus>();
  const [log, setLog] = useState<LogLine[]>([]);
  const [timeline, setTimeline] = useState<TimelineEntry[]>([]);
  const [stream, setStream] = useState<{ generation: number; state: 'live' | 'ended' | 'error'; note?: string }>({ generation: 0, state: 'live' });
  const [dialog, setDialog] = useState<ActionName | 'reveal'>();
  const [notice, setNotice] = useState<string>();
  const [credentials, setCredentials] = useState<Credentials>();

  const refresh = async () => {
    try {
      setRecord(await api<RequestRecord>(auth.key, requestPath(serial)));
      setLoadError(undefined);
    } catch (err) {
      auth.onApiError(err);
      if (err instanceof ApiError && (err.status === 404 || err.status === 400)) setMissing(true);
      else setLoadError(err instanceof Error ? err.message : String(err));
    }
  };
  const recordStatus = useRef<RequestStatus>();
  recordStatus.current = record?.status;

  useEffect(() => {
    void refresh();
  }, [serial]);

  // The live stream. A fresh one replays the whole history: its first line replaces what an earlier stream showed
  // (rather than clearing up front, which would make the page flicker each time it follows the request again).
  useEffect(() => {
    if (missing) return;
    const abort = new AbortController();
    const replacing = { log: true, timeline: true };
    setStream((s) => ({ ...s, state: 'live', note: undefined }));
    void followEventStream(
      `${requestPath(serial)}/logs`,
      auth.key,
      (e) => {
        const data = safeJson(e.data);
        if (!data) return;
        if (e.event === 'status') {
          const s = data as LiveStatus;
          setLive(s);
          // A new status may bring the VM's details (VMID, node, IP): read the record again.
          if (s.status !== recordStatus.current) void refresh();
        } else if (e.event === 'log') {
          const line = data as LogLine;
          const restart = replacing.log;
          replacing.log = false;
          setLog((prev) => (restart || (prev.length && prev[prev.length - 1]!.attempt !== line.attempt) ? [line] : [...prev, line]));
        } else if (e.event === 'timeline') {
          const restart = replacing.timeline;
          replacing.timeline = false;
          setTimeline((prev) => (restart ? [data as TimelineEntry] : [...prev, data as TimelineEntry]));
        } else if (e.event === 'end') {
          void refresh();
        }
      },
      abort.signal,
      (message) => setStream((s) => ({ ...s, note: message })),
    ).then(() => {
      if (!abort.signal.aborted) setStream((s) => ({ ...s, state: 'ended' }));
    });
    return () => abort.abort();
  }, [serial, stream.generation, missing]);

  // The stream ends when a build is done; a request still on the move (a new build, a clean-up) is followed again.
  useEffect(() => {
    if (stream.state !== 'ended' || !record || !transitional.includes(record.status)) return;
    const timer = setTimeout(() => setStream((s) => ({ generation: s.generation + 1, state: 'live' })), 2000);
    return () => clearTimeout(timer);
  }, [stream.state, record?.status]);

  if (missing) return <NotFound what={`There is no request ${serial} that your key may see.`} />;
  if (!record) {
    return loadError ? (
      <p class="alert alert-danger" role="alert">
        {loadError}
      </p>
    ) : (
      <p class="muted" aria-busy="true">
        Loading {serial}…
      </p>
    );
  }

  const status = record.status;
  const build = live?.build ?? record.build;
  const req = record.request;
  const actions = allowedActions(auth.session.role, status);
  const isConsultant = !!auth.session.email && req.consultants.some((c) => c.toLowerCase() === auth.session.email!.toLowerCase());
  const afterAction = (message: string) => {
    setDialog(undefined);
    setNotice(message);
    void refresh();
    setStream((s) => ({ generation: s.generation + 1, state: 'live' }));
  };

  return (
    <>
      <nav class="breadcrumb" aria-label="Breadcrumb">
        <a href={href.list}>Requests</a> <span aria-hidden="true">/</span> <span aria-current="page">{serial}</span>
      </nav>
      <div class="page-head">
        <div>
          <h1>
            {req.name} <span class="serial-title">{serial}</span>
          </h1>
          <p class="muted">
            {req.org} · requested by {req.requester} · {formatDateTime(req.period.start)} – {formatDateTime(req.period.end)}
          </p>
        </div>
        <div class="status-big" aria-live="polite">
          <span class="visually-hidden">Status: </span>
          <StatusBadge status={status} />
        </div>
      </div>

      {notice && (
        <p class="alert alert-success" role="status">
          {notice}
        </p>
      )}

      <div class="request-layout">
        <div class="request-main">
          <section class="card" aria-labelledby="build-title">
            <div class="card-head">
              <h2 id="build-title">Build</h2>
              {build && <span class="muted small">Attempt {build.attempt}</span>}
            </div>
            <BuildProgress status={status} build={build} />
            {record.build?.error && (
              <p class="alert alert-danger" role="alert">
                {record.build.error}
              </p>
            )}
          </section>

          <section class="card" aria-labelledby="vm-title">
            <h2 id="vm-title">Virtual machine</h2>
            <dl class="details">
              <Detail term="VMID" value={record.device.vmid?.toString()} />
              <Detail term="Node" value={record.device.node} />
              <Detail term="IP address" value={record.device.ip} mono />
              <Detail term="VPN hostname" value={record.device.vpnHostname} mono />
              <Detail term="VPN IP" value={record.device.vpnIp} mono />
              <Detail term="Hostname" value={record.device.hostname} mono />
              <Detail term="Size" value={`${req.cores} cores · ${formatMemory(req.memoryMiB)}${req.diskGiB ? ` · ${req.diskGiB} GiB` : ''}`} />
              <Detail term="Image" value={req.image ? `${req.image}${req.templateVmid ? ` (template ${req.templateVmid})` : ''}` : req.templateVmid ? `template ${req.templateVmid}` : 'default'} />
              <Detail term="Network" value={req.network ? `${req.network.bridge}${req.network.vlan !== undefined ? `, VLAN ${req.network.vlan}` : ''}` : 'default'} />
              {req.cloudInit && <Detail term="First boot" value={firstBootSummary(req.cloudInit)} />}
            </dl>
          </section>

          <VmOperations auth={auth} serial={serial} record={record} onDone={afterAction} />

          <CredentialsCard record={record} isConsultant={isConsultant} revealed={credentials} onReveal={() => setDialog('reveal')} />

          <section class="card" aria-labelledby="log-title">
            <div class="card-head">
              <h2 id="log-title">Build log</h2>
              <span class={`live-dot live-${stream.state}`}>{stream.state === 'live' ? 'Live' : 'Up to date'}</span>
            </div>
            {stream.note && <p class="muted small">{stream.note}</p>}
            <BuildLog lines={log} />
          </section>

          <BuildAttempts record={record} />
        </div>

        <aside class="request-side">
          <section class="card" aria-labelledby="actions-title">
            <h2 id="actions-title">Actions</h2>
            {actions.length === 0 ? (
              <p class="muted">Nothing to do here now{transitional.includes(status) ? ': the request is moving on by itself.' : '.'}</p>
            ) : (
              <div class="action-list">
                {actions.map((a) => (
                  <button type="button" class={`button ${actionText[a].danger ? 'button-danger-quiet' : a === 'approve' ? 'button-primary' : 'button-quiet'}`} onClick={() => setDialog(a)}>
                    {actionText[a].label}
                  </button>
                ))}
              </div>
            )}
          </section>

          <section class="card" aria-labelledby="people-title">
            <h2 id="people-title">People</h2>
            <dl class="details details-stacked">
              <Detail term="Client" value={req.org} />
              <Detail term="Requester" value={req.requester} />
              <div>
                <dt>Consultants</dt>
                <dd>
                  <ul class="plain">
                    {req.consultants.map((c) => (
                      <li>{c}</li>
                    ))}
                  </ul>
                </dd>
              </div>
            </dl>
          </section>

          <section class="card" aria-labelledby="timeline-title">
            <h2 id="timeline-title">Timeline</h2>
            <ol class="timeline">
              {(timeline.length ? timeline : record.timeline).map((t) => (
                <li>
                  <time dateTime={t.at}>{formatDateTime(t.at)}</time>
                  <span class="timeline-event">{t.event}</span>
                  {t.by && <span class="muted small">by {t.by}</span>}
                </li>
              ))}
            </ol>
          </section>
        </aside>
      </div>

      {dialog === 'reveal' && (
        <RevealDialog
          auth={auth}
          serial={serial}
          onDone={(c) => {
            setCredentials(c);
            setDialog(undefined);
            void refresh();
          }}
          onCancel={() => setDialog(undefined)}
        />
      )}
      {dialog && dialog !== 'reveal' && <ActionDialog auth={auth} serial={serial} action={dialog} record={record} onDone={afterAction} onCancel={() => setDialog(undefined)} />}
    </>
  );
}

function BuildProgress({ status, build }: { status: RequestStatus; build: LiveStatus['build'] | RequestRecord['build'] }) {
  if (!build) {
    const caption = status === 'Pending' ? 'Waiting for approval' : status === 'Approved' ? 'Built at the start of the period' : 'No build';
    return <ProgressBar value={0} label="Build progress" caption={caption} tone="idle" />;
  }
  const tone = build.state === 'failed' || build.state === 'cancelled' ? 'danger' : build.state === 'completed' ? 'success' : 'progress';
  const stage = stageNames[build.stage] ?? build.stage;
  const caption =
    build.state === 'failed'
      ? `Failed while: ${stage.toLowerCase()}`
      : build.state === 'cancelled'
        ? 'Cancelled'
        : build.state === 'cancelling' || status === 'Cancelling'
          ? `Cancelling: undoing what was made (${stage.toLowerCase()})`
          : stage;
  return <ProgressBar value={build.progress} label="Build progress" caption={caption} tone={tone} />;
}

/** Every attempt the record keeps: where it put the VM, how long it took, and (for earlier ones) its own log. */
function BuildAttempts({ record }: { record: RequestRecord }) {
  const builds = [...(record.previousBuilds ?? []), ...(record.build ? [record.build] : [])];
  if (!builds.length) return null;
  return (
    <section class="card" aria-labelledby="attempts-title">
      <h2 id="attempts-title">Build attempts</h2>
      <ol class="plain attempts">
        {builds.map((b) => (
          <li>
            <details>
              <summary>
                Attempt {b.attempt}: {b.state}
                {b.vmid ? ` · VM ${b.vmid}` : ''}
                {b.node ? ` on ${b.node}` : ''}
                {b.startedAt ? ` · started ${formatDateTime(b.startedAt)}` : ''}
                {b.durationSeconds !== undefined ? ` · took ${b.durationSeconds} s` : ''}
                {b.error ? ` · ${b.error}` : ''}
              </summary>
              {b === record.build ? <p class="muted small">Its log is the build log above.</p> : <BuildLog lines={b.log} label={`Log of attempt ${b.attempt}`} />}
            </details>
          </li>
        ))}
      </ol>
    </section>
  );
}

function BuildLog({ lines, label = 'Build log' }: { lines: Array<Omit<LogLine, 'attempt'>>; label?: string }) {
  const ref = useRef<HTMLOListElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [lines.length]);
  if (!lines.length) return <p class="muted">The log starts when the build does.</p>;
  return (
    <ol class="log" ref={ref} role="log" aria-live="polite" aria-label={label} tabIndex={0}>
      {lines.map((l) => (
        <li>
          <time dateTime={l.at}>{formatTime(l.at)}</time>
          <span class="log-stage">{l.stage}</span>
          <span class="log-message">{l.message}</span>
        </li>
      ))}
    </ol>
  );
}

function Detail({ term, value, mono }: { term: string; value: string | undefined; mono?: boolean }) {
  return (
    <div>
      <dt>{term}</dt>
      <dd class={mono && value ? 'mono' : undefined}>{value ?? <span class="muted">—</span>}</dd>
    </div>
  );
}

function CredentialsCard({ record, isConsultant, revealed, onReveal }: { record: RequestRecord; isConsultant: boolean; revealed?: Credentials; onReveal: () => void }) {
  const c = record.credentials;
  if (!c && !revealed) return null;
  return (
    <section class="card" aria-labelledby="credentials-title">
      <h2 id="credentials-title">Guest logins</h2>
      {revealed ? (
        <>
          <p class="alert alert-warning" role="status">
            Handed to {revealed.revealed_to} on {formatDateTime(revealed.revealed_at)}: copy them now.{' '}
            {revealed.refetchable_until ? `You can fetch them again until ${formatDateTime(revealed.refetchable_until)}; then pveflow shreds them.` : 'pveflow has forgotten them.'}
          </p>
          <dl class="details">
            <Detail term="Username" value={revealed.username} mono />
            <Detail term="Password" value={revealed.password} mono />
            <Detail term="Root password" value={revealed.root_password} mono />
          </dl>
        </>
      ) : c?.available ? (
        isConsultant ? (
          <div class="row">
            <p class="muted">The VM’s logins are waiting for you. They are shown to one consultant only.</p>
            <button type="button" class="button button-primary" onClick={onReveal}>
              Reveal logins
            </button>
          </div>
        ) : (
          <p class="muted">Waiting for one of the request’s consultants to collect them.</p>
        )
      ) : c?.revealedTo ? (
        <p class="muted">
          Collected by {c.revealedTo} on {formatDateTime(c.revealedAt)}.
        </p>
      ) : (
        <p class="muted">Not available.</p>
      )}
    </section>
  );
}

function RevealDialog({ auth, serial, onDone, onCancel }: { auth: Auth; serial: string; onDone: (c: Credentials) => void; onCancel: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const confirm = async () => {
    setBusy(true);
    setError(undefined);
    try {
      onDone(await api<Credentials>(auth.key, `${requestPath(serial)}/credentials`));
    } catch (err) {
      auth.onApiError(err);
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  };
  return (
    <ConfirmDialog title="Reveal the VM’s logins?" confirmLabel="Reveal" busy={busy} error={error} onConfirm={confirm} onCancel={onCancel}>
      <p>They are shown once, to you only, and then forgotten: nobody can show them again. Have a password manager ready.</p>
    </ConfirmDialog>
  );
}

function ActionDialog(props: { auth: Auth; serial: string; action: ActionName; record: RequestRecord; onDone: (message: string) => void; onCancel: () => void }) {
  const { action, record } = props;
  const text = actionText[action];
  const proposedEnd = new Date(Math.max(Date.parse(record.request.period.end), Date.now()) + 7 * 24 * 3600_000);
  const [note, setNote] = useState('');
  const [newEnd, setNewEnd] = useState(toLocalInput(proposedEnd));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const confirm = async () => {
    let body: Record<string, string>;
    if (action === 'reject') {
      if (!note.trim()) return setError('Say why the request is rejected.');
      body = { reason: note.trim() };
    } else if (action === 'extend') {
      const iso = fromLocalInput(newEnd);
      if (!iso) return setError('Choose the new end of the period.');
      body = { new_end: iso, ...(note.trim() ? { note: note.trim() } : {}) };
    } else {
      body = note.trim() ? { note: note.trim() } : {};
    }
    setBusy(true);
    setError(undefined);
    try {
      const result = await api<UpdateAnswer>(props.auth.key, `${requestPath(props.serial)}/${action}`, { method: 'POST', body });
      props.onDone(`${text.label}: done. ${answerText(result)}`);
    } catch (err) {
      props.auth.onApiError(err);
      const issues = err instanceof ApiError ? err.issues.map((i) => i.reason).join('; ') : '';
      setError(issues || (err instanceof Error ? err.message : String(err)));
      setBusy(false);
    }
  };

  return (
    <ConfirmDialog title={text.title} confirmLabel={text.label} danger={text.danger} busy={busy} error={error} onConfirm={confirm} onCancel={props.onCancel}>
      <p>{text.explain}</p>
      {action === 'extend' && (
        <div class="field">
          <label for="action-new-end">New end of the period</label>
          <input id="action-new-end" type="datetime-local" value={newEnd} onInput={(e) => setNewEnd(e.currentTarget.value)} />
        </div>
      )}
      <div class="field">
        <label for="action-note">{action === 'reject' ? 'Reason' : 'Note (optional)'}</label>
        <textarea id="action-note" rows={2} value={note} onInput={(e) => setNote(e.currentTarget.value)} required={action === 'reject'} />
      </div>
    </ConfirmDialog>
  );
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** What the request adds to the guest's first boot, counted: the record holds the whole of it. */
function firstBootSummary(c: NonNullable<RequestRecord['request']['cloudInit']>): string {
  const parts = [
    c.packages?.length ? `packages ${c.packages.join(', ')}` : undefined,
    c.runcmd?.length ? `${c.runcmd.length} command${c.runcmd.length > 1 ? 's' : ''}` : undefined,
    c.write_files?.length ? `files ${c.write_files.map((f) => f.path).join(', ')}` : undefined,
    c.cloud_config && Object.keys(c.cloud_config).length ? `cloud-config ${Object.keys(c.cloud_config).join(', ')}` : undefined,
  ].filter(Boolean);
  return parts.join(' · ') || 'nothing added';
}
