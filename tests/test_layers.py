"""Imports point one way (ARCHITECTURE.md §10, docs/architecture.md "Layers").

Every module's imports are read with :mod:`ast`, including imports inside functions and under
``TYPE_CHECKING`` (a lazy import is still a dependency), and each edge is checked against the rules
below. A second test imports the client side in a fresh interpreter and checks that no server
package and no SQLAlchemy came along.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pai_hub", "pai_runtime", "pai_client", "pai_magics", "pai_spawner", "pai_extension")

# What the layers are: a module belongs to the first prefix it starts with.
PURE_CORE = (
    "pai_hub.protocol",
    "pai_hub.scheduler",
    "pai_hub.orchestrator.machine",
    "pai_hub.orchestrator.records",
    "pai_hub.orchestrator.effects",
    "pai_hub.orchestrator.states",
    "pai_hub.orchestrator.specs",
    "pai_hub.core",
    "pai_hub.simulator",
)
SERVER = ("pai_hub",)
CLIENT = ("pai_client", "pai_magics", "pai_spawner", "pai_extension")
RUNTIME = ("pai_runtime",)
WEB_AND_IO = ("tornado", "sqlalchemy", "alembic", "httpx", "requests", "jupyterhub", "jupyter_server",
              "kubernetes", "prometheus_client", "pynvml")

# (importer layer, forbidden import prefixes, why)
RULES: list[tuple[tuple[str, ...], tuple[str, ...], str]] = [
    (PURE_CORE,
     ("pai_hub.store", "pai_hub.api", "pai_hub.backends", "pai_hub.orchestrator.loop", "pai_hub.app",
      "pai_hub.hub", "pai_hub.admin", "pai_hub.monitoring", "pai_hub.marketplace", "pai_hub.experiments",
      *CLIENT, *WEB_AND_IO),
     "the pure core does no I/O: it imports no store, API, backend, client or web framework"),
    (("pai_hub.store",),
     ("pai_hub.orchestrator.loop", "pai_hub.orchestrator.machine", "pai_hub.api", "pai_hub.backends",
      "pai_hub.app", *CLIENT),
     "the store persists the core's records; it never imports the loop, the machine or the API"),
    (RUNTIME, ("pai_hub", *CLIENT),
     "pai_runtime runs inside tasks: it imports nothing from the server or the client"),
    (CLIENT, ("pai_hub.store", "pai_hub.api", "pai_hub.orchestrator", "pai_hub.scheduler", "pai_hub.backends",
              "pai_hub.app", "pai_hub.hub", "pai_hub.admin", "pai_hub.monitoring", "pai_hub.marketplace",
              "pai_hub.experiments", "pai_hub.simulator", "pai_hub.cli", "sqlalchemy", "alembic"),
     "client-side code imports the one client and the protocol models only"),
]

# The one documented exception: the experiments' trial launcher runs inside NNI's own venv, where
# only the standard library is importable (docs/experiments.md).
STDLIB_ONLY = ("pai_hub.experiments.launcher",)


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> list[tuple[int, str]]:
    """Every module named by an import statement anywhere in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from pai_hub import store` names a module too
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                "import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            found.append((node.lineno, node.args[0].value))
    return found


def _in(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _all_modules() -> list[tuple[Path, str]]:
    out = []
    for package in PACKAGES:
        base = ROOT / package
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*.py")):
            if "migrations" in path.parts or "node_modules" in path.parts:
                continue
            out.append((path, _module_name(path)))
    return out


def test_client_package_exists() -> None:
    assert (ROOT / "pai_client" / "__init__.py").is_file(), "pai_client/ is the one client package"


def test_imports_point_one_way() -> None:
    bad: list[str] = []
    for path, module in _all_modules():
        for line, target in _imports(path, module):
            for layer, forbidden, why in RULES:
                if _in(module, layer) and _in(target, forbidden):
                    bad.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target} ({why})")
            if _in(module, STDLIB_ONLY):
                top = target.split(".")[0]
                if top and top not in sys.stdlib_module_names and top != "__future__":
                    bad.append(f"{path.relative_to(ROOT)}:{line}: {module} must stay stdlib-only, imports {target}")
    assert not bad, "forbidden imports:\n" + "\n".join(bad)


def test_api_reads_through_the_read_model() -> None:
    """Handlers and pages never reach through ``controller.machine`` or ``machine.scheduler``."""
    bad = []
    for path, module in _all_modules():
        if _in(module, ("pai_hub.orchestrator", "pai_hub.simulator")):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("machine", "scheduler") and \
                    isinstance(node.value, ast.Attribute) and node.value.attr in ("controller", "machine"):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.value.attr}.{node.attr}")
    assert not bad, "reach-through chains (use the Controller's read model):\n" + "\n".join(bad)


@pytest.mark.parametrize("module", ["pai_client", "pai_magics", "pai_spawner", "pai_extension",
                                    "pai_client.cli"])
def test_client_side_loads_no_server_code(module: str) -> None:
    probe = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic') or "
        "(m.startswith('pai_hub.') and not m.startswith('pai_hub.protocol')) ); print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing {module} loaded server code: {out.stdout.strip()}"


def test_runtime_loads_no_server_code() -> None:
    probe = ("import sys, pai_runtime, pai_runtime.render, pai_runtime.supervisor, pai_runtime.launcher; "
             "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in ('pai_hub', 'sqlalchemy'))))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"pai_runtime loaded: {out.stdout.strip()}"
