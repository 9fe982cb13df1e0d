import { useState } from 'preact/hooks';
import type { Auth } from '../App';
import { api, ApiError, requestPath, type RequestRecord } from '../api';
import { OPERATION_ANSWER_WITHIN_MS, type operationAcceptedSchema, type operationAnswerSchema } from '../../contracts/vmOperationSchemas';
import type { z } from 'zod';
import { formatDateTime } from '../format';
import { decide } from '../../domain/requestLifecycle';
import { ConfirmDialog } from './ConfirmDialog';
import type { PowerAction } from '../../contracts/vmOperations';

type Answer = z.infer<typeof operationAnswerSchema>;
/** Still running when the API stopped waiting: its outcome appears on the request's operations. */
type Accepted = z.infer<typeof operationAcceptedSchema>;

/** What a dialog asks for: each becomes one call of the API's day-2 operations. */
type Ask = { kind: 'power'; action: PowerAction } | { kind: 'resize' } | { kind: 'snapshot-create' } | { kind: 'snapshot-revert'; name: string } | { kind: 'snapshot-delete'; name: string } | { kind: 'migrate' };

const POWER: Record<PowerAction, { label: string; title: string; explain: string; danger?: boolean }> = {
  start: { label: 'Start', title: 'Start the VM?', explain: 'The VM boots with its current settings.' },
  shutdown: { label: 'Shut down', title: 'Shut the VM down?', explain: 'The guest is asked to shut down; one that does not within the bound is stopped.' },
  reboot: { label: 'Reboot', title: 'Reboot the VM?', explain: 'The guest restarts; one that does not shut down in time is stopped and started.' },
  stop: { label: 'Stop', title: 'Stop the VM now?', explain: 'Like pulling the plug: unsaved work in the guest is lost.', danger: true },
};

/**
 * The day-2 operations on a built VM, offered as the API allows them (src/api/auth/permissions.ts, the request's
 * lifecycle table and src/workflows/request/operationRules.ts): power, resize, snapshots, and migration for operators. Only an offer:
 * the API and the request decide, and their refusal is shown in their words.
 */
export function VmOperations({ auth, serial, record, onDone }: { auth: Auth; serial: string; record: RequestRecord; onDone: (message: string) => void }) {
  const [ask, setAsk] = useState<Ask>();
  // The lifecycle table's rows for the day-2 operations (the workflow's validators ask the same table).
  if (!decide(record.status, 'power').allowed || record.device.vmid === undefined) return null;
  const running = record.operations?.find((o) => o.state === 'running');
  const power = record.device.state === 'stopped' ? 'stopped' : 'running';
  const snapshots = record.snapshots ?? [];
  const recent = (record.operations ?? []).slice(-5).reverse();
  const powerActions: PowerAction[] = power === 'stopped' ? ['start'] : ['shutdown', 'reboot', 'stop'];

  return (
    <section class="card" aria-labelledby="operations-title">
      <div class="card-head">
        <h2 id="operations-title">Operate the VM</h2>
        <span class="muted small">{power === 'stopped' ? 'Stopped' : 'Running'}</span>
      </div>
      {running && (
        <p class="alert alert-warning" role="status">
          {running.what} is running (by {running.by}): one operation at a time.
        </p>
      )}
      <div class="action-list" role="group" aria-label="Power">
        {powerActions.map((a) => (
          <button type="button" class={`button ${POWER[a].danger ? 'button-danger-quiet' : 'button-quiet'}`} disabled={!!running} onClick={() => setAsk({ kind: 'power', action: a })}>
            {POWER[a].label}
          </button>
        ))}
        <button type="button" class="button button-quiet" disabled={!!running} onClick={() => setAsk({ kind: 'resize' })}>
          Resize
        </button>
        <button type="button" class="button button-quiet" disabled={!!running} onClick={() => setAsk({ kind: 'snapshot-create' })}>
          Take snapshot
        </button>
        {auth.session.role === 'operator' && (
          <button type="button" class="button button-quiet" disabled={!!running} onClick={() => setAsk({ kind: 'migrate' })}>
            Migrate
          </button>
        )}
      </div>

      <h3>Snapshots</h3>
      {snapshots.length === 0 ? (
        <p class="muted">None yet.</p>
      ) : (
        <ul class="plain" aria-label="Snapshots">
          {snapshots.map((s) => (
            <li class="row">
              <span>
                <strong>{s.name}</strong>{' '}
                <span class="muted small">
                  {formatDateTime(s.takenAt)} · {s.by}
                  {s.withRam ? ' · with RAM' : ''}
                </span>
                {s.description && <span class="muted small"> · {s.description}</span>}
              </span>
              <span>
                <button type="button" class="button button-quiet" disabled={!!running} onClick={() => setAsk({ kind: 'snapshot-revert', name: s.name })} aria-label={`Revert to ${s.name}`}>
                  Revert
                </button>
                <button type="button" class="button button-danger-quiet" disabled={!!running} onClick={() => setAsk({ kind: 'snapshot-delete', name: s.name })} aria-label={`Delete ${s.name}`}>
                  Delete
                </button>
              </span>
            </li>
          ))}
        </ul>
      )}

      {recent.length > 0 && (
        <>
          <h3>Recent operations</h3>
          <ol class="plain" aria-label="Recent operations">
            {recent.map((o) => (
              <li>
                <strong>{o.what}</strong>{' '}
                <span class="muted small">
                  {o.state}
                  {o.outcome ? `: ${o.outcome}` : ''} · {o.by}
                </span>
              </li>
            ))}
          </ol>
        </>
      )}

      {ask && (
        <OperationDialog
          auth={auth}
          serial={serial}
          record={record}
          ask={ask}
          onDone={(m) => {
            setAsk(undefined);
            onDone(m);
          }}
          onCancel={() => setAsk(undefined)}
        />
      )}
    </section>
  );
}

