"""Schemathesis against the served spec (``/api/v2/openapi.json``), as a plain user and as an admin.

Every operation gets its examples, the coverage phase's boundary and invalid values (5,000-digit
numbers, negative offsets, wrong types) and a bounded fuzzing phase. The run must find no server
error (5xx) and no status code the spec does not document. Bounded: ``-n`` examples per operation
and ``--max-time`` per run keep the whole test to a few minutes (it is marked slow).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.requirements import require_module

EXAMPLES = 10
MAX_SECONDS = 90
SEED = 17


def schemathesis(server, token: str, report: Path) -> subprocess.CompletedProcess[str]:
    require_module("schemathesis", "pip install -e '.[test]' (schemathesis is a test dependency)")
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    assert st, "the schemathesis command (st) is not next to this Python: pip install -e '.[test]'"
    return subprocess.run(
        [st, "run", f"{server.url}/api/v2/openapi.json", "--url", server.url,
         "-H", f"Authorization: Bearer {token}",
         "--checks", "not_a_server_error,status_code_conformance",
         "--phases", "examples,coverage,fuzzing", "-n", str(EXAMPLES), "--max-time", str(MAX_SECONDS),
         # logout revokes the token it is called with: the rest of the run would be a guest's
         "--exclude-path", "/api/v2/authn/basic/logout",
         "--seed", str(SEED), "--workers", "1", "--request-timeout", "20",
         "--report", "junit", "--report-dir", str(report)],
        capture_output=True, text=True, timeout=MAX_SECONDS * 4,
    )


def assert_clean(run: subprocess.CompletedProcess[str]) -> None:
    summary = run.stdout[run.stdout.rfind("SUMMARY"):]
    assert run.returncode == 0 and "failure" not in summary, run.stdout[-8000:] + run.stderr[-2000:]
    assert "generated" in summary, summary


@pytest.mark.slow
def test_as_a_plain_user(server, tmp_path):
    assert_clean(schemathesis(server, server.add_user("fuzzy"), tmp_path))


@pytest.mark.slow
def test_as_an_admin(server, tmp_path):
    assert_clean(schemathesis(server, server.admin_token, tmp_path))
