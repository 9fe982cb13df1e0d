import { useEffect, useState } from 'preact/hooks';
import { parse } from 'yaml';
import type { Auth } from '../App';
import { requestLimits } from '../../domain/requestLimits';
import { api, ApiError, type ImageInfo } from '../api';
import { Field } from '../components/Field';
import { formatMemory, fromLocalInput, toLocalInput } from '../format';
import { href, navigate } from '../router';

/** Form fields, named as the API names them in a 400's issues[].field (their first segment). */
type FieldName =
  | 'name'
  | 'client'
  | 'requester'
  | 'consultants'
  | 'period.start'
  | 'period.end'
  | 'image'
  | 'cores'
  | 'memory_mib'
  | 'disk_gib'
  | 'ssh_keys'
  | 'network.bridge'
  | 'network.vlan'
  | 'cloud_init.packages'
  | 'cloud_init.runcmd'
  | 'cloud_init.write_files'
  | 'cloud_init.cloud_config';
type Errors = Partial<Record<FieldName | 'form', string>>;

const knownFields: FieldName[] = [
  'name',
  'client',
  'requester',
  'consultants',
  'period.start',
  'period.end',
  'image',
  'cores',
  'memory_mib',
  'disk_gib',
  'ssh_keys',
  'network.bridge',
  'network.vlan',
  'cloud_init.packages',
  'cloud_init.runcmd',
  'cloud_init.write_files',
  'cloud_init.cloud_config',
];

/**
 * `consultants.1` → consultants, `period` → period.start, `cloud_init.cloud_config.users` → cloud_init.cloud_config;
 * anything else is about the form as a whole.
 */
function fieldOf(apiField: string): FieldName | 'form' {
  if (apiField === 'period') return 'period.start';
  if (apiField === 'network') return 'network.bridge';
  const known = knownFields.filter((f) => apiField === f || apiField.startsWith(`${f}.`)).sort((a, b) => b.length - a.length)[0];
  if (known) return known;
  const head = apiField.split('.')[0] as FieldName;
  return knownFields.includes(head) ? head : 'form';
}

function defaultPeriod(): { start: string; end: string } {
  const start = new Date();
  start.setSeconds(0, 0);
  const end = new Date(start.getTime() + 14 * 24 * 3600_000);
  end.setHours(18, 0, 0, 0);
  return { start: toLocalInput(start), end: toLocalInput(end) };
}

const lines = (text: string) =>
  text
    .split(/[\n,;]+/)
    .map((s) => s.trim())
    .filter(Boolean);

