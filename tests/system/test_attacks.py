"""Issue 7, point 2: every attack of the security review, as a system test on the real install.

Two real engineers, each an ordinary member of autobuild-users signed in through nginx with a
token of their own: the victim (abtest-alice) builds through the installed service; the attacker
(abtest-bob) acts with his own Linux uid (``runuser -u abtest-bob``, exactly what a shell on the
build server gives him) and through his own browser session and builds. A third engineer
(abtest-carol) has no job directory yet (a squatting target) and is the administrator.

Every attack must be refused (EACCES/EPERM) or harmless: the victim's build result, log,
artifacts (sha256 equal to what her build deployed), token and files unaffected, the service's
secret never published, and the service still answering (GET /api/jobs within 2 s).

Builds use the stand-in poky, patched so that a target containing ``gated`` waits after its
first lines until the test (root) opens its gate in /run/autobuild-attack-gates, and every
successful build prints the sha256 of each file it deployed (``STANDIN-DEPLOY <sha> <name>``):
an attack runs while a build surely runs, and the published artifacts are compared with what
the honest build produced. The module lets two builds run at once (the attacker's next to the
victim's) and makes abtest-carol an administrator; both are undone at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from autobuild.domain import layout
from tests.support import standin
from tests.support.git_https_server import GitHttpsServer
from tests.system.conftest import _ensure_account, _set_env
from tests.system.helpers import (
    CTL,
    DATA_DIR,
    JOBS_ROOT,
    LAUNCH_DIR,
    LOGIN_FAILED,
    PREFIX,
    RUNNER,
    SERVICE_USER,
    TERMINAL,
    USERS_GROUP,
    Account,
    build_log,
    client,
    job,
    job_dir,
    login,
    runner_record,
    save_token,
    service_pid,
    signed_in,
    submit,
    wait_for_end,
    wait_for_log,
    wait_for_service,
)
from tests.web.helpers import csrf_from

ENV_FILE = Path("/etc/autobuild/autobuild.env")
KEY_FILE = Path("/etc/autobuild/secret_key")
GATES = Path("/run/autobuild-attack-gates")
BAIT = JOBS_ROOT.parent / "attack-bait.txt"  # the service may read it, engineers may not
ATTACKER_CA = Path("/usr/local/share/ca-certificates/autobuild-attack-tests.crt")
CAROL = "abtest-carol"
ADMINS = "abtest-admins"
REPO_NAME = "poky-attacks.git"
WAITING = "NOTE: waiting at gate"
ANSWER_WITHIN = 2.0  # seconds: the service must answer every request this fast
REFUSED = ("EACCES", "EPERM")
DEPLOY_LINE = re.compile(r"^STANDIN-DEPLOY ([0-9a-f]{64}) (\S+)$", re.M)
RUNNER_CMD = "autobuild.runner"

# The attacker's hands: one Python process as his uid that tries each operation and says what
# the kernel answered ("ok" or the errno name). Run with the system python in isolated mode.
ATTACKER_SCRIPT = r"""
import errno, json, os, shutil, sys

def _write(path, data, flags):
    fd = os.open(path, flags, 0o640)
    try:
        os.write(fd, data.encode())
    finally:
        os.close(fd)

def _read(path):
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        return os.read(fd, 1 << 20).decode("utf-8", "replace")
    finally:
        os.close(fd)

def _deep(path, depth):
    os.mkdir(path)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(depth):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)

def _sparse(path, size):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)

OPS = {
    "write": lambda p, d="planted\n": _write(p, d, os.O_WRONLY | os.O_CREAT | os.O_APPEND),
    "create": lambda p, d="planted\n": _write(p, d, os.O_WRONLY | os.O_CREAT | os.O_EXCL),
    "read": _read,
    "listdir": lambda p: sorted(os.listdir(p)),
    "mkdir": lambda p: os.mkdir(p),
    "makedirs": lambda p: os.makedirs(p),
    "rmdir": os.rmdir,
    "unlink": os.unlink,
    "rename": os.rename,
    "symlink": os.symlink,
    "link": os.link,
    "chmod": os.chmod,
    "utime": lambda p: os.utime(p),
    "truncate": os.truncate,
    "mkfifo": os.mkfifo,
    "rmtree": shutil.rmtree,
    "kill": os.kill,
    "deep": _deep,
    "sparse": _sparse,
}
results = []
for op in json.load(sys.stdin):
    try:
        results.append(["ok", OPS[op[0]](*op[1:])])
    except OSError as exc:
        results.append([errno.errorcode.get(exc.errno, str(exc.errno)), str(exc)])
