"""Profiles: what a user may pick on the spawn form (kubespawner's ``profile_list`` shape).

A profile is a dict set in ``jupyterhub_config.py``::

    {"display_name": "1 GPU (V100)", "slug": "v100", "description": "for training",
     "default": False, "vc": "default", "sku": "V100", "gpu": 1, "cpu": 4, "memoryMB": 16384}

``vc`` is the virtual cluster the notebook's job runs in (and counts against); ``sku`` the cell
type (HiveD's ``skuType``), optional; ``gpu``/``cpu``/``memoryMB`` the task's resources. A user
sees the profiles whose VC they may use; pure functions here, the spawner does the I/O.
"""

from __future__ import annotations

import html
import re
from difflib import get_close_matches
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

from pai_hub.protocol.field_errors import field_errors

DEFAULT_PROFILES: list[dict[str, Any]] = [
    {"display_name": "CPU notebook", "slug": "cpu", "description": "1 CPU, 2 GB memory, no GPU",
     "default": True, "vc": "default", "gpu": 0, "cpu": 1, "memoryMB": 2048},
    {"display_name": "1 GPU", "slug": "gpu-1", "description": "1 GPU, 2 CPUs, 8 GB memory",
     "vc": "default", "gpu": 1, "cpu": 2, "memoryMB": 8192},
]


class ProfileError(ValueError):
    """A profile that is malformed or not available to the user."""


# What each field should hold: the fix an error message offers (profile_list is admin-written Python).
HINTS = {
    "display_name": 'the name on the spawn form, e.g. "display_name": "1 GPU (V100)"',
    "slug": 'letters, digits and dashes, e.g. "slug": "v100"; empty: made from display_name',
    "description": "a line of text under the name",
    "default": "True for the profile picked when the user picks none",
    "vc": 'the virtual cluster the notebook runs in, e.g. "vc": "default"',
    "sku": 'a SKU type of the VC (GET /api/v2/cluster/sku-types), e.g. "sku": "V100"',
    "gpu": 'a whole number, e.g. "gpu": 1, not "1"',
    "cpu": 'a whole number, e.g. "cpu": 4, not "4"',
    "memoryMB": 'a whole number of MB, e.g. "memoryMB": 16384',
    "image": 'a docker image, e.g. "image": "python:3.11"; empty: c.PaiSpawner.image',
}
OPTION_HINTS = {"profile": 'the slug of a profile offered to you, e.g. {"profile": "gpu-1"}'}


class Profile(BaseModel):
    """One profile of ``c.PaiSpawner.profile_list``: what a notebook runs on. Types are strict
    (``"cpu": "2"`` is refused, not read as 2) and unknown keys are refused (a typo such as
    ``memoryMb`` would otherwise be ignored silently and the default used)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    display_name: str = Field(min_length=1)
    slug: str = ""
    description: str = ""
    default: bool = False
    vc: str = Field("default", min_length=1)
    sku: str | None = None
    gpu: int = Field(0, ge=0)
    cpu: int = Field(1, ge=0)
    memoryMB: int = Field(2048, ge=0)
    image: str | None = None

    @model_validator(mode="after")
    def _slug(self) -> Profile:
        self.slug = slug_of({"slug": self.slug, "display_name": self.display_name})
        if not self.slug:
            raise ValueError(f"display_name {self.display_name!r} makes an empty slug; set one ({HINTS['slug']})")
        return self


class ProfileList(RootModel[list[Profile]]):
    """The whole list: every slug names one profile."""

    @model_validator(mode="after")
    def _unique_slugs(self) -> ProfileList:
        seen: dict[str, int] = {}
        for i, p in enumerate(self.root):
            if p.slug in seen:
                raise ValueError(f"slug {p.slug!r} of profile_list[{i}] is repeated (profile_list[{seen[p.slug]}] "
                                 "has it too); give each profile its own slug")
            seen[p.slug] = i
        return self


class UserOptions(BaseModel):
    """What a spawn request may ask for (the form, or the body of ``POST /hub/api/users/<u>/server``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    profile: str | None = None


def _error(exc: ValidationError, where: str, hints: dict[str, str]) -> ProfileError:
    """The validation errors as one message that names each field by its path and says the fix."""
    parts = []
    for path, reason in field_errors(exc, hints):
        part = f"{where}{'.' if path and not path.startswith('[') else ''}{path}: {reason}"
        if reason.startswith("unknown key"):
            close = get_close_matches(path.rsplit(".", 1)[-1], list(hints), n=1, cutoff=0.5)
            part += f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(hints)}"
        parts.append(part)
    return ProfileError("; ".join(parts))


