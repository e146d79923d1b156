"""A debug shell in a pod behind a local PTY: the adapter between pods/exec and :class:`Shell`.

The hub's terminal reads and writes ``Shell.fd`` and sets the window size with ``TIOCSWINSZ`` on it,
as for a local shell. Here ``fd`` is the master side of a PTY whose slave side is in raw mode and
belongs to no process: a pump thread copies what the hub writes (slave side) to the exec websocket's
stdin channel, copies the remote stdout/stderr (the remote side has its own TTY: ``tty=True``) back to
the slave side, and forwards window-size changes (seen with ``TIOCGWINSZ`` on the slave) on the
resize channel (4). ``pid`` is -1: there is no local process; ``close()`` closes the websocket, which
ends the remote shell (its TTY hangs up).
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import termios
import threading
import tty
from dataclasses import dataclass, field
from typing import Any

from pai_hub.backends.base import Shell

RESIZE_CHANNEL = 4


@dataclass
class ExecShell(Shell):
    ws: Any = None
    slave: int = -1
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    @classmethod
    def open(cls, core: Any, pod: str, namespace: str, container: str) -> ExecShell:
        from kubernetes.stream import stream

        ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, container=container,
                    command=["/bin/sh", "-c", "command -v bash >/dev/null && exec bash -i || exec sh -i"],
                    stdin=True, stdout=True, stderr=True, tty=True, _preload_content=False)
        return cls.attach(ws)

    @classmethod
    def attach(cls, ws: Any) -> ExecShell:
        """Wrap an open exec websocket (a ``kubernetes.stream.ws_client.WSClient``)."""
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        shell = cls(pid=-1, fd=master, ws=ws, slave=slave)
        shell._thread = threading.Thread(target=shell._pump, name="pai-k8s-exec", daemon=True)
        shell._thread.start()
        return shell

    def _winsize(self) -> tuple[int, int]:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(self.slave, termios.TIOCGWINSZ, b"\0" * 8))
        return rows, cols

    def _pump(self) -> None:
        ws, slave = self.ws, self.slave
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
                    out = ws.read_channel(channel, timeout=0) if ws.peek_channel(channel, timeout=0) else ""
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

    def close(self) -> None:
        self._stop.set()
        try:
            self.ws.close()
        except Exception:
            pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        try:
            os.close(self.fd)
        except OSError:
            pass
