"""Which ``pai`` commands are the server, and handing them to it.

``pai server``, ``pai user add``, ``pai token create`` (they open the store), ``pai simulate`` (the
scheduler on a virtual clock) and ``pai alerts export-rules`` (the server's alert rules) run server
code, which the client side never imports (docs/architecture.md, "Layers"). They are handed, argv
unchanged, to the server's own entry point ``python -m pai_hub.cli``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence

SERVER_COMMANDS = ("server", "user", "token", "simulate")
SERVER_MODULE = "pai_hub.cli"
_GLOBAL_OPTIONS = ("--data-dir", "--url", "--token")  # options of ``pai`` itself that take a value


def is_server_command(argv: Sequence[str]) -> bool:
    """Whether ``pai ARGV`` is one of the server's commands (global options skipped)."""
    i = 0
    while i < len(argv):
        word = argv[i]
        if word in _GLOBAL_OPTIONS:
            i += 2
            continue
        if word.startswith("-"):
            i += 1
            continue
        return word in SERVER_COMMANDS or (word == "alerts" and "export-rules" in argv[i + 1:])
    return False


def run_server_command(argv: Sequence[str], replace_process: bool) -> int:
    """Run ``python -m pai_hub.cli ARGV``: in place of this process (the ``pai`` command: signals
    and the exit status are the server's own), or as a child (``main`` called from Python)."""
    command = [sys.executable, "-m", SERVER_MODULE, *argv]
    if replace_process:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, command)
    return subprocess.call(command)