def slug_of(profile: dict[str, Any]) -> str:
    slug = profile.get("slug") or profile.get("display_name") or ""
    return re.sub(r"[^a-z0-9-]+", "-", str(slug).lower()).strip("-")


def normalize(profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Validate ``profile_list`` and fill in slugs and defaults; a :class:`ProfileError` names the
    field (``profile_list[1].gpu``) and what it should hold."""
    try:
        return [p.model_dump() for p in ProfileList.model_validate(list(profiles)).root]
    except ValidationError as exc:
        raise _error(exc, "profile_list", HINTS) from None


def check_user_options(options: dict[str, Any] | None) -> UserOptions:
    """The spawn request's options, checked: an unknown key or a non-string profile is refused."""
    try:
        return UserOptions.model_validate(options or {})
    except ValidationError as exc:
        raise _error(exc, "user_options", OPTION_HINTS) from None


def allowed(profiles: list[dict[str, Any]], vcs: set[str],
            skus_by_vc: dict[str, set[str] | None] | None = None) -> list[dict[str, Any]]:
    """The profiles a user with these VCs may use; a profile naming a SKU also needs that SKU in
    its VC when ``skus_by_vc`` knows the VC's SKUs (None = unknown: not filtered)."""
    skus_by_vc = skus_by_vc or {}
    out = []
    for p in profiles:
        if p["vc"] not in vcs:
            continue
        offered = skus_by_vc.get(p["vc"])
        if p.get("sku") and offered is not None and p["sku"] not in offered:
            continue
        out.append(p)
    return out


def choose(profiles: list[dict[str, Any]], user_options: dict[str, Any]) -> dict[str, Any]:
    """The profile ``user_options`` picks (``{"profile": slug}``), else the default, else the first."""
    slug = check_user_options(user_options).profile
    if not profiles:
        raise ProfileError("no profile is available to you: ask an administrator for access to a "
                           "virtual cluster")
    if slug:
        for p in profiles:
            if p["slug"] == slug:
                return p
        raise ProfileError(f"profile {slug!r} is not available to you; available: "
                           f"{', '.join(p['slug'] for p in profiles)}")
    return next((p for p in profiles if p.get("default")), profiles[0])


def resources_text(p: dict[str, Any]) -> str:
    parts = [f"VC {p['vc']}"]
    if p.get("sku"):
        parts.append(f"SKU {p['sku']}")
    parts += [f"{p['gpu']} GPU", f"{p['cpu']} CPU", f"{p['memoryMB']} MB"]
    return " · ".join(parts)


def render_form(profiles: list[dict[str, Any]], selected: str | None = None) -> str:
    """The options form: one radio card per profile (what kubespawner renders), Bootstrap 5 classes."""
    if not profiles:
        return ('<div class="alert alert-warning" id="pai-no-profiles">No profile is available to you: '
                "ask an administrator for access to a virtual cluster.</div>")
    default = selected or next((p["slug"] for p in profiles if p.get("default")), profiles[0]["slug"])
    rows = []
    for p in profiles:
        slug = html.escape(p["slug"])
        checked = " checked" if p["slug"] == default else ""
        rows.append(
            f'<div class="form-check border rounded p-2 mb-2 ps-5 pai-profile" data-vc="{html.escape(p["vc"])}">'
            f'<input class="form-check-input" type="radio" name="profile" id="profile-{slug}" value="{slug}"{checked}>'
            f'<label class="form-check-label w-100" for="profile-{slug}">'
            f'<strong>{html.escape(str(p["display_name"]))}</strong>'
            f'<div class="text-muted small">{html.escape(str(p.get("description") or ""))}</div>'
            f'<div class="small">{html.escape(resources_text(p))}</div></label></div>'
        )
    return '<div id="pai-profiles"><h4 class="mb-3">Choose a profile</h4>' + "".join(rows) + "</div>"