json.dump(results, sys.stdout)
"""


def run(*cmd: str, input: str | None = None, check: bool = True,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(cmd), input=input, capture_output=True, text=True,
                            timeout=timeout, cwd="/")
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n"
                             f"{result.stdout}{result.stderr}")
    return result


# --- the engineers ----------------------------------------------------------------------------

@dataclass
class Engineer:
    account: Account
    web: httpx.Client
    token: str
    repo: str  # the URL of the stand-in poky they build from (their token opens it)

    @property
    def name(self) -> str:
        return self.account.name

    @property
    def uid(self) -> int:
        return self.account.uid

    def do(self, *ops: tuple) -> list[tuple[str, object]]:
        """Try each operation as this engineer's uid; (outcome, value) for each."""
        result = run("runuser", "-u", self.name, "--", "/usr/bin/python3", "-I", "-c",
                     ATTACKER_SCRIPT, input=json.dumps(ops))
        return [tuple(item) for item in json.loads(result.stdout)]

    def refused(self, *ops: tuple) -> None:
        """Every operation fails with EACCES or EPERM."""
        outcomes = self.do(*ops)
        let_through = [(op, out) for op, out in zip(ops, outcomes, strict=True)
                       if out[0] not in REFUSED]
        assert not let_through, f"{self.name} was allowed: {let_through}"

    def ok(self, *ops: tuple) -> list[object]:
        """Every operation succeeds (in the engineer's own things); their values."""
        outcomes = self.do(*ops)
        failed = [(op, out) for op, out in zip(ops, outcomes, strict=True) if out[0] != "ok"]
        assert not failed, f"{self.name} could not: {failed}"
        return [value for _, value in outcomes]

    def sh(self, *cmd: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return run("runuser", "-u", self.name, "--", *cmd, input=input, check=False)

    def build(self, target: str, repo: str | None = None) -> int:
        return submit(self.web, repo or self.repo, target)

    def post(self, path: str) -> httpx.Response:
        """An API POST with the session's CSRF token."""
        token = csrf_from(self.web.get("/").text)
        return self.web.post(path, headers={"X-CSRF-Token": token})


@dataclass
class World:
    alice: Engineer  # the victim
    bob: Engineer  # the attacker
    carol: Engineer  # no job directory yet; an administrator
    secret_key: str
    bait: str
    notes: Path  # a file of the victim's that links planted by the attacker point at
    notes_before: tuple
    first_job: int  # the first job id of this module's builds
    finished: dict[str, int] = field(default_factory=dict)  # named builds later tests reuse

    def needles(self) -> list[str]:
        """What must never appear in anything the service shows."""
        return [self.secret_key, "AUTO_BUILD_", self.bait, self.alice.token]


# --- the gated stand-in -----------------------------------------------------------------------

GATE_CODE = '''

GATES = "%s"


def wait_at_gate(target):
    """Attack tests: a target naming a gate waits until the test opens it (as root)."""
    if "gated" not in target:
        return
    say(f"NOTE: waiting at gate {target}")
    while not (os.path.exists(os.path.join(GATES, target))
               or os.path.exists(os.path.join(GATES, "all"))):
        time.sleep(0.05)
    say(f"NOTE: gate {target} open")


def print_deploy_digests(deploy, build):
    """What this honest build deployed: the sha256 of every file the runner may publish."""
    top = os.path.realpath(build) + "/"
    for entry in sorted(deploy.iterdir()):
        real = os.path.realpath(entry)
        if os.path.isfile(real) and real.startswith(top):
            with open(real, "rb") as image:
                say(f"STANDIN-DEPLOY {hashlib.sha256(image.read()).hexdigest()} {entry.name}")
''' % GATES


def _make_gated_repo(root: Path, work: Path) -> None:
    fixture = work / "poky-attacks"
    shutil.copytree(standin.FIXTURE, fixture, symlinks=True)
    bitbake = fixture / "bitbake" / "bin" / "bitbake"
    text = bitbake.read_text()
    edits = [
        ("SLOW_TASK_SECONDS = 2.5\n", "SLOW_TASK_SECONDS = 2.5\n" + GATE_CODE),
        ("    header(target, machine, ver, delay, sstate)\n",
         "    header(target, machine, ver, delay, sstate)\n    wait_at_gate(target)\n"),
        ("    deploy_images(build, target, machine, ver)\n",
         "    print_deploy_digests(deploy_images(build, target, machine, ver), build)\n"),
    ]
    for old, new in edits:
        assert text.count(old) == 1, f"the stand-in bitbake changed: {old!r}"
        text = text.replace(old, new)
    bitbake.write_text(text)
    original = standin.FIXTURE
    standin.FIXTURE = fixture
    try:
        standin.create_standin_repo(root / REPO_NAME)
    finally:
        standin.FIXTURE = original


def open_gate(target: str) -> None:
    (GATES / target).touch()


# --- the service's settings for this module ---------------------------------------------------

def _restart_service() -> None:
    run(str(CTL), "restart", timeout=60)
    wait_for_service()


def _ca_into_trust_store(ca: Path | None) -> None:
    if ca is None:
        ATTACKER_CA.unlink(missing_ok=True)
    else:
        shutil.copyfile(ca, ATTACKER_CA)
        ATTACKER_CA.chmod(0o644)
    run("update-ca-certificates")


def _my_jobs_still_running(web: httpx.Client, names: set[str]) -> list[dict]:
    items = web.get("/api/jobs", params={"per_page": 200}).json()["items"]
    return [j for j in items if j["owner"] in names and j["status"] not in TERMINAL]


@pytest.fixture(scope="module")
def world(alice, accounts, git, tmp_path_factory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("attacks")
    _make_gated_repo(git.server.root, work)
    if GATES.exists():
        shutil.rmtree(GATES)
    GATES.mkdir(mode=0o755)

    # The attacker's own git server (same repositories, his own token, his own CA).
    bob_token = "glpat-bob-" + secrets.token_urlsafe(18)
    bob_server = GitHttpsServer(git.server.root, token=bob_token).start()
    env_before = ENV_FILE.read_text()
    notes = accounts.alice.home / "notes.txt"
    webs: list[httpx.Client] = []
    # Everything below changes the installed service or the system: whatever step fails, the
    # finally puts it all back (autobuild.env above all: install.sh keeps it, so a setting
    # left there would hold for every later module and every later run on this machine).
    try:
        _ca_into_trust_store(bob_server.ca_file)

        # abtest-carol: an engineer with no job directory yet, and the administrator.
        carol_account = _ensure_account(CAROL)
        run("usermod", "-aG", USERS_GROUP, CAROL)
        if run("getent", "group", ADMINS, check=False).returncode != 0:
            run("groupadd", ADMINS)
        run("usermod", "-aG", ADMINS, CAROL)
        run("rm", "-rf", "--one-file-system", str(JOBS_ROOT / CAROL))

        # Two builds at once (the attacker's next to the victim's), carol an administrator.
        _set_env({"AUTO_BUILD_MAX_RUNNING": "2", "AUTO_BUILD_ADMIN_GROUP": ADMINS})
        wait_for_service()  # _set_env restarted it with those

        secret_key = KEY_FILE.read_text().strip()  # the session signing key, out of the environment
        assert len(secret_key) >= 32, "an odd key"
        env_text = ENV_FILE.read_text()
        # No key in the environment file: no line sets AUTO_BUILD_SECRET_KEY (the line
        # AUTO_BUILD_SECRET_KEY_FILE= only says where the file is), and the key is not in it.
        assert not re.search(r"^\s*AUTO_BUILD_SECRET_KEY\s*=", env_text, re.M), env_text
        assert secret_key not in env_text
        bait = "BAIT-" + secrets.token_hex(16)
        BAIT.write_text(bait + "\n")
        os.chown(BAIT, 0, int(run("getent", "group", SERVICE_USER).stdout.split(":")[2]))
        BAIT.chmod(0o640)
        notes.write_text("alice's notes " + secrets.token_hex(8) + "\n")
        os.chown(notes, accounts.alice.uid, os.stat(accounts.alice.home).st_gid)
        notes.chmod(0o600)

        bob_web = signed_in(accounts.bob)
        webs.append(bob_web)
        carol_web = signed_in(carol_account)
        webs.append(carol_web)
        assert save_token(bob_web, bob_token).status_code == 303
        made = World(
            alice=Engineer(accounts.alice, alice, git.token, git.server.url(REPO_NAME)),
            bob=Engineer(accounts.bob, bob_web, bob_token, bob_server.url(REPO_NAME)),
            carol=Engineer(carol_account, carol_web, "", git.server.url(REPO_NAME)),
            secret_key=secret_key, bait=bait, notes=notes, notes_before=file_state(notes),
            first_job=_next_job_id(alice))
        yield made
    finally:
        open_gate("all")  # whatever is still waiting may end
        deadline = time.monotonic() + 60
        names = {accounts.alice.name, accounts.bob.name, CAROL}
        while _my_jobs_still_running(alice, names) and time.monotonic() < deadline:
            time.sleep(0.3)
        for web in webs:
            web.close()
        if ENV_FILE.read_text() != env_before:
            ENV_FILE.write_text(env_before)
            _restart_service()
        bob_server.stop()
        _ca_into_trust_store(None)
        run("rm", "-rf", "--one-file-system", str(JOBS_ROOT / CAROL))
        run("gpasswd", "-d", CAROL, USERS_GROUP, check=False)
        BAIT.unlink(missing_ok=True)
        notes.unlink(missing_ok=True)
        shutil.rmtree(GATES, ignore_errors=True)


# --- what the victim and the service must still be --------------------------------------------

def file_state(path: Path) -> tuple:
    st = path.lstat()
    return (st.st_ino, st.st_uid, stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns,
            hashlib.sha256(path.read_bytes()).hexdigest())


def snapshot(top: Path) -> dict[str, tuple]:
    """Every entry below ``top`` (links not followed): kind, mode, owner, inode, size, mtime,
    and the content's sha256 or the link's target."""
    found = {}
    for root, dirs, files in os.walk(top):
        for name in [".", *dirs, *files]:
            path = Path(root, name)
            st = path.lstat()
            entry: tuple = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid,
                            st.st_gid, st.st_ino, st.st_size, st.st_mtime_ns)
            if stat.S_ISREG(st.st_mode):
                entry += (hashlib.sha256(path.read_bytes()).hexdigest(),)
            elif stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(path),)
            found[str(path.relative_to(top))] = entry
    return found


