"""The runner's Slurm modes, without Slurm: sbatch's command line and script, squeue's output,
the cancel request, and what the modes refuse."""

from __future__ import annotations

import io
import json
import os
import subprocess

import pytest

from autobuild.domain.layout import slurm_output_name
from autobuild.domain.orders import BuildOrder, ClusterRequest, InvalidOrder
from autobuild.runner import cli, slurm
from autobuild.runner.fsops import Refused
from autobuild.runner.jobdir import whoami

ORDER = {"job_id": 12, "owner": "alice", "jobs_root": "/srv/autobuild/jobs",
         "repo_url": "https://gitlab.example.com/team/poky.git", "ref": "main",
         "machine": "qemux86-64", "target": "core-image-minimal", "kas_file": None,
         "artifact_patterns": ["*.bin"], "settings": {"keep_workspace": False},
         "cluster": {"partition": "builds", "cpus": 16, "memory_mb": 65536,
                     "time_limit_minutes": 90, "account": "yocto"}}


@pytest.fixture(autouse=True)
def process_state_restored():
    import ctypes

    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE, 1


def order(**changes) -> BuildOrder:
    return BuildOrder.from_json(json.dumps({**ORDER, **changes}))


def test_sbatch_argv_says_everything_and_never_requeues():
    argv = slurm.sbatch_argv(12, "/srv/autobuild/jobs/alice", order().cluster)
    assert argv == [
        "sbatch", "--parsable", "--no-requeue", "--job-name=autobuild-12", "--export=NONE",
        "--chdir=/srv/autobuild/jobs/alice",
        f"--output=/srv/autobuild/jobs/alice/{slurm_output_name(12)}", "--open-mode=append",
        "--cpus-per-task=16", "--mem=65536M", "--time=90", "--partition=builds",
        "--account=yocto"]


def test_the_batch_output_is_named_for_the_job_beside_its_directory():
    assert slurm_output_name(12) == "12.slurm.out"
    for bad in (0, -1, True, "12", 10**12):
        with pytest.raises(ValueError):
            slurm_output_name(bad)


def test_sbatch_argv_leaves_out_what_the_cluster_decides():
    argv = slurm.sbatch_argv(3, "/jobs/bob", ClusterRequest(cpus=2, time_limit_minutes=1))
    assert argv[-2:] == ["--cpus-per-task=2", "--time=1"]
    assert not [a for a in argv if a.startswith(("--mem", "--partition", "--account"))]


def test_sbatch_argv_checks_every_value_again():
    bad = object.__new__(ClusterRequest)  # skips __post_init__, as a tampered object would
    object.__setattr__(bad, "partition", "x --uid=0")
    for name, value in (("cpus", 1), ("memory_mb", None), ("time_limit_minutes", 5),
                        ("account", None)):
        object.__setattr__(bad, name, value)
    with pytest.raises(InvalidOrder, match="partition"):
        slurm.sbatch_argv(1, "/jobs/a", bad)
    with pytest.raises(Refused):
        slurm.sbatch_argv(1, "/jobs/a b", ClusterRequest())


def test_batch_script_execs_the_build_with_the_order_on_a_quoted_here_document():
    script = slurm.batch_script("/opt/autobuild/runner/run_job.sh", order(),
                                "AUTOBUILD_ORDER_0123456789abcdef")
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert lines[1] == ("exec /opt/autobuild/runner/run_job.sh build 12 "
                        "<<'AUTOBUILD_ORDER_0123456789abcdef'")
    assert lines[3] == "AUTOBUILD_ORDER_0123456789abcdef" and len(lines) == 4
    sent = BuildOrder.from_json(lines[2])
    assert sent.cluster is None and "cluster" not in json.loads(lines[2])
    assert sent.to_json() == BuildOrder(order().address, order().request,
                                        order().artifact_patterns, order().settings).to_json()


def test_batch_script_delimiters_are_random_and_paths_plain():
    one, two = (slurm.batch_script("/opt/r/run_job.sh", order()) for _ in range(2))
    assert one.splitlines()[-1] != two.splitlines()[-1]
    with pytest.raises(Refused):
        slurm.batch_script("/opt/r/run_job.sh; rm -rf ~", order())


