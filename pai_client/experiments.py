"""An experiment request read from a YAML file (``pai experiment create FILE``, ``%pai nni create``).

FILE is the body of ``POST /api/v2/experiments`` (docs/experiments.md). A relative ``trial.codeDir``
(or any with ``trial.upload: true``) is read here and sent as ``trial.files`` (text files, 1 MiB in
all), so the server need not see this machine's disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import PaiError

MAX_FILES_BYTES = 1 << 20


def load_request(path: str) -> dict[str, Any]:
    """The request body of the experiment in ``path``, its code directory carried along."""
    file = Path(path)
    body = yaml.safe_load(file.read_text()) or {}
    if not isinstance(body, dict):
        raise PaiError(0, "InvalidParametersError", f"{path}: must be a mapping")
    trial = body.get("trial") or {}
    code = trial.get("codeDir")
    if (isinstance(code, str) and not Path(code).is_absolute()) or (code and trial.get("upload")):
        root = (file.parent / code).resolve()
        files, size = {}, 0
        for p in sorted(root.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                text = p.read_text()
                size += len(text)
                if size > MAX_FILES_BYTES:
                    raise PaiError(0, "InvalidParametersError", f"{root}: more than 1 MiB of code; use an "
                                   "absolute codeDir on the server")
                files[str(p.relative_to(root))] = text
        trial = {k: v for k, v in trial.items() if k not in ("codeDir", "upload")}
        trial["files"] = {**files, **(trial.get("files") or {})}
        body["trial"] = trial
    return body