export function NewRequest({ auth }: { auth: Auth }) {
  const { session } = auth;
  const period = defaultPeriod();
  const [form, setForm] = useState({
    name: '',
    client: session.org ?? '',
    requester: session.email ?? '',
    consultants: session.role === 'requester' ? (session.email ?? '') : '',
    start: period.start,
    end: period.end,
    image: '',
    cores: '2',
    memory: '2048',
    disk: '',
    sshKeys: '',
    bridge: '',
    vlan: '',
    packages: '',
    runcmd: '',
    filePath: '',
    fileContent: '',
    cloudConfig: '',
  });
  const [images, setImages] = useState<ImageInfo[]>();
  const [imageNote, setImageNote] = useState<string>();
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<{ synced_at: string; images: ImageInfo[] }>(auth.key, '/api/images').then(
      (list) => {
        setImages(list.images);
        const first = list.images.find((i) => i.default) ?? list.images[0];
        if (first) setForm((f) => ({ ...f, image: first.name, ...sizesFor(first, f) }));
      },
      (err) => {
        auth.onApiError(err);
        setImages([]);
        setImageNote(
          err instanceof ApiError && err.status === 503 ? 'The images appear after the first cluster sync; the default template is used meanwhile.' : 'The image list is not available; the default template is used.',
        );
      },
    );
  }, []);

  const image = images?.find((i) => i.name === form.image);
  const chooseImage = (e: Event) => {
    const name = (e.currentTarget as HTMLSelectElement).value;
    const next = images?.find((i) => i.name === name);
    setForm((f) => ({ ...f, image: name, ...(next ? sizesFor(next, f) : {}) }));
  };
  const { cores: coreLimits, memoryMiB: memoryLimits } = requestLimits;
  const set = (key: keyof typeof form) => (e: Event) => {
    const value = (e.currentTarget as HTMLInputElement).value;
    setForm((f) => ({ ...f, [key]: value }));
  };

  const submit = async (e: Event) => {
    e.preventDefault();
    // The API's own limits, said before sending; the API checks everything else.
    const local: Errors = {};
    const outside = (v: string, l: { min: number; max: number }) => v.trim() !== '' && !(Number.isInteger(Number(v)) && Number(v) >= l.min && Number(v) <= l.max);
    if (outside(form.cores, coreLimits)) local.cores = `a whole number from ${coreLimits.min} to ${coreLimits.max}`;
    if (outside(form.memory, memoryLimits)) local.memory_mib = `a whole number of MiB from ${memoryLimits.min} to ${memoryLimits.max}`;
    if (form.vlan.trim() && !form.bridge.trim()) local['network.vlan'] = 'a VLAN is a tag on a bridge: name the bridge too';
    let cloudConfig: unknown;
    if (form.cloudConfig.trim()) {
      try {
        cloudConfig = parse(form.cloudConfig);
      } catch (err) {
        local['cloud_init.cloud_config'] = `not YAML: ${(err as Error).message}`;
      }
      if (cloudConfig !== undefined && (typeof cloudConfig !== 'object' || cloudConfig === null || Array.isArray(cloudConfig))) local['cloud_init.cloud_config'] = 'a cloud-config mapping (key: value lines)';
    }
    if (form.fileContent.trim() && !form.filePath.trim()) local['cloud_init.write_files'] = 'say where the file goes (an absolute path)';
    if (Object.keys(local).length) return setErrors(local);

    const number = (v: string) => (v.trim() === '' ? undefined : Number(v));
    const body = {
      name: form.name.trim(),
      client: form.client.trim(),
      requester: form.requester.trim(),
      consultants: lines(form.consultants),
      period: { start: fromLocalInput(form.start) ?? form.start, end: fromLocalInput(form.end) ?? form.end },
      ...(form.image ? { image: form.image } : {}),
      ...(number(form.cores) !== undefined ? { cores: number(form.cores) } : {}),
      ...(number(form.memory) !== undefined ? { memory_mib: number(form.memory) } : {}),
      ...(number(form.disk) !== undefined ? { disk_gib: number(form.disk) } : {}),
      ...(form.bridge.trim() ? { network: { bridge: form.bridge.trim(), ...(number(form.vlan) !== undefined ? { vlan: number(form.vlan) } : {}) } } : {}),
      ...cloudInitOf(form, cloudConfig),
      // One key per line: a key's comment may hold commas.
      ssh_keys: form.sshKeys
        .split('\n')
        .map((k) => k.trim())
        .filter(Boolean),
    };
    setBusy(true);
    setErrors({});
    try {
      const created = await api<{ serial: string }>(auth.key, '/api/device_requests', { method: 'POST', body });
      navigate(href.request(created.serial));
    } catch (err) {
      auth.onApiError(err);
      const found: Errors = {};
      if (err instanceof ApiError && err.issues.length) {
        for (const issue of err.issues) {
          const at = fieldOf(issue.field);
          const text = at === 'form' ? `${issue.field}: ${issue.reason}` : issue.reason;
          found[at] = found[at] ? `${found[at]}; ${text}` : text;
        }
      } else {
        found.form = err instanceof Error ? err.message : String(err);
      }
      setErrors(found);
      setBusy(false);
      // Take the reader to the first problem, as a screen reader user would otherwise not know where it is.
      requestAnimationFrame(() => document.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus());
    }
  };

  const input =
    (id: string, key: keyof typeof form, field: FieldName, props: Record<string, unknown> = {}) =>
    (describedBy: string | undefined, invalid: boolean) => <input id={id} name={field} value={form[key]} onInput={set(key)} aria-describedby={describedBy} aria-invalid={invalid ? true : undefined} {...props} />;

  return (
    <>
      <div class="page-head">
        <div>
          <h1>New request</h1>
          <p class="muted">A VM, built from a template at the start of its period and removed at its end.</p>
        </div>
      </div>
      <form class="card form" onSubmit={submit} noValidate aria-labelledby="new-request-legend">
        <h2 id="new-request-legend" class="visually-hidden">
          Request details
        </h2>
        {errors.form && (
          <p class="alert alert-danger" role="alert">
            {errors.form}
          </p>
        )}
        {Object.keys(errors).length > 0 && !errors.form && (
          <p class="alert alert-danger" role="alert">
            Some fields need your attention.
          </p>
        )}
        <fieldset>
          <legend>The VM</legend>
          <div class="grid">
            <Field id="vm-name" label="VM name" hint={`Up to ${requestLimits.nameLength} lower-case letters, digits and inner hyphens; it becomes the hostname.`} error={errors.name}>
              {input('vm-name', 'name', 'name', { type: 'text', autoComplete: 'off', spellcheck: false, required: true, placeholder: 'kali', maxLength: requestLimits.nameLength })}
            </Field>
            <Field id="vm-image" label="Image" hint={imageNote ?? (image ? imageSummary(image) : undefined)} error={errors.image}>
              {(describedBy, invalid) => (
                <select id="vm-image" name="image" value={form.image} onChange={chooseImage} aria-describedby={describedBy} aria-invalid={invalid ? true : undefined} disabled={images === undefined}>
                  {images === undefined && <option value="">Loading images…</option>}
                  {images?.length === 0 && <option value="">Default template</option>}
                  {images?.map((i) => (
                    <option value={i.name}>
                      {i.name}
                      {i.os ? ` (${i.os})` : ''}
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field id="vm-cores" label="CPU cores" hint={`${Math.max(coreLimits.min, image?.min_cores ?? 0)} to ${coreLimits.max}.`} error={errors.cores}>
              {input('vm-cores', 'cores', 'cores', { type: 'number', inputMode: 'numeric', min: coreLimits.min, max: coreLimits.max, step: 1 })}
            </Field>
            <Field
              id="vm-memory"
              label="Memory (MiB)"
              hint={`${memoryLimits.min} to ${memoryLimits.max} MiB${image && image.min_memory_mib > memoryLimits.min ? `; the image needs at least ${formatMemory(image.min_memory_mib)}` : ''}.`}
              error={errors.memory_mib}
            >
              {input('vm-memory', 'memory', 'memory_mib', { type: 'number', inputMode: 'numeric', min: memoryLimits.min, max: memoryLimits.max, step: 1 })}
            </Field>
            <Field id="vm-disk" label="Disk (GiB, optional)" hint={image ? `At least ${image.min_disk_gib} GiB; empty: ${image.min_disk_gib} GiB.` : 'Empty: as the template.'} error={errors.disk_gib}>
              {input('vm-disk', 'disk', 'disk_gib', { type: 'number', inputMode: 'numeric', min: image?.min_disk_gib ?? 1, step: 1 })}
            </Field>
          </div>
        </fieldset>
        <fieldset>
          <legend>Who and when</legend>
          <div class="grid">
            <Field id="vm-client" label="Client" hint={session.role === 'operator' ? 'The organisation the VM is for.' : 'Your key files requests for its own organisation.'} error={errors.client}>
              {input('vm-client', 'client', 'client', { type: 'text', readOnly: session.role !== 'operator', autoComplete: 'organization' })}
            </Field>
            <Field id="vm-requester" label="Requester" hint="Who asks for the VM." error={errors.requester}>
              {input('vm-requester', 'requester', 'requester', { type: 'email', autoComplete: 'email' })}
            </Field>
            <Field id="vm-start" label="Period start" error={errors['period.start']}>
              {input('vm-start', 'start', 'period.start', { type: 'datetime-local' })}
            </Field>
            <Field id="vm-end" label="Period end" error={errors['period.end']}>
              {input('vm-end', 'end', 'period.end', { type: 'datetime-local' })}
            </Field>
            <Field id="vm-consultants" label="Consultants" hint="E-mail addresses, one per line. They get VPN access and the VM's logins." error={errors.consultants} wide>
              {(describedBy, invalid) => (
                <textarea
                  id="vm-consultants"
                  name="consultants"
                  rows={3}
                  value={form.consultants}
                  onInput={set('consultants')}
                  aria-describedby={describedBy}
                  aria-invalid={invalid ? true : undefined}
                  spellcheck={false}
                />
              )}
            </Field>
            <Field id="vm-ssh-keys" label="SSH public keys (optional)" hint="One per line, OpenSSH format." error={errors.ssh_keys} wide>
              {(describedBy, invalid) => (
                <textarea
                  id="vm-ssh-keys"
                  name="ssh_keys"
                  rows={2}
                  value={form.sshKeys}
                  onInput={set('sshKeys')}
                  aria-describedby={describedBy}
                  aria-invalid={invalid ? true : undefined}
                  spellcheck={false}
                  class="mono"
                />
              )}
            </Field>
          </div>
        </fieldset>
        <details class="form-more" open={Object.keys(errors).some((k) => k.startsWith('network') || k.startsWith('cloud_init'))}>
          <summary>Network and first boot (optional)</summary>
          <fieldset>
            <legend>Network</legend>
            <div class="grid">
              <Field id="vm-bridge" label="Bridge" hint="Empty: the default network. Others as your operator allows them." error={errors['network.bridge']}>
                {input('vm-bridge', 'bridge', 'network.bridge', { type: 'text', autoComplete: 'off', spellcheck: false, placeholder: 'vmbr0' })}
              </Field>
              <Field id="vm-vlan" label="VLAN tag" hint="1 to 4094; empty: untagged." error={errors['network.vlan']}>
                {input('vm-vlan', 'vlan', 'network.vlan', { type: 'number', inputMode: 'numeric', min: 1, max: 4094, step: 1 })}
              </Field>
            </div>
          </fieldset>
          <fieldset>
            <legend>First boot</legend>
            <div class="grid">
              <Field id="vm-packages" label="Extra packages" hint="One per line, installed after the guest agent." error={errors['cloud_init.packages']} wide>
                {(describedBy, invalid) => (
                  <textarea
                    id="vm-packages"
                    name="cloud_init.packages"
                    rows={2}
                    value={form.packages}
                    onInput={set('packages')}
                    aria-describedby={describedBy}
                    aria-invalid={invalid ? true : undefined}
                    spellcheck={false}
                    class="mono"
                  />
                )}
              </Field>
              <Field id="vm-runcmd" label="Commands" hint="Shell commands, one per line, run after pveflow's own." error={errors['cloud_init.runcmd']} wide>
                {(describedBy, invalid) => (
                  <textarea
                    id="vm-runcmd"
                    name="cloud_init.runcmd"
                    rows={2}
                    value={form.runcmd}
                    onInput={set('runcmd')}
                    aria-describedby={describedBy}
                    aria-invalid={invalid ? true : undefined}
                    spellcheck={false}
                    class="mono"
                  />
                )}
              </Field>
              <Field
                id="vm-file-path"
                label="File to write"
                hint="An absolute path in a place a request may write to (/etc/motd, /opt, /srv, /home, /var/www, ...: docs/images-and-choices.md)."
                error={errors['cloud_init.write_files']}
              >
                {input('vm-file-path', 'filePath', 'cloud_init.write_files', { type: 'text', autoComplete: 'off', spellcheck: false, class: 'mono' })}
              </Field>
              <Field id="vm-file-content" label="File content" wide>
                {(describedBy) => <textarea id="vm-file-content" rows={3} value={form.fileContent} onInput={set('fileContent')} aria-describedby={describedBy} spellcheck={false} class="mono" />}
              </Field>
              <Field
                id="vm-cloud-config"
                label="cloud-config (YAML)"
                hint="More cloud-init settings (timezone, locale, ntp, apt proxy, ca_certs, ...); users, passwords and the hostname are pveflow's."
                error={errors['cloud_init.cloud_config']}
                wide
              >
                {(describedBy, invalid) => (
                  <textarea
                    id="vm-cloud-config"
                    name="cloud_init.cloud_config"
                    rows={4}
                    value={form.cloudConfig}
                    onInput={set('cloudConfig')}
                    aria-describedby={describedBy}
                    aria-invalid={invalid ? true : undefined}
                    spellcheck={false}
                    class="mono"
                    placeholder="timezone: Europe/Paris"
                  />
                )}
              </Field>
            </div>
          </fieldset>
        </details>
        <div class="form-actions">
          <a class="button button-quiet" href={href.list}>
            Cancel
          </a>
          <button type="submit" class="button button-primary" disabled={busy}>
            {busy ? 'Submitting…' : 'Submit request'}
          </button>
        </div>
      </form>
    </>
  );
}

function imageSummary(i: ImageInfo): string {
  return `${i.description ?? `Template ${i.template_name} (${i.template_vmid})`}; at least ${i.min_cores} core${i.min_cores > 1 ? 's' : ''}, ${formatMemory(i.min_memory_mib)}, ${i.min_disk_gib} GiB disk.`;
}

/** The image's minimums as the suggestion, never below what the form already says. */
function sizesFor(i: ImageInfo, f: { cores: string; memory: string }): { cores: string; memory: string } {
  return { cores: String(Math.max(i.min_cores, Number(f.cores) || 0)), memory: String(Math.max(i.min_memory_mib, Number(f.memory) || 0)) };
}

function cloudInitOf(form: { packages: string; runcmd: string; filePath: string; fileContent: string }, cloudConfig: unknown): { cloud_init?: Record<string, unknown> } {
  const each = (text: string) =>
    text
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
  const c = {
    ...(each(form.packages).length ? { packages: each(form.packages) } : {}),
    ...(each(form.runcmd).length ? { runcmd: each(form.runcmd) } : {}),
    ...(form.filePath.trim() ? { write_files: [{ path: form.filePath.trim(), content: form.fileContent }] } : {}),
    ...(cloudConfig !== undefined && cloudConfig !== null ? { cloud_config: cloudConfig } : {}),
  };
  return Object.keys(c).length ? { cloud_init: c } : {};
}
