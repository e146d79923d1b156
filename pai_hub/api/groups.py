"""Groups and group membership (OpenPAI REST v2 §2.2 #42–#55): how virtual clusters are granted.

Reading groups needs a token; changing them needs an admin and a user token (an application token
is refused, :mod:`.scopes`). Stricter than OpenPAI: a duplicate group is 409 ``ConflictGroupError``
(OpenPAI answered 500) and a missing group is 404; as in OpenPAI, the members of a group that does
not exist are ``[]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .base import BaseHandler
from .errors import ApiError, bad_params
from .scopes import UserTokenOnly

GROUPNAME = re.compile(r"^[A-Za-z0-9_]+$")


def no_group(name: str) -> ApiError:
    return ApiError(404, "NoGroupError", f"Group {name} is not found.")


def _acls(body: dict[str, Any]) -> tuple[bool | None, list[str] | None]:
    """The group's admin flag and VCs, after checking every field's type (400 naming the field):
    a wrongly typed field must not reach the store, where it raised a 500 or was saved as text."""
    for key in ("description", "externalName"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise bad_params(f"{key}: must be a string")
    extension = body.get("extension")
    if extension is not None and not isinstance(extension, dict):
        raise bad_params("extension: must be an object")
    acls = (extension or {}).get("acls")
    if acls is not None and not isinstance(acls, dict):
        raise bad_params("extension.acls: must be an object")
    acls = acls or {}
    admin = acls.get("admin")
    vcs = body.get("virtualClusters", acls.get("virtualClusters"))
    if admin is not None and not isinstance(admin, bool):
        raise bad_params("extension.acls.admin: must be true or false")
    if vcs is not None and (not isinstance(vcs, list) or not all(isinstance(v, str) for v in vcs)):
        raise bad_params("virtualClusters: must be a list of virtual cluster names")
    return admin, vcs


class GroupAccess(UserTokenOnly):
    def check_vcs(self, vcs: list[str] | None) -> None:
        unknown = sorted(set(vcs or []) - set(self.cluster.virtual_clusters))
        if unknown:
            raise ApiError(
                400,
                "NoVirtualClusterError",
                f"virtualClusters: {', '.join(unknown)} do not exist; available: "
                f"{', '.join(sorted(self.cluster.virtual_clusters))}",
            )

    async def _update(self, name: str, data: dict[str, Any]) -> None:
        admin, vcs = _acls(data)
        self.check_vcs(vcs)
        try:
            await self.blocking(
                self.groups.update,
                name,
                description=data.get("description"),
                virtual_clusters=vcs,
                admin=admin,
                external_name=data.get("externalName"),
                extension=data.get("extension"),
            )
        except KeyError:
            raise no_group(name) from None
        self.send({"message": f"update group {name} successfully"}, 201)


class GroupsHandler(GroupAccess):
    async def get(self) -> None:
        self.send(await self.blocking(self.groups.list))

    async def post(self) -> None:
        self.require_admin()
        body = self.json_body()
        name = body.get("groupname")
        if not isinstance(name, str) or not GROUPNAME.match(name):
            raise bad_params("groupname: required; letters, digits and '_' only")
        admin, vcs = _acls(body)
        self.check_vcs(vcs)
        try:
            await self.blocking(
                self.groups.create,
                name,
                str(body.get("description", "")),
                vcs,
                bool(admin),
                str(body.get("externalName", "")),
                body.get("extension") or {},
            )
        except KeyError:
            raise ApiError(409, "ConflictGroupError", f"Group {name} already exists.") from None
        self.send({"message": "group is created successfully"}, 201)

    async def put(self) -> None:
        """OpenPAI's ``PUT /groups`` with ``{data: {groupname, ...}}``."""
        self.require_admin()
        data = self.json_body().get("data") or {}
        if not isinstance(data, dict):
            raise bad_params("data: must be an object")
        name = data.get("groupname")
        if not isinstance(name, str):
            raise bad_params("data.groupname: required")
        await self._update(name, data)


class GroupHandler(GroupAccess):
    async def get(self, name: str) -> None:
        group = await self.blocking(self.groups.get, name)
        if group is None:
            raise no_group(name)
        self.send(group)

    async def put(self, name: str) -> None:
        """Our extension: ``{virtualClusters: [...], description, extension}`` on one group."""
        self.require_admin()
        await self._update(name, self.json_body())

    async def delete(self, name: str) -> None:
        self.require_admin()
        if name in ("default", "admingroup"):
            raise ApiError(403, "ForbiddenUserError", f"Group {name} is built in and cannot be removed.")
        if await self.blocking(self.groups.get, name) is None:
            raise no_group(name)
        await self.blocking(self.groups.delete, name)
        self.send({"message": "group is removed successfully"})


class GroupUsersHandler(BaseHandler):
    async def get(self, name: str) -> None:
        self.require_admin()  # OpenPAI: an unknown group has no members (200 [])
        self.send(await self.blocking(self.groups.members, name))


class _Membership(UserTokenOnly):
    async def apply(self, action: Callable[..., None], *args: Any) -> None:
        try:
            await self.blocking(action, *args)
        except KeyError:
            raise ApiError(404, "NoUserError", f"User {args[0]} is not found.") from None
        except LookupError as exc:
            raise ApiError(404, "NoGroupError", f"Group {', '.join(exc.args[0])} is not found.") from None

    def groupname(self) -> str:
        group = self.json_body().get("groupname")
        if not isinstance(group, str) or not GROUPNAME.match(group):
            raise bad_params("groupname: required; letters, digits and '_' only")
        return group


class UserGroupListHandler(_Membership):
    """``PUT /users/{u}/grouplist`` ``{grouplist: [...]}``: replace a user's groups."""

    async def put(self, username: str) -> None:
        self.require_admin()
        groups = self.json_body().get("grouplist")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise bad_params("grouplist: must be a list of group names")
        await self.apply(self.groups.set_membership, username, groups)
        self.send({"message": f"update user {username} grouplist successfully"}, 201)


class UserGroupHandler(_Membership):
    """``PUT|DELETE /users/{u}/group`` ``{groupname}``: add to or remove from one group."""

    async def put(self, username: str) -> None:
        self.require_admin()
        group = self.groupname()
        await self.apply(self.groups.add_member, username, group)
        self.send({"message": f"User {username} is added into group {group}"}, 201)

    async def delete(self, username: str) -> None:
        self.require_admin()
        group = self.groupname()
        await self.apply(self.groups.remove_member, username, group)
        self.send({"message": f"User {username} is removed from group {group}"}, 201)
