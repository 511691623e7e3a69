"""An honest deployment (issue 8): supervised without systemd and back within 5 s of a kill -9;
`autobuild-ctl start` says "started" only once the service answers, and why not otherwise;
`autobuild check` sees a stopped service; nginx hides its version and passes the real client
address; the signing key is a file, and rotating it ends every session; install.sh serves
HTTPS with a self-signed certificate it says it made, and goes back to HTTP."""

from __future__ import annotations

import os
import pwd
import re
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.system.conftest import INSTALL, INSTALL_TIMEOUT
from tests.system.helpers import (
    BASE_URL,
    CTL,
    PID_FILE,
    PREFIX,
    SERVICE_USER,
    alive,
    client,
    login,
    service_pid,
    signed_in,
    systemd_is_init,
    wait_for_service,
)

PORT = 8000
KEY_FILE = Path("/etc/autobuild/secret_key")
ENV_FILE = Path("/etc/autobuild/autobuild.env")
SUPERVISOR_PID_FILE = Path("/run/autobuild/supervisor.pid")
SERVICE_LOG = Path("/var/log/autobuild/service.log")
AUTOBUILD = PREFIX / "venv" / "bin" / "autobuild"

no_systemd_only = pytest.mark.skipif(systemd_is_init(), reason="the supervisor runs where systemd does not")


