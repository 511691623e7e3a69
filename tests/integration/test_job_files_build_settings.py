"""JobDirectory: the build-settings file for the runner and the runner's artifact checksums."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime

import pytest

from autobuild.adapters.job_files import JobDirectory
from autobuild.domain.jobs import Job


def make_job(job_id: int = 5, kas_file: str | None = None) -> Job:
    return Job(owner="alice", repo_url="https://gitlab.example.com/a/b.git", ref="main",
               machine="qemux86-64", target="core-image-minimal",
               created_at=datetime(2026, 1, 1, tzinfo=UTC), id=job_id, kas_file=kas_file)


@pytest.fixture
def files(tmp_path):
    return JobDirectory(tmp_path)


def test_build_settings_are_written_for_the_runner_with_the_kas_file(files, tmp_path):
    files.create(make_job(kas_file="kas/qemu.yml"), ["*.bin"],
                 {"CACHE_DIR": "/srv/autobuild/cache", "KEEP_WORKSPACE": "0"})

    path = tmp_path / "5" / "build-settings"
    assert path.read_text() == ("CACHE_DIR=/srv/autobuild/cache\nKEEP_WORKSPACE=0\n"
                                "KAS_FILE=kas/qemu.yml\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert json.loads((tmp_path / "5" / "job.json").read_text())["kas_file"] == "kas/qemu.yml"


def test_without_settings_or_kas_file_the_file_is_empty(files, tmp_path):
    files.create(make_job(), [])
    assert (tmp_path / "5" / "build-settings").read_text() == ""


@pytest.mark.parametrize("settings", [{"CACHE_DIR": "/x\nKEEP_WORKSPACE=1"},
                                      {"bad key": "1"}, {"A=B": "1"}])
def test_settings_the_runner_could_misread_are_refused(files, settings):
    with pytest.raises(ValueError):
        files.create(make_job(), [], settings)


def artifacts_dir(tmp_path, job_id: int = 5):
    path = tmp_path / str(job_id) / "artifacts"
    path.mkdir(parents=True)
    return path


def test_artifacts_come_with_the_sha256_the_runner_recorded(files, tmp_path):
    arts = artifacts_dir(tmp_path)
    (arts / "a.bin").write_bytes(b"a")
    (arts / "b.mtd").write_bytes(b"b")
    digest = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    (tmp_path / "5" / "artifacts.sha256").write_text(f"{digest}  a.bin\n")

    listed = {a.name: a.sha256 for a in files.list_artifacts(5)}

    assert listed == {"a.bin": digest, "b.mtd": None}


def test_a_symlinked_or_huge_checksum_file_is_ignored(files, tmp_path):
    arts = artifacts_dir(tmp_path)
    (arts / "a.bin").write_bytes(b"a")
    elsewhere = tmp_path / "planted"
    elsewhere.write_text(f"{'1' * 64}  a.bin\n")
    os.symlink(elsewhere, tmp_path / "5" / "artifacts.sha256")
    assert [a.sha256 for a in files.list_artifacts(5)] == [None]

    os.unlink(tmp_path / "5" / "artifacts.sha256")
    (tmp_path / "5" / "artifacts.sha256").write_text(f"{'1' * 64}  a.bin\n" * 20000)
    assert [a.sha256 for a in files.list_artifacts(5)] == [None]
