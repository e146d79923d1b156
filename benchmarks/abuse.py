"""What one hostile user's request costs everyone else (issue 17): ``python -m benchmarks.abuse``.

A real ``pai server``; a victim user polls ``GET /api/v2/jobs/<their job>`` in a loop the whole
time while an attacker (an ordinary authenticated user, or nobody for logins) sends, one after the
other: a job with ``instances: 1000000000`` (a dry run), a YAML "billion laughs" in ``parameters``,
an 800 KB parameter referenced 8,000 times by ``<% %>`` templates, a 16 KiB tail of a 1 GB log,
a flood of wrong-password logins from 8 clients, oversized chunked bodies, a 100,000-deep
experiment request, and 200 event streams held open at once (16 are allowed per user, then 429). For each it prints
the answers' status codes, the server's peak RSS (sampled every 5 ms), and the victim's latency
(p50, p99, max) meanwhile, as JSON. Targets: RSS < 300 MB, the victim's p99 < 100 ms.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from .local_server import job_text, pai_server

RSS_TARGET_MB = 300
P99_TARGET_MS = 100
GB = 1 << 30


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler:
    """The server's RSS every 5 ms and the victim's request latencies, between start() and stop()."""

    def __init__(self, pid: int, victim: httpx.Client, path: str) -> None:
        self.pid, self.victim, self.path = pid, victim, path
        self.peak = 0.0
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _rss(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.005)

    def _poll(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            try:
                self.victim.get(self.path)
            except httpx.HTTPError:
                pass  # counted as the time it took to fail
            self.latencies.append(time.perf_counter() - started)

    def __enter__(self) -> Sampler:
        self.peak = rss_mb(self.pid)
        self._threads = [threading.Thread(target=self._rss, daemon=True), threading.Thread(target=self._poll, daemon=True)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.1)  # the tail of the attack's effect
        self._stop.set()
        for t in self._threads:
            t.join()

    def report(self) -> dict[str, Any]:
        ms = sorted(x * 1000 for x in self.latencies) or [0.0]
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return {"server_peak_rss_mb": round(self.peak, 1), "others_requests": len(self.latencies),
                "others_p50_ms": round(statistics.median(ms), 1), "others_p99_ms": round(p99, 1),
                "others_max_ms": round(ms[-1], 1),
                "targets_met": self.peak < RSS_TARGET_MB and p99 < P99_TARGET_MS}


# -- the attacks: each returns the status codes it got -------------------------------------------

def instances(c: httpx.Client) -> list[int]:
    text = job_text("huge", ["true"], role="w", image="python:3.11", instances=1_000_000_000, memory_mb=256)
    return [c.post("/api/v2/jobs", params={"dryRun": "true"}, content=text).status_code,
            c.post("/api/v2/jobs", content=text.replace("name: huge", "name: huge2")).status_code]


def billion_laughs(c: httpx.Client) -> list[int]:
    levels = ["  l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    levels += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, 10)]
    header = "parameters:\n" + "\n".join(levels) + "\n"
    text = job_text("laughs", ["echo <% $parameters.l9 %>"], role="w", image="python:3.11", instances=1,
                    memory_mb=256, header=header)
    return [c.post("/api/v2/jobs", params={"dryRun": "true"}, content=text).status_code]


def template_blowup(c: httpx.Client) -> list[int]:
    header = f"parameters:\n  big: {'x' * 800_000}\n"
    text = job_text("blowup", ["echo <% $parameters.big %>"] * 8000, role="w", image="python:3.11", instances=1,
                    memory_mb=256, header=header)
    return [c.post("/api/v2/jobs", params={"dryRun": "true"}, content=text).status_code]


def log_tail(c: httpx.Client, path: str) -> list[int]:
    return [c.get(path, params={"tail-mode": "true"}).status_code for _ in range(5)]


def password_flood(url: str, seconds: float = 5.0, clients: int = 8) -> list[int]:
    def one(i: int) -> list[int]:
        codes = []
        deadline = time.monotonic() + seconds
        with httpx.Client(base_url=url, timeout=30) as c:
            while time.monotonic() < deadline:
                codes.append(c.post("/api/v2/authn/basic/login",
                                    json={"username": "victim" if i % 2 else f"nobody{i}",
                                          "password": "wrong-password"}).status_code)
        return codes

    with ThreadPoolExecutor(clients) as pool:
        return [code for codes in pool.map(one, range(clients)) for code in codes]


def oversized_body(port: int, token: str, megabytes: int = 64, times: int = 4) -> list[int]:
    codes = []
    chunk = b"x" * (64 << 10)
    for _ in range(times):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(b"POST /api/v2/jobs HTTP/1.1\r\nHost: pai\r\nTransfer-Encoding: chunked\r\n"
                     b"Authorization: Bearer " + token.encode() + b"\r\n\r\n")
        try:
            for _ in range(megabytes * 16):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # refused before the end: expected
        answer = b""
        try:
            while (data := sock.recv(65536)) and b"\r\n\r\n" not in answer:
                answer += data
        except OSError:
            pass
        sock.close()
        codes.append(int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0)
    return codes


def deep_experiment(c: httpx.Client) -> list[int]:
    body = "[" * 100_000 + "]" * 100_000
    return [c.post("/api/v2/experiments", content=body).status_code,
            c.post("/api/v2/experiments", content=body.replace("[", "{\"a\":").replace("]", "}")).status_code]


def stream_flood(port: int, token: str, framework: str, streams: int = 200) -> list[int]:
    """``streams`` event streams of one running job opened at once and held; each answer's status."""
    held, codes = [], []
    request = (f"GET /api/v2/jobs/{framework}/events HTTP/1.1\r\nHost: pai\r\nAccept: text/event-stream\r\n"
               f"Authorization: Bearer {token}\r\n\r\n").encode()
    try:
        for _ in range(streams):
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head and (data := sock.recv(65536)):
                head += data
            codes.append(int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0)
            held.append(sock)
    finally:
        for sock in held:
            sock.close()
    return codes