def assert_answers(web: httpx.Client, *paths: str) -> list[httpx.Response]:
    """The service answers GET /api/jobs (and ``paths``) within ANSWER_WITHIN seconds."""
    answers = []
    for path in ("/api/jobs", *paths):
        started = time.monotonic()
        response = web.get(path, timeout=ANSWER_WITHIN + 10)
        took = time.monotonic() - started
        assert took < ANSWER_WITHIN, f"GET {path} took {took:.1f} s"
        assert response.status_code < 500, (path, response.status_code, response.text[:300])
        answers.append(response)
    assert answers[0].status_code == 200
    return answers


def assert_stream_answers(web: httpx.Client, job_id: int) -> str:
    """The SSE stream of the job sends its first bytes within ANSWER_WITHIN seconds."""
    started = time.monotonic()
    with web.stream("GET", f"/api/jobs/{job_id}/log/stream",
                    timeout=ANSWER_WITHIN + 10) as response:
        assert response.status_code == 200
        first = next(response.iter_lines())
    took = time.monotonic() - started
    assert took < ANSWER_WITHIN, f"the log stream of #{job_id} took {took:.1f} s"
    return first


def everything_shown(web: httpx.Client, job_id: int) -> str:
    """All the service shows about a job: API, pages, log, failure summary, artifacts (the
    first 64 KiB of each download), and the job list."""
    texts = []
    for path in ("/api/jobs?per_page=200", f"/api/jobs/{job_id}", f"/jobs/{job_id}",
                 f"/jobs/{job_id}/failure", f"/api/jobs/{job_id}/artifacts", "/"):
        response = web.get(path)
        assert response.status_code in (200, 204), (path, response.status_code)
        texts.append(response.text)
    log = web.get(f"/api/jobs/{job_id}/log", params={"offset": 0, "limit": 1 << 20})
    assert log.status_code == 200
    texts.append(log.text)
    for item in web.get(f"/api/jobs/{job_id}/artifacts").json():
        data = b""
        with web.stream("GET", f"/api/jobs/{job_id}/artifacts/{item['name']}") as download:
            assert download.status_code == 200, item
            for chunk in download.iter_bytes():
                data += chunk
                if len(data) >= 65536:
                    break
        texts.append(data.decode("latin-1"))
    return "\n".join(texts)


def assert_nothing_leaks(world: World, text: str, where: str) -> None:
    for needle in world.needles():
        assert needle not in text, f"{needle[:12]}... appears in {where}"


def whole_log(web: httpx.Client, job_id: int) -> str:
    """The job's log as the API serves it, chunk by chunk."""
    text, offset = [], 0
    while True:
        chunk = web.get(f"/api/jobs/{job_id}/log", params={"offset": offset, "limit": 1 << 20})
        assert chunk.status_code == 200, chunk.text
        data = chunk.json()
        text.append(data["text"])
        if data["next_offset"] <= offset:
            return "".join(text)
        offset = data["next_offset"]


def deploy_digests(log: str) -> dict[str, str]:
    return {name: digest for digest, name in DEPLOY_LINE.findall(log)}


def assert_honest_success(world: World, victim: Engineer, job_id: int) -> None:
    """The victim's build ended SUCCESS and publishes exactly what it deployed: every artifact
    is a file of its deploy directory, its sha256 (listed, in artifacts.sha256 and of the
    download) is the one the build printed; nothing planted anywhere in the job directory."""
    ended = wait_for_end(victim.web, job_id)
    assert (ended["status"], ended["exit_code"], ended["reason"]) == ("SUCCESS", 0, None), ended
    on_disk = build_log(job_id, victim.name)
    served = whole_log(victim.web, job_id)
    assert served == on_disk and "==> Build finished: SUCCESS (exit 0)" in on_disk
    deployed = deploy_digests(on_disk)
    listing = victim.web.get(f"/api/jobs/{job_id}/artifacts").json()
    names = {item["name"] for item in listing}
    assert any(n.endswith(".bin") for n in names) and any(n.endswith(".mtd") for n in names)
    assert names <= set(deployed), f"published but not deployed: {names - set(deployed)}"
    assert not {"evil.bin", "outside-build.bin", "dangling.bin"} & names
    directory = job_dir(job_id, victim.name)
    sums = {line.split("  ", 1)[1]: line.split("  ", 1)[0]
            for line in (directory / "artifacts.sha256").read_text().splitlines()}
    assert sums == {item["name"]: item["sha256"] for item in listing}
    for item in listing:
        content = victim.web.get(f"/api/jobs/{job_id}/artifacts/{item['name']}").content
        assert hashlib.sha256(content).hexdigest() == item["sha256"] == deployed[item["name"]]
    # Only what the runner writes, all of it the victim's, nothing writable by others.
    entries = snapshot(directory)
    assert {p.split("/")[0] for p in entries} <= {
        ".", "logs", "artifacts", "artifacts.sha256", "status.json", "runner.json",
        layout.TIMING, layout.BUILDHISTORY_DIR}, entries
    service_gid = int(run("getent", "group", SERVICE_USER).stdout.split(":")[2])
    strangers = {p: e for p, e in entries.items()
                 if e[2] != victim.uid or e[3] != service_gid or e[1] & 0o027 != 0}
    assert strangers == {}, f"not the victim's, or writable by others: {strangers}"
    assert not [p for p in entries if "planted" in p or "evil" in p or "forged" in p]
    assert_victims_files_intact(world)
    assert_nothing_leaks(world, on_disk + json.dumps(ended), f"build #{job_id}")


def assert_victims_files_intact(world: World) -> None:
    alice = world.alice.account
    assert file_state(world.notes) == world.notes_before, "the victim's notes were changed"
    token = alice.token_file
    st = token.lstat()
    assert stat.S_ISREG(st.st_mode) and st.st_uid == alice.uid and stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(token.parent.lstat().st_mode) == 0o700
    assert token.read_text() == world.alice.token + "\n"


# --- processes --------------------------------------------------------------------------------

