/** The debug terminal speaks terminado's messages: what it sends, what it understands. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { TaskTerminal } from '../src/terminal';
import { decodeFromShell, encodeToShell } from '../src/terminal-protocol';
import { fakeApi } from './fakes';

describe('terminado framing', () => {
  it('sends keys and the size as terminado reads them', () => {
    expect(encodeToShell(['stdin', 'ls -l\r'])).toBe('["stdin","ls -l\\r"]');
    expect(encodeToShell(['set_size', 24, 80])).toBe('["set_size",24,80]');
    expect(encodeToShell(['stdin', 'é€😀'])).toBe('["stdin","é€😀"]'); // text, not bytes
  });

  it('reads output, the end of the shell and its greeting; ignores what it does not know', () => {
    expect(decodeFromShell('["stdout","\\u001b[1mbold\\u001b[0m é\\r\\n"]')).toEqual(['stdout', '\u001b[1mbold\u001b[0m é\r\n']);
    expect(decodeFromShell('["disconnect",1]')).toEqual(['disconnect', 1]);
    expect(decodeFromShell('["disconnect"]')).toEqual(['disconnect', 1]);
    expect(decodeFromShell('["setup",{}]')).toEqual(['setup', {}]);
    for (const frame of ['not json', '{"stdout":"x"}', '["stdout",3]', '["stderr","x"]', '[]', new ArrayBuffer(2)]) {
      expect(decodeFromShell(frame)).toBeNull();
    }
  });
});

/** A stand-in for the browser's WebSocket: records what is sent, lets the test play the server. */
class FakeSocket {
  static readonly OPEN = 1;
  static last: FakeSocket | null = null;
  readyState = 0;
  sent: unknown[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number }) => void) | null = null;

  constructor(readonly url: string) {
    FakeSocket.last = this;
  }

  send(frame: string): void {
    this.sent.push(JSON.parse(frame));
  }

  close(): void {
    this.readyState = 3;
  }

  /** The server accepted the connection. */
  open(): void {
    this.readyState = FakeSocket.OPEN;
    this.onopen?.();
  }

  /** A frame from the server. */
  receive(data: unknown): void {
    this.onmessage?.({ data });
  }
}

describe('TaskTerminal', () => {
  beforeEach(() => {
    vi.stubGlobal('WebSocket', FakeSocket);
  });

  afterEach(() => {
    vi.unstubAllGlobals();
  });

  function connected(): { terminal: TaskTerminal; socket: FakeSocket } {
    const terminal = new TaskTerminal(fakeApi({}), 'alice~broken', 'worker', 0);
    terminal.connect();
    const socket = FakeSocket.last!;
    socket.open();
    return { terminal, socket };
  }

  it("connects to the task's terminal and tells the shell its size first", () => {
    const { terminal, socket } = connected();
    expect(socket.url).toBe('ws://x/jobs/alice~broken/tasks/worker/0/terminal');
    expect(socket.sent).toEqual([['set_size', terminal.terminal.rows, terminal.terminal.cols]]);
    expect(terminal.node.dataset.connected).toBe('true');
    terminal.dispose();
  });

  it('sends what is typed as stdin and a new size as set_size', () => {
    const { terminal, socket } = connected();
    terminal.terminal.input('echo hi\r');
    terminal.terminal.resize(100, 30);
    expect(socket.sent.slice(1)).toEqual([
      ['stdin', 'echo hi\r'],
      ['set_size', 30, 100]
    ]);
    terminal.dispose();
  });

  it("shows the shell's output, says when it ended, and survives frames it does not know", () => {
    const { terminal, socket } = connected();
    const written: string[] = [];
    vi.spyOn(terminal.terminal, 'write').mockImplementation((data: string | Uint8Array) => void written.push(String(data)));
    socket.receive('["setup",{}]');
    socket.receive('["stdout","GPU=0,1\\r\\n"]');
    socket.receive('garbage');
    socket.receive('["disconnect",1]');
    expect(written).toEqual(['GPU=0,1\r\n', '\r\n[the shell ended]\r\n']);
    expect(terminal.node.dataset.connected).toBe('false');
    terminal.dispose();
  });
});
