"""Helpers for the system tests: the installed service through nginx, its files, /proc.

Everything here talks to the real installation: http://127.0.0.1/ (nginx in front of the
service), /srv/autobuild/jobs/<owner>/<id>, the engineers' homes and /proc.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import pwd
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.web.helpers import csrf_from, event_data, parse_sse

BASE_URL = "http://127.0.0.1"
JOBS_ROOT = Path("/srv/autobuild/jobs")
DATA_DIR = Path("/srv/autobuild/data")
LAUNCH_DIR = DATA_DIR / "launch"
PREFIX = Path("/opt/autobuild")
RUNNER = PREFIX / "runner" / "run_job.sh"
CTL = PREFIX / "deploy" / "autobuild-ctl"
PID_FILE = Path("/run/autobuild/autobuild.pid")
SERVICE_USER = "autobuild"
USERS_GROUP = "autobuild-users"
MACHINE = "qemux86-64"
TERMINAL = ("SUCCESS", "FAILED", "CANCELLED")
LOGIN_FAILED = "Wrong user name or password, or this account may not use Autobuild."


@dataclass(frozen=True)
class Account:
    """A real Linux account made for the tests."""

    name: str
    password: str

    @property
    def uid(self) -> int:
        return pwd.getpwnam(self.name).pw_uid

    @property
    def home(self) -> Path:
        return Path(pwd.getpwnam(self.name).pw_dir)

    @property
    def token_file(self) -> Path:
        return self.home / ".autobuild" / "gitlab_token"


def client(source: str | None = None) -> httpx.Client:
    """A browser-like client of the installed service, through nginx (no redirects followed).
    ``source``: another loopback address to come from (127.0.0.x): the service throttles failed
    sign-ins per client address, so tests that fail on purpose use their own."""
    transport = httpx.HTTPTransport(local_address=source) if source else None
    return httpx.Client(base_url=BASE_URL, follow_redirects=False, timeout=60,
                        transport=transport)


def login(web: httpx.Client, user: str, password: str) -> httpx.Response:
    """Post the login form with the page's CSRF token; returns the answer (303 when accepted)."""
    page = web.get("/login")
    assert page.status_code == 200, page.text
    return web.post("/login", data={"username": user, "password": password,
                                    "csrf_token": csrf_from(page.text)})


def signed_in(account: Account) -> httpx.Client:
    web = client()
    response = login(web, account.name, account.password)
    assert response.status_code == 303, f"{account.name} could not sign in: {response.text}"
    return web


def save_token(web: httpx.Client, token: str) -> httpx.Response:
    page = web.get("/settings")
    assert page.status_code == 200, page.text
    return web.post("/settings", data={"token": token, "csrf_token": csrf_from(page.text)})


def fresh_machine() -> str:
    """A MACHINE no build used before: nothing of it is in the installed sstate cache yet, so
    its first build builds everything, whatever other tests left in the cache."""
    return f"{MACHINE}-{secrets.token_hex(3)}"


def submit(web: httpx.Client, repo_url: str, target: str, ref: str = "main",
           machine: str = MACHINE) -> int:
    """Submit a build from the New build form; returns the new job's id."""
    page = web.get("/new")
    assert page.status_code == 200, page.text
    response = web.post("/new", data={"repo_url": repo_url, "ref": ref, "machine": machine,
                                      "target": target, "csrf_token": csrf_from(page.text)})
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def job(web: httpx.Client, job_id: int) -> dict:
    response = web.get(f"/api/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_end(web: httpx.Client, job_id: int, timeout: float = 120) -> dict:
    """Poll the API until the job is terminal; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        current = job(web, job_id)
        if current["status"] in TERMINAL:
            return current
        if time.monotonic() > deadline:
            raise AssertionError(f"build #{job_id} did not end in {timeout} s: {current}")
        time.sleep(0.3)


def job_dir(job_id: int, owner: str) -> Path:
    """The build's directory: ``<jobs root>/<owner>/<id>`` (made by the owner's runner)."""
    return JOBS_ROOT / owner / str(job_id)


def launch_log(job_id: int) -> Path:
    """What sudo and the runner printed before the build log existed (the service's own file)."""
    return LAUNCH_DIR / f"{job_id}.log"


def runner_record(job_id: int, owner: str) -> dict:
    """The runner's own record of a running build: pid, pgid, start_time (runner.json)."""
    return json.loads((job_dir(job_id, owner) / "runner.json").read_text())


def build_log(job_id: int, owner: str) -> str:
    path = job_dir(job_id, owner) / "logs" / "build.log"
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for_log(job_id: int, owner: str, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while text not in build_log(job_id, owner):
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} did not appear in the log of build #{job_id}:\n"
                                 f"{build_log(job_id, owner)[-2000:]}")
        time.sleep(0.1)


