"""YAML values as OpenPAI stores and shows them: what js-yaml builds, then what ``JSON.stringify`` writes.

OpenPAI's REST server reads a job with js-yaml and keeps it as a JavaScript object; whatever it
stores or answers is that object through JSON. PyYAML builds Python types JSON has no form for
(``date``, ``datetime``, ``bytes``, ``set``, tuples, NaN), and one of them anywhere in a job used
to reach the store's JSON columns and fail the commit. The job loader (:mod:`.parse`) therefore
builds, at construction time, the JSON value OpenPAI ends up with:

==================  =========================================  ==========================================
YAML                js-yaml (JavaScript)                        here (JSON)
==================  =========================================  ==========================================
``2001-01-01``,     ``Date`` (UTC; years 0–99 read as 1900–99,  ``"2001-01-01T00:00:00.000Z"``, exactly
timestamps          out-of-range parts roll over, as            ``Date.prototype.toISOString``
                    ``Date.UTC``)
``!!binary``        Node ``Buffer``                             the canonical base64 text (see below)
``.nan``, ``.inf``  ``NaN``, ``Infinity``                       ``null`` (``JSON.stringify`` writes null)
``!!set``           ``{a: null, b: null}``                      the same mapping
``!!omap``          ``[{a: 1}, {b: 2}]``                        the same list of one-key mappings
``!!pairs``         ``[[a, 1], [b, 2]]``                        the same list of pairs
mapping keys        ``String(key)``: ``1`` → ``"1"``,           the same strings (a date key: its ISO
                    ``true`` → ``"true"``, ``~`` → ``"null"``   form, where JavaScript writes its long
                                                                ``Date.toString`` form)
==================  =========================================  ==========================================

Integers stay Python integers, whatever their size (JSON holds them; js-yaml makes them numbers,
so past about 1.8e308 OpenPAI sees Infinity and its schema refuses one where an integer is wanted,
as :mod:`.models` does).

``!!binary`` is the one deliberate difference: ``JSON.stringify`` of a Node ``Buffer`` is
``{"type": "Buffer", "data": [byte, …]}``, a Node artefact that is no longer a string where the
schema wants one (a secret used in ``<% $secrets.x %>``, a registry password). The base64 text the
user wrote (whitespace removed) is kept instead: it is a string, and decodes to the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from typing import Any

__all__ = ["binary_text", "iso_timestamp", "js_key", "js_number_text"]

# js-yaml's (and YAML 1.1's) two timestamp forms.
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_TIMESTAMP_RE = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:[Tt]|[ \t]+)([0-9]{1,2}):([0-9]{2}):([0-9]{2})"
    r"(?:\.([0-9]*))?"
    r"(?:[ \t]*(Z|([-+])([0-9]{1,2})(?::([0-9]{2}))?))?"
)
_MS_PER_DAY = 86_400_000


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days from 1970-01-01 to a proleptic Gregorian date (month 1–12), for any year."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """The inverse of :func:`_days_from_civil`."""
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def _date_utc(year: int, month0: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
              ms: int = 0) -> int:
    """JavaScript's ``Date.UTC``: milliseconds since the epoch; every part may overflow into the next."""
    if 0 <= year <= 99:
        year += 1900
    year += month0 // 12
    month0 %= 12
    days = _days_from_civil(year, month0 + 1, 1) + day - 1
    return days * _MS_PER_DAY + ((hour * 60 + minute) * 60 + second) * 1000 + ms


def _to_iso(ms: int) -> str:
    """``Date.prototype.toISOString``: ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (six-digit signed years outside 0–9999)."""
    days, rest = divmod(ms, _MS_PER_DAY)
    year, month, day = _civil_from_days(days)
    seconds, millis = divmod(rest, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    shown = f"{year:04d}" if 0 <= year <= 9999 else f"{'+' if year > 0 else '-'}{abs(year):06d}"
    return f"{shown}-{month:02d}-{day:02d}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def iso_timestamp(text: str) -> str | None:
    """A YAML date or timestamp as js-yaml reads it and ``JSON.stringify`` writes it; None when
    ``text`` is neither form."""
    match = _DATE_RE.fullmatch(text)
    if match:
        year, month, day = (int(g) for g in match.groups())
        return _to_iso(_date_utc(year, month - 1, day))
    match = _TIMESTAMP_RE.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or "")[:3].ljust(3, "0")
    ms = _date_utc(year, month - 1, day, hour, minute, second, int(fraction))
    if match.group(9):
        delta = (int(match.group(10)) * 60 + int(match.group(11) or 0)) * 60_000
        ms -= delta if match.group(9) == "+" else -delta
    return _to_iso(ms)


def binary_text(text: str) -> str | None:
    """A ``!!binary`` scalar's base64 with whitespace removed, once checked to decode; None if it does not."""
    compact = "".join(text.split())
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None
    return compact


def js_number_text(value: float) -> str:
    """``String(number)`` for the numbers YAML can write (integral ones without ``.0``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    mantissa, sep, exponent = text.partition("e")
    if not sep:
        return text
    sign = "-" if exponent.startswith("-") else "+"
    return f"{mantissa}e{sign}{exponent.lstrip('+-').lstrip('0') or '0'}"


def js_key(key: Any) -> Any:
    """A mapping key as a JavaScript object holds it (a string); anything unhashable or structured
    is returned as it is, for the loader to refuse."""
    if isinstance(key, str):
        return key
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, int):
        return str(key)
    if isinstance(key, float):
        return js_number_text(key)
    return key
