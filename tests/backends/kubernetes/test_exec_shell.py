"""The exec adapter: a local PTY in front of an exec websocket. The websocket here is a FAKE
in-process object with the WSClient methods the adapter calls (it echoes stdin on stdout); no API
server is involved."""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import termios
import threading
import time

from pai_hub.backends.kubernetes.shell import RESIZE_CHANNEL, ExecShell


class FakeWs:
    def __init__(self) -> None:
        self.open = True
        self.out: list[bytes] = []
        self.lock = threading.Lock()
        self.channels: list[tuple[int, str]] = []

    def is_open(self) -> bool:
        return self.open

    def write_stdin(self, data: bytes) -> None:
        with self.lock:
            self.out.append(b"echo:" + data)

    def write_channel(self, channel: int, data: str) -> None:
        self.channels.append((channel, data))

    def update(self, timeout: float = 0) -> None:
        pass

    def peek_channel(self, channel: int, timeout: float = 0) -> bool:
        return channel == 1 and bool(self.out)

    def read_channel(self, channel: int, timeout: float = 0) -> bytes:
        with self.lock:
            data, self.out = b"".join(self.out), []
        return data

    def close(self) -> None:
        self.open = False


def read_until(fd: int, needle: bytes, timeout: float = 5.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout
    while needle not in got and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.1)[0]:
            got += os.read(fd, 4096)
    return got


def test_pty_adapter_round_trip_resize_and_close() -> None:
    ws = FakeWs()
    shell = ExecShell.attach(ws)
    assert shell.pid == -1
    os.write(shell.fd, b"ls -l\r")
    assert b"echo:ls -l\r" in read_until(shell.fd, b"echo:ls -l\r")  # raw: bytes pass untouched
    fcntl.ioctl(shell.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # as the hub does
    deadline = time.monotonic() + 5
    while not ws.channels and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ws.channels[-1] == (RESIZE_CHANNEL, json.dumps({"Height": 40, "Width": 120}))
    ws.open = False  # the remote shell ended: the hub reads EOF/EIO from the master side
    deadline = time.monotonic() + 5
    ended = False
    while not ended and time.monotonic() < deadline:
        if select.select([shell.fd], [], [], 0.1)[0]:
            try:
                ended = os.read(shell.fd, 4096) == b""
            except OSError:
                ended = True
    assert ended
    shell.close()
