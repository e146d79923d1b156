/** A terminal tab into a PAI task: xterm.js over pai_extension's websocket, which speaks terminado's
 * messages (terminal-protocol.ts). */
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';

import type { IPaiApi } from './api';
import { decodeFromShell, encodeToShell, ToShell } from './terminal-protocol';

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(name).trim();
  return v || fallback;
}

export class TaskTerminal extends Widget {
  private term: Terminal;
  private fitAddon = new FitAddon();
  private ws: WebSocket | null = null;
  private opened = false;

  constructor(
    private api: IPaiApi,
    readonly fw: string,
    readonly role: string,
    readonly index: number
  ) {
    super();
    this.addClass('pai-Terminal');
    this.id = `pai-term-${fw}-${role}-${index}`.replace(/[^A-Za-z0-9_-]/g, '_');
    this.title.label = `${fw.split('~')[1] ?? fw} ${role}[${index}]`;
    this.title.caption = `Terminal in ${fw} ${role}[${index}]`;
    this.title.closable = true;
    this.term = new Terminal({
      fontFamily: cssVar('--jp-code-font-family', 'monospace'),
      fontSize: 13,
      theme: this.theme()
    });
    this.term.loadAddon(this.fitAddon);
    this.term.onData(data => this.send(['stdin', data]));
    this.term.onResize(({ rows, cols }) => this.send(['set_size', rows, cols]));
  }

  /** The xterm.js terminal (what the user sees and types into). */
  get terminal(): Terminal {
    return this.term;
  }

  private theme() {
    return {
      background: cssVar('--jp-layout-color0', '#fff'),
      foreground: cssVar('--jp-ui-font-color0', '#000'),
      cursor: cssVar('--jp-ui-font-color0', '#000'),
      selectionBackground: cssVar('--jp-brand-color2', '#88f')
    };
  }

  /** Re-read Lab's theme colours (called on theme change). */
  updateTheme(): void {
    this.term.options.theme = this.theme();
  }

  private send(message: ToShell): void {
    if (this.ws?.readyState === WebSocket.OPEN) {
      this.ws.send(encodeToShell(message));
    }
  }

  connect(): void {
    const ws = new WebSocket(this.api.wsUrl(`jobs/${this.fw}/tasks/${this.role}/${this.index}/terminal`));
    this.ws = ws;
    ws.onopen = () => {
      this.node.dataset.connected = 'true';
      this.send(['set_size', this.term.rows, this.term.cols]); // the shell starts at the view's size
    };
    ws.onmessage = ev => {
      const message = decodeFromShell(ev.data);
      if (message?.[0] === 'stdout') {
        this.term.write(message[1]);
      } else if (message?.[0] === 'disconnect') {
        this.node.dataset.connected = 'false';
        this.term.write('\r\n[the shell ended]\r\n');
      }
    };
    ws.onclose = ev => {
      this.node.dataset.connected = 'false';
      if (!this.isDisposed) {
        this.term.write(`\r\n[disconnected${ev.code === 1000 ? '' : `: ${ev.code}`}]\r\n`);
      }
    };
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    if (!this.opened) {
      this.term.open(this.node);
      this.opened = true;
      this.connect();
    }
    this.safeFit();
  }

  protected onResize(msg: Widget.ResizeMessage): void {
    super.onResize(msg);
    this.safeFit();
  }

  protected onActivateRequest(msg: Message): void {
    super.onActivateRequest(msg);
    this.term.focus();
  }

  private safeFit(): void {
    try {
      this.fitAddon.fit();
    } catch {
      /* not laid out yet */
    }
  }

  dispose(): void {
    this.ws?.close();
    this.term.dispose();
    super.dispose();
  }
}