function OperationDialog(props: { auth: Auth; serial: string; record: RequestRecord; ask: Ask; onDone: (message: string) => void; onCancel: () => void }) {
  const { ask, record } = props;
  const req = record.request;
  const [note, setNote] = useState('');
  const [cores, setCores] = useState(String(req.cores));
  const [memory, setMemory] = useState(String(req.memoryMiB));
  const [disk, setDisk] = useState(req.diskGiB ? String(req.diskGiB) : '');
  const [confirmReboot, setConfirmReboot] = useState(false);
  const [name, setName] = useState('');
  const [withRam, setWithRam] = useState(false);
  const [target, setTarget] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();

  const at = requestPath(props.serial);
  const noted = note.trim() ? { note: note.trim() } : {};
  const text =
    ask.kind === 'power'
      ? POWER[ask.action]
      : ask.kind === 'resize'
        ? { label: 'Resize', title: 'Resize the VM?', explain: 'Applied live where Proxmox can; a change that needs a reboot is refused unless you allow it.' }
        : ask.kind === 'snapshot-create'
          ? { label: 'Take snapshot', title: 'Take a snapshot?', explain: 'A snapshot of the disks (and, if you choose, the running guest’s memory).' }
          : ask.kind === 'snapshot-revert'
            ? { label: 'Revert', title: `Revert to ${ask.name}?`, explain: 'The VM goes back to the snapshot: what changed since is lost.', danger: true }
            : ask.kind === 'snapshot-delete'
              ? { label: 'Delete', title: `Delete snapshot ${ask.name}?`, explain: 'The VM stays as it is; the snapshot is gone for good.', danger: true }
              : { label: 'Migrate', title: 'Migrate the VM?', explain: `It runs on ${record.device.node ?? '?'}; a running VM moves online.` };

  const call = (): { method: string; path: string; body: Record<string, unknown> } | string => {
    switch (ask.kind) {
      case 'power':
        return { method: 'POST', path: `${at}/power`, body: { action: ask.action, ...noted } };
      case 'resize': {
        const body: Record<string, unknown> = { ...noted };
        const num = (v: string) => (v.trim() === '' ? undefined : Number(v));
        const c = num(cores);
        const m = num(memory);
        const d = num(disk);
        if (c !== undefined && c !== req.cores) body.cores = c;
        if (m !== undefined && m !== req.memoryMiB) body.memory_mib = m;
        if (d !== undefined && d !== req.diskGiB) body.disk_gib = d;
        if (!('cores' in body || 'memory_mib' in body || 'disk_gib' in body)) return 'Change the cores, the memory or the disk size.';
        if (confirmReboot) body.confirm_reboot = true;
        return { method: 'POST', path: `${at}/reconfigure`, body };
      }
      case 'snapshot-create':
        if (!name.trim()) return 'Name the snapshot.';
        return { method: 'POST', path: `${at}/snapshots`, body: { name: name.trim(), ...(withRam ? { with_ram: true } : {}), ...noted } };
      case 'snapshot-revert':
        return { method: 'POST', path: `${at}/snapshots/${encodeURIComponent(ask.name)}/revert`, body: noted };
      case 'snapshot-delete':
        return { method: 'DELETE', path: `${at}/snapshots/${encodeURIComponent(ask.name)}`, body: noted };
      case 'migrate':
        if (!target.trim()) return 'Name the node to move the VM to.';
        return { method: 'POST', path: `${at}/migrate`, body: { target: target.trim(), ...noted } };
    }
  };

  const confirm = async () => {
    const c = call();
    if (typeof c === 'string') return setError(c);
    setBusy(true);
    setError(undefined);
    try {
      const result = await api<Answer | Accepted>(props.auth.key, c.path, { method: c.method, body: c.body, timeoutMs: OPERATION_ANSWER_WITHIN_MS });
      if ('operation_id' in result) props.onDone(`${text.title}: still running; its outcome appears under Operations on this page when it has ended.`);
      else props.onDone(`${result.operation.what}: ${result.operation.outcome ?? result.operation.state}.`);
    } catch (err) {
      props.auth.onApiError(err);
      const issues = err instanceof ApiError ? err.issues.map((i) => `${i.field}: ${i.reason}`).join('; ') : '';
      setError(issues || (err instanceof Error ? err.message : String(err)));
      setBusy(false);
    }
  };

  return (
    <ConfirmDialog title={text.title} confirmLabel={text.label} danger={text.danger} busy={busy} error={error} onConfirm={confirm} onCancel={props.onCancel}>
      <p>{text.explain}</p>
      {ask.kind === 'resize' && (
        <>
          <div class="field">
            <label for="op-cores">Cores</label>
            <input id="op-cores" type="number" min={1} value={cores} onInput={(e) => setCores(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="op-memory">Memory (MiB)</label>
            <input id="op-memory" type="number" min={512} step={512} value={memory} onInput={(e) => setMemory(e.currentTarget.value)} />
          </div>
          <div class="field">
            <label for="op-disk">Disk (GiB)</label>
            <input id="op-disk" type="number" min={1} value={disk} placeholder="unchanged" onInput={(e) => setDisk(e.currentTarget.value)} />
          </div>
          <label class="check">
            <input type="checkbox" checked={confirmReboot} onChange={(e) => setConfirmReboot(e.currentTarget.checked)} /> Reboot the VM if the change needs it
          </label>
        </>
      )}
      {ask.kind === 'snapshot-create' && (
        <>
          <div class="field">
            <label for="op-snapshot-name">Snapshot name</label>
            <input id="op-snapshot-name" value={name} maxLength={40} onInput={(e) => setName(e.currentTarget.value)} />
          </div>
          <label class="check">
            <input type="checkbox" checked={withRam} onChange={(e) => setWithRam(e.currentTarget.checked)} /> Include the guest’s memory
          </label>
        </>
      )}
      {ask.kind === 'migrate' && (
        <div class="field">
          <label for="op-target">Target node</label>
          <input id="op-target" value={target} onInput={(e) => setTarget(e.currentTarget.value)} />
        </div>
      )}
      <div class="field">
        <label for="op-note">Note (optional)</label>
        <textarea id="op-note" rows={2} value={note} onInput={(e) => setNote(e.currentTarget.value)} />
      </div>
    </ConfirmDialog>
  );
}
