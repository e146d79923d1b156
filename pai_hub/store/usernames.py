"""The one rule for PAI usernames, checked wherever a user comes into being.

A username becomes part of paths (task directories, homes, the Unix account ``pai-{username}``),
of job names (``{username}~{job}``) and of URLs (``/users/{username}``), so it must never be able
to name another place: ``.`` and ``..``, ``/``, ``\\``, NUL, a leading ``-`` (read as an option by
``useradd``/``sudo``) and ``~`` (the job-name separator, and the mark of a deleted user's
tombstone, see :meth:`UserRepository.delete`) are refused, as are over-long names and names outside
a small ASCII set (a Unix account name must be portable, POSIX's portable filename set plus ``@``
for e-mail-like hub names). ``me`` is refused because ``/users/me`` means the caller.

The admin API, ``pai user add`` (through :meth:`UserRepository.create`), the hub mirror and the
login form all call :func:`check_username`; errors name the field and the rule, so the API can
answer OpenPAI's ``{code, message}`` with them unchanged.
"""

from __future__ import annotations

import re

MAX_LENGTH = 64
RESERVED = frozenset({"me"})
_ALLOWED = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")
RULE = (f"1 to {MAX_LENGTH} characters: ASCII letters, digits, '_', '.', '@' or '-', "
        "starting with a letter, a digit or '_'")


class InvalidUsername(ValueError):
    """A username that breaks the rule; ``str()`` names the field and the rule."""


def check_username(name: object) -> str:
    """``name`` if it is a valid PAI username, else :class:`InvalidUsername` saying why."""
    if not isinstance(name, str) or not name:
        raise InvalidUsername(f"username: required, {RULE}")
    if len(name) > MAX_LENGTH:
        raise InvalidUsername(f"username: {len(name)} characters is too long; {RULE}")
    if name in RESERVED:
        raise InvalidUsername(f"username: {name!r} is reserved")
    if not _ALLOWED.fullmatch(name):
        raise InvalidUsername(f"username: {name[:MAX_LENGTH]!r} is not allowed; {RULE}")
    return name


def is_username(name: object) -> bool:
    try:
        check_username(name)
    except InvalidUsername:
        return False
    return True
