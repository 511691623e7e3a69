"""How long does a failed sign-in take, per kind of user? (issue 8, point 2)

Serves the real app with uvicorn (real timer, real SQLite, throttle raised out of the way)
and a stand-in for PAM that takes the time real sudo + PAM take: a member's wrong password
costs pam_unix's failure delay (``--pam-fail`` s, 2 by default), anyone else is refused at
once (sudo refuses a non-member, the adapter an unknown name, ``--quick`` s). Then signs in
wrongly ``--runs`` times per kind over HTTP and prints the times the client saw.

    .venv/bin/python -m bench.login_timing [--runs N] [--pam-fail S]
"""

from __future__ import annotations

import argparse
import re
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from autobuild.config import Settings
from autobuild.web.app import create_app
from tests.fakes import FakeMembers, FakeTimer, TimedAuthenticator

KINDS = {
    "member, wrong password": ("alice", "wrong"),
    "non-member, right password": ("carol", "carol-pw"),
    "unknown user": ("mallory", "anything"),
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pam-fail", type=float, default=2.0)
    parser.add_argument("--quick", type=float, default=0.01)
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="login-timing-"))
    (tmp / "data").mkdir()
    settings = Settings(db_path=tmp / "data" / "jobs.db", jobs_root=tmp / "jobs",
                        secret_key_file=tmp / "secret_key", dev_mode=True, use_sudo=False,
                        login_failures=10_000)
    auth = TimedAuthenticator(FakeTimer(), members={"alice"},
                              users={"alice": "alice-pw", "carol": "carol-pw"},
                              fail_seconds=args.pam_fail, quick_seconds=args.quick,
                              sleep=time.sleep)
    app = create_app(settings, overrides={"auth": auth, "members": FakeMembers({"alice"})})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)

    results: dict[str, list[float]] = {kind: [] for kind in KINDS}
    try:
        for _ in range(args.runs):
            for kind, (user, password) in KINDS.items():
                with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
                    page = client.get("/login").text
                    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
                    began = time.perf_counter()
                    response = client.post("/login", data={"username": user,
                                                           "password": password,
                                                           "csrf_token": token})
                    took = time.perf_counter() - began
                assert response.status_code == 401, response.status_code
                results[kind].append(took)
    finally:
        server.should_exit = True
        thread.join(10)

    print(f"failed sign-ins over HTTP, {args.runs} each (PAM failure delay {args.pam_fail} s, "
          f"floor {settings.login_failure_seconds} s):")
    for kind, times in results.items():
        print(f"  {kind:28} median {statistics.median(times):.3f} s  "
              f"min {min(times):.3f}  max {max(times):.3f}")


if __name__ == "__main__":
    main()
