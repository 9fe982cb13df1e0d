import { useEffect, useState } from 'preact/hooks';
import { ApiError } from '../api';
import { providerSignIn, whoIs, type Session } from '../session';

export function SignIn({ notice, onSignedIn }: { notice?: string; onSignedIn: (key: string, session: Session) => void }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  // Where to sign in through the organisation's identity provider, when this pveflow has one.
  const [providerLogin, setProviderLogin] = useState<string>();
  useEffect(() => {
    void providerSignIn().then(setProviderLogin);
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    const trimmed = key.trim();
    if (!trimmed) return setError('Paste your API key.');
    setBusy(true);
    setError(undefined);
    try {
      onSignedIn(trimmed, await whoIs(trimmed));
    } catch (err) {
      setError(err instanceof ApiError && err.status === 401 ? 'This API key is not known. Check that you pasted all of it.' : err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  };

  return (
    <main class="signin" id="main">
      <form class="card signin-card" onSubmit={submit} noValidate aria-labelledby="signin-title">
        <div class="brand brand-large">
          <span class="brand-mark" aria-hidden="true">
            ▣
          </span>{' '}
          pveflow
        </div>
        <h1 id="signin-title">Sign in</h1>
        <p class="muted">Virtual machines on Proxmox VE, on request. {providerLogin ? 'Sign in with your organisation account, or with an API key.' : 'Sign in with the API key you were given.'}</p>
        {providerLogin && (
          <a class="button button-primary button-block" href={providerLogin}>
            Sign in with your organisation
          </a>
        )}
        {notice && (
          <p class="alert alert-info" role="status">
            {notice}
          </p>
        )}
        <div class={`field${error ? ' field-invalid' : ''}`}>
          <label for="api-key">API key</label>
          <input
            id="api-key"
            name="api-key"
            type="password"
            autoComplete="off"
            spellcheck={false}
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? 'api-key-error' : 'api-key-hint'}
            autoFocus
          />
          {error ? (
            <p class="field-error" id="api-key-error">
              {error}
            </p>
          ) : (
            <p class="field-hint" id="api-key-hint">
              Kept in this browser tab only, until you close it or sign out.
            </p>
          )}
        </div>
        <button type="submit" class="button button-primary button-block" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
