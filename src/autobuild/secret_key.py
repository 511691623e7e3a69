"""The session signing key: one file only the service reads, made by install.sh, rotated by
`autobuild rotate-key`.

``/etc/autobuild/secret_key`` is ``root:autobuild 0640`` and holds one line of at least
``MIN_LENGTH`` URL-safe random characters. Nothing secret is passed in the service's
environment: a key still found in ``autobuild.env`` (installations before the key file) is
moved into the file and its line removed, once the installed code reads the file.
Every write is atomic (a new file beside it, then ``rename``): the service never reads half
a key, and the file never has a moment with looser rights.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

KEY_FILE = Path("/etc/autobuild/secret_key")
ENV_FILE = Path("/etc/autobuild/autobuild.env")
SERVICE_GROUP = "autobuild"
KEY_MODE = 0o640
MIN_LENGTH = 32
ENV_NAME = "AUTO_BUILD_SECRET_KEY"
CTL = Path("/opt/autobuild/deploy/autobuild-ctl")
_URLSAFE = re.compile(r"[A-Za-z0-9_-]+")


def new_key() -> str:
    """64 URL-safe characters (48 random bytes)."""
    return secrets.token_urlsafe(48)


def valid_key(value: str) -> bool:
    return len(value) >= MIN_LENGTH and bool(_URLSAFE.fullmatch(value))


@dataclass(frozen=True)
class KeyFileState:
    """What is wrong with a key file, each with its fix; ``problems == []`` when all is well."""

    path: Path
    exists: bool
    owner: str = ""
    group: str = ""
    mode: int = 0
    length: int = 0
    problems: tuple[tuple[str, str], ...] = ()

    @property
    def ok(self) -> bool:
        return self.exists and not self.problems

    def describe(self) -> str:
        if not self.exists:
            return f"{self.path} does not exist"
        return f"{self.path} is {self.owner}:{self.group} {self.mode:o}, {self.length} characters"


def _name(lookup: Callable[[int], object], ident: int) -> str:
    try:
        return getattr(lookup(ident), "pw_name", None) or getattr(lookup(ident), "gr_name")
    except KeyError:
        return str(ident)


def inspect(path: Path = KEY_FILE, group: str = SERVICE_GROUP) -> KeyFileState:
    """The key file as the service needs it: a regular file (not a link), root:<group> 0640,
    one line of at least MIN_LENGTH URL-safe characters."""
    import pwd

    rotate = "sudo /opt/autobuild/venv/bin/autobuild rotate-key"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return KeyFileState(path, False, problems=((f"{path} does not exist", rotate),))
    owner, grp_name = _name(pwd.getpwuid, st.st_uid), _name(grp.getgrgid, st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    problems: list[tuple[str, str]] = []
    if not stat.S_ISREG(st.st_mode):
        problems.append((f"{path} is not a regular file", f"sudo rm {path} && {rotate}"))
        return KeyFileState(path, True, owner, grp_name, mode, 0, tuple(problems))
    if (owner, grp_name) != ("root", group):
        problems.append((f"{path} belongs to {owner}:{grp_name}, not root:{group}",
                         f"sudo chown root:{group} {path}"))
    if mode != KEY_MODE:
        problems.append((f"{path} has mode {mode:o}, not {KEY_MODE:o}", f"sudo chmod {KEY_MODE:o} {path}"))
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append((f"{path} cannot be read ({exc})", "run `autobuild check` as root"))
        return KeyFileState(path, True, owner, grp_name, mode, 0, tuple(problems))
    key = text.strip()
    if text.count("\n") > 1 or not valid_key(key):
        problems.append((f"{path} does not hold one line of at least {MIN_LENGTH} URL-safe "
                         f"characters ({len(key)} characters)", rotate))
    return KeyFileState(path, True, owner, grp_name, mode, len(key), tuple(problems))


def read_key(path: Path = KEY_FILE) -> str:
    return path.read_text().strip()


def write_key(path: Path, key: str, group: str = SERVICE_GROUP) -> None:
    """Write ``key`` to ``path`` atomically as root:<group> 0640 (the rights are set on the
    new file before it takes the name)."""
    if not valid_key(key):
        raise ValueError(f"a key must be at least {MIN_LENGTH} URL-safe characters")
    gid = grp.getgrnam(group).gr_gid
    _write_atomically(path, key + "\n", 0, gid, KEY_MODE)


def _write_atomically(path: Path, text: str, uid: int, gid: int, mode: int) -> None:
    directory = path.parent
    tmp = directory / f".{path.name}.new-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, mode)
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def env_key(env_file: Path) -> str | None:
    """The AUTO_BUILD_SECRET_KEY an env file still holds (the last line wins), or None."""
    try:
        lines = env_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    value = None
    for line in lines:
        name, sep, rest = line.strip().partition("=")
        if sep and name.strip() == ENV_NAME:
            rest = rest.strip()
            if len(rest) >= 2 and rest[0] == rest[-1] and rest[0] in "'\"":
                rest = rest[1:-1]
            value = rest
    return value


def set_env_key(env_file: Path, key: str | None) -> bool:
    """Remove the AUTO_BUILD_SECRET_KEY lines of ``env_file`` (key None) or make them one line
    with ``key``; keeps the file's owner and mode. True when the file changed."""
    st = env_file.stat()
    old = env_file.read_text()
    lines = [line for line in old.splitlines()
             if line.strip().partition("=")[0].strip() != ENV_NAME or "=" not in line]
    if key is not None:
        lines.append(f"{ENV_NAME}={key}")
    new = "\n".join(lines) + "\n"
    if new == old:
        return False
    _write_atomically(env_file, new, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    return True


def service_reads_key_file() -> bool:
    """Whether this version of the service reads the key file (Settings.secret_key_file);
    before it does, the key must stay in the environment file as well."""
    from .config import Settings

    return "secret_key_file" in {f.name for f in dataclasses.fields(Settings)}


def ensure(key_file: Path = KEY_FILE, env_file: Path = ENV_FILE, group: str = SERVICE_GROUP,
           reads_key_file: bool | None = None) -> list[str]:
    """install.sh's step: the key file exists with the right rights (from the key the env file
    holds when upgrading, else a new one), and the env file holds no key once the service reads
    the file. Returns what changed, one line each (empty when nothing did)."""
    if reads_key_file is None:
        reads_key_file = service_reads_key_file()
    changes: list[str] = []
    state = inspect(key_file, group)
    old = env_key(env_file)
    regular = state.exists and stat.S_ISREG(os.lstat(key_file).st_mode)
    if not regular or not valid_key(_safe_read(key_file)):
        if old and valid_key(old):
            write_key(key_file, old, group)
            changes.append(f"wrote {key_file} (root:{group} {KEY_MODE:o}) with the key from "
                           f"{env_file.name}: sessions go on")
        else:
            write_key(key_file, new_key(), group)
            why = (f" (the old key in {env_file.name} was shorter than {MIN_LENGTH} URL-safe "
                   "characters: everyone signs in again)") if old else ""
            changes.append(f"wrote {key_file} (root:{group} {KEY_MODE:o}) with a new random key{why}")
    elif not state.ok:
        gid = grp.getgrnam(group).gr_gid
        os.chown(key_file, 0, gid, follow_symlinks=False)
        os.chmod(key_file, KEY_MODE)
        changes.append(f"fixed {key_file} ({state.owner}:{state.group} {state.mode:o} -> "
                       f"root:{group} {KEY_MODE:o})")
    if env_file.exists():
        key = read_key(key_file)
        if reads_key_file:
            if set_env_key(env_file, None):
                changes.append(f"removed {ENV_NAME} from {env_file} (the service reads {key_file})")
        elif set_env_key(env_file, key):
            changes.append(f"{ENV_NAME} in {env_file} = {key_file} (this version of the service "
                           "still reads the key from its environment)")
    return changes


def _safe_read(path: Path) -> str:
    try:
        return read_key(path)
    except (OSError, UnicodeDecodeError):
        return ""


def _restart_service(ctl: Path = CTL) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(ctl), "restart"], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)