def proc_stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def build_pids(job_id: int, owner_uid: int) -> list[int]:
    """The processes of the owner's runner of ``job_id`` and of its build."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != owner_uid:
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if (RUNNER_CMD in cmd and f" build {job_id} " in cmd + " ") or \
                f"/{job_id}/work" in cwd:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return proc_stat(pid)[0] != "Z"
    except OSError:
        return False


def proc_status_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def kill_own_runner(bob: Engineer, job_id: int, runner_pid: int) -> None:
    """The attacker kills his own runner (SIGKILL: it writes no status)."""
    bob.ok(("kill", runner_pid, 9))
    deadline = time.monotonic() + 10
    while alive(runner_pid):
        assert time.monotonic() < deadline, "the runner survived SIGKILL"
        time.sleep(0.05)


def gated(bob_or_alice: Engineer, tag: str, fail: bool = False) -> tuple[int, str]:
    """Submit a build that waits at its gate; returns (job id, target) once it waits."""
    target = f"{'fail-' if fail else ''}gated-{tag}"
    job_id = bob_or_alice.build(target)
    wait_for_log(job_id, bob_or_alice.name, WAITING)
    return job_id, target


# =============================================================================================
# 1. The service's secret, its data and sudo are out of every engineer's reach
# =============================================================================================

def test_engineers_cannot_reach_the_service_secret_its_data_or_sudo(world):
    bob = world.bob
    pid = service_pid()
    bob.refused(
        ("read", str(KEY_FILE)),
        ("read", str(ENV_FILE)),
        ("listdir", str(ENV_FILE.parent)),
        ("read", f"/proc/{pid}/environ"),
        ("listdir", f"/proc/{pid}/fd"),
        ("listdir", f"/proc/{pid}/cwd"),
        ("read", f"/proc/{pid}/mem"),
        ("listdir", str(DATA_DIR)),
        ("read", str(DATA_DIR / "jobs.db")),
        ("listdir", str(LAUNCH_DIR)),
        ("read", str(LAUNCH_DIR / "1.log")),
        ("symlink", "/proc/self/environ", str(LAUNCH_DIR / "999999.log")),
        ("mkfifo", str(LAUNCH_DIR / "999998.log")),
        ("read", "/var/log/autobuild/service.log"),
        ("read", str(BAIT)),
        ("listdir", str(JOBS_ROOT)),  # nobody lists the jobs root
        ("listdir", str(JOBS_ROOT / world.alice.name)),
    )
    # The service runs as autobuild, outside the engineers' group, and says nothing of its key.
    status = Path(f"/proc/{pid}/status").read_text()
    uids = re.search(r"^Uid:\s+(\d+)", status, re.M).group(1)
    groups = re.search(r"^Groups:\s*(.*)$", status, re.M).group(1).split()
    users_gid = run("getent", "group", USERS_GROUP).stdout.split(":")[2]
    assert int(uids) == int(run("id", "-u", SERVICE_USER).stdout) and users_gid not in groups
    assert USERS_GROUP not in run("id", "-nG", SERVICE_USER).stdout.split()
    assert stat.S_IMODE(ENV_FILE.stat().st_mode) == 0o640

    # sudo: the service may run the shim as engineers only; never as root or itself.
    listing = run("sudo", "-l", "-U", SERVICE_USER).stdout
    assert f"(%{USERS_GROUP}, !root, !{SERVICE_USER}) NOPASSWD: {RUNNER}" in listing, listing
    assert listing.count("NOPASSWD") == 1, listing
    for runas in ("root", SERVICE_USER):
        tried = run("runuser", "-u", SERVICE_USER, "--", "sudo", "-n", "-u", runas, "--",
                    str(RUNNER), "has-token", check=False)
        assert tried.returncode != 0 and tried.stdout == "", (runas, tried)
    works = run("runuser", "-u", SERVICE_USER, "--", "sudo", "-n", "-u", world.alice.name, "--",
                str(RUNNER), "has-token")
    assert works.stdout.strip() == "yes"  # the control: the rule itself works
    # The attacker has no sudo at all, and the shim run by hand runs as himself only.
    assert bob.sh("sudo", "-n", "-u", world.alice.name, "--", str(RUNNER), "has-token").returncode != 0
    assert bob.sh(str(RUNNER), "has-token").stdout.strip() == "yes"  # his own token

    # Nobody signs in as the service or as root.
    for name in (SERVICE_USER, "root"):
        with client() as web:
            response = login(web, name, "anything")
            assert response.status_code != 303 and LOGIN_FAILED in response.text
    assert_answers(bob.web)


# =============================================================================================
# 2. Links and hard links in the attacker's own job never make the service publish a secret
# =============================================================================================

def test_links_in_the_attackers_own_job_never_publish_the_services_secret(world):
    bob = world.bob
    job_id, target = gated(bob, "secret")
    directory = job_dir(job_id, bob.name)
    runner_pid = runner_record(job_id, bob.name)["pid"]
    d = str(directory)
    environ = "/proc/self/environ"

    # His runner is not dumpable: it runs as him, yet /proc gives its descriptors and memory to
    # root, so he can neither ptrace it nor reach them (whatever the host's ptrace_scope).
    assert proc_status_uid(runner_pid) == bob.uid
    for name in ("fd", "environ", "mem"):
        assert os.stat(f"/proc/{runner_pid}/{name}").st_uid == 0, name
    # His runner's copy of the launch log is out of his reach too.
    bob.refused(("read", f"/proc/{runner_pid}/fd/1"), ("write", f"/proc/{runner_pid}/fd/2"),
                ("read", str(LAUNCH_DIR / f"{job_id}.log")),
                ("symlink", environ, str(LAUNCH_DIR / f"{job_id}.log")))
    environ_of_runner = bob.do(("read", f"/proc/{runner_pid}/environ"))[0]
    if environ_of_runner[0] == "ok":  # his own process: he may read it, and it holds nothing
        assert_nothing_leaks(world, str(environ_of_runner[1]), "the runner's environment")

    # Every name the service reads, at every level, made a link to a secret (or a hard link).
    targets = {"environ": environ, "envfile": str(ENV_FILE), "db": str(DATA_DIR / "jobs.db"),
               "launch": str(LAUNCH_DIR / f"{job_id}.log"), "proc": f"/proc/{service_pid()}/environ"}
    ops: list[tuple] = [
        ("rename", f"{d}/logs/build.log", f"{d}/logs/build.log.real"),
        ("symlink", environ, f"{d}/logs/build.log"),
        ("symlink", environ, f"{d}/status.json"),
        ("symlink", environ, f"{d}/artifacts.sha256"),
        ("rename", f"{d}/runner.json", f"{d}/runner.json.real"),
        ("symlink", environ, f"{d}/runner.json"),
        ("unlink", f"{d}/.space-reserve"),
        ("symlink", str(ENV_FILE), f"{d}/.space-reserve"),
        ("mkdir", f"{d}/logs/failed-tasks"),
    ]
    for name, where in targets.items():
        ops += [("symlink", where, f"{d}/artifacts/{name}.bin"),
                ("symlink", where, f"{d}/logs/failed-tasks/{name}")]
    bob.ok(*ops)
    # Hard links to a file the service can read and he cannot: the kernel may refuse them
    # (fs.protected_hardlinks=1); either way the service must not publish it.
    bob.do(("link", str(BAIT), f"{d}/artifacts/bait.bin"),
           ("link", str(BAIT), f"{d}/logs/failed-tasks/bait"),
           ("link", str(BAIT), f"{d}/artifacts.sha256.bait"))

    shown = everything_shown(bob.web, job_id)
    assert_nothing_leaks(world, shown, f"the pages of #{job_id} while it runs")
    assert bob.web.get(f"/api/jobs/{job_id}/artifacts").json() == []
    assert job(bob.web, job_id)["status"] == "RUNNING"

    # He kills his own runner: the service learns of the end and says why, without the secret.
    kill_own_runner(bob, job_id, runner_pid)
    ended = wait_for_end(bob.web, job_id, timeout=30)
    open_gate(target)  # his orphaned bitbake may end
    assert ended["status"] == "FAILED" and ended["reason"], ended
    shown = everything_shown(bob.web, job_id) + everything_shown(world.alice.web, job_id)
    assert_nothing_leaks(world, shown, f"the pages of #{job_id} after its runner was killed")

    # Whole directories swapped for links afterwards change nothing either.
    bob.ok(("rename", f"{d}/logs", f"{d}/logs.real"), ("symlink", "/proc/self", f"{d}/logs"),
           ("rename", f"{d}/artifacts", f"{d}/artifacts.real"),
           ("symlink", str(ENV_FILE.parent), f"{d}/artifacts"))
    assert_nothing_leaks(world, everything_shown(bob.web, job_id), f"#{job_id} with linked dirs")
    world.finished["bob-secret"] = job_id
    assert_answers(bob.web, f"/jobs/{job_id}")


# =============================================================================================
# 3. Nothing can be planted in, or read from, a colleague's running build
# =============================================================================================

@dataclass
class VictimBuild:
    job_id: int
    target: str
    before: dict[str, tuple]


@pytest.fixture(scope="module")
def victim_build(world) -> Iterator[VictimBuild]:
    """abtest-alice's build, waiting at its gate after the clone and the setup."""
    job_id, target = gated(world.alice, "victim")
    directory = job_dir(job_id, world.alice.name)
    assert (directory / "work" / "src" / ".git" / "hooks").is_dir()
    build = VictimBuild(job_id, target, snapshot(directory))
    yield build
    open_gate(target)


