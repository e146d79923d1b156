"""NNI for tests: its own virtual environments (made by scripts/nni-compat-venv.sh under build/, never in
the project venv), and a safety net for NNI managers a server left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.server import REPO

SCRIPT = REPO / "scripts" / "nni-compat-venv.sh"


def nni_venv(version: str, required: bool = True) -> Path | None:
    """The venv with ``nni==version``, created on first use (pip, ~30 s); fail the test if it cannot be
    made (or, with ``required=False``, None: a fixture whose other tests do not need NNI)."""
    proc = subprocess.run(["bash", str(SCRIPT), version], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        if not required:
            return None
        pytest.fail(f"cannot create the NNI {version} virtual environment with {SCRIPT} (it needs PyPI once; "
                    f"run `bash {SCRIPT} {version}` where PyPI is reachable): {proc.stderr.strip()[-500:]}",
                    pytrace=False)
    return Path(proc.stdout.strip().splitlines()[-1])


def reap_nni(data_dir: Path) -> None:
    """NNI managers the server did not stop (it kills them at exit; this is the test's safety net)."""
    for path in (data_dir / "experiments").glob("*/experiment.json"):
        pid = json.loads(path.read_text()).get("pid")
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
