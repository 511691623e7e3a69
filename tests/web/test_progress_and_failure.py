"""Progress (API, SSE, job page, job list) and the "Why it failed" box of a failed build."""

import html
import re

import pytest

from autobuild.domain import queries
from autobuild.domain.digest import LogDigest
from autobuild.domain.failures import TOKEN_REFUSED, task_log_name
from autobuild.web.rendering import human_size
from autobuild.web.routes import stream
from tests.web.helpers import event_data, parse_sse, submit

pytestmark = pytest.mark.timeout(30)

SRC = "/srv/autobuild/jobs/1/work/src"
RECIPE = f"{SRC}/meta/recipes-core/images/fail-image.bb"
LOGFILE = f"{SRC}/build/tmp/work/qemux86-64-poky-linux/fail-image/1.0-r0/temp/log.do_compile.77"
STARTED = b"""\
==> Cloning https://gitlab.example.com/bsp/yocto-image.git
==> Checking out main
==> bitbake core-image-minimal (MACHINE=qemux86-64)
Parsing recipes: 100% |#########################| Time: 0:00:01
NOTE: Running setscene task 4 of 4 (/p/meta/b.bb:do_populate_lic_setscene)
NOTE: Running task 3 of 12 (/p/meta/recipes-core/busybox/busybox_1.36.1.bb:do_configure)
"""
FAILED = f"""\
==> bitbake fail-image (MACHINE=qemux86-64)
NOTE: Running task 5 of 12 ({RECIPE}:do_compile)
ERROR: fail-image-1.0-r0 do_compile: oe_runmake failed
ERROR: Logfile of failure stored in: {LOGFILE}
ERROR: Task ({RECIPE}:do_compile) failed with exit code '1'
Summary: 1 task failed:
  {RECIPE}:do_compile
Summary: There were 3 ERROR messages, returning a non-zero exit code.
ERROR: bitbake fail-image failed (exit 1)
==> Build finished: FAILED (exit 1)
""".encode()
TASK_LOG = "DEBUG: Executing shell function do_compile\nmake: *** [Makefile:12: all] Error 1\n" \
           "<script>alert(1)</script>\n"


@pytest.fixture(autouse=True)
def quick_polling(monkeypatch):
    monkeypatch.setattr(stream, "POLL_SECONDS", 0.02)


@pytest.fixture
def running(alice, fakes, supervisor):
    """Build 1, running, its log half way through the tasks."""
    assert submit(alice).status_code == 303
    supervisor.tick()
    fakes.files.append_log(1, STARTED)
    return 1


@pytest.fixture
def failed(alice, fakes, supervisor):
    """Build 1, FAILED in do_compile, with the task's log saved by the runner."""
    assert submit(alice).status_code == 303
    supervisor.tick()
    fakes.files.append_log(1, FAILED)
    fakes.files.task_logs[1] = {task_log_name(LOGFILE): TASK_LOG}
    fakes.runner.finish(1, 1)
    supervisor.tick()
    return 1


# --- progress ---------------------------------------------------------------------------------

def test_api_job_includes_its_progress(alice, running):
    progress = alice.get("/api/jobs/1").json()["progress"]

    assert progress == {
        "phase": "tasks", "label": "Running tasks 3 of 12", "percent": 25,
        "setscene_done": 4, "setscene_total": 4, "tasks_done": 3, "tasks_total": 12,
        "current": "busybox_1.36.1.bb:do_configure",
    }


def test_api_progress_of_a_queued_job_is_starting(alice):
    submit(alice)
    progress = alice.get("/api/jobs/1").json()["progress"]
    assert (progress["phase"], progress["percent"]) == ("starting", None)


