"""``python -m pai_hub.hub`` (``make run``): the whole platform on one machine.

JupyterHub + configurable-http-proxy + the PAI control plane as a hub-managed service (local
backend, SQLite) + the idle culler. On first start it creates the data directory's secrets (0600):
the PAI service's hub token and the first admin's password; it keeps the hub's ports so that
running notebooks still reach the hub after a restart. Once the hub answers it prints the URL and
the first admin's credentials (to the terminal of whoever ran ``make run``; they are kept only in
the private data directory), then runs until SIGINT/SIGTERM (forwarded to the hub).

Like ``pai server``, it runs with umask 0o077 and refuses a data directory others can read
(:mod:`pai_hub.datadir`): the hub's cookie secret and database live there too. ``--isolation``
(default ``$PAI_ISOLATION`` or ``auto``) is resolved here once, so that the hub's configuration and
the PAI service agree on it: with users' own accounts a notebook's home is the account's home, not
a directory of the platform's.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from pai_hub import datadir
from pai_hub.isolation_config import resolve_mode

REPO = Path(__file__).resolve().parents[2]
CONFIG = Path(__file__).with_name("jupyterhub_config.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")


def secret(path: Path, make=lambda: secrets.token_hex(32)) -> str:
    if not path.exists():
        write_secret(path, make())
    return path.read_text().strip()


def find_chp() -> str:
    """configurable-http-proxy: ``node_modules/.bin`` of the repository (``make e2e-deps``), else PATH."""
    local = REPO / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return str(local)
    found = shutil.which("configurable-http-proxy")
    if found:
        return found
    raise SystemExit("pai-hub: configurable-http-proxy not found; run `make e2e-deps` "
                     "(npm install into node_modules/) or install it on PATH")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m pai_hub.hub", description="Run PAI Hub: JupyterHub + PAI.")
    p.add_argument("--ip", default="127.0.0.1", help="address of the public proxy (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="public port (default 8000)")
    p.add_argument("--pai-port", type=int, default=9186, help="port of the PAI REST API (default 9186)")
    p.add_argument("--hub-port", type=int, default=0, help="the hub's internal port (default: chosen once, kept)")
    p.add_argument("--data-dir", default=os.environ.get("PAI_DATA_DIR", str(Path.home() / ".pai-hub")))
    p.add_argument("--admin", default="admin", help="name of the first administrator (default admin)")
    p.add_argument("--simulated-gpus", type=int, default=0, help="GPUs to declare on a machine without any")
    p.add_argument("--node-cpu", type=int, default=0, help="CPUs the node offers to jobs (default: all)")
    p.add_argument("--service-name", default="pai", help="name of the PAI service in the hub (default pai)")
    p.add_argument("--cull-timeout", type=int, default=7200,
                   help="stop notebooks idle this many seconds (default 7200; 0 = never)")
    p.add_argument("--cull-every", type=int, default=0, help="culler period in seconds (default timeout/10, ≥5)")
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                   help="an account to create on first start (repeatable)")
    p.add_argument("--group", action="append", default=[], metavar="GROUP:USER,USER",
                   help="a hub group and its members (repeatable); a group named like a VC grants it")
    p.add_argument("--isolation", default=os.environ.get("PAI_ISOLATION", "auto"),
                   choices=("auto", "none", "users", "sandbox"),
                   help="who notebooks and tasks run as (PaiHub.isolation; default $PAI_ISOLATION or auto: "
                   "sandbox as root with bubblewrap, users as root, else none)")
    p.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="extra jupyterhub config file, loaded last (repeatable)")
    return p.parse_args(argv)


def prepare(args: argparse.Namespace) -> dict:
    """Create the data directory and its secrets; write ``launch.json``; return the launch settings."""
    isolation = resolve_mode(args.isolation)
    data = datadir.prepare(Path(args.data_dir).expanduser().resolve(), traversable=isolation != "none")
    hub_dir = data / "hub"
    hub_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(hub_dir, 0o700)
    secret(hub_dir / "pai-service-token")
    password = secret(hub_dir / "admin-password", lambda: secrets.token_urlsafe(12))
    accounts = {args.admin: password}
    for item in args.user:
        name, sep, pw = item.partition(":")
        if not sep or not name or not pw:
            raise SystemExit(f"--user {item!r}: expected NAME:PASSWORD")
        accounts[name] = pw
    write_secret(hub_dir / "initial-users.json", json.dumps(accounts))
    groups: dict[str, list[str]] = {}
    for item in args.group:
        name, _, members = item.partition(":")
        groups[name] = [m for m in members.split(",") if m]
    ports_file = hub_dir / "ports.json"
    ports = json.loads(ports_file.read_text()) if ports_file.exists() else {}
    if args.hub_port:
        ports["hub_port"] = args.hub_port
    ports.setdefault("hub_port", free_port())
    ports["proxy_api_port"] = free_port()
    ports_file.write_text(json.dumps(ports))
    cull_every = args.cull_every or max(5, min(300, args.cull_timeout // 10))
    launch = {
        "ip": args.ip, "port": args.port, "pai_port": args.pai_port, **ports,
        "data_dir": str(data), "hub_dir": str(hub_dir), "admin": args.admin,
        "service_name": args.service_name, "simulated_gpus": args.simulated_gpus, "node_cpu": args.node_cpu,
        "isolation": isolation,
        "cull_timeout": args.cull_timeout, "cull_every": cull_every, "groups": groups,
        "configs": [str(Path(f).resolve()) for f in args.config], "chp": find_chp(),
    }
    (hub_dir / "launch.json").write_text(json.dumps(launch, indent=2))
    return launch


def wait_up(launch: dict, proc: subprocess.Popen, timeout: float = 120) -> bool:
    base = f"http://{launch['ip']}:{launch['port']}"
    pai = f"http://127.0.0.1:{launch['pai_port']}/api/v2/info"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if (httpx.get(base + "/hub/api/", timeout=2).status_code == 200
                    and httpx.get(pai, timeout=2).status_code == 200):
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def banner(launch: dict) -> str:
    base = f"http://{launch['ip']}:{launch['port']}"
    hub_dir = Path(launch["hub_dir"])
    password = (hub_dir / "admin-password").read_text().strip()
    lines = [
        f"PAI Hub is up: {base}/",
        f"  first admin: {launch['admin']} / {password}   (as set on first start; kept in {hub_dir}/admin-password)",
        f"  PAI pages: {base}/services/{launch['service_name']}/",
        f"  PAI REST API: http://127.0.0.1:{launch['pai_port']}/api/v2 "
        f"(also {base}/services/{launch['service_name']}/api/v2)",
    ]
    token_file = Path(launch["data_dir"]) / "admin-token"
    if token_file.exists():
        lines.append(f"  export PAI_URL=http://127.0.0.1:{launch['pai_port']} PAI_TOKEN={token_file.read_text().strip()}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    datadir.private_umask()  # the hub, its proxy and the PAI service inherit it: their files are born private
    launch = prepare(args)
    env = {**os.environ, "PAI_HUB_LAUNCH": str(Path(launch["hub_dir"]) / "launch.json"), "PYTHONUNBUFFERED": "1"}
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")  # jupyterhub-singleuser of this environment
    for var in ("PAI_URL", "PAI_TOKEN", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_API_URL", "JUPYTERHUB_SERVICE_PREFIX"):
        env.pop(var, None)
    proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(CONFIG)], cwd=launch["hub_dir"], env=env)

    def forward(signum, _frame):
        if proc.poll() is None:
            proc.send_signal(signum)

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    if wait_up(launch, proc):
        print(banner(launch), flush=True)
    elif proc.poll() is None:
        print("pai-hub: the hub or the PAI service did not answer within 120 s; see the log above", flush=True)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue


if __name__ == "__main__":
    sys.exit(main())
