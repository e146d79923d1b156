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
from typing import Any

RESOURCE_KEYS = ("vc", "sku", "gpu", "cpu", "memoryMB", "image")
DEFAULT_PROFILES: list[dict[str, Any]] = [
    {"display_name": "CPU notebook", "slug": "cpu", "description": "1 CPU, 2 GB memory, no GPU",
     "default": True, "vc": "default", "gpu": 0, "cpu": 1, "memoryMB": 2048},
    {"display_name": "1 GPU", "slug": "gpu-1", "description": "1 GPU, 2 CPUs, 8 GB memory",
     "vc": "default", "gpu": 1, "cpu": 2, "memoryMB": 8192},
]


class ProfileError(ValueError):
    """A profile that is malformed or not available to the user."""


def slug_of(profile: dict[str, Any]) -> str:
    slug = profile.get("slug") or profile.get("display_name") or ""
    return re.sub(r"[^a-z0-9-]+", "-", str(slug).lower()).strip("-")


def normalize(profiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill in slugs and defaults; reject what cannot be a PAI task (the error names the profile)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, p in enumerate(profiles):
        if not isinstance(p, dict) or not p.get("display_name"):
            raise ProfileError(f"profile_list[{i}]: a dict with display_name is required")
        q = {"description": "", "vc": "default", "sku": None, "gpu": 0, "cpu": 1, "memoryMB": 2048, **p}
        q["slug"] = slug_of(q)
        if not q["slug"] or q["slug"] in seen:
            raise ProfileError(f"profile_list[{i}]: slug {q['slug']!r} is empty or repeated")
        seen.add(q["slug"])
        for key in ("gpu", "cpu", "memoryMB"):
            if not isinstance(q[key], int) or q[key] < 0:
                raise ProfileError(f"profile_list[{i}].{key}: a non-negative integer is required")
        if not isinstance(q["vc"], str) or not q["vc"]:
            raise ProfileError(f"profile_list[{i}].vc: a virtual cluster name is required")
        out.append(q)
    return out


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
    if not profiles:
        raise ProfileError("no profile is available to you: ask an administrator for access to a "
                           "virtual cluster")
    slug = (user_options or {}).get("profile")
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