def test_stream_sends_progress_after_the_log_that_changed_it(alice, running, fakes, supervisor):
    with alice.stream("GET", "/api/jobs/1/log/stream") as response:
        events = parse_sse(response.iter_lines())
        kinds = []
        for event in events:
            kinds.append(event.get("event"))
            if kinds[-1] == "progress":
                first = event_data(event)
                break
        assert kinds[-2:] == ["log", "progress"]
        assert first["label"] == "Running tasks 3 of 12"

        fakes.files.append_log(1, b"NOTE: recipe busybox-1.36.1-r0: task do_configure: Started\n")
        fakes.files.append_log(1, b"NOTE: Running task 9 of 12 (/p/busybox_1.36.1.bb:do_compile)\n")
        fakes.files.append_log(1, b"==> Collecting artifacts\n")
        fakes.runner.finish(1, 0)
        supervisor.tick()
        rest = list(events)

    updates = [event_data(e) for e in rest if e.get("event") == "progress"]
    assert updates, "no progress event after the log grew"
    assert updates[-1]["phase"] == "collecting" and updates[-1]["percent"] == 100
    assert all(a != b for a, b in zip(updates, updates[1:], strict=False))  # changes only
    assert rest[-1]["event"] == "end"


def test_a_resumed_stream_knows_the_progress_of_the_log_before_it(alice, running, supervisor, fakes):
    fakes.runner.finish(1, 0)
    supervisor.tick()
    with alice.stream("GET", "/api/jobs/1/log/stream",
                      headers={"Last-Event-ID": str(len(STARTED))}) as response:
        events = list(parse_sse(response.iter_lines()))

    assert not [e for e in events if e.get("event") == "log"]
    (progress,) = [event_data(e) for e in events if e.get("event") == "progress"]
    assert progress["tasks_done"] == 3 and progress["setscene_done"] == 4


def test_job_page_shows_the_progress_bar_of_a_running_build(alice, running):
    page = alice.get("/jobs/1").text

    assert '<div class="progress" id="progress">' in page
    assert '<span id="progress-label">Running tasks 3 of 12</span>' in page
    assert '<progress id="progress-bar" max="100" value="25"' in page
    assert "busybox_1.36.1.bb:do_configure" in page


def test_a_queued_build_shows_an_indeterminate_bar(alice):
    submit(alice)
    page = alice.get("/jobs/1").text
    assert "Waiting in the queue" in page
    assert '<progress id="progress-bar" max="100" aria-labelledby' in page  # no value


def test_a_finished_build_hides_the_bar(alice, failed):
    assert '<div class="progress" id="progress" hidden>' in alice.get("/jobs/1").text


def test_job_list_shows_a_small_bar_for_running_builds_only(alice, running, fakes, supervisor):
    submit(alice)  # build 2 waits in the queue

    rows = alice.get("/").text.split('class="job-row"')[1:]

    assert 'class="progress-mini" max="100" value="25"' in rows[1]  # build 1, running
    assert 'title="Running tasks 3 of 12 (25%)"' in rows[1]
    assert "progress-mini" not in rows[0]


# --- why it failed ---------------------------------------------------------------------------

def test_failed_build_page_says_which_task_failed_with_the_end_of_its_log(alice, failed):
    page = alice.get("/jobs/1").text

    assert "Why it failed" in page
    assert page.index("Why it failed") < page.index('id="log"')  # at the top
    assert "1 bitbake task failed:" in page
    assert ">fail-image-1.0-r0 do_compile</code>" in page
    assert "oe_runmake failed" in page
    assert html.escape("make: *** [Makefile:12: all] Error 1") in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_task_log_that_was_not_saved_is_named_by_its_path(alice, failed, fakes):
    fakes.files.task_logs[1] = {}
    page = alice.get("/jobs/1").text
    assert "Task log (not saved with the build)" in page
    assert LOGFILE in page


def test_a_git_failure_gets_its_one_line(alice, fakes, supervisor):
    submit(alice)
    supervisor.tick()
    fakes.files.append_log(1, b"==> Cloning https://gitlab.example.com/bsp/yocto-image.git\n"
                              b"remote: HTTP Basic: Access denied\n"
                              b"fatal: Authentication failed for 'https://gitlab.example.com/"
                              b"bsp/yocto-image.git/'\n==> Build finished: FAILED (exit 128)\n")
    fakes.runner.finish(1, 128)
    supervisor.tick()

    page = alice.get("/jobs/1").text

    assert "Why it failed" in page
    assert html.escape(TOKEN_REFUSED) in page
    assert "bitbake task" not in page