@pytest.mark.parametrize("value,ok", [
    ("/opt/autobuild/runner/run_job.sh", True), ("", False), ("run_job.sh", False),
    ("/opt/x/run_job.sh\n", False), ("/opt/$(id)/run_job.sh", False), ("/opt/x/other.sh", False),
    ("/opt/../run_job.sh", False)])
def test_the_runner_path_comes_from_the_shim_and_must_be_plain(value, ok):
    if ok:
        assert slurm.runner_path({slurm.RUNNER_ENV: value}) == value
    else:
        with pytest.raises(Refused):
            slurm.runner_path({slurm.RUNNER_ENV: value})


@pytest.mark.parametrize("out,expected", [
    ("42\n", 42), ("42;cluster\n", 42), ("", None), ("x\n", None), ("42\n43\n", None),
    ("-1\n", None), ("0\n", None), ("99999999999\n", None)])
def test_sbatch_parsable_output(out, expected):
    assert slurm.parse_sbatch_output(out) == expected


def test_parse_squeue_keeps_only_builds_and_survives_odd_lines():
    text = "\n".join([
        "101|autobuild-7|PENDING|Resources|",
        "102|autobuild-8|RUNNING|None|node01",
        "103|my-own-job|RUNNING|None|node01",
        "104|x|autobuild-9|RUNNING|None|node02",  # a name with | in it is not ours
        "105_3|autobuild-10|RUNNING|None|node01",  # an array task
        "106|autobuild-011|RUNNING|None|node01",
        "107|autobuild-11|running|None|node01",
        "",
        "garbage",
        "108|autobuild-12|COMPLETED|None|(null)",
        "109|autobuild-13|PENDING|Reason with spaces;rm|",
    ])
    jobs = slurm.parse_squeue(text)
    assert [j.as_dict() for j in jobs] == [
        {"slurm_job": 108, "job_id": 12, "state": "COMPLETED", "reason": "None", "node": ""},
        {"slurm_job": 102, "job_id": 8, "state": "RUNNING", "reason": "None", "node": "node01"},
        {"slurm_job": 101, "job_id": 7, "state": "PENDING", "reason": "Resources", "node": ""},
    ]


def test_parse_squeue_is_bounded():
    text = "\n".join(f"{n}|autobuild-{n}|PENDING|Priority|" for n in range(1, 5001))
    jobs = slurm.parse_squeue(text)
    assert len(jobs) == slurm.MAX_LISTED and jobs[0].slurm_job == 5000


def test_squeue_argv():
    assert slurm.squeue_argv() == ["squeue", "--me", "--noheader", "--states=all",
                                   "--format=%i|%j|%T|%r|%N"]
    assert slurm.squeue_argv(7)[1] == "--jobs=7"


@pytest.mark.parametrize("data", [
    {"job_id": 1, "owner": "alice", "jobs_root": "/j"},
    {"job_id": 1, "owner": "alice", "jobs_root": "/j", "slurm_job": "5"},
    {"job_id": 1, "owner": "alice", "jobs_root": "/j", "slurm_job": True},
    {"job_id": 1, "owner": "alice", "jobs_root": "/j", "slurm_job": 0},
    {"job_id": 1, "owner": "alice", "jobs_root": "/j", "slurm_job": 5, "extra": 1},
    {"job_id": 1, "owner": "Alice!", "jobs_root": "/j", "slurm_job": 5},
    [1, 2],
])
def test_cancel_requests_are_checked(data):
    with pytest.raises(InvalidOrder):
        slurm.SlurmCancel.from_json(json.dumps(data))


def test_cancel_request_round_trip():
    text = json.dumps({"job_id": 4, "owner": "alice", "jobs_root": "/j", "slurm_job": 77})
    request = slurm.SlurmCancel.from_json(text)
    assert request.slurm_job == 77 and request.address.owner == "alice"
    assert json.loads(request.to_json()) == json.loads(text)


def test_the_modes_are_known_to_the_command_line():
    assert cli.parse_args(["submit", "5"]) == ("submit", 5)
    assert cli.parse_args(["slurm-jobs"]) == ("slurm-jobs", None)
    assert cli.parse_args(["slurm-cancel", "5"]) == ("slurm-cancel", 5)
    assert "slurm-cancel <job_id>" in cli.USAGE