def test_a_colleague_cannot_plant_code_or_files_in_a_running_build(world, victim_build):
    alice, bob = world.alice, world.bob
    job_id = victim_build.job_id
    d = str(job_dir(job_id, alice.name))
    src = f"{d}/work/src"
    home = str(alice.account.home)
    # Hers, readable by the service's group (setgid all the way down), nobody else's.
    service_gid = int(run("getent", "group", SERVICE_USER).stdout.split(":")[2])
    modes = {}
    for path, want in ((JOBS_ROOT / alice.name, 0o2750), (Path(d), 0o2750),
                       (Path(d, "logs"), 0o2750), (Path(d, "artifacts"), 0o2750),
                       (Path(d, "logs", "build.log"), 0o640), (Path(d, "runner.json"), 0o640)):
        st = path.lstat()
        modes[str(path)] = (st.st_uid == alice.uid and st.st_gid == service_gid,
                            oct(stat.S_IMODE(st.st_mode)), oct(want))
    wrong = {p: m for p, m in modes.items() if not m[0] or m[1] != m[2]}
    assert wrong == {}, f"not <owner>:{SERVICE_USER} with the layout's mode: {wrong}"
    work = Path(d, "work").lstat()
    assert work.st_uid == alice.uid and stat.S_IMODE(work.st_mode) & 0o077 == 0
    bob.refused(
        ("listdir", str(JOBS_ROOT / alice.name)),
        ("listdir", d),
        ("create", f"{d}/planted"),
        # code execution as the victim: hooks, config, sources, the build's own tools
        ("create", f"{src}/.git/hooks/post-checkout", "#!/bin/sh\nid > /tmp/pwned\n"),
        ("write", f"{src}/.git/config", "[core]\n\tfsmonitor = /tmp/pwn.sh\n"),
        ("write", f"{src}/oe-init-build-env", "\nid > /tmp/pwned\n"),
        ("write", f"{src}/bitbake/bin/bitbake", "\nimport os; os.system('id')\n"),
        ("write", f"{src}/build/conf/local.conf", 'INHERIT += "pwn"\n'),
        ("write", f"{src}/build/conf/auto.conf", 'SSTATE_DIR = "/tmp/bob"\n'),
        ("makedirs", f"{src}/build/tmp/deploy/images/qemux86-64/planted"),
        ("create", f"{d}/artifacts/planted.bin"),
        ("symlink", "/etc/passwd", f"{d}/artifacts/evil2.bin"),
        # token theft: swap the workspace or the logs for links or directories of his own
        ("rename", f"{d}/work", f"{d}/work.old"),
        ("symlink", home, f"{d}/work"),
        ("rename", f"{d}/logs", f"{d}/logs.old"),
        ("mkdir", f"{d}/logs2"),
        ("unlink", f"{d}/logs/build.log"),
        ("truncate", f"{d}/logs/build.log", 0),
        ("write", f"{d}/logs/build.log",
         f"ERROR: Logfile of failure stored in: {home}/.autobuild/gitlab_token\n"),
        # clobbering: links at the names the runner writes
        ("symlink", str(world.notes), f"{d}/.space-reserve"),
        ("symlink", str(world.notes), f"{d}/status.json"),
        ("symlink", str(world.notes), f"{d}/artifacts.sha256"),
        ("create", f"{d}/cancel-requested"),
        ("write", f"{d}/runner.json", "{}"),
        # the directory and its owner's directory
        ("rename", d, f"{JOBS_ROOT / alice.name}/x"),
        ("rmtree", d),
        ("chmod", d, 0o777),
        ("rename", str(JOBS_ROOT / alice.name), str(JOBS_ROOT / "stolen")),
        ("rmdir", str(JOBS_ROOT / alice.name)),
        ("chmod", str(JOBS_ROOT / alice.name), 0o777),
        ("link", f"{d}/logs/build.log", f"{JOBS_ROOT / bob.name}/stolen.log"),
    )
    # Nor through /proc: her processes' working directories, descriptors, memory, signals.
    pids = build_pids(job_id, alice.uid)
    assert len(pids) >= 2, "the runner and its build are not running"
    for pid in pids:
        bob.refused(("listdir", f"/proc/{pid}/fd"), ("listdir", f"/proc/{pid}/cwd"),
                    ("read", f"/proc/{pid}/environ"), ("read", f"/proc/{pid}/mem"),
                    ("write", f"/proc/{pid}/cwd/conf/local.conf"),
                    ("kill", pid, 2), ("kill", pid, 9))
    assert snapshot(job_dir(job_id, alice.name)) == victim_build.before, "her build changed"
    assert job(alice.web, job_id)["status"] == "RUNNING"
    assert_answers(bob.web, f"/jobs/{job_id}")

    open_gate(victim_build.target)
    assert_honest_success(world, alice, job_id)
    assert not Path("/tmp/pwned").exists()


# =============================================================================================
# 4. A finished build cannot be rewritten
# =============================================================================================

def test_a_finished_build_cannot_be_rewritten_by_a_colleague(world, victim_build):
    alice, bob = world.alice, world.bob
    job_id = victim_build.job_id
    open_gate(victim_build.target)
    assert wait_for_end(alice.web, job_id)["status"] == "SUCCESS"
    directory = job_dir(job_id, alice.name)
    before = snapshot(directory)
    listing = alice.web.get(f"/api/jobs/{job_id}/artifacts").json()
    d = str(directory)
    some = sorted(p.name for p in (directory / "artifacts").iterdir())[0]
    bob.refused(
        ("rename", f"{d}/artifacts/{some}", f"{d}/artifacts/{some}.old"),
        ("unlink", f"{d}/artifacts/{some}"),
        ("write", f"{d}/artifacts/{some}", "backdoor"),
        ("create", f"{d}/artifacts/backdoor.bin"),
        ("rename", f"{d}/artifacts", f"{d}/artifacts.old"),
        ("unlink", f"{d}/artifacts.sha256"),
        ("write", f"{d}/artifacts.sha256", f"{'0' * 64}  backdoor.bin\n"),
        ("create", f"{d}/.artifacts.sha256.tmp"),
        ("rename", f"{d}/status.json", f"{d}/status.old"),
        ("write", f"{d}/status.json", '{"status": "FAILED"}'),
        ("rename", f"{d}/logs", f"{d}/logs.old"),
        ("write", f"{d}/logs/build.log", "forged\n"),
        ("utime", f"{d}/logs/build.log"),
        ("rmtree", d),
        ("rename", d, f"{JOBS_ROOT / bob.name}/{job_id}"),
        ("chmod", d, 0o2777),
        ("utime", d),
        ("rename", str(JOBS_ROOT / alice.name), str(JOBS_ROOT / "old-alice")),
        ("rmdir", str(JOBS_ROOT / alice.name)),
    )
    # A directory of his own in the jobs root (engineers may create entries there) cannot
    # be renamed over hers: the sticky bit.
    decoy = str(JOBS_ROOT / f"{bob.name}-decoy")
    bob.ok(("mkdir", decoy))
    try:
        bob.refused(("rename", decoy, str(JOBS_ROOT / alice.name)),
                    ("rename", decoy, d))
    finally:
        bob.ok(("rmdir", decoy))
    assert snapshot(directory) == before
    assert alice.web.get(f"/api/jobs/{job_id}/artifacts").json() == listing

    # His own finished build, its directory (or its artifacts) made links to hers: the
    # service shows nothing of hers as his.
    own = world.finished["bob-secret"]
    o = str(job_dir(own, bob.name))
    mine_before = everything_shown(bob.web, own)
    bob.ok(("rename", o, f"{o}.real"), ("symlink", f"../{alice.name}/{job_id}", o))
    try:
        assert bob.web.get(f"/api/jobs/{own}/artifacts").json() == []
        assert not any(item["name"] in everything_shown(bob.web, own) for item in listing)
    finally:
        bob.ok(("unlink", o), ("rename", f"{o}.real", o))
    bob.ok(("unlink", f"{o}/artifacts"),
           ("symlink", f"../../{alice.name}/{job_id}/artifacts", f"{o}/artifacts"))
    assert bob.web.get(f"/api/jobs/{own}/artifacts").json() == []
    bob.ok(("unlink", f"{o}/artifacts"), ("mkdir", f"{o}/artifacts"),
           ("symlink", f"../../../{alice.name}/{job_id}/artifacts/{some}", f"{o}/artifacts/{some}"))
    assert bob.web.get(f"/api/jobs/{own}/artifacts").json() == []
    assert bob.web.get(f"/api/jobs/{own}/artifacts/{some}").status_code == 404
    assert everything_shown(bob.web, own).count(some) == mine_before.count(some)
    world.finished["alice-success"] = job_id
    assert_answers(bob.web, f"/jobs/{job_id}")


