"""The runner keeps logs/digest.json: the progress and failure lines of its whole log."""

from __future__ import annotations

import stat
import time

from autobuild.domain.digest import LogDigest
from autobuild.domain.failures import summarize
from autobuild.domain.progress import Phase, progress_of


def digest_of(job_dir) -> LogDigest:
    path = job_dir / "logs" / "digest.json"
    info = path.lstat()
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o640
    return LogDigest.parse(path.read_bytes())


def test_a_finished_build_has_the_digest_of_its_whole_log(runner, git):
    build = runner.build(1, git.url, "main")

    assert build.status["status"] == "SUCCESS"
    digest = digest_of(build.job_dir)
    log = (build.job_dir / "logs" / "build.log").read_bytes()
    assert digest.offset == len(log)
    assert digest.progress == progress_of(log.decode())
    assert (digest.progress.phase, digest.progress.percent) == (Phase.FINISHED, 100)


def test_a_failed_builds_digest_gives_the_summary_of_its_whole_log(runner, git):
    build = runner.build(1, git.url, "main", target="fail-image")

    digest = digest_of(build.job_dir)
    assert digest.failure() == summarize(build.log)
    assert [t.label for t in digest.failure().tasks] == ["fail-image-1.0-r0 do_compile"]


def test_the_digest_follows_a_running_build(runner, git):
    process = runner.start(1, git.url, "main", target="slow-image")
    try:
        runner.wait_for_log(1, "NOTE: Running task")
        deadline = time.monotonic() + 20
        path = runner.job_path(1) / "logs" / "digest.json"
        while time.monotonic() < deadline:
            if path.exists() and LogDigest.parse(path.read_bytes()).progress.tasks_done:
                break
            time.sleep(0.2)
        digest = digest_of(runner.job_path(1))
        assert digest.progress.phase is Phase.TASKS
        assert 0 < digest.offset <= (runner.job_path(1) / "logs" / "build.log").stat().st_size
        assert runner.cancel(1).returncode == 0
    finally:
        process.wait(timeout=60)
    digest = digest_of(runner.job_path(1))
    assert digest.offset == (runner.job_path(1) / "logs" / "build.log").stat().st_size


def test_the_digest_says_what_was_built(runner, git):
    build = runner.build(1, git.url, "main")

    built = digest_of(build.job_dir).provenance
    assert built.commit == git.main_sha  # what "main" resolved to
    assert f"==> Commit {git.main_sha}" in build.log
    variables = dict(built.variables)
    assert variables["MACHINE"] == "qemux86-64" and variables["BB_VERSION"]
    (layer,) = [layer for layer in built.layers if layer.name == "meta-standin"]
    assert layer.revision == git.main_sha  # the layer's own revision, from bitbake's block