def grow_log(data_dir: Path, marker: bytes, size: int) -> None:
    """The attacker's own task's stdout, grown to ``size`` bytes (sparse): as a chatty job would."""
    for path in (data_dir / "run" / "tasks").glob("*/stdout"):
        if path.read_bytes().startswith(marker):
            with open(path, "r+b") as f:
                f.truncate(size)
            return
    raise RuntimeError("the attacker's log was not found")


def wait_done(c: httpx.Client, framework: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while c.get(f"/api/v2/jobs/{framework}").json()["jobStatus"]["state"] not in ("SUCCEEDED", "FAILED"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{framework} did not finish")
        time.sleep(0.1)


def run(log_bytes: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="pai-abuse-") as tmp, \
            pai_server(Path(tmp), 16, "--simulated-gpus", "4") as (url, admin_token, proc):
        tokens = {}
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60) as admin:
            for name in ("victim", "attacker"):
                assert admin.post("/api/v2/users", json={"username": name, "password": "secret-pw"}).status_code == 201
                r = httpx.post(url + "/api/v2/authn/basic/login", json={"username": name, "password": "secret-pw"})
                tokens[name] = r.json()["token"]
        victim = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['victim']}"}, timeout=60)
        attacker = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {tokens['attacker']}"}, timeout=120)
        image = "python:3.11"
        assert victim.post("/api/v2/jobs", content=job_text("probe", ["true"], role="w", image=image, instances=1,
                                                            memory_mb=256)).status_code == 202
        assert attacker.post("/api/v2/jobs", content=job_text("chatty", ["echo chatty-log"], role="w", image=image,
                                                              instances=1, memory_mb=256)).status_code == 202
        assert attacker.post("/api/v2/jobs", content=job_text("sleeper", ["sleep 600"], role="w", image=image,
                                                              instances=1, memory_mb=256)).status_code == 202
        wait_done(victim, "victim~probe")
        wait_done(attacker, "attacker~chatty")
        grow_log(Path(tmp) / "data", b"chatty-log", log_bytes)
        tail = "/api/v2/jobs/attacker~chatty/attempts/0/taskRoles/w/taskIndex/0/attempts/0/logs/stdout"
        attacks: list[tuple[str, Callable[[], list[int]]]] = [
            ("idle (no attack)", lambda: [time.sleep(2) or 200]),
            ("instances: 1e9", lambda: instances(attacker)),
            ("billion laughs in parameters", lambda: billion_laughs(attacker)),
            ("800 KB parameter x 8,000 templates", lambda: template_blowup(attacker)),
            (f"16 KiB tail of a {log_bytes // GB} GB log (x5)", lambda: log_tail(attacker, tail)),
            ("wrong-password flood (8 clients, 5 s)", lambda: password_flood(url)),
            ("oversized chunked body (64 MB, x4)",
             lambda: oversized_body(int(url.rsplit(":", 1)[1]), tokens["attacker"])),
            ("100,000-deep experiment request (x2)", lambda: deep_experiment(attacker)),
            ("200 event streams held at once",
             lambda: stream_flood(int(url.rsplit(":", 1)[1]), tokens["attacker"], "attacker~sleeper")),
        ]
        out: dict[str, Any] = {}
        for name, attack in attacks:
            with Sampler(proc.pid, victim, "/api/v2/jobs/victim~probe") as sampler:
                started = time.perf_counter()
                codes = attack()
                seconds = time.perf_counter() - started
            out[name] = {"answers": dict(Counter(str(c) for c in codes)), "seconds": round(seconds, 2),
                         **sampler.report()}
        out["server_lifetime_peak_rss_mb"] = round(rss_mb(proc.pid, "VmHWM"), 1)
        attacker.put("/api/v2/jobs/attacker~sleeper/executionType", json={"value": "STOP"})
        victim.close()
        attacker.close()
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log-gb", type=float, default=1.0, help="size of the log whose tail is read")
    args = parser.parse_args()
    print(json.dumps(run(int(args.log_gb * GB)), indent=2))


if __name__ == "__main__":
    main()
