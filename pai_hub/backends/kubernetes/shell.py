"""A debug shell in a pod, as a terminado terminal: the adapter between pods/exec and the hub's
terminal websocket.

The hub serves every backend's debug shell the same way (:mod:`pai_hub.api.debug`): a terminado
terminal whose ``ptyproc`` it reads (decoded incrementally), writes and resizes. For a pod the shell
runs remotely, so :class:`ExecTerminal` puts a local PTY in front of the exec websocket: its master
side is ``ptyproc.fd``, its slave side (raw mode, no process on it) belongs to a pump thread that
copies what the hub writes to the websocket's stdin channel, copies the remote output (the remote
side has its own TTY: ``tty=True``) back, and forwards window-size changes (seen with ``TIOCGWINSZ``
on the slave) on the resize channel (4). The websocket carries bytes (``binary=True``): the output is
decoded once, at the terminal, so a character split across two frames arrives whole. Ending the
terminal closes the websocket, which ends the remote shell (its TTY hangs up); the pump then closes
the slave side and the hub reads end of file.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import signal
import struct
import termios
import threading
import tty
from collections import deque
from typing import Any

from ptyprocess import PtyProcessUnicode
from terminado.management import PtyWithClients

RESIZE_CHANNEL = 4


class _RemoteShellPty(PtyProcessUnicode):
    """``ptyproc`` for a shell with no local process: alive while the pump runs; killing it ends the
    exec session."""

    def __init__(self, fd: int, terminal: ExecTerminal) -> None:
        super().__init__(-1, fd, codec_errors="replace")
        self._terminal = terminal
        self.delayafterclose = 0.0  # no local process to wait for

    def isalive(self) -> bool:
        return self._terminal.pumping()

    def kill(self, sig: int) -> None:
        self._terminal.end()

    def terminate(self, force: bool = False) -> bool:
        self._terminal.end()
        return True

    def wait(self) -> int:
        self._terminal.end()
        return 0


class ExecTerminal(PtyWithClients):
    """A terminado terminal on a pods/exec session (see module docstring)."""

    def __init__(self, ws: Any) -> None:
        # PtyWithClients.__init__ would spawn a local process: set up its attributes here instead.
        self.clients: list[Any] = []
        self.read_buffer: deque[str] = deque(maxlen=1000)
        self.ws = ws
        master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.ptyproc = _RemoteShellPty(master, self)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, name="pai-k8s-exec", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, core: Any, pod: str, namespace: str, container: str) -> ExecTerminal:
        from kubernetes.stream import stream

        ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                    command=["/bin/sh", "-c", "command -v bash >/dev/null && exec bash -i || exec sh -i"],
                    stdin=True, stdout=True, stderr=True, tty=True, binary=True, _preload_content=False)
        return cls(ws)

    def pumping(self) -> bool:
        return self._thread.is_alive()

    def killpg(self, sig: int = signal.SIGTERM) -> None:
        self.end()

    def end(self) -> None:
        """Close the exec session; the pump closes the slave side, and the terminal reads end of file."""
        self._stop.set()
        try:
            self.ws.close()
        except Exception:
            pass
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _winsize(self) -> tuple[int, int]:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(self._slave, termios.TIOCGWINSZ, b"\0" * 8))
        return rows, cols

    def _pump(self) -> None:
        ws, slave = self.ws, self._slave
        size = self._winsize()
        try:
            while not self._stop.is_set() and ws.is_open():
                ready, _, _ = select.select([slave], [], [], 0.05)
                if ready:
                    data = os.read(slave, 65536)
                    if data:
                        ws.write_stdin(data)
                new = self._winsize()
                if new != size and new[0] and new[1]:
                    size = new
                    ws.write_channel(RESIZE_CHANNEL, json.dumps({"Height": new[0], "Width": new[1]}))
                ws.update(timeout=0)
                for channel in (1, 2):
                    out = ws.read_channel(channel, timeout=0) if ws.peek_channel(channel, timeout=0) else b""
                    if out:
                        os.write(slave, out.encode() if isinstance(out, str) else out)
        except OSError:
            pass
        finally:
            # Closing the slave makes reads of the master end (EIO): the hub sees the shell end.
            try:
                os.close(slave)
            except OSError:
                pass
