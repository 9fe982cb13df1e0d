import { useCallback, useEffect, useState } from 'preact/hooks';
import type { Auth } from '../App';
import { api, ApiError, type ImageInfo } from '../api';
import { Field } from '../components/Field';
import { ListTable } from '../components/ListTable';
import { ProgressBar } from '../components/ProgressBar';

/** An import as GET /api/image-imports/{name} answers it. */
interface ImportStatus {
  name: string;
  state: 'running' | 'completed' | 'failed' | 'cancelling' | 'cancelled';
  stage: string;
  bytes?: number;
  total_bytes?: number;
  error?: string;
  leftovers: string[];
  log: Array<{ at: string; stage: string; message: string }>;
}

/** How far an import is, by stage (the bytes refine the download's share). */
const stageShare: Record<string, number> = { queued: 0, planning: 5, downloading: 10, 'reserving-vmid': 60, 'creating-vm': 65, templating: 85, cataloguing: 95, done: 100 };
const POLL_MS = 2_000;

const emptyForm = { name: '', os: '', url: '', checksum: '', checksum_algorithm: 'sha256', min_cores: '', min_memory_mib: '', min_disk_gib: '', orgs: '', description: '' };
type Form = typeof emptyForm;

/**
 * The image catalogue: what requests may name, and (for operators) the import form and the import's progress. Every
 * rule is the API's: a refusal shows its words at the field it names.
 */