# =============================================================================================
# 5. A queued build: its directory cannot be prepared by anyone else, the attacker's forged
#    status changes only his own job, and the victim's runner never touches his links
# =============================================================================================

def test_a_pending_build_cannot_be_prepared_and_forgeries_stay_the_attackers_own(world):
    alice, bob = world.alice, world.bob
    # Both slots taken by the attacker's builds: the victim's build waits, with no directory.
    forged_id, forged_target = gated(bob, "pending-a", fail=True)
    other_id, other_target = gated(bob, "pending-b")
    victim = alice.build("core-image-minimal")
    time.sleep(0.5)
    assert job(alice.web, victim)["status"] == "PENDING"
    victim_dir = job_dir(victim, alice.name)
    v = str(victim_dir)
    bob.refused(
        ("mkdir", v),
        ("symlink", str(JOBS_ROOT / bob.name / str(victim)), v),
        ("symlink", str(world.notes), f"{v}/.space-reserve"),
        ("create", str(JOBS_ROOT / alice.name / "planted")),
        ("rename", str(JOBS_ROOT / alice.name), str(JOBS_ROOT / "alice-old")),
    )
    # What he may do: plant, in his own directory under the victim's job id, links to her
    # files at every name a runner writes, and a forged result.
    mine = JOBS_ROOT / bob.name / str(victim)
    m = str(mine)
    notes = str(world.notes)
    bob.ok(("mkdir", m), ("mkdir", f"{m}/logs"), ("mkdir", f"{m}/artifacts"),
           ("symlink", notes, f"{m}/.space-reserve"), ("symlink", notes, f"{m}/status.json"),
           ("symlink", notes, f"{m}/artifacts.sha256"), ("symlink", notes, f"{m}/runner.json"),
           ("symlink", notes, f"{m}/logs/build.log"), ("symlink", str(alice.account.home), f"{m}/work"),
           ("create", f"{m}/artifacts/forged.bin", "forged image\n"),
           ("create", f"{m}/cancel-requested"))
    his_plants = snapshot(mine)
    # A forged status.json in his own running build: the service trusts it only for his own
    # build, and only once his runner has ended (he kills it here).
    d = str(job_dir(forged_id, bob.name))
    forged = json.dumps({"status": "SUCCESS", "exit_code": 0, "finished_at": "2030-01-01T00:00:00Z"})
    bob.ok(("create", f"{d}/status.json.new", forged), ("rename", f"{d}/status.json.new", f"{d}/status.json"))
    time.sleep(0.5)
    assert job(bob.web, forged_id)["status"] == "RUNNING"  # his runner still holds the job
    assert job(alice.web, victim)["status"] == "PENDING"
    kill_own_runner(bob, forged_id, runner_record(forged_id, bob.name)["pid"])
    open_gate(forged_target)
    # Whatever it records (here: his forged SUCCESS), it is his own build's result alone.
    assert wait_for_end(bob.web, forged_id, timeout=30)["status"] in TERMINAL

    # The freed slot goes to the victim's build, which is hers alone from start to end.
    assert_honest_success(world, alice, victim)
    assert snapshot(mine) == his_plants, "the victim's runner touched the attacker's directory"
    open_gate(other_target)
    assert wait_for_end(bob.web, other_id)["status"] == "SUCCESS"
    assert_answers(bob.web, f"/jobs/{victim}", f"/jobs/{forged_id}")


# =============================================================================================
# 6. Squatting the directory of an engineer who has not built yet
# =============================================================================================

def _next_job_id(web: httpx.Client) -> int:
    items = web.get("/api/jobs", params={"per_page": 1}).json()["items"]
    return (items[0]["id"] if items else 0) + 1


def test_a_squatted_directory_of_a_new_engineer_fails_her_build_naming_the_squatter(world):
    bob, carol = world.bob, world.carol
    squat = JOBS_ROOT / CAROL
    assert not os.path.lexists(squat)
    home = carol.account.home
    home_before = snapshot(home)

    # A link at her name, to her own home: her runner follows nothing.
    bob.ok(("symlink", str(home), str(squat)))
    first = carol.build("core-image-minimal")
    ended = wait_for_end(carol.web, first, timeout=30)
    assert ended["status"] == "FAILED" and bob.name in ended["reason"], ended
    assert snapshot(home) == home_before

    # A directory at her name holding a forged result for her next build: not read as hers.
    predicted = _next_job_id(carol.web)
    p = f"{squat}/{predicted}"
    bob.ok(("unlink", str(squat)), ("mkdir", str(squat)), ("chmod", str(squat), 0o755),
           ("mkdir", p), ("mkdir", f"{p}/logs"), ("mkdir", f"{p}/artifacts"),
           ("create", f"{p}/status.json", '{"status": "SUCCESS", "exit_code": 0}'),
           ("create", f"{p}/logs/build.log", "forged log\n==> Build finished: SUCCESS (exit 0)\n"),
           ("create", f"{p}/artifacts/forged.bin", "forged image\n"),
           ("create", f"{p}/artifacts.sha256", f"{'0' * 64}  forged.bin\n"),
           ("chmod", f"{p}/status.json", 0o644), ("chmod", f"{p}/logs/build.log", 0o644))
    second = carol.build("core-image-minimal")
    assert second == predicted, "someone else submitted meanwhile"
    ended = wait_for_end(carol.web, second, timeout=30)
    assert ended["status"] == "FAILED" and bob.name in ended["reason"], ended
    assert carol.web.get(f"/api/jobs/{second}/artifacts").json() == []
    shown = everything_shown(carol.web, second)
    assert "forged" not in shown
    assert_nothing_leaks(world, shown, f"#{second}")
    # Her page says who is in the way.
    assert bob.name in carol.web.get(f"/jobs/{second}").text
    run("rm", "-rf", "--one-file-system", str(squat))
    assert_answers(carol.web, f"/jobs/{second}")


