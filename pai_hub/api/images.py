"""Whether a job's ``dockerImage`` is applied, said where the user looks.

The protocol requires every task role to name a docker image, but only a backend that runs
containers (Kubernetes) applies it; the local and Slurm backends run the commands in the node's own
environment. The image stays recorded in the job's config; the job detail says whether it was
applied (``images``), and a submission or dry run on a backend that does not apply images carries
one warning, so nobody believes their job ran in ``pytorch:2.3`` when it ran in the host's Python.
Backends declare it with ``Backend.applies_images``.
"""

from __future__ import annotations

from typing import Any

#: Images named in one warning at most (a job may have many roles; the warning stays short).
MAX_LISTED = 5


def role_images(config: dict[str, Any]) -> dict[str, str]:
    """Task role → the image URI its ``dockerImage`` prerequisite names (masked config dict)."""
    uris = {p.get("name"): p.get("uri") for p in config.get("prerequisites") or []
            if isinstance(p, dict) and p.get("type") == "dockerimage"}
    out: dict[str, str] = {}
    for role, spec in (config.get("taskRoles") or {}).items():
        ref = spec.get("dockerImage") if isinstance(spec, dict) else None
        if ref:
            out[role] = str(uris.get(ref) or ref)
    return out


def applies_images(backend: Any) -> bool:
    return bool(getattr(backend, "applies_images", False))


def not_applied_notice(backend: Any) -> str:
    name = getattr(backend, "name", "this")
    return (f"not applied on this backend ({name}): the commands run in the node's own environment; "
            "install what the job needs there, or use the kubernetes backend")


def images_view(config: dict[str, Any], backend: Any) -> dict[str, Any] | None:
    """``{taskRoles: {role: uri}, applied, notice}`` for the job detail; None without images."""
    images = role_images(config)
    if not images:
        return None
    applied = applies_images(backend)
    return {"taskRoles": images, "applied": applied, "notice": None if applied else not_applied_notice(backend)}


def submit_warnings(config: dict[str, Any], backend: Any) -> list[str]:
    """One warning when the job names images this backend will not apply; none otherwise."""
    images = role_images(config)
    if not images or applies_images(backend):
        return []
    distinct = sorted(set(images.values()))
    listed = ", ".join(distinct[:MAX_LISTED]) + (f" and {len(distinct) - MAX_LISTED} more"
                                                  if len(distinct) > MAX_LISTED else "")
    return [f"dockerImage {listed}: recorded but {not_applied_notice(backend)}"]
