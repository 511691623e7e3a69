"""The engineer's own account: the password check (PAM) and the GitLab token file.

The home directory comes from the passwd database, never from $HOME. The token lives in
``~/.autobuild/gitlab_token`` (dir 0700, file 0600), written atomically; git reads it only
through runner/git-askpass.sh, which the build points at this file.
"""

from __future__ import annotations

import os
import stat
import sys
from typing import BinaryIO

from .fsops import Refused, make_dir, open_dir, write_atomically
from .jobdir import Identity

PAM_SERVICE = "autobuild"
MAX_PASSWORD_BYTES = 4096
MAX_TOKEN_LENGTH = 512
TOKEN_DIR = ".autobuild"
TOKEN_FILE = "gitlab_token"
TOKEN_DIR_MODE = 0o700
TOKEN_FILE_MODE = 0o600


def token_path(me: Identity) -> str:
    return f"{me.home.rstrip('/')}/{TOKEN_DIR}/{TOKEN_FILE}"


def check_login(me: Identity, stdin: BinaryIO) -> int:
    """Check the password on stdin for the user we run as: 0 accepted, 1 refused."""
    if me.uid == 0:
        print("run_job.sh: root may not log in to autobuild", file=sys.stderr)
        return 1
    data = stdin.read(MAX_PASSWORD_BYTES + 2)
    if data.endswith(b"\n"):  # `echo secret | run_job.sh check-login` works too
        data = data[:-1]
    if not data or len(data) > MAX_PASSWORD_BYTES or b"\0" in data:
        return 1
    try:
        password = data.decode("utf-8")
    except UnicodeDecodeError:
        return 1
    import pam  # python-pam, in the venv; only this mode needs it

    checker = pam.pam()
    if checker.authenticate(me.name, password, service=PAM_SERVICE, resetcreds=False):
        return 0
    print(f"run_job.sh: login refused for {me.name}: {checker.reason}", file=sys.stderr)
    return 1


def parse_token(data: bytes) -> str:
    """The token from stdin (one trailing newline, CR LF too, allowed); Refused otherwise."""
    if data.endswith(b"\n"):
        data = data[:-1]
    if data.endswith(b"\r"):
        data = data[:-1]
    if not data:
        raise Refused("the token is empty")
    if len(data) > MAX_TOKEN_LENGTH:
        raise Refused(f"the token is longer than {MAX_TOKEN_LENGTH} characters")
    if not all(0x21 <= byte <= 0x7E for byte in data):
        raise Refused("the token must not contain spaces, control or non-ASCII characters")
    return data.decode("ascii")


def store_token(me: Identity, stdin: BinaryIO) -> int:
    token = parse_token(stdin.read(MAX_TOKEN_LENGTH + 3))
    directory = f"{me.home.rstrip('/')}/{TOKEN_DIR}"
    try:
        home_fd = os.open(me.home, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise Refused(f"cannot open the home directory {me.home}: {exc.strerror}") from None
    try:
        try:
            info = os.stat(TOKEN_DIR, dir_fd=home_fd, follow_symlinks=False)
        except FileNotFoundError:
            dir_fd = make_dir(home_fd, TOKEN_DIR, TOKEN_DIR_MODE)
        else:
            if stat.S_ISLNK(info.st_mode):
                raise Refused(f"{directory} is a symbolic link; refusing to write the token "
                              "through it")
            if not stat.S_ISDIR(info.st_mode) or info.st_uid != me.uid:
                raise Refused(f"{directory} is not a directory of {me.name}")
            dir_fd = open_dir(home_fd, TOKEN_DIR)
        try:
            if os.fstat(dir_fd).st_uid != me.uid:
                raise Refused(f"{directory} is not a directory of {me.name}")
            os.fchmod(dir_fd, TOKEN_DIR_MODE)
            write_atomically(dir_fd, TOKEN_FILE, f"{token}\n".encode(), TOKEN_FILE_MODE)
        finally:
            os.close(dir_fd)
    finally:
        os.close(home_fd)
    print("token saved")
    return 0


def has_token(me: Identity) -> int:
    try:
        info = os.stat(token_path(me))
        present = stat.S_ISREG(info.st_mode) and info.st_size > 0
    except OSError:
        present = False
    print("yes" if present else "no")
    return 0