# =============================================================================================
# 7. FIFOs, directories, huge and oddly named files in the attacker's own job
# =============================================================================================

def test_fifos_and_odd_files_in_the_attackers_own_job_never_freeze_the_service(world):
    alice, bob = world.alice, world.bob
    job_id, target = gated(bob, "fifo")
    runner_pid = runner_record(job_id, bob.name)["pid"]
    d = str(job_dir(job_id, bob.name))
    html = "<img src=x onerror=alert(1)>"
    bob.ok(("rename", f"{d}/logs/build.log", f"{d}/logs/build.log.real"),
           ("mkfifo", f"{d}/logs/build.log"),
           ("mkfifo", f"{d}/status.json"),
           ("mkfifo", f"{d}/artifacts.sha256"),
           ("mkfifo", f"{d}/artifacts/x.bin"),
           ("rename", f"{d}/runner.json", f"{d}/runner.json.real"),
           ("mkfifo", f"{d}/runner.json"),
           ("mkdir", f"{d}/logs/failed-tasks"),
           ("mkfifo", f"{d}/logs/failed-tasks/x.log"),
           ("mkdir", f"{d}/artifacts/dir.bin"),
           ("sparse", f"{d}/artifacts/huge.bin", 1 << 40),
           ("sparse", f"{d}/logs/failed-tasks/huge.log", 1 << 40),
           ("create", f"{d}/artifacts/new\nline.bin", "x"),
           ("create", f"{d}/artifacts/{html}.bin", "x"),
           ("create", f"{d}/logs/failed-tasks/{html}", "<script>alert(2)</script>\n"))
    probes = (f"/api/jobs/{job_id}", f"/jobs/{job_id}", f"/jobs/{job_id}/failure",
              f"/api/jobs/{job_id}/log?offset=0&limit=4096", f"/api/jobs/{job_id}/artifacts",
              f"/api/jobs/{job_id}/artifacts/x.bin", f"/api/jobs/{job_id}/artifacts/dir.bin")
    answers = assert_answers(alice.web, *probes)
    assert answers[6].status_code == 404 and answers[7].status_code == 404
    names = {item["name"] for item in answers[5].json()}
    assert "x.bin" not in names and "dir.bin" not in names and "new\nline.bin" not in names
    for page in (answers[2].text, answers[3].text):
        assert html not in page and "<script>alert(2)" not in page
    assert_stream_answers(alice.web, job_id)
    huge = alice.web.get(f"/api/jobs/{job_id}/artifacts/huge.bin", headers={"Range": "bytes=0-99"})
    assert huge.status_code == 206 and huge.content == bytes(100)

    # The end, with a FIFO where the status should be: seen at once, the service unaffected.
    kill_own_runner(bob, job_id, runner_pid)
    ended = wait_for_end(alice.web, job_id, timeout=30)
    assert ended["status"] == "FAILED", ended
    open_gate(target)
    for answer in assert_answers(alice.web, *probes):  # names in pages are escaped
        if answer.headers.get("content-type", "").startswith("text/html"):
            assert html not in answer.text and "<script>alert(2)" not in answer.text
    # A sparse terabyte where the log should be: pages read only its end.
    bob.ok(("unlink", f"{d}/logs/build.log"), ("sparse", f"{d}/logs/build.log", 1 << 40))
    assert_answers(alice.web, *probes)

    # Meanwhile others' builds start, finish, and can be cancelled.
    honest = alice.build("core-image-minimal")
    assert_honest_success(world, alice, honest)
    cancelled, _ = gated(alice, "cancel-by-owner")
    started = time.monotonic()
    response = alice.post(f"/api/jobs/{cancelled}/cancel")
    assert response.status_code == 200, response.text
    ended = wait_for_end(alice.web, cancelled, timeout=60)
    assert ended["status"] == "CANCELLED", ended
    print(f"cancel -> CANCELLED next to the FIFOs: {time.monotonic() - started:.1f} s")
    assert_answers(alice.web, *probes)
    world.finished["bob-sparse-log"] = job_id


# =============================================================================================
# 8. A planted runner record cannot steer or stop a colleague's build; only the owner and an
#    administrator can
# =============================================================================================

