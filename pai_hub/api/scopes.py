"""What an application token may not do: OpenPAI's ``checkNotApplication`` (notes §2.1–2.2, "N").

OpenPAI gives scripts application tokens (no expiry, Basic auth allowed) and keeps them from
managing accounts: every route marked N in its route list — changing users and groups, listing,
creating and revoking tokens, logging out, writing virtual clusters — answers an application token
403 ``ForbiddenUserError`` "Applications are not allowed to do this operation." before any admin
check. Jobs, reads of users, groups, VCs and storages stay open to them. Handlers list the methods
they guard in ``user_token_methods``; ``tests/api/test_scopes.py`` holds the table to OpenPAI's.
"""

from __future__ import annotations

from .base import BaseHandler
from .errors import forbidden

APPLICATIONS_REFUSED = "Applications are not allowed to do this operation."


class UserTokenOnly(BaseHandler):
    """A handler whose methods in :attr:`user_token_methods` refuse application tokens (403)."""

    #: HTTP methods an application token may not call here (OpenPAI's N routes)
    user_token_methods: frozenset[str] = frozenset({"POST", "PUT", "DELETE"})

    async def prepare(self) -> None:
        await super().prepare()
        principal = self.principal
        if principal is not None and principal.application and self.request.method in self.user_token_methods:
            raise forbidden(APPLICATIONS_REFUSED)
