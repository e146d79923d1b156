"""Credentials stay where they were sent: never in the server's log, never passed on to NNI.

Issue 17: a token in ``?token=`` (the NNI web UI link, the hub pages) was written to the access log
and to tornado's warning lines, and the NNI UI proxy forwarded the caller's ``Authorization``
header and cookies to NNI, which needs neither. A real ``pai server`` proxies to a stand-in NNI
manager (a real HTTP server that records the headers it gets), planted as a finished experiment
of alice's whose web UI is kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from benchmarks.local_server import free_port
from tests.server import Server

EXP = "abcd1234"
RECORDER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Recorder(BaseHTTPRequestHandler):
    def do_GET(self):
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps({"path": self.path, "headers": dict(self.headers)}) + "\n")
        body = b'{"nni": "stand-in"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(sys.argv[1])), Recorder).serve_forever()
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[tuple[Server, str, Path]]:
    base = tmp_path_factory.mktemp("creds")
    port = free_port()
    seen = base / "nni-requests.jsonl"
    nni = subprocess.Popen([sys.executable, "-c", RECORDER, str(port), str(seen)], start_new_session=True)
    srv = Server(base / "data", args=("--simulated-gpus", "0"))
    srv.data_dir.mkdir(mode=0o700)
    exp = srv.data_dir / "experiments" / EXP
    exp.parent.mkdir(mode=0o700)  # the server refuses a data directory others may read
    exp.mkdir(mode=0o700)
    (exp / "experiment.json").write_text(json.dumps({
        "id": EXP, "name": "kept", "username": "alice", "state": "DONE", "nniStatus": "DONE", "message": "",
        "createdTime": time.time(), "completedTime": None, "virtualCluster": "default", "searchSpace": {},
        "tuner": {"name": "Random"}, "assessor": None, "maxTrialNumber": 1, "trialConcurrency": 1,
        "trial": {}, "codeDir": str(exp), "port": port, "pid": nni.pid, "uiAvailable": True, "trials": []}))
    (exp / "experiment.json").chmod(0o600)
    try:
        srv.start()
        token = srv.add_user("alice")
        yield srv, token, seen
    finally:
        srv.stop()
        if nni.poll() is None:
            os.killpg(nni.pid, signal.SIGKILL)
        nni.wait(timeout=10)


def server_log(srv: Server) -> str:
    return (srv.data_dir.parent / f"server-{srv.port}.log").read_text(errors="replace")


def test_query_tokens_never_reach_the_log(setup):
    srv, token, _ = setup
    bad = "SECRETVALUE" + "x" * 20
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        # answered 401 (a warning line), 404 (another) and 302 (the access log): each prints the URI
        assert c.get(f"/api/v2/jobs?token={bad}").status_code == 401
        assert c.get(f"/api/v2/nothing-here?x=1&ACCESS_TOKEN={bad}").status_code == 404
        assert c.get(f"/nni/{EXP}/?token={bad}").status_code == 401
        r = c.get(f"/nni/{EXP}/?token={token}&tab=overview")
        assert r.status_code == 302, r.text
        assert r.headers["Location"] == f"/nni/{EXP}/?tab=overview"
    time.sleep(0.5)
    log = server_log(srv)
    assert f"/nni/{EXP}/" in log and "[secret]" in log  # the lines are there, the values are not
    assert bad not in log
    assert token not in log


def test_the_nni_proxy_forwards_neither_authorization_nor_cookies(setup):
    srv, token, seen = setup
    with httpx.Client(base_url=srv.url, timeout=30) as c:
        r = c.get(f"/nni/{EXP}/api/v1/nni/check-status", headers={"Authorization": f"Bearer {token}",
                                                                          "Cookie": "other_site=crumbs"})
        assert r.status_code == 200, r.text
        assert r.json() == {"nni": "stand-in"}
        r = c.get(f"/nni/{EXP}/?token={token}")  # the UI link: the token becomes a cookie for this path
        assert r.status_code == 302
        r = c.get(f"/nni/{EXP}/api/v1/nni/trial-jobs", headers={"Cookie": r.headers["Set-Cookie"].split(";")[0]})
        assert r.status_code == 200, r.text
    requests = [json.loads(line) for line in seen.read_text().splitlines()]
    assert [q["path"] for q in requests] == ["/api/v1/nni/check-status", "/api/v1/nni/trial-jobs"]
    for q in requests:
        names = {k.lower() for k in q["headers"]}
        assert "authorization" not in names and "cookie" not in names, q
        assert token not in json.dumps(q)
