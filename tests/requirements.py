"""What a test needs that the project provides: when it is missing the test FAILS, saying what is
missing and how to get it. A skipped test is a silent hole in `make test`; a failed one is fixed.

What the project provides: the reference data in ``shared/reference`` beside the checkout, the Python
packages of ``pip install -e '.[test]'`` (``make install``) and the Debian tools ``make e2e-deps``
installs (chromium, prometheus, slurm) and the ``node_modules`` it fetches. The only skips left in the
suite are for what a test machine may truly lack: a Kubernetes cluster (``make e2e-k8s`` with
``$KUBECONFIG``) and a GPU.

Use the functions inside a test or at a module's top; use the markers (registered in
``tests/conftest.py``) on tests or as ``pytestmark``::

    @pytest.mark.needs_reference(JOBS)            # each test fails, the others still run
    @pytest.mark.needs_tool("promtool", "make prometheus")
"""

from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from tests.server import REFERENCE

GET_REFERENCE = (f"the tests read real data from shared/reference beside the checkout ({REFERENCE}); "
                 "put the project's shared/ folder (its reference/ README names every source) there")
GET_TEST_PACKAGES = "install the test dependencies: `make install` (pip install -e '.[test]')"


def _shown(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(REFERENCE.parent.resolve()))
    except ValueError:
        return str(path)


def require_reference(*paths: Path) -> None:
    """Fail the test unless every path of reference data exists."""
    missing = [_shown(p) for p in paths if not Path(p).exists()]
    if missing:
        pytest.fail(f"reference data missing: {', '.join(missing)}; {GET_REFERENCE}", pytrace=False)


def require_tool(name: str, how: str) -> str:
    """The path of the program ``name``; fail the test, saying ``how`` to install it, when it is not on PATH."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed (not on PATH); install it with: {how}", pytrace=False)
    return found


def require_file(path: Path, what: str, how: str) -> Path:
    """A file a make target produces (a built extension, a node_modules binary); fail saying ``how``."""
    if not Path(path).exists():
        pytest.fail(f"{what} is missing ({path}); get it with: {how}", pytrace=False)
    return Path(path)


def require_module(name: str, how: str = GET_TEST_PACKAGES) -> ModuleType:
    """Import ``name``; fail the test, saying ``how`` to install it, when it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        pytest.fail(f"Python module {name!r} is not installed ({exc}); {how}", pytrace=False)
