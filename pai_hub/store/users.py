"""Users, groups and API tokens (standalone mode; under JupyterHub the hub is the user source).

Passwords are argon2id hashes (argon2-cffi's defaults, which it raises as hardware grows); a hash of
the earlier scheme (PBKDF2-SHA512, ``pbkdf2_sha512$rounds$salt$digest``) is still accepted and is
replaced by an argon2 hash at the next successful login. Hashing is slow on purpose: callers on an
event loop run :meth:`UserRepository.verify` and ``create`` off the loop. Tokens are random and
only their SHA-256 is stored. Token look-ups are cached in memory: every API call authenticates,
so this is hot (:meth:`UserRepository.cached` answers from memory only).

Usernames follow one rule (:mod:`.usernames`), checked in :meth:`UserRepository.create`, which every
way of creating a user goes through. A deleted user leaves nothing a new user of the same name could
inherit: tokens and memberships are deleted, and the jobs are handed to a tombstone owner
(``alice~deleted-1``, a name no user can have), so admins still see them and the new ``alice`` does
not. Expired tokens are purged by :meth:`UserRepository.purge_expired_tokens`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update

from .db import Store
from .models import Group, Job, Membership, Token, User
from .usernames import check_username

DEFAULT_GROUP = "default"
ADMIN_GROUP = "admingroup"
_PBKDF2_PREFIX = "pbkdf2_sha512$"
_hasher = PasswordHasher()
#: expired tokens are purged at start-up and after every this many tokens created (logins)
PURGE_EVERY = 64


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from a token."""

    username: str
    admin: bool
    application: bool
    virtual_clusters: frozenset[str] = frozenset()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (an argon2 hash, or one of the earlier PBKDF2 scheme)."""
    if not stored:
        return False
    if stored.startswith(_PBKDF2_PREFIX):
        _, rounds, salt, digest = stored.split("$")
        candidate = hashlib.pbkdf2_hmac("sha512", password.encode(), salt.encode(), int(rounds)).hex()
        return hmac.compare_digest(candidate, digest)
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    """An argon2 hash of a random password, made once: what a login for an unknown user checks."""
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def needs_rehash(stored: str) -> bool:
    """A hash of the earlier scheme, or argon2 with weaker parameters than today's defaults."""
    return stored.startswith(_PBKDF2_PREFIX) or _hasher.check_needs_rehash(stored)


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UserRepository:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[Principal, float | None]] = {}
        self._created = 0

    def ensure_groups(self, virtual_clusters: list[str]) -> None:
        """OpenPAI's basic-mode groups: an admin group and a default group granting the default VC.
        Called once at start-up, so expired tokens are purged here too (and every
        ``PURGE_EVERY`` tokens created)."""
        self.purge_expired_tokens()
        with self.store.sessions.begin() as s:
            if s.get(Group, ADMIN_GROUP) is None:
                s.add(Group(groupname=ADMIN_GROUP, description="administrators", admin=True,
                            virtual_clusters=list(virtual_clusters)))
            if s.get(Group, DEFAULT_GROUP) is None:
                s.add(Group(groupname=DEFAULT_GROUP, description="every user", admin=False,
                            virtual_clusters=["default"]))

    def create(self, username: str, password: str | None = None, admin: bool = False, email: str = "") -> None:
        """Create a user; :class:`~.usernames.InvalidUsername` (a ``ValueError``) for a name breaking
        the rule, ``KeyError`` for one taken."""
        check_username(username)
        with self.store.sessions.begin() as s:
            if s.get(User, username) is not None:
                raise KeyError(username)
            s.add(User(username=username, password_hash=hash_password(password) if password else None,
                       email=email, admin=admin, extension={}, created_at=time.time()))
            s.flush()
            s.add(Membership(username=username, groupname=DEFAULT_GROUP))
            if admin:
                s.add(Membership(username=username, groupname=ADMIN_GROUP))

    def get(self, username: str) -> dict | None:
        with self.store.sessions() as s:
            user = s.get(User, username)
            if user is None:
                return None
            groups = [m.groupname for m in s.scalars(select(Membership).where(Membership.username == username))]
            vcs: set[str] = set()
            admin = bool(user.admin)
            for g in s.scalars(select(Group).where(Group.groupname.in_(groups))):
                vcs.update(g.virtual_clusters)
                admin = admin or bool(g.admin)  # OpenPAI: admin = any of the user's groups has acls.admin
            # storageConfig: the storages the user's groups grant, as OpenPAI's UserInfo shows them (none yet)
            return {"username": user.username, "email": user.email, "admin": admin,
                    "grouplist": sorted(groups), "virtualCluster": sorted(vcs), "extension": user.extension or {},
                    "storageConfig": []}

    def update(self, username: str, *, email: str | None = None, password: str | None = None,
               admin: bool | None = None, extension: dict | None = None, virtual_clusters: list[str] | None = None,
               known_vcs: frozenset[str] = frozenset(), keep_token: str | None = None) -> None:
        """OpenPAI's ``PUT /users`` on one user (``KeyError`` when there is none); only what is given
        changes. ``admin`` is the user's flag and their membership of the admin group;
        ``virtual_clusters`` replaces their VC groups (groups named like one of ``known_vcs``; the
        default group stays). A new password revokes the user's browser tokens, as in OpenPAI, except
        ``keep_token`` (the caller's own, so a user changing their password stays logged in)."""
        new_hash = hash_password(password) if password else None  # slow: before the transaction
        with self.store.sessions.begin() as s:
            user = s.get(User, username)
            if user is None:
                raise KeyError(username)
            if email is not None:
                user.email = email
            if extension is not None:
                user.extension = dict(extension)
            current = set(s.scalars(select(Membership.groupname).where(Membership.username == username)))
            wanted = set(current)
            if admin is not None:
                user.admin = admin
                wanted = wanted | {ADMIN_GROUP} if admin else wanted - {ADMIN_GROUP}
            if virtual_clusters is not None:
                wanted = {g for g in wanted if g not in known_vcs or g == DEFAULT_GROUP} | set(virtual_clusters)
                missing = set(virtual_clusters) - set(s.scalars(select(Group.groupname)
                                                                .where(Group.groupname.in_(virtual_clusters))))
                for vc in sorted(missing):  # a VC's group, as sync_virtual_clusters makes them
                    s.add(Group(groupname=vc, description=f"users of virtual cluster {vc}", admin=False,
                                virtual_clusters=[vc], external_name="", extension={}))
                s.flush()
            if wanted != current:
                s.execute(delete(Membership).where(Membership.username == username,
                                                   Membership.groupname.in_(current - wanted)))
                for g in sorted(wanted - current):
                    s.add(Membership(username=username, groupname=g))
            if new_hash is not None:
                user.password_hash = new_hash
                keep = _token_hash(keep_token) if keep_token else ""
                s.execute(delete(Token).where(Token.username == username, Token.application.is_(False),
                                              Token.token_hash != keep))
        self._cache.clear()

    def list(self) -> list[dict]:
        with self.store.sessions() as s:
            names = list(s.scalars(select(User.username).order_by(User.username)))
        return [u for u in (self.get(n) for n in names) if u is not None]

    def delete(self, username: str) -> str | None:
        """Delete a user, their tokens and memberships, and hand their jobs to a tombstone owner
        (returned; None when they had no jobs): ``{username}~deleted-{n}``, which no user can be
        named (``~`` is refused), so a new user of the same name inherits no job, log or event,
        while admins still list and read them. Names of the old jobs stay taken (``{username}~{job}``
        is the job's framework name, unique forever, as in OpenPAI). The caller makes sure no job
        of the user is live (the live ones are the control plane's, in memory)."""
        with self.store.sessions.begin() as s:
            s.execute(delete(Token).where(Token.username == username))
            s.execute(delete(Membership).where(Membership.username == username))
            s.execute(delete(User).where(User.username == username))
            tombstone = None
            if s.scalar(select(Job.id).where(Job.username == username).limit(1)) is not None:
                prefix = f"{username}~deleted-"
                earlier = s.scalar(select(func.count(func.distinct(Job.username)))
                                   .where(Job.username.startswith(prefix, autoescape=True))) or 0
                tombstone = f"{prefix}{earlier + 1}"
                s.execute(update(Job).where(Job.username == username).values(username=tombstone))
        self._cache.clear()
        return tombstone

    def verify(self, username: str, password: str) -> bool:
        """Check the password; on success, a hash of an earlier scheme is replaced by an argon2 hash."""
        with self.store.sessions() as s:
            user = s.get(User, username)
            stored = user.password_hash if user is not None else None
        if stored is None:  # no such user, or one without a password: cost a hash all the same, so
            check_password(_dummy_hash(), password)  # the time taken does not tell who exists
            return False
        if not check_password(stored, password):
            return False
        if needs_rehash(stored):
            with self.store.sessions.begin() as s:
                user = s.get(User, username)
                if user is not None and user.password_hash == stored:  # not changed meanwhile
                    user.password_hash = hash_password(password)
        return True

    # -- tokens ---------------------------------------------------------------------------------
    def create_token(self, username: str, name: str = "", application: bool = True,
                     lifetime: float | None = None) -> str:
        token = secrets.token_urlsafe(32)
        while token.startswith("-"):  # `pai --token -x...` would read it as an option
            token = secrets.token_urlsafe(32)
        self._created += 1
        if self._created % PURGE_EVERY == 0:
            self.purge_expired_tokens()
        with self.store.sessions.begin() as s:
            if s.get(User, username) is None:
                raise KeyError(username)
            now = time.time()
            s.add(Token(token_hash=_token_hash(token), username=username, name=name, application=application,
                        created_at=now, expires_at=now + lifetime if lifetime else None))
        return token

    def cached(self, token: str) -> Principal | None:
        """The caller of a token already looked up (memory only, never the store), or None."""
        hit = self._cache.get(_token_hash(token))
        if hit is None or (hit[1] is not None and hit[1] < time.time()):
            return None
        return hit[0]

    def resolve(self, token: str) -> Principal | None:
        """The caller a token stands for, or None if it is unknown, revoked or expired (may query the store)."""
        key = _token_hash(token)
        hit = self._cache.get(key)
        if hit is None:
            with self.store.sessions() as s:
                row = s.get(Token, key)
                if row is None:
                    return None
                username, application, expires_at = row.username, bool(row.application), row.expires_at
            user = self.get(username)
            if user is None:
                return None
            hit = (Principal(username, bool(user["admin"]), application, frozenset(user["virtualCluster"])),
                   expires_at)
            self._cache[key] = hit
        principal, expires_at = hit
        if expires_at is not None and expires_at < time.time():
            self._cache.pop(key, None)
            return None
        return principal

    def purge_expired_tokens(self, now: float | None = None) -> int:
        """Delete every token past its expiry (they are refused anyway; this keeps the table from
        growing with every login). Returns how many were deleted."""
        now = time.time() if now is None else now
        with self.store.sessions.begin() as s:
            gone = s.execute(delete(Token).where(Token.expires_at.is_not(None), Token.expires_at < now)).rowcount
        if gone:
            self._cache = {k: v for k, v in self._cache.items() if v[1] is None or v[1] >= now}
        return gone or 0

    def revoke_named(self, username: str, name: str) -> int:
        """Revoke every token of ``username`` called ``name`` (e.g. ``experiment <id>`` when that
        experiment ends). Returns how many were revoked."""
        with self.store.sessions.begin() as s:
            gone = s.execute(delete(Token).where(Token.username == username, Token.name == name)).rowcount
        self._cache.clear()
        return gone or 0

    def purge_experiment_tokens(self, running: set[str]) -> int:
        """Delete the tokens of experiments not in ``running`` (ids): what the experiment service calls
        at start-up, so a token of an experiment that ended while the server was down dies too.
        Tokens are named ``experiment <id>`` (``ExperimentService``). Returns how many were deleted."""
        with self.store.sessions.begin() as s:
            rows = s.execute(select(Token.token_hash, Token.name).where(Token.name.startswith("experiment ")))
            dead = [h for h, name in rows if name.removeprefix("experiment ") not in running]
            for i in range(0, len(dead), 500):
                s.execute(delete(Token).where(Token.token_hash.in_(dead[i:i + 500])))
        if dead:
            self._cache.clear()
        return len(dead)

    def list_tokens(self, username: str) -> list[dict]:
        with self.store.sessions() as s:
            rows = s.scalars(select(Token).where(Token.username == username).order_by(Token.created_at))
            return [{"id": r.token_hash[:12], "name": r.name, "application": r.application,
                     "createdAt": int(r.created_at * 1000),
                     "expiresAt": int(r.expires_at * 1000) if r.expires_at else None} for r in rows]

    def make_user_token(self, token: str) -> bool:
        """Turn ``token`` into a user (non-application) token, keeping its owner and expiry: the
        bootstrap admin token of a data directory from before it was one. Whether it changed."""
        with self.store.sessions.begin() as s:
            row = s.get(Token, _token_hash(token))
            if row is None or not row.application:
                return False
            row.application = False
        self._cache.pop(_token_hash(token), None)
        return True

    def revoke_session(self, username: str, token: str) -> bool:
        """Revoke ``token`` if it is one of ``username``'s login tokens (what logout ends); any other
        token (an application's, the bootstrap admin token ``pai server`` printed) is left alone."""
        with self.store.sessions.begin() as s:
            gone = s.execute(delete(Token).where(Token.username == username, Token.name == "login",
                                                 Token.token_hash == _token_hash(token))).rowcount
        if gone:
            self._cache.pop(_token_hash(token), None)
        return bool(gone)

    def revoke(self, username: str, token_or_id: str) -> bool:
        """Revoke by the token itself or by the id shown in ``list_tokens``."""
        with self.store.sessions.begin() as s:
            rows = list(s.scalars(select(Token).where(Token.username == username)))
            target = _token_hash(token_or_id)
            victims = [r for r in rows if r.token_hash == target or r.token_hash[:12] == token_or_id]
            for r in victims:
                s.delete(r)
        self._cache.clear()
        return bool(victims)


