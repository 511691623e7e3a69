"""System tests: install Autobuild for real on this machine and drive it through nginx.

They run only as root with AUTOBUILD_SYSTEM_TESTS=1 (`.ci/run` sets it on CI): the session
runs `deploy/install.sh` twice from this checkout, creates real Linux accounts with passwords,
serves the stand-in poky over HTTPS on 127.0.0.1 with its test CA in the system trust store,
and every test talks to the installed service at http://127.0.0.1/. The accounts stay (with
fresh random passwords each run); tokens, git settings and the CA are removed afterwards.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.git_https_server import GitHttpsServer
from tests.support.standin import create_standin_repo
from tests.system.browsing import browser, page  # noqa: F401  (fixtures for every system test)
from tests.system.helpers import USERS_GROUP, Account, save_token, signed_in, wait_for_service

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
INSTALL = REPO_ROOT / "deploy" / "install.sh"
CA_IN_TRUST_STORE = Path("/usr/local/share/ca-certificates/autobuild-system-tests.crt")
INSTALL_TIMEOUT = 1200  # a fresh machine downloads packages and the Python dependencies

ENGINEERS = ("abtest-alice", "abtest-bob")
OUTSIDER = "abtest-eve"  # not in autobuild-users
LOCKED = "abtest-locked"  # in the group, `passwd -l`
EXPIRED = "abtest-expired"  # in the group, `chage -E 0`


def _not_enabled_reason() -> str | None:
    if os.environ.get("AUTOBUILD_SYSTEM_TESTS") != "1":
        return "system tests install Autobuild on this machine: set AUTOBUILD_SYSTEM_TESTS=1 (CI does)"
    if os.geteuid() != 0:
        return "system tests need root (they run deploy/install.sh and create Linux users)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _not_enabled_reason()
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.system)
        # The first test also pays for the install (packages and pip on a fresh machine).
        item.add_marker(pytest.mark.timeout(INSTALL_TIMEOUT + 300))
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def _run(*cmd: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(cmd), input=input, capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result


# --- accounts -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Accounts:
    alice: Account
    bob: Account
    outsider: Account
    locked: Account
    expired: Account

    @property
    def all(self) -> tuple[Account, ...]:
        return (self.alice, self.bob, self.outsider, self.locked, self.expired)

    @property
    def in_group(self) -> tuple[Account, ...]:
        return (self.alice, self.bob, self.locked, self.expired)


def _ensure_account(name: str) -> Account:
    """The user exists (made once, kept between runs), unlocked, unexpired, with a new password."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        _run("useradd", "--create-home", "--user-group", "--shell", "/usr/sbin/nologin", name)
    account = Account(name, "Sys-" + secrets.token_urlsafe(18))
    _run("chpasswd", input=f"{name}:{account.password}\n")  # a fresh hash also undoes `passwd -l`
    _run("chage", "-E", "-1", name)
    if not account.home.is_dir():  # the token and builds need it
        _run("install", "-d", "-o", name, "-g", str(pwd.getpwnam(name).pw_gid), "-m", "0750", str(account.home))
    return account


def _clean_home(account: Account) -> None:
    """Remove what the tests leave in a home: the token, git settings and credentials."""
    shutil.rmtree(account.home / ".autobuild", ignore_errors=True)
    for name in (".gitconfig", ".git-credentials"):
        (account.home / name).unlink(missing_ok=True)


@pytest.fixture(scope="session")
def accounts() -> Iterator[Accounts]:
    """Two engineers, an outsider, and a locked and an expired account, with fresh passwords."""
    made = Accounts(*(_ensure_account(name) for name in (*ENGINEERS, OUTSIDER, LOCKED, EXPIRED)))
    with contextlib.suppress(KeyError):
        if OUTSIDER in grp.getgrnam(USERS_GROUP).gr_mem:  # left there by hand or an old run
            _run("gpasswd", "-d", OUTSIDER, USERS_GROUP)
    _run("passwd", "-l", LOCKED)
    _run("chage", "-E", "0", EXPIRED)
    for account in made.all:
        _clean_home(account)
    yield made
    for account in made.all:
        _clean_home(account)


