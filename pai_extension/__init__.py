"""The Jupyter server extension of PAI Hub (docs/notebook.md).

Enabled on install (``etc/jupyter/jupyter_server_config.d/pai_extension.json``), it serves, under
the notebook server's base URL:

* ``/pai/api/context`` — this server's own PAI job (the notebook is itself a job), VC and GPUs;
* ``/pai/api/...`` — the PAI REST API (``/api/v2/...``; ``/pai/api/marketplace/...`` is the
  marketplace), called as the server's user with the server's own token, so the Lab extension
  needs none; PAI itself shows a user only their own jobs;
* ``/pai/api/jobs/{user~job}/tasks/{role}/{index}/terminal`` — a websocket terminal into a task
  (a failed task kept for debugging, or a running one), proxied to PAI's terminal.
"""

from __future__ import annotations

from typing import Any

from .app import PaiExtensionApp

__all__ = ["PaiExtensionApp"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    return [{"module": "pai_extension", "app": PaiExtensionApp}]
