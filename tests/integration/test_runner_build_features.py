"""The runner: kas projects (real kas, stand-in bitbake), workspace cleanup, sha256 of the
artifacts, and a disk that fills up during the build."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.support.standin import create_kas_repo

from .conftest import MACHINE, TOKEN
from .test_runner import assert_finished

REPO_ROOT = Path(__file__).resolve().parents[2]
KAS = REPO_ROOT / ".venv" / "bin" / "kas"


@pytest.fixture
def kas_url(git) -> str:
    bare = git.bare.parent / "kas-project.git"
    if not bare.exists():
        create_kas_repo(bare)
    return git.server.url("kas-project.git")


def sha256_lines(build) -> dict[str, str]:
    text = (build.job_dir / "artifacts.sha256").read_text()
    sums = {}
    for line in text.splitlines():
        digest, name = line.split("  ", 1)
        sums[name] = digest
    return sums


# --- sha256 ----------------------------------------------------------------------------------

def test_runner_records_the_sha256_of_every_collected_artifact(runner, git):
    build = runner.build(1, git.url, "main")

    assert_finished(build, "SUCCESS", 0)
    sums = sha256_lines(build)
    assert sums and set(sums) == set(build.artifacts)
    for name, path in build.artifacts.items():
        assert sums[name] == hashlib.sha256(path.read_bytes()).hexdigest(), name
    checked = subprocess.run(["sha256sum", "--check", "--strict", "../artifacts.sha256"],
                             cwd=build.job_dir / "artifacts", capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert oct((build.job_dir / "artifacts.sha256").stat().st_mode & 0o777) == "0o640"


def test_no_artifacts_means_no_checksum_file(runner, git):
    build = runner.build(1, git.url, "main", patterns=["*.wic"])

    assert_finished(build, "SUCCESS", 0)
    assert not (build.job_dir / "artifacts.sha256").exists()


# --- workspace cleanup -----------------------------------------------------------------------

def test_workspace_is_removed_after_a_build_and_artifacts_stay(runner, git, tmp_path):
    build = runner.build(1, git.url, "main", settings={"cache_dir": str(tmp_path / "none")})

    assert_finished(build, "SUCCESS", 0)
    assert not (build.job_dir / "work").exists()
    assert build.artifacts and (build.job_dir / "artifacts.sha256").exists()
    log = build.log
    assert log.index("==> Collecting artifacts") < log.index("==> Removing the workspace")
    assert "Removed work/ (the clone and build/tmp): " in log
    assert "freed" in log.split("Removed work/", 1)[1].splitlines()[0]


def test_workspace_is_removed_after_a_failure_once_task_logs_are_saved(runner, git, tmp_path):
    build = runner.build(1, git.url, "main", target="fail-image",
                         settings={"cache_dir": str(tmp_path / "none")})

    assert_finished(build, "FAILED", 1)
    assert not (build.job_dir / "work").exists()
    saved = list((build.job_dir / "logs" / "failed-tasks").iterdir())
    assert len(saved) == 1 and "oe_runmake failed" in saved[0].read_text()


def test_read_only_directories_in_the_workspace_are_removed_too(runner, git, tmp_path):
    # Yocto leaves read-only trees behind (Go's module cache); a plain rm -rf fails on them.
    # Made here while the build runs, as a recipe would.
    hook = tmp_path / "make-read-only.sh"
    hook.write_text("#!/bin/sh\nmkdir -p gomod/pkg && echo x > gomod/pkg/f.go && "
                    "chmod 555 gomod/pkg gomod\n")
    hook.chmod(0o755)
    process = runner.start(1, git.url, "main", settings={"cache_dir": str(tmp_path / "none")},
                           STANDIN_BITBAKE_DELAY="0.05")
    runner.wait_for_log(1, "==> Checking out", timeout=30)
    work = runner.job_path(1) / "work"
    subprocess.run([str(hook)], cwd=work, check=True)
    assert process.wait(timeout=60) == 0
    assert not work.exists()
    assert "Removed work/ (the clone and build/tmp): " in (
        runner.job_path(1) / "logs" / "build.log").read_text()


def test_keep_workspace_keeps_it_and_says_how_big_it_is(runner, git):
    build = runner.build(1, git.url, "main")  # the fixture's settings keep it

    assert_finished(build, "SUCCESS", 0)
    assert (build.job_dir / "work" / "src" / "build" / "tmp").is_dir()
    assert "Keeping the workspace (KEEP_WORKSPACE=1): work/ uses " in build.log


def test_cancelled_build_cleans_up_too(runner, git, tmp_path):
    proc = runner.start(1, git.url, "main", target="slow-image",
                        settings={"cache_dir": str(tmp_path / "none"), "cancel_grace": 2})
    runner.wait_for_log(1, "Running task 2 of")
    assert runner.cancel(1).returncode == 0
    assert proc.wait(timeout=60) != 0
    job_dir = runner.job_path(1)
    assert '"CANCELLED"' in (job_dir / "status.json").read_text()
    assert not (job_dir / "work").exists()


# --- kas -------------------------------------------------------------------------------------

def test_repo_with_kas_yml_is_built_by_real_kas_with_the_form_machine_and_target(
        runner, git, kas_url, tmp_path):
    cache = tmp_path / "cache"
    (cache / "downloads").mkdir(parents=True)
    (cache / "sstate-cache").mkdir()
    build = runner.build(1, kas_url, "main", machine="genericarm64", target="core-image-base",
                         settings={"cache_dir": str(cache), "keep_workspace": True,
                                   "bb_number_threads": 3})

    assert_finished(build, "SUCCESS", 0)
    log = build.log
    assert "==> kas build kas.yml: bitbake core-image-base (MACHINE=genericarm64)" in log
    assert "kas 5.5" in log
    assert "oe-init-build-env" not in log.split("==> kas build", 1)[0].split("==> Checking out")[1]
    # kas's own bitbake call, with the form's values overriding kas.yml's.
    assert "bitbake -c build core-image-base" in log or 'TARGET               = "core-image-base"' in log
    assert 'MACHINE              = "genericarm64"' in log
    assert f'DL_DIR               = "{cache}/downloads"' in log
    assert 'BB_NUMBER_THREADS    = "3"' in log
    build_dir = build.job_dir / "work" / "build"
    assert 'MACHINE ??= "genericarm64"' in (build_dir / "conf" / "local.conf").read_text()
    assert f'SSTATE_DIR = "{cache}/sstate-cache"' in (build_dir / "conf" / "auto.conf").read_text()
    names = set(build.artifacts)
    assert "core-image-base-genericarm64.bin" in names
    assert b"version=2.0" in build.artifacts["core-image-base-genericarm64.bin"].read_bytes()
    assert set(sha256_lines(build)) == names


def test_kas_file_from_the_form_is_used(runner, git, kas_url, tmp_path):
    build = runner.build(1, kas_url, "main", target="core-image-minimal",
                         settings={"cache_dir": str(tmp_path / "none")}, kas_file="kas/other.yml")

    assert_finished(build, "SUCCESS", 0)
    assert "==> kas build kas/other.yml: bitbake core-image-minimal" in build.log
    assert f"core-image-minimal-{MACHINE}.bin" in build.artifacts
    assert not (build.job_dir / "work").exists()


def test_failed_kas_build_saves_task_logs_and_fails(runner, git, kas_url, tmp_path):
    build = runner.build(1, kas_url, "main", target="fail-image",
                         settings={"cache_dir": str(tmp_path / "none")})

    assert_finished(build, "FAILED", 2)  # kas's exit code when bitbake fails
    assert "ERROR: kas build kas.yml failed (exit 2)" in build.log
    saved = list((build.job_dir / "logs" / "failed-tasks").iterdir())
    assert len(saved) == 1 and "oe_runmake failed" in saved[0].read_text()


def test_missing_kas_file_fails_with_one_clear_line(runner, git, tmp_path):
    build = runner.build(1, git.url, "main", settings={"cache_dir": str(tmp_path / "none")},
                         kas_file="kas/none.yml")

    assert_finished(build, "FAILED", 1)
    assert "ERROR: the kas file kas/none.yml is not a file in the repository" in build.log


def test_without_a_kas_file_the_poky_path_is_taken(runner, git):
    build = runner.build(1, git.url, "main")

    assert_finished(build, "SUCCESS", 0)
    assert "==> Setting up the build environment (oe-init-build-env)" in build.log
    assert "kas build" not in build.log


# --- disk full -------------------------------------------------------------------------------

@pytest.fixture
def tiny_jobs_root(tmp_path):
    """A 3 MiB tmpfs as the jobs root (root only; skipped where mounting is not allowed)."""
    root = tmp_path / f"tiny-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a tmpfs")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M,mode=0755", "tmpfs",
                              str(root)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


@pytest.mark.parametrize("keep", ["0", "1"])
def test_disk_full_ends_failed_with_a_status_and_frees_the_workspace(runner, git, tiny_jobs_root,
                                                                     keep):
    runner.jobs_root = tiny_jobs_root
    build = runner.build(1, git.url, "main", target="fill-disk-image",
                         settings={"cache_dir": "/nonexistent", "keep_workspace": keep == "1"})

    assert_finished(build, "FAILED", 1)
    log = build.log
    assert "ERROR: No space left on device: the disk holding" in log
    assert not (build.job_dir / "work").exists()  # freed even when asked to keep it
    assert not (build.job_dir / ".space-reserve").exists()


def test_a_kas_build_records_its_kas_file_and_each_repository_at_its_commit(
        runner, git, tmp_path):
    from autobuild.domain.provenance import ProvenanceCollector
    from tests.support.standin import create_layer_repo
    # kas clones a second repository itself (from a path: kas drops GIT_SSL_CAINFO, so it
    # could not verify the test server's certificate, which the system tests' trust store has).
    local = tmp_path / "layers" / "meta-local.git"
    local_commit = create_layer_repo(local, "meta-local")
    bare = git.bare.parent / f"kas-layered-{uuid.uuid4().hex[:8]}.git"
    project_commit = create_kas_repo(bare, {"kas/layered.yml": (
        "header:\n  version: 14\nmachine: qemuarm64\ntarget: kas-other-image\n"
        f"repos:\n  standin:\n  meta-local:\n    url: {local}\n    branch: main\n")})
    build = runner.build(1, git.server.url(bare.name), "main", target="core-image-minimal",
                         settings={"cache_dir": str(tmp_path / "none")},
                         kas_file="kas/layered.yml")

    assert_finished(build, "SUCCESS", 0)
    log = build.log
    assert "==> Kas file kas/layered.yml\n" in log
    assert f"==> Kas repo standin {project_commit} (this repository)\n" in log
    assert f"==> Kas repo meta-local {local_commit} {local}\n" in log
    # Said after kas checked the repositories out, before bitbake starts.
    assert log.index("==> Kas repo") < log.index("Build Configuration")
    collector = ProvenanceCollector()
    collector.add_lines(log.splitlines())
    built = collector.provenance
    assert built.kas_file == "kas/layered.yml" and built.commit == project_commit
    # bitbake's Build Configuration, which kas logs with its own prefix, is read too.
    assert dict(built.variables)["DISTRO_VERSION"] == "2.0" and built.layers
    assert [(r.name, r.commit, r.url) for r in built.kas_repos] == [
        ("standin", project_commit, None), ("meta-local", local_commit, str(local))]
    assert TOKEN not in log


def test_the_default_kas_file_is_recorded_by_name(runner, git, kas_url, tmp_path):
    build = runner.build(1, kas_url, "main", target="core-image-minimal",
                         settings={"cache_dir": str(tmp_path / "none")})
    assert_finished(build, "SUCCESS", 0)
    assert "==> Kas file kas.yml\n" in build.log
    assert "==> Kas repo standin " in build.log and "(this repository)" in build.log
