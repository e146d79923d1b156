"""PAI from notebooks: ``%pai`` / ``%%pai`` magics, ipywidgets views, and the Python client.

``%load_ext pai_magics`` registers the magics. Inside a hub-spawned notebook they are loaded
automatically when the kernel's environment has ``PYTHONSTARTUP`` pointing at
:data:`STARTUP_FILE` (see :func:`autoload_env`; docs/notebook.md). The client
(:mod:`pai_client.client`) has no IPython dependency.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STARTUP_FILE = str(Path(__file__).with_name("startup.py"))


def load_ipython_extension(ipython: Any) -> None:
    from .magics import PaiMagics

    ipython.register_magics(PaiMagics(ipython))


def unload_ipython_extension(ipython: Any) -> None:
    magics = ipython.magics_manager.magics
    magics["line"].pop("pai", None)
    magics["cell"].pop("pai", None)


def autoload_env() -> dict[str, str]:
    """Environment variables that make every IPython kernel started with them load the magics
    (what a spawner adds to the notebook server's environment)."""
    return {"PYTHONSTARTUP": STARTUP_FILE}


def last_view() -> Any:
    """The job view made last by ``%%pai submit`` or ``%pai status``."""
    from .widgets import last_view as _last_view

    return _last_view()