@pytest.mark.parametrize("exit_code, log", [(0, FAILED), (1, b"something odd happened\n")])
def test_no_box_unless_failed_with_something_to_say(alice, fakes, supervisor, exit_code, log):
    submit(alice)
    supervisor.tick()
    fakes.files.append_log(1, log)
    fakes.runner.finish(1, exit_code)
    supervisor.tick()

    assert "Why it failed" not in alice.get("/jobs/1").text
    assert alice.get("/jobs/1/failure").status_code == 204


def test_the_box_alone_for_a_build_that_failed_while_watched(alice, failed):
    response = alice.get("/jobs/1/failure")

    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section class="failure-box"')
    assert "fail-image-1.0-r0 do_compile" in response.text
    assert "<html" not in response.text


def test_the_box_of_a_running_or_unknown_build(alice, running, client):
    assert alice.get("/jobs/1/failure").status_code == 204
    assert alice.get("/jobs/99/failure").status_code == 404


def test_the_box_needs_a_signed_in_user(client, fakes, supervisor):
    assert client.get("/jobs/1/failure").status_code == 303


# --- huge logs: from the runner's digest, never a tail that misses the start -----------------

NOISE = b"NOTE: recipe x-1.0-r0: task do_compile: Succeeded\n" * 400


def huge_failure(fakes, supervisor, with_digest: bool) -> None:
    """Build 1 failed early on, then printed far more than the summary's fallback reads."""
    supervisor.tick()
    data = FAILED.replace(b"==> Build finished: FAILED (exit 1)\n", b"") + NOISE \
        + b"==> Build finished: FAILED (exit 1)\n"
    fakes.files.append_log(1, data)
    if with_digest:
        digest = LogDigest()
        digest.feed(data)
        fakes.files.digests[1] = digest.to_json()
    fakes.runner.finish(1, 1)
    supervisor.tick()


def test_an_early_failure_in_a_huge_digested_log_is_on_the_page(alice, fakes, supervisor,
                                                                   monkeypatch):
    monkeypatch.setattr(queries, "FAILURE_SCAN_BYTES", 4096)
    submit(alice)
    huge_failure(fakes, supervisor, with_digest=True)

    page = alice.get("/jobs/1").text
    failure = alice.get("/api/jobs/1").json()["failure"]

    assert ">fail-image-1.0-r0 do_compile</code>" in page
    assert "failure-incomplete" not in page
    assert [t["task"] for t in failure["tasks"]] == ["do_compile"]
    assert failure["incomplete"] is None


def test_a_summary_read_from_the_end_only_says_so(alice, fakes, supervisor, monkeypatch):
    monkeypatch.setattr(queries, "FAILURE_SCAN_BYTES", 4096)
    submit(alice)
    huge_failure(fakes, supervisor, with_digest=False)  # a build from before digests

    page = alice.get("/jobs/1").text
    failure = alice.get("/api/jobs/1").json()["failure"]

    assert "Why it failed" in page and "failure-incomplete" in page
    assert "an earlier error may be missing" in page
    assert "earlier error may be missing" in failure["incomplete"]


def test_a_summary_not_read_to_the_end_yet_says_how_far_in_the_log_headers_units(
        alice, fakes, supervisor, monkeypatch):
    """A digest left far behind its log is brought on a budget per view: the box says how
    much of the log it has read, in KiB/MiB like the log's own header, and that a reload
    reads on (not "so far", which sounds like the build still runs)."""
    monkeypatch.setattr(queries, "REPLAY_BYTES", 4096)
    submit(alice)
    supervisor.tick()
    digest = LogDigest()
    digest.feed(STARTED)
    fakes.files.append_log(1, STARTED + NOISE * 10 + FAILED)
    fakes.files.digests[1] = digest.to_json()
    fakes.runner.finish(1, 1)
    supervisor.tick()

    page = alice.get("/jobs/1").text
    failure = alice.get("/api/jobs/1").json()["failure"]

    said = re.search(r"Only the first ([\d.]+ KiB) of this ([\d.]+ KiB) log has been "
                     r"summarised yet; reload to read further\.", page)
    assert said, page
    assert "so far" not in page and "up to byte" not in page
    assert 0 < failure["read_bytes"] < failure["log_bytes"] == fakes.files.log_size(
        fakes.jobs.get(1))
    assert said.group(2) == human_size(failure["log_bytes"]) == "196.4 KiB"
    assert "reload" in failure["incomplete"]


