import { useCallback, useEffect, useState } from 'preact/hooks';
import { ApiError, isSessionKey, sessionKey } from './api';
import { NewRequest } from './pages/NewRequest';
import { NotFound } from './pages/NotFound';
import { RequestList } from './pages/RequestList';
import { RequestPage } from './pages/RequestPage';
import { SignIn } from './pages/SignIn';
import { href, useRoute } from './router';
import { describeQuotas, describeSession, endSession, storedKey, storeKey, whoIs, type Session } from './session';

/** What every page gets: the key to call the API with, who holds it, and a way out when the key stops working. */
export interface Auth {
  key: string;
  session: Session;
  /** Call with an error from the API: a 401 signs the user out with a word of why. */
  onApiError: (err: unknown) => void;
}

type State = { phase: 'checking' } | { phase: 'signed-out'; notice?: string } | { phase: 'signed-in'; key: string; session: Session };

export function App() {
  const [state, setState] = useState<State>({ phase: 'checking' });
  const route = useRoute();

  useEffect(() => {
    const key = storedKey();
    if (!key) {
      // No key in this tab: perhaps a session the identity provider opened (its cookie goes by itself).
      whoIs('').then(
        (session) => (session.csrf_token ? setState({ phase: 'signed-in', key: sessionKey(session.csrf_token), session }) : setState({ phase: 'signed-out' })),
        () => setState({ phase: 'signed-out' }),
      );
      return;
    }
    whoIs(key).then(
      (session) => setState({ phase: 'signed-in', key, session }),
      (err) => {
        if (err instanceof ApiError && err.status === 401) storeKey(undefined);
        setState({ phase: 'signed-out', notice: err instanceof ApiError && err.status === 401 ? 'Your sign-in is no longer accepted. Sign in again.' : String(err instanceof Error ? err.message : err) });
      },
    );
  }, []);

  const signOut = useCallback(
    (notice?: string) => {
      storeKey(undefined);
      if (!notice && state.phase === 'signed-in' && isSessionKey(state.key)) {
        // The session ends at pveflow, then at the provider where it offers a sign-out page.
        void endSession(state.key).then((next) => window.location.assign(next));
        return;
      }
      setState({ phase: 'signed-out', ...(notice ? { notice } : {}) });
    },
    [state],
  );
  const onApiError = useCallback(
    (err: unknown) => {
      if (err instanceof ApiError && err.status === 401) signOut('Your sign-in is no longer accepted. Sign in again.');
    },
    [signOut],
  );

  if (state.phase === 'checking') {
    return (
      <div class="splash" aria-busy="true">
        Loading…
      </div>
    );
  }
  if (state.phase === 'signed-out') {
    return (
      <SignIn
        notice={state.notice}
        onSignedIn={(key, session) => {
          storeKey(key);
          setState({ phase: 'signed-in', key, session });
        }}
      />
    );
  }

  const auth: Auth = { key: state.key, session: state.session, onApiError };
  return (
    <>
      <a class="skip-link" href="#main">
        Skip to content
      </a>
      <header class="topbar">
        <div class="topbar-inner">
          <a class="brand" href={href.list}>
            <span class="brand-mark" aria-hidden="true">
              ▣
            </span>{' '}
            pveflow
          </a>
          <nav class="nav" aria-label="Main">
            <a href={href.list} aria-current={route.page === 'list' ? 'page' : undefined}>
              Requests
            </a>
            <a href={href.new} aria-current={route.page === 'new' ? 'page' : undefined}>
              New request
            </a>
          </nav>
          <div class="who">
            <span class="who-name" title={state.session.email ?? state.session.id}>
              {state.session.email ?? state.session.id}
            </span>
            <span class="who-role">{describeSession(state.session)}</span>
            {describeQuotas(state.session).map((line) => (
              <span key={line} class="who-quota" title="Quota: what the open requests hold of the limit">
                {line}
              </span>
            ))}
          </div>
          <button type="button" class="button button-quiet button-small" onClick={() => signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" class="page" tabIndex={-1}>
        {route.page === 'list' && <RequestList auth={auth} />}
        {route.page === 'new' && <NewRequest auth={auth} />}
        {route.page === 'request' && <RequestPage key={route.serial} auth={auth} serial={route.serial} />}
        {route.page === 'unknown' && <NotFound what={`There is no page ${route.path}.`} />}
      </main>
    </>
  );
}
