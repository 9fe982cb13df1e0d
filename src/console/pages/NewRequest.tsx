import { useEffect, useState } from 'preact/hooks';
import type { Auth } from '../App';
import { requestLimits } from '../../domain/requestLimits';
import { api, ApiError, type TemplateInfo } from '../api';
import { Field } from '../components/Field';
import { formatMemory, fromLocalInput, toLocalInput } from '../format';
import { href, navigate } from '../router';

/** Form fields, named as the API names them in a 400's issues[].field (their first segment). */
type FieldName = 'name' | 'client' | 'requester' | 'consultants' | 'period.start' | 'period.end' | 'template_vmid' | 'cores' | 'memory_mib' | 'ssh_keys';
type Errors = Partial<Record<FieldName | 'form', string>>;

const knownFields: FieldName[] = ['name', 'client', 'requester', 'consultants', 'period.start', 'period.end', 'template_vmid', 'cores', 'memory_mib', 'ssh_keys'];

/** `consultants.1` → consultants, `period` → period.start; anything else is about the form as a whole. */
function fieldOf(apiField: string): FieldName | 'form' {
  if (apiField === 'period') return 'period.start';
  const exact = knownFields.find((f) => f === apiField);
  if (exact) return exact;
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
    template: '',
    cores: '2',
    memory: '2048',
    sshKeys: '',
  });
  const [templates, setTemplates] = useState<TemplateInfo[]>();
  const [templateNote, setTemplateNote] = useState<string>();
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<{ synced_at: string; templates: TemplateInfo[] }>(auth.key, '/api/templates').then(
      (t) => {
        setTemplates(t.templates);
        const first = t.templates[0];
        if (first) {
          setForm((f) => ({
            ...f,
            template: String(first.vmid),
            // The template's own size is the suggestion; the API's limits are the only floor (a clone may be smaller).
            cores: String(first.cores ?? f.cores),
            memory: String(first.memoryMiB ?? f.memory),
          }));
        }
      },
      (err) => {
        auth.onApiError(err);
        setTemplates([]);
        setTemplateNote(err instanceof ApiError && err.status === 503 ? 'The template list appears after the first cluster sync; the default template is used meanwhile.' : 'The template list is not available; the default template is used.');
      },
    );
  }, []);

  const template = templates?.find((t) => String(t.vmid) === form.template);
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
    if (Object.keys(local).length) return setErrors(local);

    const number = (v: string) => (v.trim() === '' ? undefined : Number(v));
    const body = {
      name: form.name.trim(),
      client: form.client.trim(),
      requester: form.requester.trim(),
      consultants: lines(form.consultants),
      period: { start: fromLocalInput(form.start) ?? form.start, end: fromLocalInput(form.end) ?? form.end },
      ...(form.template ? { template_vmid: Number(form.template) } : {}),
      ...(number(form.cores) !== undefined ? { cores: number(form.cores) } : {}),
      ...(number(form.memory) !== undefined ? { memory_mib: number(form.memory) } : {}),
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

  const input = (id: string, key: keyof typeof form, field: FieldName, props: Record<string, unknown> = {}) => (describedBy: string | undefined, invalid: boolean) => (
    <input id={id} name={field} value={form[key]} onInput={set(key)} aria-describedby={describedBy} aria-invalid={invalid ? true : undefined} {...props} />
  );

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
            <Field id="vm-template" label="Template" hint={templateNote ?? (template ? templateSummary(template) : undefined)} error={errors.template_vmid}>
              {(describedBy, invalid) => (
                <select id="vm-template" name="template_vmid" value={form.template} onChange={set('template')} aria-describedby={describedBy} aria-invalid={invalid ? true : undefined} disabled={templates === undefined}>
                  {templates === undefined && <option value="">Loading templates…</option>}
                  {templates?.length === 0 && <option value="">Default template</option>}
                  {templates?.map((t) => (
                    <option value={String(t.vmid)}>
                      {t.name} ({t.vmid})
                    </option>
                  ))}
                </select>
              )}
            </Field>
            <Field id="vm-cores" label="CPU cores" hint={`${coreLimits.min} to ${coreLimits.max}${template?.cores ? `; the template has ${template.cores}` : ''}.`} error={errors.cores}>
              {input('vm-cores', 'cores', 'cores', { type: 'number', inputMode: 'numeric', min: coreLimits.min, max: coreLimits.max, step: 1 })}
            </Field>
            <Field
              id="vm-memory"
              label="Memory (MiB)"
              hint={`${memoryLimits.min} to ${memoryLimits.max} MiB${template?.memoryMiB ? `; the template has ${formatMemory(template.memoryMiB)}` : ''}.`}
              error={errors.memory_mib}
            >
              {input('vm-memory', 'memory', 'memory_mib', { type: 'number', inputMode: 'numeric', min: memoryLimits.min, max: memoryLimits.max, step: 1 })}
            </Field>
            <div class="field">
              <span class="label">Disk</span>
              <p class="static-value">{template?.diskGiB ? `${template.diskGiB} GiB, as the template` : 'As the template'}</p>
            </div>
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
                <textarea id="vm-consultants" name="consultants" rows={3} value={form.consultants} onInput={set('consultants')} aria-describedby={describedBy} aria-invalid={invalid ? true : undefined} spellcheck={false} />
              )}
            </Field>
            <Field id="vm-ssh-keys" label="SSH public keys (optional)" hint="One per line, OpenSSH format." error={errors.ssh_keys} wide>
              {(describedBy, invalid) => (
                <textarea id="vm-ssh-keys" name="ssh_keys" rows={2} value={form.sshKeys} onInput={set('sshKeys')} aria-describedby={describedBy} aria-invalid={invalid ? true : undefined} spellcheck={false} class="mono" />
              )}
            </Field>
          </div>
        </fieldset>
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

function templateSummary(t: TemplateInfo): string {
  const parts = [t.cores ? `${t.cores} cores` : undefined, t.memoryMiB ? formatMemory(t.memoryMiB) : undefined, t.diskGiB ? `${t.diskGiB} GiB disk` : undefined].filter(Boolean);
  return `On ${t.node}${parts.length ? `: ${parts.join(', ')}` : ''}.`;
}
