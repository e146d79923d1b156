/** A stand-in for pai_extension's /pai/api: canned answers by path (GET) or `METHOD path`. */
import type { IPaiApi } from '../src/api';
import { PaiError } from '../src/errors';

export function fakeApi(routes: Record<string, any>, posted: string[] = []): IPaiApi {
  return {
    async get(path: string) {
      if (path in routes) {
        return routes[path];
      }
      throw new PaiError(404, 'NoApiError', `no ${path}`);
    },
    async text() {
      return { text: '', offset: 0 };
    },
    async send(method: string, path: string, body?: string) {
      posted.push(body ?? '');
      const r = routes[`${method} ${path}`];
      if (r instanceof Error) {
        throw r;
      }
      return r;
    },
    async stream() {
      return;
    },
    wsUrl: (p: string) => `ws://x/${p}`
  };
}