# --- the installation -----------------------------------------------------------------------

@dataclass(frozen=True)
class Installs:
    first: subprocess.CompletedProcess[str]
    second: subprocess.CompletedProcess[str]


def _install(accounts: Accounts) -> subprocess.CompletedProcess[str]:
    # --no-tls: the tests talk plain HTTP to port 80. Without it install.sh keeps whatever TLS
    # it finds, and a run killed while test_deployment had HTTPS on would leave every later
    # run on this machine redirected to https:// (it changes nothing on a plain HTTP install).
    args = [str(INSTALL), "--no-yocto-deps", "--no-tls"]
    for account in accounts.in_group:
        args += ["--add-user", account.name]
    return subprocess.run(args, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
                          stdin=subprocess.DEVNULL)


def _allow_builds_on_a_small_disk() -> None:
    """CI disks may have less free than the default AUTO_BUILD_MIN_FREE_GB (20): ask for 1 GB."""
    _set_env({"AUTO_BUILD_MIN_FREE_GB": "1"})


# Settings a module changes for its own tests and puts back afterwards (test_attacks: two
# builds at once, an administrators' group). A run killed meanwhile leaves them in
# autobuild.env, which install.sh keeps: each session starts from the shipped values again.
_SHIPPED_SETTINGS = {"AUTO_BUILD_MAX_RUNNING": "1", "AUTO_BUILD_ADMIN_GROUP": ""}


def _set_env(values: dict[str, str]) -> None:
    """Give each AUTO_BUILD_* name its value in /etc/autobuild/autobuild.env (on its own line
    where the file has one, else at the end); restart the service if that changed the file."""
    env = Path("/etc/autobuild/autobuild.env")
    before = env.read_text().splitlines()
    lines, missing = [], dict(values)
    for line in before:
        name = line.split("=", 1)[0]
        if name in values:
            if name in missing:
                lines.append(f"{name}={missing.pop(name)}")
            continue  # a second line for a name given: only the first stays
        lines.append(line)
    lines += [f"{name}={value}" for name, value in missing.items()]
    if lines != before:
        env.write_text("\n".join(lines) + "\n")
        _run("/opt/autobuild/deploy/autobuild-ctl", "restart")


@pytest.fixture(scope="session")
def installs(accounts: Accounts) -> Installs:
    """deploy/install.sh run twice in a row from this checkout; the service is up afterwards."""
    first = _install(accounts)
    assert first.returncode == 0, f"install.sh failed:\n{first.stdout}\n{first.stderr}"
    _set_env({**_SHIPPED_SETTINGS, "AUTO_BUILD_MIN_FREE_GB": "1"})
    second = _install(accounts)
    wait_for_service()
    return Installs(first, second)


# --- the HTTPS git server -------------------------------------------------------------------

@dataclass(frozen=True)
class Git:
    server: GitHttpsServer
    url: str
    token: str


@pytest.fixture(scope="session")
def git(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Git]:
    """The stand-in poky at https://127.0.0.1:<port>/poky.git, accepting only ``token``.

    Builds run through sudo, which drops GIT_SSL_CAINFO, so the test CA goes into the
    system trust store for the session.
    """
    root = tmp_path_factory.mktemp("system-repos")
    create_standin_repo(root / "poky.git")
    token = "glpat-" + secrets.token_urlsafe(18)
    with GitHttpsServer(root, token=token) as server:
        shutil.copyfile(server.ca_file, CA_IN_TRUST_STORE)
        CA_IN_TRUST_STORE.chmod(0o644)
        try:
            _run("update-ca-certificates")
            yield Git(server, server.url("poky.git"), token)
        finally:
            CA_IN_TRUST_STORE.unlink(missing_ok=True)
            _run("update-ca-certificates")


# --- signed-in engineers --------------------------------------------------------------------

@pytest.fixture(scope="session")
def alice(installs: Installs, accounts: Accounts, git: Git) -> Iterator[httpx.Client]:
    """abtest-alice signed in through nginx, her GitLab token saved in Settings."""
    web = signed_in(accounts.alice)
    try:
        response = save_token(web, git.token)
        assert response.status_code == 303, response.text
        yield web
    finally:
        web.close()
