"""pai_runtime.accounts: PAI user names to Unix accounts, created for real with useradd.

Test accounts are named ``pait-*`` with uids in 47000-47999 so they never clash with real users; each
test removes the accounts it made."""

from __future__ import annotations

import os
import pwd
import secrets
import stat
import subprocess
import threading
from collections.abc import Iterator

import pytest

from pai_runtime import accounts
from pai_runtime.accounts import Account, AccountError, ensure_account, platform_account, unix_account_name
from pai_runtime.isolation import IsolationPolicy
from tests.requirements import require_tool

TEMPLATE = "pait-{username}"


def _policy(tmp_path: object, **kw: object) -> IsolationPolicy:
    return IsolationPolicy(mode="users", account_template=TEMPLATE, uid_min=47000, uid_max=47999,
                           home_root=str(tmp_path), **kw)  # type: ignore[arg-type]


@pytest.fixture
def made() -> Iterator[list[str]]:
    """Names of accounts a test created: removed (with their groups) afterwards."""
    if os.geteuid() != 0:
        pytest.fail("creating Unix accounts needs root (CI runs the tests as root)", pytrace=False)
    require_tool("useradd", "apt-get install passwd")
    names: list[str] = []
    yield names
    for name in names:
        subprocess.run(["userdel", name], capture_output=True)
        subprocess.run(["groupdel", name], capture_output=True)
    accounts._cache.clear()


def _fresh() -> str:
    return f"t{secrets.token_hex(4)}"


def test_safe_names_are_kept(tmp_path: object) -> None:
    policy = _policy(tmp_path)
    assert unix_account_name(policy, "alice") == "pait-alice"
    assert unix_account_name(policy, "bob_2-x") == "pait-bob_2-x"


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "../etc", "a\0b"])
def test_path_like_names_are_refused(tmp_path: object, bad: str) -> None:
    with pytest.raises(AccountError):
        unix_account_name(_policy(tmp_path), bad)


def test_changed_names_get_a_hash_so_two_names_never_share_an_account(tmp_path: object) -> None:
    policy = _policy(tmp_path)
    names = ["Alice", "alice ", "ALICE", "al.ice", "al/", "élodie", "x" * 80, "x" * 81, "1abc", "~root"]
    mapped = {}
    for pai in names:
        if "/" in pai:
            continue
        unix = unix_account_name(policy, pai)
        assert len(unix) <= 32, unix
        assert unix[0].isalpha() and all(c.isalnum() or c in "_-" for c in unix) and unix == unix.lower()
        mapped[pai] = unix
    assert unix_account_name(policy, "alice") not in mapped.values()
    assert len(set(mapped.values())) == len(mapped), mapped
    # starts with a digit and the template starts with the name: still a letter first
    bare = IsolationPolicy(account_template="{username}")
    assert unix_account_name(bare, "1abc")[0] == "u"


def test_mapping_comes_first(tmp_path: object) -> None:
    policy = _policy(tmp_path, accounts={"Admin Person": "nobody"})
    assert unix_account_name(policy, "Admin Person") == "nobody"
    account = ensure_account(policy, "Admin Person")
    assert account.name == "nobody" and account.uid == pwd.getpwnam("nobody").pw_uid


def test_mapped_account_that_does_not_exist_is_an_error(tmp_path: object) -> None:
    policy = _policy(tmp_path, accounts={"carol": "pait-no-such-account"})
    with pytest.raises(AccountError, match="does not exist"):
        ensure_account(policy, "carol")


def test_no_creation_when_turned_off(tmp_path: object) -> None:
    with pytest.raises(AccountError, match="turned off"):
        ensure_account(_policy(tmp_path, create_accounts=False), _fresh())


def test_root_is_refused(tmp_path: object) -> None:
    with pytest.raises(AccountError, match="root"):
        ensure_account(_policy(tmp_path, accounts={"admin": "root"}), "admin")


def test_created_account_has_own_group_and_a_closed_home(tmp_path: object, made: list[str]) -> None:
    policy = _policy(tmp_path)
    pai = _fresh()
    name = unix_account_name(policy, pai)
    made.append(name)
    account = ensure_account(policy, pai)
    entry = pwd.getpwnam(name)
    assert account == Account(name, entry.pw_uid, entry.pw_gid, str(tmp_path / name))  # type: ignore[operator]
    assert 47000 <= account.uid <= 47999 and account.gid == account.uid
    assert entry.pw_shell == "/bin/bash"
    st = os.stat(account.home)
    assert (st.st_uid, st.st_gid) == (account.uid, account.gid)
    assert stat.S_IMODE(st.st_mode) == 0o700
    # the account really is usable: a process switched to it writes its home, not root's files
    # (tmp_path's parents are closed to others: the shell starts in the home instead of walking to it)
    out = subprocess.run(["setpriv", f"--reuid={account.uid}", f"--regid={account.gid}", "--clear-groups",
                          "bash", "-c", "id -u; touch x; cat /etc/shadow"],
                         capture_output=True, text=True, cwd=account.home)
    assert out.stdout.split()[0] == str(account.uid)
    assert os.stat(f"{account.home}/x").st_uid == account.uid
    assert "Permission denied" in out.stderr
    # cached: a second call does not run useradd again
    assert ensure_account(policy, pai) is account


def test_concurrent_creation_makes_one_account_each(tmp_path: object, made: list[str]) -> None:
    policy = _policy(tmp_path)
    pais = [_fresh() for _ in range(4)]
    made.extend(unix_account_name(policy, p) for p in pais)
    results: dict[str, list[Account]] = {p: [] for p in pais}
    errors: list[BaseException] = []

    def make(pai: str) -> None:
        try:
            results[pai].append(ensure_account(policy, pai))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=make, args=(p,)) for p in pais for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    uids = {results[p][0].uid for p in pais}
    assert len(uids) == len(pais)
    for p in pais:
        assert results[p][0] == results[p][1]


def test_concurrent_creation_across_processes(tmp_path: object, made: list[str]) -> None:
    """Two processes (the control plane and the launcher) creating the same account at once."""
    policy = _policy(tmp_path)
    pai = _fresh()
    made.append(unix_account_name(policy, pai))
    code = ("import sys; from pai_runtime.isolation import IsolationPolicy as P; "
            "from pai_runtime.accounts import ensure_account; "
            "print(ensure_account(P.from_json(sys.argv[1]), sys.argv[2]).uid)")
    procs = [subprocess.Popen([os.sys.executable, "-c", code, policy.to_json(), pai],  # type: ignore[attr-defined]
                              stdout=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(outs)) == 1 and outs[0] == str(pwd.getpwnam(unix_account_name(policy, pai)).pw_uid)


def test_full_uid_range_is_a_clear_error(tmp_path: object) -> None:
    used = pwd.getpwnam("root").pw_uid
    policy = IsolationPolicy(mode="users", account_template=TEMPLATE, uid_min=used, uid_max=used,
                             home_root=str(tmp_path))
    if os.geteuid() != 0:
        pytest.fail("needs root", pytrace=False)
    with pytest.raises(AccountError, match="no free uid"):
        ensure_account(policy, _fresh())


def test_platform_account_is_who_we_are() -> None:
    me = platform_account()
    assert me.uid == os.geteuid()
