import { useEffect, useState } from 'preact/hooks';

/**
 * Hash routing: the server serves one page, and a reload or a shared link lands on the same view. The key never
 * appears here (it lives in session storage).
 */
export type Route = { page: 'list' } | { page: 'new' } | { page: 'images' } | { page: 'keys' } | { page: 'request'; serial: string } | { page: 'unknown'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '') || '/requests';
  if (path === '/' || path === '/requests') return { page: 'list' };
  if (path === '/requests/new') return { page: 'new' };
  if (path === '/images') return { page: 'images' };
  if (path === '/keys') return { page: 'keys' };
  const m = /^\/requests\/([^/?#]+)$/.exec(path);
  if (m) return { page: 'request', serial: decodeURIComponent(m[1]!) };
  return { page: 'unknown', path };
}

export const href = {
  list: '#/requests',
  new: '#/requests/new',
  images: '#/images',
  keys: '#/keys',
  request: (serial: string) => `#/requests/${encodeURIComponent(serial)}`,
};

export function navigate(to: string): void {
  window.location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(window.location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(window.location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
