"""A job's tags (OpenPAI's ``PUT/DELETE /jobs/{fw}/tag``): one column of the job's row.

The list filters ``tagsContain``/``tagsNotContain`` read the same column (:mod:`.history`).
"""

from __future__ import annotations

from sqlalchemy import update

from .db import Store
from .models import Job


def set_tags(store: Store, job_id: int, tags: list[str]) -> None:
    """Store ``tags`` as the job's tags (the caller decided the whole list)."""
    with store.engine.begin() as conn:
        conn.execute(update(Job).where(Job.id == job_id).values(tags=list(tags)))
