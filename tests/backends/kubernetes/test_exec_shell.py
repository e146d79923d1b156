"""The exec adapter: a terminado terminal (a local PTY) in front of an exec websocket. The websocket
here is a FAKE in-process object with the WSClient methods the adapter calls (it echoes stdin on
stdout); no API server is involved."""

from __future__ import annotations

import json
import select
import threading
import time

from pai_hub.backends.kubernetes.shell import RESIZE_CHANNEL, ExecTerminal


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


def read_until(terminal: ExecTerminal, needle: str, timeout: float = 5.0) -> str:
    """What the hub reads from the terminal (decoded by it) until ``needle`` has come."""
    got = ""
    deadline = time.monotonic() + timeout
    while needle not in got and time.monotonic() < deadline:
        if select.select([terminal.ptyproc.fd], [], [], 0.1)[0]:
            got += terminal.ptyproc.read(65536)
    return got


def test_pty_adapter_round_trip_resize_and_close() -> None:
    ws = FakeWs()
    terminal = ExecTerminal(ws)
    assert terminal.ptyproc.isalive()
    terminal.ptyproc.write("ls -l\r")  # what the hub's websocket does with ["stdin", "ls -l\r"]
    assert "echo:ls -l\r" in read_until(terminal, "echo:ls -l\r")  # raw: bytes pass untouched
    terminal.ptyproc.setwinsize(40, 120)  # what the hub does with ["set_size", 40, 120]
    deadline = time.monotonic() + 5
    while not ws.channels and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ws.channels[-1] == (RESIZE_CHANNEL, json.dumps({"Height": 40, "Width": 120}))
    ws.open = False  # the remote shell ended: the hub reads end of file from the terminal
    deadline = time.monotonic() + 5
    ended = False
    while not ended and time.monotonic() < deadline:
        if select.select([terminal.ptyproc.fd], [], [], 0.1)[0]:
            try:
                terminal.ptyproc.read(4096)
            except EOFError:
                ended = True
    assert ended
    terminal.ptyproc.close()
    assert not terminal.ptyproc.isalive()


def test_a_character_split_across_two_frames_arrives_whole() -> None:
    """The exec websocket carries bytes: the terminal decodes them once, incrementally."""
    ws = FakeWs()
    euro = "\u20ac".encode()
    terminal = ExecTerminal(ws)
    with ws.lock:
        ws.out.append(b"price: " + euro[:1])
    first = read_until(terminal, "price: ")
    with ws.lock:
        ws.out.append(euro[1:] + b" each\n")
    text = first + read_until(terminal, "each")
    terminal.killpg()  # what the hub does when its websocket closes
    assert "\ufffd" not in text and "price: \u20ac each" in text
    assert not ws.open
