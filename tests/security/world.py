"""The app under attack: the real web app with real SQLite and the real build tree on a temp
jobs root; only PAM (FakeAuthenticator), the users group, the runner (FakeRunner) and the other ports
the web tests fake (token store, clock, login pacing timer, disk space, admins, plugins) are
stand-ins; sessions are kept in the real SQLite store.

Requests are sent as raw ASGI calls on the app's own event loop (the TestClient's portal), so
a path reaches the app exactly as uvicorn would hand it over: ``raw_path`` as sent and
``path`` percent-decoded once, with no client normalising ``..`` or re-encoding anything.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlencode

import anyio
from fastapi import FastAPI
from starlette.testclient import TestClient

from autobuild.config import Settings
from autobuild.web.app import create_app
from tests.web.conftest import Fakes
from tests.web.helpers import VALID_JOB, csrf_from, page_csrf

OWNER = pwd.getpwuid(os.getuid()).pw_name  # job files must belong to a real Linux user
OTHER = "bob"  # signs in, owns no build
PASSWORDS = {OWNER: "owner-pw", OTHER: "bob-pw"}
ALLOWED_HOST = "gitlab.example.com"
SECRET = b"TOP-SECRET-outside-the-build-tree"
ARTIFACT = "core-image-minimal-qemux86-64.bin"
ARTIFACT_BYTES = b"\x7fELF real image bytes version=1.1\n"
REQUEST_TIMEOUT = 10.0


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    crashed: str | None = None  # the exception that escaped the app, if any

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class Session:
    """A signed-in browser: its cookies as one header, and its CSRF token."""

    user: str
    cookie: str
    csrf: str
    client: TestClient


@dataclass
class World:
    app: FastAPI
    settings: Settings
    fakes: Fakes
    client: TestClient  # holds the lifespan (scheduler) and the event loop the app runs on
    root: Path  # tmp dir: jobs/, data/, outside/
    sessions: dict[str, Session] = field(default_factory=dict)
    done_id: int = 1  # SUCCESS, full build tree, with planted links, FIFO, hard link...
    linked_id: int = 2  # SUCCESS, its artifacts/ and logs/ are links out of the tree
    running_id: int = 3  # RUNNING (cancellable): proves refused posts changed nothing

    @property
    def jobs_root(self) -> Path:
        return self.settings.jobs_root

    def job_dir(self, job_id: int) -> Path:
        return self.jobs_root / OWNER / str(job_id)

    # --- requests ------------------------------------------------------------------------------

    def request(self, method: str, target: str | bytes, headers: dict[str, str] | None = None,
                body: bytes = b"") -> Answer:
        """One raw request: ``target`` is sent byte for byte (path and query)."""
        raw = target.encode("latin-1") if isinstance(target, str) else target
        pairs = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                 for k, v in (headers or {}).items()]
        if body and not any(k == b"content-length" for k, _ in pairs):
            pairs.append((b"content-length", str(len(body)).encode()))
        assert self.client.portal is not None
        return self.client.portal.call(_asgi_call, self.app, method, raw, pairs, body)

    def session(self, user: str = OWNER) -> Session:
        """A signed-in session of ``user`` (made once per world)."""
        if user not in self.sessions:
            self.sessions[user] = self.sign_in(user)
        return self.sessions[user]

    def anonymous(self) -> tuple[str, str]:
        """(Cookie header, CSRF token) of a browser that opened /login and is not signed in."""
        browser = TestClient(self.app, follow_redirects=False)
        try:
            token = page_csrf(browser, "/login")
            return cookie_header(browser), token
        finally:
            browser.close()

    def still_signed_in(self, user: str) -> bool:
        answer = self.request("GET", "/api/jobs", {"cookie": self.session(user).cookie})
        return answer.status == 200

    def sign_in(self, user: str) -> Session:
        """A new browser that signs in as ``user`` through the login form."""
        browser = TestClient(self.app, follow_redirects=False)
        token = page_csrf(browser, "/login")
        response = browser.post("/login", data={"username": user, "password": PASSWORDS[user],
                                                "csrf_token": token})
        assert response.status_code == 303, response.text
        return Session(user, cookie_header(browser), csrf_from(browser.get("/settings").text),
                       browser)

    # --- what an attack must not change ---------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """Everything a refused request must leave as it was."""
        runner = self.fakes.runner
        jobs = self.app.state.container.jobs()
        return {
            "job rows": jobs.count(),
            "job states": {i: str(jobs.get(i).status) for i in (1, 2, 3)},
            "runner launches": list(runner.launches),
            "runner cancels": list(runner.cancelled),
            "runner purges": list(runner.purged),
            "tokens saved": dict(self.fakes.tokens.tokens),
            "files": tree_listing(self.root, skip=self.settings.db_path.parent),
            "launch logs": sorted(os.listdir(self.settings.launch_dir))
            if self.settings.launch_dir.is_dir() else [],
        }


    def settled(self, before: dict[str, object], timeout: float = 2.0) -> dict[str, object]:
        """The snapshot once the scheduler has acted on what a request did: a job a bad
        request queued is launched (and seen as such) before the next case starts."""
        deadline = time.monotonic() + timeout
        while True:
            after = self.snapshot()
            new_rows = int(after["job rows"]) - int(before["job rows"])  # type: ignore[call-overload]
            launched = len(after["runner launches"]) - len(before["runner launches"])  # type: ignore[arg-type]
            if new_rows <= launched or time.monotonic() > deadline:
                return after
            time.sleep(0.02)


def cookie_header(client: TestClient) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in client.cookies.jar)


def tree_listing(top: Path, skip: Path) -> dict[str, tuple[int, int, int]]:
    """path -> (mode, size, mtime_ns) of everything below ``top`` (links not followed)."""
    found: dict[str, tuple[int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            info = path.lstat()
            found[str(path.relative_to(top))] = (info.st_mode, info.st_size, info.st_mtime_ns)
    return found


async def _asgi_call(app: FastAPI, method: str, target: bytes,
                     headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
    raw_path, _, query = target.partition(b"?")
    scope = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"}, "http_version": "1.1",
        "method": method, "scheme": "http", "root_path": "",
        # What uvicorn does: path is the target percent-decoded once, raw_path as received.
        "path": unquote(raw_path.decode("latin-1"), errors="replace"), "raw_path": raw_path,
        "query_string": query, "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 40000), "server": ("testserver", 80), "state": {},
    }
    sent_body = False
    never = anyio.Event()
    status: list[int] = []
    out_headers: dict[str, str] = {}
    chunks: list[bytes] = []

    async def receive() -> dict:
        nonlocal sent_body
        if not sent_body:
            sent_body = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()  # the client stays connected until the answer is complete
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            for key, value in message.get("headers", []):
                out_headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    crashed = None
    try:
        with anyio.fail_after(REQUEST_TIMEOUT):
            await app(scope, receive, send)
    except TimeoutError:
        crashed = f"no complete answer within {REQUEST_TIMEOUT} s"
    except Exception as exc:  # ServerErrorMiddleware re-raises after its 500 page
        crashed = f"{type(exc).__name__}: {exc}"
    return Answer(status[0] if status else 599, out_headers, b"".join(chunks), crashed)


def form(**fields: str) -> tuple[dict[str, str], bytes]:
    return ({"content-type": "application/x-www-form-urlencoded"},
            urlencode(fields).encode())


# --- the world -----------------------------------------------------------------------------------

def _write(path: Path, data: bytes, mode: int = 0o640) -> None:
    path.write_bytes(data)
    path.chmod(mode)


def _mkdir(path: Path, mode: int = 0o2750) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path


def plant_build_trees(world: World) -> None:
    """What builds left behind, as the owner: one honest tree and the plants of an attacker."""
    outside = _mkdir(world.root / "outside", 0o755)
    _write(outside / "secret.bin", SECRET)
    _mkdir(outside / "logs", 0o755)
    _write(outside / "logs" / "build.log", SECRET + b"\n")
    _mkdir(world.jobs_root / OWNER)

    done = _mkdir(world.job_dir(world.done_id))
    _write(_mkdir(done / "logs") / "build.log", b"==> Job 1\nNOTE: Tasks Summary: done\n")
    artifacts = _mkdir(done / "artifacts")
    _write(artifacts / ARTIFACT, ARTIFACT_BYTES)
    _write(done / "status.json", b'{"status": "SUCCESS", "exit_code": 0}')
    _write(done / "artifacts.sha256", b"")
    os.symlink("/etc/passwd", artifacts / "passwd-link.bin")
    os.symlink(outside / "secret.bin", artifacts / "secret-link.bin")
    os.symlink("../..", artifacts / "up-link")  # a symlinked directory inside artifacts/
    os.mkfifo(artifacts / "fifo.bin", 0o640)
    os.link(outside / "secret.bin", artifacts / "hard-link.bin")
    _write(_mkdir(artifacts / "subdir") / "inner.bin", SECRET)
    _write(artifacts / ".hidden.bin", SECRET)
    _write(artifacts / "group-writable.bin", SECRET, 0o660)
    _write(artifacts / "not-owners.bin", SECRET)
    os.chown(artifacts / "not-owners.bin", 65534, 65534)

    # buildhistory (compare two builds): the secret as lines that would parse, reached only
    # through a link, a hard link or a linked directory; a FIFO that must not block.
    history = _mkdir(outside / "buildhistory", 0o755)
    _write(history / "installed-package-sizes.txt", b"99\tKiB\t" + SECRET + b"\n")
    _write(history / "installed-package-names.txt", SECRET + b"\n")
    _write(history / "image-info.txt", b"IMAGESIZE = 31337\nDISTRO = " + SECRET + b"\n")
    kept = _mkdir(done / "buildhistory")
    os.symlink(history / "installed-package-sizes.txt", kept / "installed-package-sizes.txt")
    os.link(history / "installed-package-names.txt", kept / "installed-package-names.txt")
    os.mkfifo(kept / "image-info.txt", 0o640)

    linked = _mkdir(world.job_dir(world.linked_id))
    os.symlink(outside, linked / "artifacts")  # a symlinked directory: artifacts/ -> outside
    os.symlink(outside / "logs", linked / "logs")  # logs/build.log read through a link
    os.symlink(history, linked / "buildhistory")
    _write(linked / "status.json", b'{"status": "SUCCESS", "exit_code": 0}')

    running = _mkdir(world.job_dir(world.running_id))
    _write(_mkdir(running / "logs") / "build.log", b"==> Job 3\n")
    _mkdir(running / "artifacts")


def wait_until(predicate, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@contextmanager
def make_world(root: Path) -> Iterator[World]:
    """The app, running, with jobs 1 and 2 ended (SUCCESS) and 3 RUNNING, all the owner's."""
    fakes = Fakes()
    fakes.auth.users = dict(PASSWORDS)
    if hasattr(fakes, "members"):  # the users group (a Linux group, like PAM: faked)
        fakes.members.members = set(PASSWORDS)
    overrides = fakes.overrides()
    # The real SQLite (jobs and sessions) and the real build tree.
    for real in ("jobs", "files", "session_store"):
        overrides.pop(real, None)
    settings = Settings(
        db_path=root / "data" / "jobs.db", jobs_root=root / "jobs",
        runner_path=root / "runner" / "run_job.sh", dev_mode=True, use_sudo=False,
        poll_interval=0.05, max_running=10, allowed_git_hosts=frozenset({ALLOWED_HOST}),
        cache_dir=root / "no-cache",
    )
    (root / "data").mkdir(parents=True)
    settings.launch_dir.mkdir()
    _mkdir(settings.jobs_root, 0o755)
    app = create_app(settings, overrides=overrides)
    client = TestClient(app, follow_redirects=False)
    try:
        with client:
            world = World(app, settings, fakes, client, root)
            owner = world.session(OWNER)
            for expected_id in (1, 2, 3):
                response = owner.client.post("/new", data={
                    **VALID_JOB, "repo_url": f"https://{ALLOWED_HOST}/bsp/poky.git",
                    "csrf_token": owner.csrf})
                assert response.headers["location"] == f"/jobs/{expected_id}", response.text
            wait_until(lambda: len(fakes.runner.launches) == 3, "three launches")
            jobs = app.state.container.jobs()
            for job_id in (1, 2):
                fakes.runner.finish(job_id, 0)
            wait_until(lambda: all(str(jobs.get(i).status) == "SUCCESS" for i in (1, 2)),
                       "jobs 1 and 2 to end")
            plant_build_trees(world)
            world.session(OTHER)
            yield world
            for session in world.sessions.values():
                session.client.close()
    finally:
        app.state.container.unwire()
        shutil.rmtree(root / "outside", ignore_errors=True)


def is_fifo(path: Path) -> bool:
    return stat.S_ISFIFO(path.lstat().st_mode)
