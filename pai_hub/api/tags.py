"""Job tags: ``PUT|DELETE /jobs/{fw}/tag`` with ``{"value": "<tag>"}`` (OpenPAI REST v2 #23–#24).

A tag is any text without a comma (OpenPAI's rule: the list filters take comma-separated tags).
Tags show in the job list and detail and filter the list (``tagsContain``, ``tagsNotContain``).
Only the job's owner or an admin tags it; someone else's job is 404, as every job route answers.

A live job's record is the control plane's: its tags are replaced (a new list, never changed in
place) between turns, after :meth:`Controller.settled`, so the next turn writes what the store
already holds; an ended job's row is updated directly.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..store.tags import set_tags
from .errors import ApiError, bad_params
from .jobs import JobAccess

TAG = re.compile(r"^[^,]+$")
MAX_TAG_CHARS = 256


class TagHandler(JobAccess):
    def tag(self) -> str:
        value = self.json_body().get("value")
        if not isinstance(value, str) or not TAG.match(value) or len(value) > MAX_TAG_CHARS:
            raise bad_params(f"value: a tag of 1 to {MAX_TAG_CHARS} characters without a comma")
        return value

    async def store_tags(self, framework_name: str, change: Callable[[list[str]], list[str]]) -> list[str]:
        await self.controller.settled()
        job = await self.find_job(framework_name)  # the record as of now (live, or stored)
        tags = change(list(job.tags))
        job.tags = tags  # no await since settled(): no turn has read the old list
        await self.blocking(set_tags, self.services.store, job.id, tags)
        return tags

    async def put(self, framework_name: str) -> None:
        tag = self.tag()
        await self.store_tags(framework_name, lambda tags: tags if tag in tags else [*tags, tag])
        self.send({"status": 200, "message": f"Add tag {tag} for job {framework_name} successfully."})

    async def delete(self, framework_name: str) -> None:
        tag = self.tag()
        job = await self.find_job(framework_name)
        if tag not in job.tags:
            raise ApiError(404, "NoTagError", f"Tag {tag} is not found in job {framework_name}.")
        await self.store_tags(framework_name, lambda tags: [t for t in tags if t != tag])
        self.send({"status": 200, "message": f"Delete tag {tag} from job {framework_name} successfully."})