def test_a_stream_opened_at_the_tail_has_the_progress_of_the_whole_log(alice, running, fakes,
                                                                       supervisor, monkeypatch):
    monkeypatch.setattr(queries, "PROGRESS_SCAN_BYTES", 2048)  # what a build without a digest reads
    digest = LogDigest()
    digest.feed(STARTED + NOISE)
    fakes.files.append_log(1, NOISE)
    fakes.files.digests[1] = digest.to_json()
    fakes.runner.finish(1, 0)
    supervisor.tick()
    tail = len(STARTED + NOISE) - 1024  # the tail holds no task line at all

    with alice.stream("GET", f"/api/jobs/1/log/stream?offset={tail}") as response:
        events = list(parse_sse(response.iter_lines()))

    (progress,) = [event_data(e) for e in events if e.get("event") == "progress"]
    assert progress["tasks_done"] == 3 and progress["setscene_done"] == 4


# --- what was built ----------------------------------------------------------------------------

SHA = "0f14567a2c1d6e0e7e1d2c3b4a5968778695a4b3"
BUILT = f"""\
==> Checking out main
==> Commit {SHA}
Build Configuration:
BB_VERSION           = "2.8.0"
DISTRO               = "poky<script>"
meta-poky            = "scarthgap:{SHA}"

""".encode()


@pytest.mark.parametrize("with_digest", [True, False])
def test_the_page_and_the_api_say_what_was_built(alice, running, fakes, with_digest):
    fakes.files.logs[1] = BUILT + NOISE
    if with_digest:
        digest = LogDigest()
        digest.feed(BUILT + NOISE)
        fakes.files.digests[1] = digest.to_json()

    page = alice.get("/jobs/1").text
    built = alice.get("/api/jobs/1").json()["provenance"]

    assert f'<code id="provenance-commit">{SHA}</code>' in page
    assert "poky&lt;script&gt;" in page and "poky<script>" not in page
    assert built == {"commit": SHA, "variables": {"BB_VERSION": "2.8.0", "DISTRO": "poky<script>"},
                     "layers": [{"name": "meta-poky", "branch": "scarthgap", "revision": SHA}],
                     "kas_file": None, "kas_repos": []}
    assert 'id="kas-repos"' not in page


KAS_BUILT = f"""==> Checking out main
==> Commit {SHA}
==> kas build kas/qemu.yml: bitbake core-image-minimal (MACHINE=qemux86-64)
==> Kas file kas/qemu.yml
==> Kas repo project {SHA} (this repository)
==> Kas repo meta-oe {"a" * 40} https://git.openembedded.org/meta-openembedded
==> Kas repo evil {"b" * 40} https://user:secret@example.com/x.git
==> Kas repo <script> {"c" * 40} https://example.com/y.git
""".encode()


@pytest.mark.parametrize("with_digest", [True, False])
def test_a_kas_build_says_its_kas_file_and_repositories(alice, running, fakes, with_digest):
    fakes.files.logs[1] = KAS_BUILT + NOISE
    if with_digest:
        digest = LogDigest()
        digest.feed(KAS_BUILT + NOISE)
        fakes.files.digests[1] = digest.to_json()

    built = alice.get("/api/jobs/1").json()["provenance"]
    page = alice.get("/jobs/1").text

    assert built["kas_file"] == "kas/qemu.yml"
    # A line with credentials in its URL or a strange name is not believed (the runner never
    # prints one): only what the runner can have said is shown.
    assert built["kas_repos"] == [
        {"name": "project", "commit": SHA, "url": None},
        {"name": "meta-oe", "commit": "a" * 40,
         "url": "https://git.openembedded.org/meta-openembedded"}]
    assert '<code id="provenance-kas-file">kas/qemu.yml</code>' in page
    assert "https://git.openembedded.org/meta-openembedded" in page and "this repository" in page
    assert "secret" not in page and "<script>" not in page.split('id="kas-repos"')[1]


def test_nothing_is_said_before_the_log_says_it(alice):
    submit(alice)
    assert alice.get("/api/jobs/1").json()["provenance"] is None
    assert 'id="provenance"' not in alice.get("/jobs/1").text
