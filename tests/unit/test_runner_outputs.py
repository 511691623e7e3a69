"""What the runner publishes: which deployed images it collects, which task logs it saves."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from autobuild.domain import layout
from autobuild.domain.failures import task_log_name
from autobuild.runner import outputs
from autobuild.runner.outputs import collect_artifacts, log_says_disk_full, save_task_logs

MACHINE = "qemux86-64"


class Job:
    """A job directory with its descriptors, as the runner holds them."""

    def __init__(self, base: Path) -> None:
        self.path = base / "job"
        for sub in (layout.LOGS_DIR, layout.ARTIFACTS_DIR, layout.WORK_DIR):
            (self.path / sub).mkdir(parents=True)
        self.log_path = self.path.joinpath(*layout.LOG_PATH)
        self.log_path.write_text("")
        flags = os.O_RDONLY | os.O_DIRECTORY
        self.job = os.open(self.path, flags)
        self.logs = os.open(self.path / layout.LOGS_DIR, flags)
        self.artifacts = os.open(self.path / layout.ARTIFACTS_DIR, flags)
        self.work = os.open(self.path / layout.WORK_DIR, flags)
        self.log = os.open(self.log_path, os.O_RDWR | os.O_APPEND)
        self.said: list[str] = []
        self.build = self.path / layout.WORK_DIR / "src" / "build"
        self.deploy = self.build / "tmp" / "deploy" / "images" / MACHINE

    def close(self) -> None:
        for fd in (self.job, self.logs, self.artifacts, self.work, self.log):
            os.close(fd)

    def collect(self, patterns=("*.bin", "*.mtd")) -> list[str]:
        return collect_artifacts(self.work, "src/build", MACHINE, tuple(patterns),
                                 self.artifacts, self.job, str(self.path), self.said.append)

    def save(self) -> int:
        return save_task_logs(self.log, self.work, self.logs, str(self.path), self.said.append)

    def artifacts_dir(self) -> dict[str, bytes]:
        return {p.name: p.read_bytes() for p in (self.path / layout.ARTIFACTS_DIR).iterdir()}


@pytest.fixture
def job(tmp_path):
    job = Job(tmp_path)
    yield job
    job.close()


def test_matching_regular_files_and_links_inside_the_build_tree_are_collected(job, tmp_path):
    job.deploy.mkdir(parents=True)
    (job.deploy / "image.rootfs.bin").write_bytes(b"\x00image\xff")
    (job.deploy / "image.bin").symlink_to("image.rootfs.bin")
    (job.deploy / "flash.mtd").write_bytes(b"mtd")
    (job.deploy / "manifest.txt").write_text("no")
    (job.build / "tmp" / "uboot.bin").write_bytes(b"uboot")
    (job.deploy / "u-boot.bin").symlink_to("../../../uboot.bin")
    secret = tmp_path / "secret.bin"
    secret.write_text("secret")
    (job.deploy / "evil.bin").symlink_to(secret)
    (job.path / layout.WORK_DIR / "src" / "VERSION").write_text("1")
    (job.deploy / "outside-build.bin").symlink_to(job.path / layout.WORK_DIR / "src" / "VERSION")
    (job.deploy / "dangling.bin").symlink_to("nothing.bin")
    os.mkfifo(job.deploy / "fifo.bin")
    (job.deploy / "dir.bin").mkdir()
    (job.deploy / ".hidden.bin").write_text("hidden")
    (job.deploy / "new\nline.bin").write_text("odd")

    names = job.collect()

    assert sorted(names) == ["flash.mtd", "image.bin", "image.rootfs.bin", "u-boot.bin"]
    assert job.artifacts_dir() == {"flash.mtd": b"mtd", "image.bin": b"\x00image\xff",
                                   "image.rootfs.bin": b"\x00image\xff", "u-boot.bin": b"uboot"}
    for name in names:
        info = (job.path / layout.ARTIFACTS_DIR / name).lstat()
        assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == layout.FILE_MODE
    said = "\n".join(job.said)
    assert "skipped evil.bin: its link leads outside the build tree" in said
    assert "skipped outside-build.bin: its link leads outside the build tree" in said
    assert "skipped dangling.bin: its link leads nowhere" in said
    assert "skipped fifo.bin: not a regular file" in said
    assert "skipped dir.bin: not a regular file" in said
    assert "sha256 of 4 artifact(s) in artifacts.sha256" in said
    sums = (job.path / layout.CHECKSUMS).read_text().splitlines()
    assert sorted(sums) == sorted(f"{hashlib.sha256(data).hexdigest()}  {name}"
                                  for name, data in job.artifacts_dir().items())


def test_nothing_to_collect_is_said_and_writes_no_checksums(job):
    assert job.collect() == []
    assert job.said == [f"no artifacts matched: {job.path}/work/src/build/tmp/deploy/images/"
                        f"{MACHINE} does not exist"]
    job.deploy.mkdir(parents=True)
    (job.deploy / "a.wic").write_text("x")
    assert job.collect(["*.bin"]) == []
    assert job.said[-1].startswith("no artifacts matched *.bin in ")
    assert not (job.path / layout.CHECKSUMS).exists()


def test_a_deploy_directory_linked_out_of_the_build_tree_is_not_collected(job, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.bin").write_text("x")
    job.deploy.parent.mkdir(parents=True)
    job.deploy.symlink_to(outside)
    assert job.collect() == []
    assert "is not inside the build's workspace" in job.said[-1]


# --- task logs ------------------------------------------------------------------------------

def logfile_line(path) -> str:
    return f"ERROR: Logfile of failure stored in: {path}\n"


def make_task_log(job: Job, recipe: str = "busybox", text: str = "make failed\n") -> Path:
    temp = job.build / "tmp" / "work" / "core2" / recipe / "1.0-r0" / "temp"
    temp.mkdir(parents=True, exist_ok=True)
    path = temp / "log.do_compile.123"
    path.write_text(text)
    return path


def saved(job: Job) -> dict[str, str]:
    directory = job.path.joinpath(*layout.TASK_LOGS_PATH)
    return {p.name: p.read_text() for p in directory.iterdir()} if directory.exists() else {}


def test_task_logs_inside_the_workspace_are_saved_under_their_domain_name(job):
    log = make_task_log(job)
    job.log_path.write_text("NOTE: x\n" + logfile_line(log) + logfile_line(log))

    assert job.save() == 1

    name = task_log_name(str(log))
    assert saved(job) == {name: "make failed\n"}
    copy = job.path.joinpath(*layout.TASK_LOGS_PATH, name)
    assert stat.S_IMODE(copy.stat().st_mode) == layout.FILE_MODE
    assert job.said == [f"saved the log of the failed task as logs/failed-tasks/{name}"]


def test_logs_outside_the_workspace_links_out_fifos_and_relative_paths_are_refused(job, tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("SECRET")
    real = make_task_log(job)
    link_out = real.parent / "log.do_install.1"
    link_out.symlink_to(secret)
    link_in = real.parent / "log.do_configure.2"
    link_in.symlink_to(real.name)
    fifo = real.parent / "log.do_fetch.3"
    os.mkfifo(fifo)
    job.log_path.write_text("".join(logfile_line(p) for p in (
        secret, link_out, fifo, "relative/log.do_x", link_in)))

    job.save()

    assert saved(job) == {task_log_name(str(link_in)): "make failed\n"}
    said = "\n".join(job.said)
    for path in (secret, link_out):
        assert f"not saving the task log {path}: it is not inside the build's workspace" in said
    assert f"not saving the task log {fifo}: not a regular file" in said


def test_only_the_end_of_a_big_task_log_and_at_most_max_task_logs_are_kept(job, monkeypatch):
    monkeypatch.setattr(outputs, "MAX_TASK_LOG_BYTES", 10)
    monkeypatch.setattr(outputs, "MAX_TASK_LOGS", 2)
    logs = [make_task_log(job, f"r{i}", f"{i}" * 5 + "0123456789") for i in range(4)]
    job.log_path.write_text("".join(logfile_line(p) for p in logs))

    assert job.save() == 2

    assert sorted(saved(job).values()) == ["0123456789", "0123456789"]


def test_a_link_in_place_of_the_copies_directory_is_refused(job, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    job.path.joinpath(*layout.TASK_LOGS_PATH).symlink_to(elsewhere)
    job.log_path.write_text(logfile_line(make_task_log(job)))

    job.save()

    assert job.said == [f"not saving task logs: cannot create {job.path}/logs/failed-tasks"]
    assert list(elsewhere.iterdir()) == []


def test_disk_full_is_read_from_the_log(job):
    assert not log_says_disk_full(job.log)
    job.log_path.write_text("x" * 2_000_000 + "\nERROR: write: No space left on device\n")
    assert log_says_disk_full(job.log)


def test_a_directory_swapped_for_a_link_after_the_check_leads_nowhere(job, tmp_path, monkeypatch):
    """A leftover build process may swap a directory of a checked path for a link to
    ~/.ssh between the check and the open: what is opened is checked again, by descriptor."""
    secret_dir = tmp_path / "ssh"
    secret_dir.mkdir()
    (secret_dir / "log.do_compile.123").write_text("SECRET KEY")
    (secret_dir / "image.bin").write_text("SECRET KEY")
    log = make_task_log(job)
    job.log_path.write_text(logfile_line(log))
    real_resolve = outputs._resolve

    def resolve_then_swap(path):  # the check sees the real tree; then the swap happens
        resolved = real_resolve(path)
        temp = log.parent
        if temp.is_dir() and not temp.is_symlink():
            temp.rename(temp.with_name("temp.orig"))
            temp.symlink_to(secret_dir)
        return resolved

    monkeypatch.setattr(outputs, "_resolve", resolve_then_swap)
    job.save()

    assert saved(job) == {}
    assert "not a regular file inside the workspace" in "\n".join(job.said)