def test_submit_refuses_someone_elses_order_and_an_order_without_a_cluster(capsys):
    me = whoami().name
    elses = json.dumps({**ORDER, "owner": "alice" if me != "alice" else "bob"})
    assert cli.main(["submit", "12"], io.BytesIO(elses.encode())) == 2
    assert "belongs to" in capsys.readouterr().err
    mine = {**ORDER, "owner": me}
    del mine["cluster"]
    assert cli.main(["submit", "12"], io.BytesIO(json.dumps(mine).encode())) == 2
    assert "cluster" in capsys.readouterr().err


def fake_run(results):
    calls = []

    def run(argv, stdin, timeout):
        calls.append(argv)
        return results.pop(0)
    return run, calls


def done(code, out="", err=""):
    return subprocess.CompletedProcess([], code, out, err)


# A running build: SIGINT to the batch step only (the runner, which the batch shell exec'd), never
# --full or a plain scancel: those signal bitbake directly and leave it Slurm's KillWait, not
# the runner's grace (settings.cancel_grace) before SIGTERM and SIGKILL.
@pytest.mark.parametrize("line,expected_argv,code", [
    ("5|autobuild-4|PENDING|Priority|", ["scancel", "5"], 0),
    ("5|autobuild-4|RUNNING|None|n1", ["scancel", "--signal=INT", "--batch", "5"], 0),
    ("5|autobuild-4|CONFIGURING|None|n1", ["scancel", "--signal=INT", "--batch", "5"], 0),
    ("5|autobuild-4|COMPLETED|None|n1", None, 3),
    ("5|autobuild-4|TIMEOUT|TimeLimit|n1", None, 3),
])
def test_cancel_by_state(monkeypatch, line, expected_argv, code):
    run, calls = fake_run([done(0, line + "\n"), done(0)])
    monkeypatch.setattr(slurm, "_run", run)
    request = slurm.SlurmCancel.from_json(json.dumps(
        {"job_id": 4, "owner": "alice", "jobs_root": "/j", "slurm_job": 5}))
    assert slurm.cancel(request) == code
    assert calls[0][:2] == ["squeue", "--jobs=5"]
    assert calls[1:] == ([expected_argv] if expected_argv else [])


def test_cancel_refuses_a_slurm_job_that_is_not_this_build(monkeypatch):
    request = slurm.SlurmCancel.from_json(json.dumps(
        {"job_id": 4, "owner": "alice", "jobs_root": "/j", "slurm_job": 5}))
    for line in ("5|autobuild-3|RUNNING|None|n1", "5|interactive|RUNNING|None|n1"):
        run, calls = fake_run([done(0, line + "\n")])
        monkeypatch.setattr(slurm, "_run", run)
        with pytest.raises(Refused):
            slurm.cancel(request)
        assert len(calls) == 1  # nothing was cancelled


def test_cancel_of_a_job_slurm_forgot(monkeypatch):
    request = slurm.SlurmCancel.from_json(json.dumps(
        {"job_id": 4, "owner": "alice", "jobs_root": "/j", "slurm_job": 5}))
    run, _ = fake_run([done(1, "", "slurm_load_jobs error: Invalid job id specified\n")])
    monkeypatch.setattr(slurm, "_run", run)
    assert slurm.cancel(request) == 3
    run, _ = fake_run([done(1, "", "slurm_load_jobs error: Unable to contact slurm controller\n")])
    monkeypatch.setattr(slurm, "_run", run)
    assert slurm.cancel(request) == 1


def test_slurm_jobs_prints_json_or_fails_with_squeues_word(monkeypatch, capsys):
    run, _ = fake_run([done(0, "9|autobuild-2|RUNNING|None|n1\n")])
    monkeypatch.setattr(slurm, "_run", run)
    assert slurm.list_jobs() == 0
    assert json.loads(capsys.readouterr().out) == {"jobs": [
        {"slurm_job": 9, "job_id": 2, "state": "RUNNING", "reason": "None", "node": "n1"}]}
    run, _ = fake_run([done(1, "", "squeue: error: Unable to contact slurm controller\x1b[0m\n")])
    monkeypatch.setattr(slurm, "_run", run)
    assert slurm.list_jobs() == 1
    err = capsys.readouterr().err
    assert "Unable to contact slurm controller" in err and "\x1b" not in err
