"""Slurm tasks run as their PAI user's Unix account (issue 16), as batchspawner submits notebooks.

With an :class:`~pai_runtime.isolation.IsolationPolicy` that switches users, the Slurm backend (root)
submits every task attempt with ``sbatch --uid=<uid> --gid=<gid>``: slurmd starts the job script as
that account, so the task, its files and its debug shells belong to the user, never to the platform.
This module holds what that takes, so ``backend.py`` only asks:

* :meth:`SlurmUsers.account`: the account of a PAI user (created on first use by
  :func:`pai_runtime.accounts.ensure_account`, as the local launcher does);
* :meth:`SlurmUsers.check_reachable`: at ``open()``, the run root and the interpreter must be reachable
  by accounts other than root (``o+x`` on every directory above them), or every job would fail on
  the node with a permission error nobody sees: refuse with the reason instead;
* :meth:`SlurmUsers.hand_over`: the task directory and what the job reads in it (``spec.json``,
  ``slurm.json``) become the account's, closed to everybody else (0700/0600);
* :meth:`SlurmUsers.sbatch_args`: ``--uid``/``--gid`` and a clean environment (``--export`` of HOME,
  USER, LOGNAME, SHELL, PATH and LANG only; Slurm adds its SLURM_* variables), so nothing of the
  platform's environment (its HOME, tokens, paths) reaches the task;
* :meth:`SlurmUsers.as_user`: the argv prefix that runs a debug shell (or ``srun`` into the job) as
  the account, with ``PR_SET_NO_NEW_PRIVS``;
* :func:`open_owned`: files the control plane reads back from a task directory the user owns
  (exit records, logs) are opened without following symlinks and only when the account owns them,
  so a user cannot make the platform read someone else's file for him.

The control plane's own record of a job (its Slurm job id, which ``scancel`` acts on as root) is not
kept in the user-writable task directory but in ``<run_root>/slurm-jobs/<task>.json`` (0600, root).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO

from pai_runtime.accounts import Account, AccountError, ensure_account
from pai_runtime.isolation import IsolationPolicy
from pai_runtime.sandbox import TOOLS_ENV, user_environ

RECORDS_DIR = "slurm-jobs"


@dataclass(frozen=True)
class SlurmUsers:
    """The Slurm backend's half of an isolation policy that switches users (see module docstring)."""

    policy: IsolationPolicy
    #: PATH of tasks (None: :func:`pai_runtime.sandbox.user_path`, as on the local backend).
    path: str | None = None

    def account(self, username: str) -> Account:
        """The account ``username``'s tasks run as (AccountError: none, and the reason)."""
        return ensure_account(self.policy, username)

    def environ(self, account: Account) -> dict[str, str]:
        """A task's environment before the runtime adds the PAI_* variables: the account's, not ours
        (:func:`pai_runtime.sandbox.user_environ`, the local backend's rule)."""
        env = user_environ(account)
        if self.path is not None:
            env["PATH"] = self.path
        return env

    def tools_environ(self) -> dict[str, str]:
        """What a debug shell's tools (setpriv, srun) start from: a fixed minimal environment."""
        return dict(TOOLS_ENV) if self.path is None else {**TOOLS_ENV, "PATH": self.path}

    def sbatch_args(self, account: Account) -> list[str]:
        """``sbatch`` options that run the job as ``account`` in :meth:`environ` only."""
        env = self.environ(account)
        bad = [k for k, v in env.items() if "," in v or "\n" in v]
        if bad:  # --export splits on commas
            raise AccountError(f"account {account.name}: {', '.join(bad)} contains a comma; Slurm cannot export it")
        return [f"--uid={account.uid}", f"--gid={account.gid}",
                "--export=" + ",".join(f"{k}={v}" for k, v in env.items())]

    @staticmethod
    def as_user(account: Account, env: Mapping[str, str]) -> list[str]:
        """The argv prefix running a command as ``account`` (its groups, no capabilities, no new
        privileges) in exactly ``env``: root's tools get a fixed environment, and the user's (which a
        job's ``env`` fills, LD_PRELOAD included) applies only after the switch, as in
        :func:`pai_runtime.sandbox.prepare`."""
        pairs = [f"{k}={v}" for k, v in env.items() if k and "=" not in k and "\0" not in k + v and not k.startswith("-")]
        return ["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--init-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all", "--", "env", "-i", *pairs]

    @staticmethod
    def hand_over(task_dir: str, account: Account, files: tuple[str, ...]) -> None:
        """Make ``task_dir`` and ``files`` in it the account's: 0700 and 0600, nobody else's."""
        for name in files:
            path = f"{task_dir}/{name}"
            os.chown(path, account.uid, account.gid, follow_symlinks=False)
            os.chmod(path, 0o600)
        os.chown(task_dir, account.uid, account.gid)
        os.chmod(task_dir, 0o700)

    @staticmethod
    def check_reachable(path: str, what: str) -> None:
        """RuntimeError unless every directory above ``path`` lets other users through (``o+x``)."""
        real = os.path.realpath(path)
        parts = real.split("/")
        for i in range(2, len(parts)):
            directory = "/".join(parts[:i]) or "/"
            try:
                mode = os.stat(directory).st_mode
            except FileNotFoundError:
                return  # created later, by us, with the modes we choose
            if not mode & stat.S_IXOTH:
                raise RuntimeError(
                    f"Slurm backend: {what} {path} is not reachable by the users' accounts: {directory} is mode "
                    f"{stat.S_IMODE(mode):04o} (needs o+x, e.g. 0711). Tasks run as their users' accounts "
                    "(isolation); keep the run root on a shared filesystem outside the platform's data "
                    "directory, and the interpreter somewhere every account can run it")


def open_owned(path: str, uid: int) -> IO[bytes] | None:
    """``path`` opened for reading only if it is a regular file owned by ``uid`` and not a symlink
    (None when missing or not so): what root may read back from a directory a user controls."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.EACCES):
            return None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != uid:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")
