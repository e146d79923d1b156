"""The test Slurm cluster (Debian's slurm-wlm 22.05 + munge on 127.0.0.1, 4 emulated nodes x 4 fake GPUs,
started by scripts/slurm-test-cluster.sh), shared by this package's modules and stopped after them.

Its directory is readable by everybody and its munge socket's directory passable (0711; the key stays
root's 0400): jobs of the isolation tests run as users' accounts, and their debug shells call ``srun``
as those accounts, which needs slurm.conf and munge like any Slurm user on a real cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.requirements import require_tool

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "slurm-test-cluster.sh"


@pytest.fixture(scope="session")
def slurm_conf():
    for tool in ("slurmctld", "slurmd", "munged"):
        require_tool(tool, "make slurm (apt-get install -y --no-install-recommends slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.fail("the test Slurm cluster runs its daemons as root: run the Slurm tests as root", pytrace=False)
    d = tempfile.mkdtemp(prefix="pai-slurm-")
    os.chmod(d, 0o755)
    env = {**os.environ, "SLURM_TEST_PORT": os.environ.get("SLURM_TEST_PORT", "16817")}
    res = subprocess.run([str(SCRIPT), "start", d], env=env, capture_output=True, text=True, timeout=90)
    if res.returncode != 0:
        subprocess.run([str(SCRIPT), "stop", d], env=env, timeout=30)
        pytest.fail(f"test Slurm cluster did not start: {res.stdout}\n{res.stderr}")
    os.chmod(f"{d}/munge", 0o711)
    try:
        yield f"{d}/slurm.conf"
    finally:
        subprocess.run([str(SCRIPT), "stop", d], env=env, timeout=60)
        shutil.rmtree(d, ignore_errors=True)