export function Images({ auth }: { auth: Auth }) {
  const operator = auth.session.role === 'operator';
  const [images, setImages] = useState<ImageInfo[]>();
  const [listError, setListError] = useState<string>();
  const [form, setForm] = useState<Form>(emptyForm);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const [watching, setWatching] = useState<string>();
  const [status, setStatus] = useState<ImportStatus>();

  const load = useCallback(() => {
    api<{ images: ImageInfo[] }>(auth.key, '/api/images').then(
      (list) => setImages(list.images),
      (err) => {
        auth.onApiError(err);
        setListError(err instanceof ApiError && err.status === 503 ? 'The images appear after the first cluster sync.' : String(err instanceof Error ? err.message : err));
      },
    );
  }, [auth]);
  useEffect(load, [load]);

  useEffect(() => {
    if (!watching) return;
    let stopped = false;
    const poll = async () => {
      try {
        const s = await api<ImportStatus>(auth.key, `/api/image-imports/${encodeURIComponent(watching)}`);
        if (stopped) return;
        setStatus(s);
        if (s.state === 'running' || s.state === 'cancelling') setTimeout(() => void poll(), POLL_MS);
        else if (s.state === 'completed') load();
      } catch (err) {
        auth.onApiError(err);
      }
    };
    void poll();
    return () => {
      stopped = true;
    };
  }, [watching, auth, load]);

  const set = (k: keyof Form) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setErrors({});
    const number = (v: string) => (v.trim() === '' ? undefined : Number(v));
    const body = {
      name: form.name.trim(),
      os: form.os.trim(),
      url: form.url.trim(),
      checksum: form.checksum.trim(),
      checksum_algorithm: form.checksum_algorithm,
      min_cores: number(form.min_cores),
      min_memory_mib: number(form.min_memory_mib),
      min_disk_gib: number(form.min_disk_gib),
      ...(form.orgs.trim() ? { orgs: form.orgs.split(',').map((o) => o.trim()) } : {}),
      ...(form.description.trim() ? { description: form.description.trim() } : {}),
    };
    try {
      const started = await api<{ name: string }>(auth.key, '/api/images', { method: 'POST', body });
      setForm(emptyForm);
      setStatus(undefined);
      setWatching(started.name);
    } catch (err) {
      auth.onApiError(err);
      if (err instanceof ApiError && err.issues.length) setErrors(Object.fromEntries(err.issues.map((i) => [i.field, i.reason])));
      else setErrors({ form: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
    }
  };
  const cancel = async () => {
    if (!watching) return;
    try {
      await api(auth.key, `/api/image-imports/${encodeURIComponent(watching)}`, { method: 'DELETE' });
    } catch (err) {
      auth.onApiError(err);
    }
  };

  const input =
    (k: keyof Form, props: Record<string, unknown> = {}) =>
    (describedBy: string | undefined, invalid: boolean) => <input id={`image-${k}`} name={k} value={form[k]} onInput={set(k)} aria-describedby={describedBy} aria-invalid={invalid ? true : undefined} {...props} />;
  const share = status ? (status.stage === 'downloading' && status.bytes && status.total_bytes ? 10 + (50 * status.bytes) / status.total_bytes : (stageShare[status.stage] ?? 0)) : 0;

  return (
    <>
      <div class="page-head">
        <div>
          <h1>Images</h1>
          <p class="muted">{operator ? 'The catalogue: every image, and the import of new ones.' : `The images requests of ${auth.session.org} may name.`}</p>
        </div>
      </div>
      {listError && (
        <p class="alert alert-danger" role="alert">
          {listError}
        </p>
      )}
      {images && (
        <ListTable columns={['Image', 'OS', 'Template', 'Minimum', ...(operator ? ['Orgs'] : [])]}>
          {images.map((i) => (
            <tr key={i.name}>
              <td data-label="Image">
                {i.name}
                {i.default ? ' (default)' : ''}
              </td>
              <td data-label="OS">{i.os ?? ''}</td>
              <td data-label="Template">{i.templates ? i.templates.map((t) => `${t.vmid} on ${t.node}`).join(', ') : `${i.template_vmid} on ${i.node}`}</td>
              <td data-label="Minimum">
                {i.min_cores} cores, {i.min_memory_mib} MiB, {i.min_disk_gib} GiB
              </td>
              {operator && <td data-label="Orgs">{i.orgs?.join(', ') ?? 'all'}</td>}
            </tr>
          ))}
        </ListTable>
      )}
      {operator && (
        <form class="card form" onSubmit={submit} noValidate aria-labelledby="import-legend">
          <h2 id="import-legend">Import an image</h2>
          {errors.form && (
            <p class="alert alert-danger" role="alert">
              {errors.form}
            </p>
          )}
          <Field id="image-name" label="Name" hint="What requests name: lower-case letters, digits and . _ -" error={errors.name}>
            {input('name', { required: true })}
          </Field>
          <Field id="image-os" label="Operating system" error={errors.os}>
            {input('os', { required: true })}
          </Field>
          <Field id="image-url" label="URL of the disk image" hint="http or https; .qcow2, .img, .raw or .vmdk. The node downloads it." error={errors.url} wide>
            {input('url', { required: true, type: 'url' })}
          </Field>
          <Field id="image-checksum" label="Checksum" hint="Proxmox verifies the file against it" error={errors.checksum} wide>
            {input('checksum', { required: true })}
          </Field>
          <Field id="image-checksum_algorithm" label="Algorithm" error={errors.checksum_algorithm}>
            {(describedBy, invalid) => (
              <select id="image-checksum_algorithm" name="checksum_algorithm" value={form.checksum_algorithm} onChange={set('checksum_algorithm')} aria-describedby={describedBy} aria-invalid={invalid ? true : undefined}>
                {['sha256', 'sha512', 'sha384', 'sha224', 'sha1', 'md5'].map((a) => (
                  <option key={a} value={a}>
                    {a}
                  </option>
                ))}
              </select>
            )}
          </Field>
          <Field id="image-min_cores" label="Minimum cores" error={errors.min_cores}>
            {input('min_cores', { inputMode: 'numeric' })}
          </Field>
          <Field id="image-min_memory_mib" label="Minimum memory (MiB)" error={errors.min_memory_mib}>
            {input('min_memory_mib', { inputMode: 'numeric' })}
          </Field>
          <Field id="image-min_disk_gib" label="Minimum disk (GiB)" hint="At least the image's own disk" error={errors.min_disk_gib}>
            {input('min_disk_gib', { inputMode: 'numeric' })}
          </Field>
          <Field id="image-orgs" label="Organisations" hint="Comma-separated; empty: every organisation" error={errors.orgs}>
            {input('orgs')}
          </Field>
          <div class="form-actions">
            <button type="submit" class="button button-primary" disabled={busy}>
              {busy ? 'Starting…' : 'Import'}
            </button>
          </div>
        </form>
      )}
      {status && (
        <section class="card" aria-live="polite" aria-labelledby="import-progress">
          <h2 id="import-progress">Import of {status.name}</h2>
          <ProgressBar
            value={status.state === 'completed' ? 100 : share}
            label={`Import of ${status.name}`}
            caption={`${status.state}: ${status.stage}${status.bytes !== undefined ? `, ${status.bytes} bytes` : ''}`}
            tone={status.state === 'completed' ? 'success' : status.state === 'running' ? 'progress' : 'danger'}
          />
          {status.error && (
            <p class="alert alert-danger" role="alert">
              {status.error}
            </p>
          )}
          {status.state === 'running' && (
            <button type="button" class="button button-quiet" onClick={() => void cancel()}>
              Cancel import
            </button>
          )}
          <ol class="timeline">
            {status.log.map((l) => (
              <li key={`${l.at}-${l.message}`}>
                {l.stage}: {l.message}
              </li>
            ))}
          </ol>
        </section>
      )}
    </>
  );
}