def test_a_planted_runner_record_cannot_stop_a_colleagues_build(world):
    alice, bob, carol = world.alice, world.bob, world.carol
    victim, victim_target = gated(alice, "steer-victim")
    own, own_target = gated(bob, "steer-own")
    record = runner_record(victim, alice.name)  # root reads it; he learns the same from /proc
    victim_runner, victim_pgid = record["pid"], record["pgid"]
    assert Path(f"/proc/{victim_runner}").exists()
    start_time = int(proc_stat(victim_runner)[19])

    # His own record names her runner and her build's process group; he asks to cancel his job.
    d = str(job_dir(own, bob.name))
    planted = json.dumps({"job_id": own, "pid": victim_runner, "pgid": victim_pgid,
                          "start_time": start_time})
    bob.ok(("rename", f"{d}/runner.json", f"{d}/runner.json.real"),
           ("create", f"{d}/runner.json", planted), ("create", f"{d}/cancel-requested"))
    response = bob.post(f"/api/jobs/{own}/cancel")
    assert response.status_code == 200, response.text  # his runner finds nothing of his
    # And the same by hand, with the shim, for her job id in his own directory.
    mine = JOBS_ROOT / bob.name / str(victim)
    bob.ok(("mkdir", str(mine)),
           ("create", f"{mine}/runner.json", planted.replace(f'"job_id": {own}', f'"job_id": {victim}')))
    address = {"job_id": victim, "owner": bob.name, "jobs_root": str(JOBS_ROOT)}
    by_hand = bob.sh(str(RUNNER), "cancel", str(victim), input=json.dumps(address))
    assert by_hand.returncode == 3, by_hand  # "not running": nothing of his
    as_her = bob.sh(str(RUNNER), "cancel", str(victim),
                    input=json.dumps({**address, "owner": alice.name}))
    assert as_her.returncode == 2 and "belongs to" in as_her.stderr, as_her
    purged = bob.sh(str(RUNNER), "purge", str(victim), input=json.dumps(address))
    assert purged.returncode == 0 and not mine.exists(), purged  # only his own directory
    bob.refused(("kill", victim_runner, 2), ("kill", -victim_pgid, 9))
    # Through the service: her build is not his to stop.
    assert bob.post(f"/api/jobs/{victim}/cancel").status_code == 403
    page = bob.web.get(f"/jobs/{victim}")
    form = bob.web.post(f"/jobs/{victim}/cancel", data={"csrf_token": csrf_from(page.text)})
    assert form.status_code == 403

    time.sleep(1)
    assert alive(victim_runner) and job(alice.web, victim)["status"] == "RUNNING"
    assert "==> Cancelling" not in build_log(victim, alice.name)
    assert job(alice.web, victim)["cancel_requested_by"] is None

    # The administrator can.
    response = carol.post(f"/api/jobs/{victim}/cancel")
    assert response.status_code == 200, response.text
    ended = wait_for_end(alice.web, victim, timeout=60)
    assert ended["status"] == "CANCELLED" and ended["reason"] == f"cancelled by {CAROL}", ended
    deadline = time.monotonic() + 10
    while build_pids(victim, alice.uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert build_pids(victim, alice.uid) == []
    open_gate(victim_target)
    open_gate(own_target)
    assert wait_for_end(bob.web, own)["status"] in TERMINAL
    assert_answers(bob.web, f"/jobs/{victim}", f"/jobs/{own}")


# =============================================================================================
# 9. A forged build log never makes the attacker's own runner copy a token
# =============================================================================================

def test_a_forged_build_log_never_makes_a_runner_publish_a_token(world):
    alice, bob = world.alice, world.bob
    job_id, target = gated(bob, "tasklogs", fail=True)
    d = str(job_dir(job_id, bob.name))
    tmp = f"{d}/work/attacker"
    own_token = str(bob.account.token_file)
    named = [f"{alice.account.home}/.autobuild/gitlab_token", own_token, f"{tmp}/token-link",
             f"{tmp}/token-dir/gitlab_token", str(ENV_FILE), "/proc/self/environ",
             str(job_dir(world.finished.get("alice-success", 1), alice.name) / "logs" / "build.log")]
    bob.ok(("makedirs", tmp), ("symlink", own_token, f"{tmp}/token-link"),
           ("symlink", str(bob.account.token_file.parent), f"{tmp}/token-dir"),
           ("write", f"{d}/logs/build.log",
            "".join(f"ERROR: Logfile of failure stored in: {path}\n" for path in named)))
    open_gate(target)
    ended = wait_for_end(bob.web, job_id)
    assert ended["status"] == "FAILED", ended
    copied = sorted(p.name for p in (job_dir(job_id, bob.name) / "logs" / "failed-tasks").iterdir())
    assert len(copied) == 1 and "do_compile" in copied[0], copied  # the real task log only
    shown = everything_shown(bob.web, job_id) + everything_shown(alice.web, job_id)
    assert bob.token not in shown
    assert_nothing_leaks(world, shown, f"#{job_id}")
    assert_answers(bob.web, f"/jobs/{job_id}/failure")


# =============================================================================================
# 10. Entries planted in the jobs root are never taken for a colleague's build
# =============================================================================================

def test_entries_planted_in_the_jobs_root_are_not_taken_for_a_colleagues_build(world):
    alice, bob = world.alice, world.bob
    victim = world.finished["alice-success"]
    victim_dir = job_dir(victim, alice.name)
    before = snapshot(victim_dir)
    listing = alice.web.get(f"/api/jobs/{victim}/artifacts").json()
    future = _next_job_id(alice.web) + 1000
    planted = [JOBS_ROOT / str(victim), JOBS_ROOT / str(future)]
    for p in map(str, planted):
        bob.ok(("mkdir", p), ("mkdir", f"{p}/artifacts"), ("mkdir", f"{p}/logs"),
               ("create", f"{p}/status.json", '{"status": "SUCCESS", "exit_code": 0}'),
               ("create", f"{p}/artifacts/forged.bin", "forged\n"),
               ("create", f"{p}/logs/build.log", "forged\n"),
               ("create", f"{p}/launch.log", "forged\n"),
               ("symlink", str(world.notes), f"{p}/job.json"))
    link = JOBS_ROOT / str(victim + 100000)
    bob.ok(("symlink", f"{alice.name}/{victim}", str(link)))
    try:
        # What an admin's next `install.sh` runs, as root.
        upgrade = run(str(PREFIX / "venv" / "bin" / "autobuild"), "upgrade-layout", check=False)
        print(upgrade.stdout)
        assert snapshot(victim_dir) == before, upgrade.stdout
        assert alice.web.get(f"/api/jobs/{victim}/artifacts").json() == listing
        assert not os.path.lexists(link), upgrade.stdout
        assert not list(JOBS_ROOT.glob(f"{alice.name}/*/artifacts/forged.bin"))
        assert file_state(world.notes) == world.notes_before
        for p in planted:  # nothing of his kept, nothing given to anyone but the service or him
            if p.exists():
                for root, dirs, files in os.walk(p):
                    for name in dirs + files:
                        assert Path(root, name).lstat().st_uid != alice.uid or not \
                            Path(root, name).read_bytes().startswith(b"forged"), (root, name)
    finally:
        for p in [*planted, link]:
            run("rm", "-rf", "--one-file-system", str(p))
    assert_answers(alice.web, f"/jobs/{victim}")


# =============================================================================================
# 11. The victim's token is in nothing the attacker can read
# =============================================================================================

def test_the_victims_token_is_in_nothing_the_attacker_can_read(world):
    alice, bob = world.alice, world.bob
    # Every file he can read where builds, the service and the system keep things.
    found = bob.sh("grep", "-rlsF", "--devices=skip", "-f", "-", "/srv/autobuild", "/tmp",
                   "/var/tmp", "/dev/shm", "/run", "/home", "/opt/autobuild", "/var/log",
                   input=alice.token + "\n")
    assert found.stdout == "", f"{bob.name} can read the token in: {found.stdout}"
    # Every page of every job, as he sees them.
    items = bob.web.get("/api/jobs", params={"per_page": 200}).json()["items"]
    for item in items:
        # This module's builds (not the one whose log is a sparse terabyte of NULs).
        if item["id"] >= world.first_job and item["id"] != world.finished.get("bob-sparse-log"):
            text = everything_shown(bob.web, item["id"])
            assert alice.token not in text, f"job #{item['id']}"
    assert_victims_files_intact(world)


# =============================================================================================
# 12. Retention purges everyone's expired builds whatever the attacker left in his own
# =============================================================================================

def _expire(job_ids: list[int], days_ago: int) -> None:
    """Make jobs look finished ``days_ago`` days ago (as the service user: SQLite's -wal and
    -shm files must stay the service's)."""
    when = (datetime.now(UTC) - timedelta(days=days_ago)).isoformat(timespec="microseconds")
    script = ("import sqlite3, sys\n"
              "c = sqlite3.connect(sys.argv[1], timeout=30)\n"
              "c.executemany('UPDATE jobs SET finished_at = ? WHERE id = ?', "
              "[(sys.argv[2], int(i)) for i in sys.argv[3:]])\n"
              "c.commit()\n")
    run("runuser", "-u", SERVICE_USER, "--", str(PREFIX / "venv" / "bin" / "python"), "-c",
        script, str(DATA_DIR / "jobs.db"), when, *map(str, job_ids))


def test_retention_still_purges_others_whatever_the_attacker_left_in_his_own_job(world):
    alice, bob = world.alice, world.bob
    his = world.finished["bob-secret"]  # older than hers: retention comes to it first
    hers = world.finished["alice-success"]
    assert his < hers
    d = str(job_dir(his, bob.name))
    # A directory tree deeper than any recursion, and an unreadable corner, in his own job.
    bob.ok(("deep", f"{d}/deep", 3000), ("mkdir", f"{d}/locked"), ("create", f"{d}/locked/f"),
           ("chmod", f"{d}/locked", 0))
    _expire([his, hers], days_ago=400)
    try:
        gc = run("runuser", "-u", SERVICE_USER, "--", "/bin/sh", "-c",
                 f"set -a; . {ENV_FILE}; set +a; cd /srv/autobuild; "
                 f"exec {PREFIX}/venv/bin/autobuild gc", check=False, timeout=300)
        said = f"exit {gc.returncode}\n{gc.stdout}\n{gc.stderr[-3000:]}"
        print(said)
        assert job(alice.web, hers)["purged_at"] is not None, said
        assert not job_dir(hers, alice.name).exists(), said
        # His is purged or reported, never the end of the run.
        assert f"job #{his} " in gc.stdout + gc.stderr, said
    finally:
        run("rm", "-rf", "--one-file-system", f"{d}/deep", f"{d}/locked")
    assert_answers(alice.web, f"/jobs/{hers}", f"/jobs/{his}")
