"""Job secrets encrypted at rest, with a key that is not in the database.

A job's ``secrets`` (OpenPAI's ``secrets:`` section, rendered into its commands) are stored sealed
with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``): the column holds
``{"$fernet": "<token>"}`` instead of the values, so a copied database, a backup or a task that can
read the database file learns nothing. The key lives in a file of its own, ``secrets.key`` in the
data directory (beside ``pai.sqlite``), mode 0600, created on first start; it must stay unreadable
to everyone else, and a key file with group or other permission bits is refused at start-up
(:class:`SecretKeyError`), as SSH refuses a private key others can read.

Rows written before encryption (plaintext dicts) are read as they are and sealed once, by
:func:`seal_plaintext_rows` when the key is first created (a marker file makes that sweep resume
after a crash). Losing the key loses the secrets of stored jobs, not the jobs: they read as empty.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

log = logging.getLogger("pai_hub.store.secretbox")

SEALED = "$fernet"
KEY_FILE = "secrets.key"


class SecretKeyError(RuntimeError):
    """The key file cannot be used (others may read it, or it is not a key): the server must not start."""


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(SEALED), str)


class SecretBox:
    """Seals and opens job secrets with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def at(cls, path: Path) -> tuple[SecretBox, bool]:
        """The box whose key is in ``path``, creating the key (0600) when missing; and whether it
        was created now."""
        path = Path(path)
        created = False
        if not path.exists():
            created = _create_key(path)
        info = path.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SecretKeyError(f"{path} is readable by other users (mode {stat.filemode(info.st_mode)}): "
                                 f"it decrypts every job's secrets; run `chmod 600 {path}`")
        try:
            key = path.read_bytes().strip()
        except PermissionError:
            raise SecretKeyError(f"{path} is owned by uid {info.st_uid}, not readable by uid {os.geteuid()}: "
                                 "the platform's own user must own it (was it created by `pai user` run "
                                 "as another user?); fix its owner") from None
        try:
            return cls(key), created
        except ValueError as exc:
            raise SecretKeyError(f"{path} does not hold a Fernet key ({exc}); restore it from a backup "
                                 "or move it away (stored jobs' secrets are then lost)") from None

    def seal(self, secrets: dict[str, Any] | None) -> dict[str, Any]:
        """``secrets`` as stored: sealed, or ``{}`` for none (nothing to hide)."""
        if not secrets:
            return {}
        if is_sealed(secrets):
            return secrets
        return {SEALED: self._fernet.encrypt(json.dumps(secrets).encode()).decode()}

    def open(self, stored: Any) -> dict[str, Any]:
        """The secrets of a stored value: sealed ones decrypted, plaintext ones (rows written before
        encryption) as they are; a value sealed with another key reads as ``{}``, logged."""
        if not stored:
            return {}
        if not is_sealed(stored):
            return dict(stored)
        try:
            return json.loads(self._fernet.decrypt(stored[SEALED].encode()))
        except InvalidToken:
            log.error("job secrets sealed with another key (was secrets.key replaced?): read as empty")
            return {}


def _create_key(path: Path) -> bool:
    """Write a new key to ``path`` atomically with mode 0600 (never a moment readable by others, and
    two processes starting at once agree on one key). Whether this call created it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, Fernet.generate_key() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process created it meanwhile: theirs is the key
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink()


def open_box(path: Path, sweep: Any) -> SecretBox:
    """The box of the key at ``path``; when the key is new (or an earlier sweep did not finish),
    ``sweep(box)`` seals the rows stored before encryption. A marker file beside the key, written
    before the key and removed after the sweep, makes an interrupted sweep run again."""
    marker = path.with_name(path.name + ".sweep")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        marker.touch(mode=0o600)
    box, _ = SecretBox.at(path)
    if marker.exists():
        sealed = sweep(box)
        if sealed:
            log.info("sealed the secrets of %d job(s) stored before encryption", sealed)
        marker.unlink()
    return box
