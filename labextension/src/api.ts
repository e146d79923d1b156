/** The one door to PAI: pai_extension's `/pai/api/*` on this Jupyter server (it calls PAI as the
 * server's user; the browser holds no PAI token). */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { PaiError } from './errors';

export { PaiError };

export interface IPaiApi {
  get(path: string): Promise<any>;
  text(path: string): Promise<{ text: string; offset: number | null }>;
  send(method: string, path: string, body?: string, contentType?: string): Promise<any>;
  stream(path: string, onChunk: (text: string) => void, signal: AbortSignal): Promise<void>;
  wsUrl(path: string): string;
}

export class PaiApi implements IPaiApi {
  readonly settings = ServerConnection.makeSettings();

  url(path: string): string {
    return URLExt.join(this.settings.baseUrl, 'pai/api', path);
  }

  private async fetch(path: string, init: RequestInit = {}): Promise<Response> {
    const r = await ServerConnection.makeRequest(this.url(path), init, this.settings);
    if (!r.ok) {
      let code = 'Error';
      let message = `${r.status} ${r.statusText}`;
      try {
        const body = await r.json();
        code = body.code ?? code;
        message = body.message ?? message;
      } catch {
        /* not JSON */
      }
      throw new PaiError(r.status, code, message);
    }
    return r;
  }

  async get(path: string): Promise<any> {
    return (await this.fetch(path)).json();
  }

  async text(path: string): Promise<{ text: string; offset: number | null }> {
    const r = await this.fetch(path);
    const off = r.headers.get('X-Log-Offset');
    return { text: await r.text(), offset: off === null ? null : Number(off) };
  }

  async send(method: string, path: string, body?: string, contentType = 'application/json'): Promise<any> {
    const r = await this.fetch(path, { method, body, headers: body ? { 'Content-Type': contentType } : {} });
    const t = await r.text();
    try {
      return JSON.parse(t);
    } catch {
      return t;
    }
  }

  async stream(path: string, onChunk: (text: string) => void, signal: AbortSignal): Promise<void> {
    const r = await this.fetch(path, { headers: { Accept: 'text/event-stream' }, signal });
    const reader = r.body!.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) {
        return;
      }
      onChunk(decoder.decode(value, { stream: true }));
    }
  }

  wsUrl(path: string): string {
    let url = URLExt.join(this.settings.wsUrl, 'pai/api', path);
    if (this.settings.token) {
      url += `?token=${encodeURIComponent(this.settings.token)}`;
    }
    return url;
  }
}
