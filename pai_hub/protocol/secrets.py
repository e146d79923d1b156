"""Keeping secrets out of stored job configs (OpenPAI ``utils/protocolSecret.js``).

The raw YAML a user submitted is what OpenPAI stores and shows back (``GET /jobs/{fw}/config``),
so its top-level ``secrets:`` block must be masked before it is stored. Masking works on the text,
not on a re-serialised mapping, to keep the user's comments, order and formatting.
"""

from __future__ import annotations

import re
from typing import Any

from .models import JobProtocol

__all__ = ["MASK", "mask_secrets", "masked_config"]

MASK = "******"
_LINE_RE = re.compile(r"[^\n]*\n|[^\n]+")
_SECRETS_KEY_RE = re.compile(r"^secrets[ \t]*:")
_DOCUMENT_MARKER_RE = re.compile(r"^(?:---|\.\.\.)(?:[ \t]|\r?$)")


def _ends_block(line: str) -> bool:
    """A line that starts a new top-level entry (or document) ends the ``secrets:`` block.

    Indented lines, blank lines, comments and ``- item`` lines at column 0 (a compact YAML list
    under ``secrets:``) stay inside the block.
    """
    if not line.strip():
        return False
    if _DOCUMENT_MARKER_RE.match(line):
        return True
    return line[0] not in " \t#-\r\n"


def mask_secrets(yaml_text: str) -> str:
    """Replace the top-level ``secrets:`` block of a job's YAML text with ``secrets: "******"``.

    Works wherever the block is (middle or end of the file); text without a top-level
    ``secrets:`` key is returned unchanged.
    """
    out: list[str] = []
    masking = False
    for line in _LINE_RE.findall(yaml_text):
        if masking:
            if not _ends_block(line):
                continue
            masking = False
        if _SECRETS_KEY_RE.match(line):
            newline = "\r\n" if line.endswith("\r\n") else ("\n" if line.endswith("\n") else "")
            out.append(f'secrets: "{MASK}"{newline}')
            masking = True
            continue
        out.append(line)
    return "".join(out)


def masked_config(job: JobProtocol) -> dict[str, Any]:
    """The job as a plain mapping (as submitted, camelCase keys) with ``secrets`` = ``"******"``."""
    config = job.model_dump(by_alias=True, exclude_unset=True)
    if "secrets" in config:
        config["secrets"] = MASK
    return config
