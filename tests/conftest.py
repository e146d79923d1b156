from __future__ import annotations

import os

import pytest

from tests.requirements import require_reference, require_tool
from tests.server import running_server


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs_reference(*paths): the test fails, saying how to get it, "
                                       "when shared/reference data is missing (tests/requirements.py)")
    config.addinivalue_line("markers", "needs_tool(name, how): the test fails, saying how to install it, "
                                       "when the program is not on PATH (tests/requirements.py)")


@pytest.fixture(autouse=True)
def _required(request: pytest.FixtureRequest) -> None:
    """Apply the needs_* markers: a test whose requirement is missing fails, it never skips."""
    for mark in request.node.iter_markers("needs_reference"):
        require_reference(*mark.args)
    for mark in request.node.iter_markers("needs_tool"):
        require_tool(*mark.args)


#: The umask the test run started with: a test that embeds the server (PaiHub.start_services sets the
#: server's private umask 077 on its process) must not leave later tests' files private to root.
_UMASK = os.umask(0o022)
os.umask(_UMASK)


@pytest.fixture(autouse=True)
def _umask_restored():
    yield
    os.umask(_UMASK)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One control plane per test module (4 simulated GPUs, 16 schedulable CPUs)."""
    with running_server(tmp_path_factory.mktemp("pai")) as srv:
        yield srv