def run(*cmd: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ctl(action: str) -> subprocess.CompletedProcess[str]:
    return run(str(CTL), action)


def answering_pid(timeout: float) -> tuple[int, float] | None:
    """(pid, seconds) once GET /login answers 200 on the service's own port."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/login", timeout=1).status_code == 200:
                return service_pid(), time.monotonic() - started
        except (httpx.HTTPError, OSError, ValueError):
            pass
        time.sleep(0.05)
    return None


@pytest.fixture()
def service_back(installs):
    """Whatever the test does to the service, it is running and answering afterwards."""
    yield
    if ctl("status").returncode != 0:
        started = ctl("start")
        assert started.returncode == 0, started.stdout + started.stderr
    wait_for_service()


@no_systemd_only
def test_kill_9_of_the_service_is_back_within_5_seconds_without_systemd(service_back):
    old = service_pid()
    supervisor = int(SUPERVISOR_PID_FILE.read_text())
    assert alive(supervisor)
    assert pwd.getpwuid(os.stat(f"/proc/{supervisor}").st_uid).pw_name == SERVICE_USER
    os.kill(old, signal.SIGKILL)
    killed = time.monotonic()
    while alive(old):
        time.sleep(0.01)
    back = answering_pid(timeout=15)
    assert back is not None, f"the service did not come back:\n{SERVICE_LOG.read_text()[-2000:]}"
    pid, _ = back
    seconds = time.monotonic() - killed
    print(f"kill -9 -> answering again without systemd: {seconds:.2f} s (pid {old} -> {pid})")
    assert pid != old
    assert seconds < 5, f"took {seconds:.2f} s"
    assert int(SUPERVISOR_PID_FILE.read_text()) == supervisor  # the same supervisor restarted it
    status = ctl("status")
    assert status.returncode == 0 and f"pid {pid}" in status.stdout, status.stdout


@no_systemd_only
def test_stop_ends_service_and_supervisor_and_start_brings_both_back(service_back):
    pid, supervisor = service_pid(), int(SUPERVISOR_PID_FILE.read_text())
    stopped = ctl("stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert not alive(pid) and not alive(supervisor)
    assert not PID_FILE.exists() and not SUPERVISOR_PID_FILE.exists()
    time.sleep(2)  # nothing restarts it
    assert answering_pid(timeout=0.5) is None
    started = ctl("start")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "started" in started.stdout
    assert answering_pid(timeout=1) is not None  # "started" meant answering


def test_start_on_a_busy_port_says_why_and_fails(service_back):
    stopped = ctl("stop")
    assert stopped.returncode == 0, stopped.stderr
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        squatter.bind(("127.0.0.1", PORT))
        squatter.listen(1)
        started = time.monotonic()
        result = ctl("start")
        took = time.monotonic() - started
    finally:
        squatter.close()
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "started" not in result.stdout, out
    assert "address already in use" in out.lower(), out
    assert f"port {PORT}" in out and str(os.getpid()) in out, out  # who holds it
    assert took < 30, took
    if not systemd_is_init():
        time.sleep(1.5)
        assert not SUPERVISOR_PID_FILE.exists(), "a supervisor keeps restarting a service that cannot run"
    again = ctl("start")
    assert again.returncode == 0, again.stdout + again.stderr


def test_autobuild_check_reports_a_stopped_service(service_back):
    assert ctl("stop").returncode == 0
    result = run(str(AUTOBUILD), "check")
    assert result.returncode == 1, result.stdout
    assert "all checks passed" not in result.stdout
    lines = result.stdout.splitlines()
    assert any(line.startswith("✗ the service runs") and "autobuild-ctl start" in line for line in lines), result.stdout
    assert any(line.startswith(f"✗ the service answers on 127.0.0.1:{PORT}") for line in lines), result.stdout
    assert ctl("start").returncode == 0
    result = run(str(AUTOBUILD), "check")
    assert "✓ the service runs" in result.stdout and f"✓ the service answers on 127.0.0.1:{PORT}" in result.stdout


@no_systemd_only
def test_a_stale_pid_file_is_no_noise(service_back):
    assert ctl("stop").returncode == 0
    PID_FILE.parent.mkdir(exist_ok=True)
    PID_FILE.write_text("4194300\n")  # no such process
    SUPERVISOR_PID_FILE.write_text("4194301\n")
    status = ctl("status")
    assert status.returncode == 3 and "not running" in status.stdout
    assert status.stderr == "", status.stderr
    started = ctl("start")
    assert started.returncode == 0 and "No such file" not in started.stderr, started.stderr


def test_nginx_hides_its_version(installs):
    response = httpx.get(f"{BASE_URL}/login")
    assert response.headers.get("server") == "nginx"
    missing = httpx.get(f"{BASE_URL}/%zz")  # nginx answers this one itself (400)
    assert missing.headers.get("server") == "nginx"
    assert "nginx/" not in missing.text


def _own_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def _service_log_since(offset: int) -> str:
    if systemd_is_init():
        return run("journalctl", "-u", "autobuild", "--no-pager", "-n", "200").stdout
    with SERVICE_LOG.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def test_the_service_sees_the_real_client_address_not_a_forged_one(installs):
    address = _own_address()
    if address is None:
        pytest.skip("this host has no address but loopback")
    offset = SERVICE_LOG.stat().st_size if SERVICE_LOG.exists() else 0
    marker = f"client-probe-{time.time_ns()}"
    response = httpx.get(f"http://{address}/login?{marker}",
                         headers={"X-Forwarded-For": "203.0.113.66", "X-Real-IP": "203.0.113.67"})
    assert response.status_code == 200
    deadline = time.monotonic() + 5
    while marker not in (log := _service_log_since(offset)) and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(line for line in log.splitlines() if marker in line)
    assert address in line, line
    assert "203.0.113" not in line and "127.0.0.1" not in line, line
    nginx_log = Path("/var/log/nginx/access.log")
    if nginx_log.exists():
        assert any(marker in entry and entry.startswith(address)
                   for entry in nginx_log.read_text(errors="replace").splitlines()[-50:])


def test_the_key_is_a_file_only_the_service_reads_and_rotation_ends_every_session(
        installs, accounts, alice, service_back):
    st = KEY_FILE.stat()
    assert (pwd.getpwuid(st.st_uid).pw_name, stat.S_IMODE(st.st_mode)) == ("root", 0o640)
    assert st.st_gid == pwd.getpwnam(SERVICE_USER).pw_gid
    key = KEY_FILE.read_text()
    assert key.count("\n") == 1 and len(key.strip()) >= 32
    # The file may name the key's file (AUTO_BUILD_SECRET_KEY_FILE), never hold the key.
    assert not re.search(r"^\s*AUTO_BUILD_SECRET_KEY\s*=", ENV_FILE.read_text(), re.M)
    environ = Path(f"/proc/{service_pid()}/environ").read_bytes()
    assert key.strip().encode() not in environ
    assert not [v for v in environ.split(b"\0") if v.startswith(b"AUTO_BUILD_SECRET_KEY=")]

    bob = signed_in(accounts.bob)
    try:
        assert bob.get("/api/jobs").status_code == 200
        rotated = run(str(AUTOBUILD), "rotate-key")
        assert rotated.returncode == 0, rotated.stdout + rotated.stderr
        assert KEY_FILE.read_text() != key
        assert stat.S_IMODE(KEY_FILE.stat().st_mode) == 0o640
        wait_for_service()
        after = bob.get("/api/jobs")
        assert after.status_code in (401, 403) or (after.status_code in (302, 303)
                                                   and "/login" in after.headers["location"]), after
        fresh = client()
        assert login(fresh, accounts.bob.name, accounts.bob.password).status_code == 303
        assert fresh.get("/api/jobs").status_code == 200
        fresh.close()
    finally:
        bob.close()
        # The session-wide client of alice signs in again with the new key.
        assert login(alice, accounts.alice.name, accounts.alice.password).status_code == 303


def _install(*options: str) -> subprocess.CompletedProcess[str]:
    return run(str(INSTALL), "--no-yocto-deps", *options, timeout=INSTALL_TIMEOUT)


def test_install_with_a_self_signed_certificate_serves_https_and_redirects_http(installs):
    host = run("hostname", "-f").stdout.strip() or run("hostname").stdout.strip()
    try:
        first = _install("--tls-self-signed")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "SELF-SIGNED" in first.stdout and "/etc/autobuild/tls/autobuild.crt" in first.stdout
        assert host in first.stdout
        second = _install()  # a later run keeps TLS and changes nothing
        assert second.returncode == 0, second.stdout + second.stderr
        assert "Done: no changes" in second.stdout, second.stdout
        assert "HTTPS kept" in second.stdout

        subject = run("openssl", "x509", "-in", "/etc/autobuild/tls/autobuild.crt", "-noout", "-subject")
        assert host in subject.stdout
        key_mode = stat.S_IMODE(Path("/etc/autobuild/tls/autobuild.key").stat().st_mode)
        assert key_mode == 0o600

        page = httpx.get("https://127.0.0.1/login", verify=False, timeout=30)
        assert page.status_code == 200
        assert page.headers.get("server") == "nginx"
        assert "max-age=" in page.headers.get("strict-transport-security", ""), page.headers
        redirect = httpx.get(f"{BASE_URL}/login?x=1", follow_redirects=False)
        assert redirect.status_code == 301
        assert redirect.headers["location"] == "https://127.0.0.1/login?x=1"
        assert redirect.headers.get("server") == "nginx"
    finally:
        back = _install("--no-tls")
        assert back.returncode == 0, back.stdout + back.stderr
        wait_for_service()
    assert httpx.get(f"{BASE_URL}/login").status_code == 200
    assert not Path("/etc/autobuild/tls").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get("https://127.0.0.1/login", verify=False, timeout=5)
