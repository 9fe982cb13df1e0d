import { useEffect, useState } from 'preact/hooks';
import type { ApiKeyWire } from '../../contracts/apiKeySchemas';
import type { Auth } from '../App';
import { api, ApiError, type Issue } from '../api';
import type { Role } from '../session';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { Field } from '../components/Field';
import { ListTable } from '../components/ListTable';
import { formatDateTime, fromLocalInput } from '../format';

type Draft = { name: string; role: Role; org: string; email: string; expires: string };

/**
 * `#/keys`: the API keys an operator (all) or an admin (its org's) manages. A new key is shown once, here, and never
 * again: the API keeps only its hash. Revoked keys stop working in every API process within seconds.
 */
export function ApiKeys({ auth }: { auth: Auth }) {
  const operator = auth.session.role === 'operator';
  const roles: Role[] = operator ? ['requester', 'admin', 'operator'] : ['requester', 'admin'];
  const [items, setItems] = useState<ApiKeyWire[]>();
  const [error, setError] = useState<string>();
  const [draft, setDraft] = useState<Draft>({ name: '', role: 'requester', org: auth.session.org ?? '', email: '', expires: '' });
  const [issues, setIssues] = useState<Issue[]>([]);
  const [busy, setBusy] = useState(false);
  const [issued, setIssued] = useState<ApiKeyWire & { key: string }>();
  const [revoking, setRevoking] = useState<ApiKeyWire>();
  const [revokeError, setRevokeError] = useState<string>();

  const load = async () => {
    try {
      setItems((await api<{ items: ApiKeyWire[] }>(auth.key, '/api/api_keys')).items);
      setError(undefined);
    } catch (err) {
      auth.onApiError(err);
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  useEffect(() => void load(), []);

  const create = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setIssues([]);
    setError(undefined);
    const expires = draft.expires ? fromLocalInput(draft.expires) : undefined;
    const body = {
      name: draft.name.trim(),
      role: draft.role,
      ...(draft.role !== 'operator' && draft.org.trim() ? { org: draft.org.trim() } : {}),
      ...(draft.email.trim() ? { email: draft.email.trim() } : {}),
      ...(expires ? { expires_at: expires } : {}),
    };
    try {
      setIssued(await api<ApiKeyWire & { key: string }>(auth.key, '/api/api_keys', { method: 'POST', body }));
      setDraft({ ...draft, name: '', email: '', expires: '' });
      await load();
    } catch (err) {
      auth.onApiError(err);
      if (err instanceof ApiError && err.issues.length) setIssues(err.issues);
      else setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const revoke = async () => {
    if (!revoking) return;
    setBusy(true);
    try {
      await api(auth.key, `/api/api_keys/${encodeURIComponent(revoking.id)}`, { method: 'DELETE' });
      setRevoking(undefined);
      setRevokeError(undefined);
      await load();
    } catch (err) {
      auth.onApiError(err);
      setRevokeError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const issueOf = (field: string) => issues.find((i) => i.field === field)?.reason;

  return (
    <>
      <div class="page-head">
        <div>
          <h1>API keys</h1>
          <p class="muted">{operator ? 'Every key of the deployment.' : `The keys of ${auth.session.org}.`} A revoked key stops working within seconds.</p>
        </div>
      </div>

      {issued && (
        <div class="alert alert-info" role="status">
          <p>
            Key <strong>{issued.name}</strong> ({issued.id}) — copy it now: it is shown only this once.
          </p>
          <input class="issued-key" readOnly value={issued.key} aria-label="The new API key" onFocus={(e) => e.currentTarget.select()} />
          <button type="button" class="button button-quiet button-small" onClick={() => setIssued(undefined)}>
            Done, I have kept it
          </button>
        </div>
      )}

      <form class="card filters" onSubmit={create} aria-label="Issue an API key" noValidate>
        <Field id="key-name" label="Name" hint="What the key is for" error={issueOf('name')}>
          {(describedBy, invalid) => (
            <input id="key-name" type="text" value={draft.name} aria-describedby={describedBy} aria-invalid={invalid || undefined} onInput={(e) => setDraft({ ...draft, name: e.currentTarget.value })} />
          )}
        </Field>
        <Field id="key-role" label="Role" error={issueOf('role')}>
          {(describedBy) => (
            <select id="key-role" value={draft.role} aria-describedby={describedBy} onChange={(e) => setDraft({ ...draft, role: e.currentTarget.value as Role })}>
              {roles.map((r) => (
                <option value={r}>{r}</option>
              ))}
            </select>
          )}
        </Field>
        {draft.role !== 'operator' && (
          <Field id="key-org" label="Organisation" error={issueOf('org')}>
            {(describedBy, invalid) => (
              <input
                id="key-org"
                type="text"
                value={draft.org}
                readOnly={!operator}
                aria-describedby={describedBy}
                aria-invalid={invalid || undefined}
                onInput={(e) => setDraft({ ...draft, org: e.currentTarget.value })}
              />
            )}
          </Field>
        )}
        <Field id="key-email" label="Email" hint={draft.role === 'requester' ? 'Required: a requester files as this address' : 'Optional'} error={issueOf('email')}>
          {(describedBy, invalid) => (
            <input id="key-email" type="email" value={draft.email} aria-describedby={describedBy} aria-invalid={invalid || undefined} onInput={(e) => setDraft({ ...draft, email: e.currentTarget.value })} />
          )}
        </Field>
        <Field id="key-expires" label="Expires" hint="Empty: never" error={issueOf('expires_at')}>
          {(describedBy, invalid) => (
            <input
              id="key-expires"
              type="datetime-local"
              value={draft.expires}
              aria-describedby={describedBy}
              aria-invalid={invalid || undefined}
              onInput={(e) => setDraft({ ...draft, expires: e.currentTarget.value })}
            />
          )}
        </Field>
        <div class="filters-actions">
          <button type="submit" class="button button-primary" disabled={busy}>
            {busy ? 'Issuing…' : 'Issue key'}
          </button>
        </div>
      </form>

      {error && (
        <p class="alert alert-danger" role="alert">
          {error}
        </p>
      )}

      <section aria-labelledby="keys-title">
        <h2 id="keys-title" class="visually-hidden">
          Keys
        </h2>
        {items === undefined ? (
          <p class="muted">Loading keys…</p>
        ) : (
          <ListTable columns={['Key', 'Role', 'Organisation', 'Issued by', 'Expires', 'Last used', { label: 'Actions', visuallyHidden: true }]}>
            {items.map((k) => (
              <tr key={k.id}>
                <td data-label="Key">
                  <div>
                    <strong>{k.name}</strong>
                    <div class="muted small">
                      {k.id}
                      {k.email ? ` · ${k.email}` : ''}
                    </div>
                  </div>
                </td>
                <td data-label="Role">{k.role}</td>
                <td data-label="Organisation">{k.org ?? <span class="muted">all</span>}</td>
                <td data-label="Issued by">{k.source === 'file' ? <span class="muted">key file</span> : `${k.owner ?? ''} ${formatDateTime(k.created_at)}`}</td>
                <td data-label="Expires">{k.expires_at ? `${formatDateTime(k.expires_at)}${k.expired ? ' (expired)' : ''}` : <span class="muted">never</span>}</td>
                <td data-label="Last used">{k.last_used_at ? formatDateTime(k.last_used_at) : <span class="muted">—</span>}</td>
                <td>
                  {k.source === 'issued' && (
                    <button type="button" class="button button-quiet button-small" onClick={() => setRevoking(k)}>
                      Revoke
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </ListTable>
        )}
      </section>

      {revoking && (
        <ConfirmDialog
          title={`Revoke ${revoking.name}?`}
          confirmLabel="Revoke"
          danger
          busy={busy}
          error={revokeError}
          onConfirm={() => void revoke()}
          onCancel={() => {
            setRevoking(undefined);
            setRevokeError(undefined);
          }}
        >
          <p>Every call with this key is refused within seconds. This cannot be undone: a new key would have to be issued.</p>
        </ConfirmDialog>
      )}
    </>
  );
}