@dataclass
class StreamedEvent:
    """One SSE event, with what the job directory looked like when it arrived."""

    event: dict
    build_over: bool  # status.json existed when the event was received

    @property
    def kind(self) -> str:
        return self.event.get("event", "")

    @property
    def data(self) -> dict:
        return event_data(self.event)


def stream_log(web: httpx.Client, job_id: int, owner: str, timeout: float = 120) -> list[StreamedEvent]:
    """Read the job's SSE stream through nginx until its ``end`` event.

    Each event records whether the runner had already written status.json when the event
    reached us: a log event received before that was delivered while the build was running.
    """
    events: list[StreamedEvent] = []
    status_file = job_dir(job_id, owner) / "status.json"
    with web.stream("GET", f"/api/jobs/{job_id}/log/stream", timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for event in parse_sse(response.iter_lines()):
            events.append(StreamedEvent(event, status_file.exists()))
            if event.get("event") == "end":
                break
    return events


def raw_get(path: str, cookies: httpx.Cookies) -> tuple[int, bytes]:
    """GET ``path`` from nginx exactly as written (no client-side normalising or encoding)."""
    connection = http.client.HTTPConnection("127.0.0.1", 80, timeout=30)
    try:
        cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.putheader("Cookie", cookie)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def systemd_is_init() -> bool:
    return Path("/run/systemd/system").is_dir() and Path("/proc/1/comm").read_text().strip() == "systemd"


def service_pid() -> int:
    """The pid of the running `autobuild serve`: systemd's MainPID, else autobuild-ctl's pid file."""
    if systemd_is_init():
        shown = subprocess.run(["systemctl", "show", "--property=MainPID", "--value", "autobuild.service"],
                               capture_output=True, text=True, check=True)
        return int(shown.stdout.strip())
    return int(PID_FILE.read_text().strip())


def wait_for_service(timeout: float = 60) -> None:
    """Wait until the service answers through nginx (after an install or a restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{BASE_URL}/login", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the service does not answer at {BASE_URL}/login")
        time.sleep(0.2)


def listening_pids(port: int) -> set[int]:
    """Pids of the processes holding a TCP socket that listens on 127.0.0.1:``port``."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], fields[9]
        if state == "0A" and local == f"0100007F:{port:04X}":  # LISTEN on 127.0.0.1
            inodes.add(f"socket:[{inode}]")
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = {os.readlink(fd) for fd in (entry / "fd").iterdir()}
        except OSError:
            continue
        if links & inodes:
            pids.add(int(entry.name))
    return pids


def proc_status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict of field -> value."""
    result = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        result[key] = value.strip()
    return result


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def secret_forms(token: str) -> list[bytes]:
    """The token as it could leak: plain, and inside an HTTP Basic header."""
    return [token.encode(), base64.b64encode(f"oauth2:{token}".encode())]


@dataclass
class ProcScanner:
    """Reads every /proc/*/cmdline and /proc/*/environ over and over in a thread.

    ``leaks`` holds (pid, file, command) where one of ``needles`` appeared, in any process;
    ``seen`` holds the program names of the processes of user ``uid`` observed, so a test can
    tell the scan covered a phase (e.g. that it saw git's HTTPS helper at work during a clone).
    """

    needles: list[bytes]
    uid: int
    leaks: set[tuple[int, str, str]] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    scans: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ProcScanner:
        self._thread = threading.Thread(target=self._run, name="proc-scanner", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        own = os.getpid()
        while not self._stop.is_set():
            for pid in _pids():
                if pid == own:
                    continue
                for name in ("cmdline", "environ"):
                    try:
                        data = Path(f"/proc/{pid}/{name}").read_bytes()
                    except OSError:
                        continue
                    if name == "cmdline" and _owner(pid) == self.uid:
                        self.seen.update(os.path.basename(arg.decode(errors="replace"))
                                         for arg in data.split(b"\0")[:2] if arg)
                    if any(needle in data for needle in self.needles):
                        self.leaks.add((pid, name, " ".join(cmdline(pid))[:200]))
            self.scans += 1
            time.sleep(0.005)


def _owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _pids() -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            yield int(entry.name)
