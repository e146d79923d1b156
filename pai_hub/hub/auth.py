"""The embedded default authenticator: JupyterHub's NativeAuthenticator (users, passwords, sign-up
with admin approval at ``/hub/authorize``), plus accounts created on first start from a file.

``make run`` writes the first admin's generated password into that file (0600) so the admin can
log in at once; tests and demos add more accounts the same way. Existing accounts are never
changed, so a password changed later in the hub stays changed.

Sign-up and login take only names PAI can take (:mod:`pai_hub.store.usernames`: no path-like,
over-long or non-ASCII names), so a hub account never exists that the PAI API would refuse.
"""

from __future__ import annotations

import json
from pathlib import Path

import bcrypt
from jupyterhub.handlers.base import BaseHandler
from nativeauthenticator import NativeAuthenticator
from nativeauthenticator import handlers as native
from nativeauthenticator.orm import UserInfo
from traitlets import Unicode

from ..store.usernames import is_username


class _NoTimer:
    """JupyterHub 6 dropped ``BaseHandler.statsd``, which NativeAuthenticator 1.3's login still times."""

    def timer(self, *args, **kwargs):
        return self

    def start(self):
        return self

    def stop(self, *args, **kwargs):
        return None


class LoginHandler(native.LoginHandler):
    """NativeAuthenticator's login page, working on JupyterHub 5 and 6."""

    @property
    def statsd(self):
        return getattr(super(), "statsd", None) or _NoTimer()

    def _render(self, login_error=None, username=None, sync=False, **ns):
        if sync:  # JupyterHub renders an error during a form post synchronously: the hub's error page
            return BaseHandler.render_template(self, "error.html", sync=True, **ns)
        return super()._render(login_error=login_error, username=username)


class PaiNativeAuthenticator(NativeAuthenticator):
    initial_users_file = Unicode(
        "", help="JSON file {username: password}: accounts created (authorized) on start when missing."
    ).tag(config=True)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.create_initial_users()

    def validate_username(self, username: str) -> bool:
        """JupyterHub's and NativeAuthenticator's checks, and PAI's username rule."""
        return is_username(username) and super().validate_username(username)

    def get_handlers(self, app):
        return [(path, LoginHandler if handler is native.LoginHandler else handler)
                for path, handler in super().get_handlers(app)]

    def create_initial_users(self) -> None:
        if not self.initial_users_file or not Path(self.initial_users_file).exists():
            return
        accounts = json.loads(Path(self.initial_users_file).read_text())
        for username, password in accounts.items():
            name = self.normalize_username(username)
            if UserInfo.find(self.db, name) is not None:
                continue
            hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt())
            self.db.add(UserInfo(username=name, password=hashed, is_authorized=True))
            self.log.info("created account %s", name)
        self.db.commit()
