"""`autobuild check` on the new layout: who owns each entry of the jobs root, and what the
service user could write in the code it makes engineers run."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from autobuild import check
from autobuild.config import Settings

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="makes files of other users: needs root")


def settings_for(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "data" / "jobs.db", jobs_root=tmp_path / "jobs",
                    runner_path=tmp_path / "opt" / "runner" / "run_job.sh", cache_dir=tmp_path / "cache")


@needs_root
def test_every_jobs_root_entry_must_be_its_engineers_own_directory(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for name, owner in (("bin", "bin"), ("games", "sys")):
        (jobs / name).mkdir()
        os.chown(jobs / name, pwd.getpwnam(owner).pw_uid, -1)
    (jobs / "12").mkdir()  # the old layout
    os.symlink("bin/13", jobs / "13")  # upgrade-layout's link for a build still running
    (jobs / "lp").write_text("not a directory")
    os.chown(jobs / "lp", pwd.getpwnam("lp").pw_uid, -1)

    lines = [r.line() for r in check.HostCheck(settings_for(tmp_path)).job_owners()]
    assert lines == [
        "✗ jobs/12 is a job directory of the old layout — fix: sudo /opt/autobuild/venv/bin/autobuild "
        f"upgrade-layout (with the service stopped), or sudo rm -r {jobs / '12'}",
        f"✗ jobs/games belongs to sys — fix: sudo rm -r {jobs / 'games'}  (only games's own builds belong there)",
        f"✗ jobs/lp is not a directory — fix: sudo rm -r {jobs / 'lp'}  (only lp's own builds belong there)",
    ]
    for name in ("12", "games", "lp"):
        os.system(f"rm -r {jobs / name}")
    lines = [r.line() for r in check.HostCheck(settings_for(tmp_path)).job_owners()]
    assert lines == [f"✓ every entry of {jobs} is its engineer's own directory (2)"]


@needs_root
def test_code_the_service_could_write_is_reported(tmp_path):
    code = tmp_path / "opt"
    (code / "runner").mkdir(parents=True)
    (code / "runner" / "run_job.sh").write_text("#!/bin/sh\n")
    assert check._writable_by(code, "daemon") == []
    os.chown(code / "runner" / "run_job.sh", pwd.getpwnam("daemon").pw_uid, -1)
    (code / "lib.py").write_text("")
    os.chmod(code / "lib.py", 0o666)
    assert sorted(check._writable_by(code, "daemon")) == [str(code / "lib.py"),
                                                          str(code / "runner" / "run_job.sh")]


def test_nginx_user_is_read_from_its_user_directive(tmp_path):
    conf = tmp_path / "nginx.conf"
    conf.write_text("# user nobody;\nworker_processes auto;\n  user  www-web  web;\n")
    assert check._nginx_user(conf) == "www-web"
    assert check._nginx_user(tmp_path / "missing") == "www-data"


def test_a_missing_web_group_or_nginx_outside_it_is_reported(tmp_path, monkeypatch):
    import grp

    host = check.HostCheck(settings_for(tmp_path))
    monkeypatch.setattr(check.layout, "WEB_GROUP", "no-such-group-zz")
    lines = [r.line() for r in host.nginx_groups("www-data")]
    assert lines[0].startswith("✗ group no-such-group-zz exists")
    some = grp.getgrall()[0]
    monkeypatch.setattr(check.layout, "WEB_GROUP", some.gr_name)
    lines = [r.line() for r in host.nginx_groups("no-such-user-zz")]
    assert lines[0].startswith(f"✗ nginx's user no-such-user-zz is in {some.gr_name}")
    assert lines[1].startswith("✓ nginx's user no-such-user-zz is NOT in autobuild")


def test_slurm_checks_say_whether_the_cluster_answers_and_shares_the_jobs_root(tmp_path):
    import subprocess as sp

    from autobuild.check import slurm_checks

    root = tmp_path / "jobs"
    root.mkdir()
    settings = Settings(jobs_root=root, executor="slurm", slurm_partition="yocto")
    calls = []

    def answers(stdout_by_command):
        def run(cmd):
            calls.append(cmd)
            out, code = stdout_by_command[cmd[0]]
            return sp.CompletedProcess(cmd, code, out, "" if code == 0 else "connection refused")
        return run

    same = f"2049 {root.stat().st_ino} {root}\n"
    good = list(slurm_checks(settings, answers({"sinfo": ("yocto up 4 idle\n", 0),
                                                "srun": (same, 0)})))
    assert [r.ok for r in good] == [True, True], [r.line() for r in good]
    assert calls[0][-2:] == ["--partition", "yocto"] and "--partition" in calls[1]
    other = list(slurm_checks(settings, answers({"sinfo": ("yocto up 4 idle\n", 0),
                                                 "srun": ("2049 1 /srv/autobuild/jobs\n", 0)})))
    assert [r.ok for r in other] == [True, False] and "same path" in other[1].what
    down = list(slurm_checks(settings, answers({"sinfo": ("", 1)})))
    assert [r.ok for r in down] == [False] and "connection refused" in down[0].what