class GroupRepository:
    """Groups carry permissions, as in OpenPAI: the admin flag and the virtual clusters granted.

    A group named like a virtual cluster grants exactly that VC (OpenPAI's syncGroupsWithVCs), so
    "give alice VC research" is "add alice to group research".
    """

    def __init__(self, store: Store, users: UserRepository) -> None:
        self.store = store
        self.users = users

    @staticmethod
    def view(g: Group) -> dict:
        return {"groupname": g.groupname, "description": g.description, "externalName": g.external_name,
                "extension": {**(g.extension or {}),
                              "acls": {"admin": bool(g.admin), "virtualClusters": list(g.virtual_clusters)}}}

    def list(self) -> list[dict]:
        with self.store.sessions() as s:
            return [self.view(g) for g in s.scalars(select(Group).order_by(Group.groupname))]

    def get(self, name: str) -> dict | None:
        with self.store.sessions() as s:
            g = s.get(Group, name)
            return self.view(g) if g else None

    def create(self, name: str, description: str = "", virtual_clusters: list[str] | None = None,
               admin: bool = False, external_name: str = "", extension: dict | None = None) -> None:
        with self.store.sessions.begin() as s:
            if s.get(Group, name) is not None:
                raise KeyError(name)
            s.add(Group(groupname=name, description=description, admin=admin,
                        virtual_clusters=list(virtual_clusters or []), external_name=external_name,
                        extension=dict(extension or {})))
        self.users._cache.clear()

    def update(self, name: str, *, description: str | None = None, virtual_clusters: list[str] | None = None,
               admin: bool | None = None, external_name: str | None = None, extension: dict | None = None) -> None:
        with self.store.sessions.begin() as s:
            g = s.get(Group, name)
            if g is None:
                raise KeyError(name)
            if description is not None:
                g.description = description
            if virtual_clusters is not None:
                g.virtual_clusters = list(virtual_clusters)
            if admin is not None:
                g.admin = admin
            if external_name is not None:
                g.external_name = external_name
            if extension is not None:
                g.extension = dict(extension)
        self.users._cache.clear()

    def delete(self, name: str) -> None:
        with self.store.sessions.begin() as s:
            s.execute(delete(Membership).where(Membership.groupname == name))
            s.execute(delete(Group).where(Group.groupname == name))
        self.users._cache.clear()

    def members(self, name: str) -> list[dict]:
        with self.store.sessions() as s:
            rows = s.execute(select(User.username, User.admin).join(Membership, Membership.username == User.username)
                             .where(Membership.groupname == name).order_by(User.username))
            return [{"username": u, "clusterAdmin": bool(a)} for u, a in rows]

    def set_membership(self, username: str, groups: list[str]) -> None:
        """Replace a user's groups (``default`` is always kept, as in OpenPAI)."""
        wanted = set(groups) | {DEFAULT_GROUP}
        with self.store.sessions.begin() as s:
            if s.get(User, username) is None:
                raise KeyError(username)
            known = set(s.scalars(select(Group.groupname).where(Group.groupname.in_(wanted))))
            if missing := wanted - known:
                raise LookupError(sorted(missing))
            s.execute(delete(Membership).where(Membership.username == username))
            for g in sorted(wanted):
                s.add(Membership(username=username, groupname=g))
        self.users._cache.clear()

    def add_member(self, username: str, group: str) -> None:
        current = (self.users.get(username) or {}).get("grouplist")
        if current is None:
            raise KeyError(username)
        self.set_membership(username, [*current, group])

    def remove_member(self, username: str, group: str) -> None:
        current = (self.users.get(username) or {}).get("grouplist")
        if current is None:
            raise KeyError(username)
        self.set_membership(username, [g for g in current if g != group])

    def sync_virtual_clusters(self, virtual_clusters: list[str]) -> None:
        """One group per VC granting it; the admin group grants every VC."""
        with self.store.sessions.begin() as s:
            for vc in virtual_clusters:
                if s.get(Group, vc) is None:
                    s.add(Group(groupname=vc, description=f"users of virtual cluster {vc}", admin=False,
                                virtual_clusters=[vc], external_name="", extension={}))
            admin = s.get(Group, ADMIN_GROUP)
            if admin is not None:
                admin.virtual_clusters = list(virtual_clusters)
        self.users._cache.clear()
