"""kas file validation, artifact checksums, the disk-full line, and the build settings the
service hands to every job."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain.artifacts import parse_checksums
from autobuild.domain.failures import DISK_FULL, summarize
from autobuild.domain.requests import BuildRequest, InvalidRequest, KasFile
from autobuild.domain.jobs import JobStatus
from autobuild.domain.orders import BuildSettings, InvalidOrder
from tests.fakes import FakeWorld

URL = "https://gitlab.example.com/team/project.git"


@pytest.mark.parametrize("path", ["kas.yml", "kas/qemu.yml", "kas/board-a_1.yaml",
                                  "configs/x.json", "_k/v1.2.yml", "a" * 196 + ".yml"])
def test_kas_files_that_are_accepted(path):
    assert str(KasFile.parse(path)) == path


@pytest.mark.parametrize("path", ["", "kas", "kas.txt", "../kas.yml", "kas/../../x.yml",
                                  "/etc/kas.yml", ".hidden.yml", "kas/.x.yml", "-rf.yml",
                                  "kas//x.yml", "kas/x.yml/", "kas x.yml", "kas/$(id).yml",
                                  "a" * 197 + ".yml", "kas:other.yml", "kas\\x.yml"])
def test_kas_files_that_are_refused(path):
    with pytest.raises(ValueError):
        KasFile.parse(path)


@given(st.text(alphabet=st.sampled_from("ab./-_\\:~ \n"), max_size=40)
       .map(lambda s: s + ".yml"))
def test_an_accepted_kas_file_never_leaves_the_repository(path):
    try:
        kas = KasFile.parse(path)
    except ValueError:
        return
    joined = posixpath.normpath(posixpath.join("/work/src", kas.value))
    assert joined.startswith("/work/src/")
    assert not any(part.startswith((".", "-")) for part in kas.value.split("/"))


def test_a_bad_kas_file_is_reported_with_the_other_fields():
    with pytest.raises(InvalidRequest) as info:
        BuildRequest.parse(URL, "main", "qemux86-64", "-x", kas_file="../x.yml")
    assert set(info.value.errors) == {"target", "kas_file"}
    assert BuildRequest.parse(URL, "main", "qemux86-64", "core-image", kas_file="  ").kas_file is None


def test_checksums_are_read_from_sha256sum_output_and_junk_is_skipped():
    good = "a" * 64
    text = (f"{good}  image.bin\n{'b' * 64} *flash.mtd\n\\{'c' * 64}  new\\nline.bin\n"
            f"{'d' * 64}  ../etc/passwd\n{'e' * 63}  short.bin\nnot a line\n"
            f"{'F' * 64}  upper.bin\n")
    assert parse_checksums(text) == {"image.bin": good, "flash.mtd": "b" * 64}


def test_a_full_disk_gets_one_line_in_the_failure_summary():
    log = ("==> bitbake core-image-minimal (MACHINE=qemux86-64)\n"
           "ERROR: No space left on device: the disk holding /srv/autobuild/jobs/3 filled up\n")
    assert summarize(log).disk_problem == DISK_FULL
    assert DISK_FULL.startswith("The build server ran out of disk space")
    assert not summarize(log).is_empty
    python = "OSError: [Errno 28] No space left on device: '/b/tmp/work/x'\n"
    assert summarize(python).disk_problem == DISK_FULL
    monitor = 'ERROR: No new tasks can be executed since the disk space monitor action is "STOPTASKS"!\n'
    assert summarize(monitor).disk_problem == DISK_FULL
    assert summarize("ERROR: x do_compile: oe_runmake failed\n").disk_problem is None


def test_every_job_gets_the_build_settings_and_a_rebuild_keeps_the_kas_file():
    settings = BuildSettings(cache_dir="/srv/autobuild/cache", hashserve="hashserv.lan:8686",
                             parallel_make=8, keep_workspace=False)
    world = FakeWorld(max_running=3, build_settings=settings)
    commands = world.commands

    job = commands.submit("alice", URL, "main", "qemux86-64", "core-image", kas_file="kas/q.yml")
    again = commands.rebuild(job.id, "alice")
    plain = commands.submit("alice", URL, "main", "qemux86-64", "core-image")
    world.supervisor.tick()

    assert job.kas_file == again.kas_file == "kas/q.yml"
    assert plain.kas_file is None
    for built in (job, again, plain):
        stored = world.repo.get(built.id)
        assert stored.status is JobStatus.RUNNING and stored.settings == settings
        assert world.runner.orders[built.id] == (stored.artifact_patterns, settings)


def test_without_settings_a_job_gets_the_defaults():
    world = FakeWorld()
    job = world.commands.submit("alice", URL, "main", "qemux86-64", "core-image")
    world.supervisor.tick()
    assert world.runner.orders[job.id][1] == BuildSettings()


def test_the_cancel_grace_travels_in_the_settings_and_old_settings_get_the_default():
    settings = BuildSettings(cancel_grace=45)
    assert BuildSettings.from_dict(settings.as_dict()).cancel_grace == 45
    stored_before = {k: v for k, v in settings.as_dict().items() if k != "cancel_grace"}
    assert BuildSettings.from_dict(stored_before).cancel_grace == 20  # a job decided earlier
    assert BuildSettings(cancel_grace=0).cancel_grace == 0  # SIGTERM at once


@pytest.mark.parametrize("value", [-1, 3601, "20", 2.5, True, None])
def test_a_cancel_grace_that_is_not_seconds_is_refused(value):
    with pytest.raises(InvalidOrder, match="cancel_grace"):
        BuildSettings(cancel_grace=value)
