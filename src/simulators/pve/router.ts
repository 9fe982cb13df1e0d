import type { Route } from './context';

/** Matches API paths against route templates (`{name}` = one non-empty segment). */
export interface RouteMatch {
  route: Route;
  pathParams: Record<string, string>;
}

interface Compiled {
  route: Route;
  segments: string[];
}

export class Router {
  private readonly compiled: Compiled[];

  constructor(routes: readonly Route[]) {
    this.compiled = routes.map((route) => ({ route, segments: route.path.split('/').filter(Boolean) }));
  }

  routes(): readonly Route[] {
    return this.compiled.map((c) => c.route);
  }

  match(method: string, path: string): RouteMatch | undefined {
    const parts = path.split('/').filter(Boolean);
    for (const c of this.compiled) {
      if (c.route.method !== method || c.segments.length !== parts.length) continue;
      const pathParams: Record<string, string> = {};
      const ok = c.segments.every((seg, i) => {
        const part = parts[i]!;
        if (seg.startsWith('{') && seg.endsWith('}')) {
          pathParams[seg.slice(1, -1)] = safeDecode(part);
          return true;
        }
        return seg === part;
      });
      if (ok) return { route: c.route, pathParams };
    }
    return undefined;
  }
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
