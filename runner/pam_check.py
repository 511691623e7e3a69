"""Check the password (on stdin) of the user this process runs as, with PAM service "autobuild".

Run by ``run_job.sh --check-login`` under the venv's python, as the user who is logging in:
pam_unix lets a process check only its own user's password, so the web service never needs
to read /etc/shadow. Exit 0: accepted; 1: refused. Prints nothing about the password.
"""

import os
import pwd
import sys

import pam

SERVICE = "autobuild"
MAX_PASSWORD_BYTES = 4096


def main() -> int:
    user = pwd.getpwuid(os.getuid()).pw_name
    if os.getuid() == 0:
        print("pam_check: root may not log in to autobuild", file=sys.stderr)
        return 1
    data = sys.stdin.buffer.read(MAX_PASSWORD_BYTES + 2)
    if data.endswith(b"\n"):  # `echo secret | run_job.sh --check-login` works too
        data = data[:-1]
    if not data or len(data) > MAX_PASSWORD_BYTES or b"\0" in data:
        return 1
    try:
        password = data.decode("utf-8")
    except UnicodeDecodeError:
        return 1
    checker = pam.pam()
    if checker.authenticate(user, password, service=SERVICE, resetcreds=False):
        return 0
    print(f"pam_check: login refused for {user}: {checker.reason}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