def rotate(key_file: Path = KEY_FILE, env_file: Path = ENV_FILE, group: str = SERVICE_GROUP,
           restart: Callable[[], subprocess.CompletedProcess[str]] | None = _restart_service,
           reads_key_file: bool | None = None) -> int:
    """`autobuild rotate-key`: a new key, atomically, then a restart; every session signed with
    the old key ends."""
    if os.geteuid() != 0:
        print("autobuild rotate-key: run me as root (sudo)", file=sys.stderr)
        return 2
    if reads_key_file is None:
        reads_key_file = service_reads_key_file()
    key = new_key()
    write_key(key_file, key, group)
    print(f"wrote a new key to {key_file} (root:{group} {KEY_MODE:o})")
    if env_file.exists():
        if reads_key_file:
            if set_env_key(env_file, None):
                print(f"removed the old {ENV_NAME} from {env_file}")
        elif set_env_key(env_file, key):
            print(f"{ENV_NAME} in {env_file} set to the new key as well (this version of the "
                  "service still reads it from its environment)")
    if restart is None:
        print("not restarted: restart the service to use the new key")
        return 0
    result = restart()
    out = (result.stdout + result.stderr).strip()
    if out:
        print(out)
    if result.returncode != 0:
        print("autobuild rotate-key: the key changed but the service did not restart (see above)",
              file=sys.stderr)
        return 1
    print("the service restarted with the new key: everyone signs in again")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m autobuild.secret_key ensure [--key-file F] [--env-file F]` (install.sh)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m autobuild.secret_key")
    parser.add_argument("action", choices=["ensure"])
    parser.add_argument("--key-file", type=Path, default=KEY_FILE)
    parser.add_argument("--env-file", type=Path, default=ENV_FILE)
    parser.add_argument("--group", default=SERVICE_GROUP)
    args = parser.parse_args(argv)
    for line in ensure(args.key_file, args.env_file, args.group):
        print(f"* {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
