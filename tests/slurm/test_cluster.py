"""What the Slurm runner adapter relies on, on a real single-node cluster.

Every job is submitted with ``sbatch --parsable`` through ``sudo -u <user>`` (as the service
will), and its state read with ``scontrol show job -o``. The durations measured are printed
(run with -s) and listed at the end of the run.
"""

from __future__ import annotations

import pwd
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.slurm.conftest import SlurmUser
from tests.support.slurm_cluster import MARKER, SLURM_CONF, SlurmCluster, SlurmClusterError

Timing = Callable[[str, float], None]


@pytest.fixture(autouse=True)
def _no_jobs_left(slurm_cluster: SlurmCluster, slurm_users: tuple[SlurmUser, SlurmUser]) -> Iterator[None]:
    """Each test starts and leaves the node with slurmd up and no job of the test users."""
    yield
    if not slurm_cluster.running("slurmd"):
        slurm_cluster.start_slurmd()
    for user in slurm_users:
        slurm_cluster.scancel("--user", user.name)
    names = ",".join(user.name for user in slurm_users)
    deadline = time.monotonic() + 60
    while slurm_cluster.squeue("-h", "-u", names).strip():
        assert time.monotonic() < deadline, slurm_cluster.squeue("-u", names)
        time.sleep(0.2)


def submit(cluster: SlurmCluster, user: SlurmUser, script: str, *args: str) -> int:
    """sbatch as ``user``: output in the user's directory as ``<job id>.out``, one task on one
    CPU unless ``args`` say otherwise."""
    return cluster.sbatch(script, f"--chdir={user.work}", f"--output={user.work}/%j.out",
                          "--job-name=abtest", "--ntasks=1", *args, user=user.name)


def output(user: SlurmUser, job_id: int) -> str:
    path = user.work / f"{job_id}.out"
    return path.read_text() if path.exists() else ""


def wait_for_output(user: SlurmUser, job_id: int, text: str, timeout: float = 30) -> float:
    """Wait until the job's output holds ``text``; the monotonic time it was seen."""
    deadline = time.monotonic() + timeout
    while text not in output(user, job_id):
        assert time.monotonic() < deadline, f"{text!r} not in job {job_id}'s output:\n{output(user, job_id)}"
        time.sleep(0.02)
    return time.monotonic()


def processes_of(uid: int) -> list[str]:
    """Command lines of the processes running as ``uid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            found.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
        except OSError:
            continue
    return [line for line in found if line]


def uid_of(user: SlurmUser) -> int:
    return pwd.getpwnam(user.name).pw_uid


def timestamps(text: str, key: str) -> float:
    """The ``<key> <epoch seconds>`` a job script printed."""
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {key!r} line in:\n{text}")


# --- tests -------------------------------------------------------------------------------------

def test_up_again_changes_nothing(slurm_cluster: SlurmCluster) -> None:
    pids = {daemon: slurm_cluster.pid(daemon) for daemon in ("slurmctld", "slurmd")}
    written = SLURM_CONF.stat().st_mtime_ns
    slurm_cluster.up()
    assert {daemon: slurm_cluster.pid(daemon) for daemon in pids} == pids
    assert SLURM_CONF.stat().st_mtime_ns == written
    assert SLURM_CONF.read_text().startswith(MARKER + "\n")


def test_a_slurm_conf_it_did_not_write_is_never_overwritten(tmp_path: Path) -> None:
    foreign = tmp_path / "slurm.conf"
    foreign.write_text("ClusterName=production\n")
    with pytest.raises(SlurmClusterError, match="not written by the test suite"):
        SlurmCluster(base=tmp_path / "state", conf=foreign).up()
    assert foreign.read_text() == "ClusterName=production\n"


def test_a_job_runs_as_the_user_who_submitted_it(slurm_cluster: SlurmCluster, slurm_users, timing: Timing) -> None:
    a, _ = slurm_users
    submitted = time.monotonic()
    job_id = submit(slurm_cluster, a, "#!/bin/sh\nid -un\nid -u\nsleep 2\n")
    timing("sbatch --parsable (as the user, through sudo)", time.monotonic() - submitted)

    running = slurm_cluster.wait_for_job(job_id, "RUNNING", timeout=30)
    timing("submit -> RUNNING (idle node; batch_sched_delay: 0-3 s)", time.monotonic() - submitted)
    assert running["NodeList"] == slurm_cluster.hostname
    assert running["UserId"] == f"{a.name}({uid_of(a)})"
    assert running["Partition"] == slurm_cluster.partition
    assert running["Reason"] == "None"

    done = slurm_cluster.wait_for_job(job_id, "COMPLETED", timeout=30)
    timing("submit -> COMPLETED (2 s script)", time.monotonic() - submitted)
    assert done["ExitCode"] == "0:0"
    assert output(a, job_id).split() == [a.name, str(uid_of(a))]
    assert slurm_cluster.job(job_id)["JobState"] == "COMPLETED"  # still known (MinJobAge)


def test_two_users_jobs_run_at_the_same_time(slurm_cluster: SlurmCluster, slurm_users, timing: Timing) -> None:
    script = ("#!/bin/sh\necho \"user $(id -un)\"\necho \"start $(date +%s.%N)\"\nsleep 4\n"
              "echo \"end $(date +%s.%N)\"\n")
    submitted = time.monotonic()
    jobs = {user: submit(slurm_cluster, user, script, "--cpus-per-task=1") for user in slurm_users}

    deadline = time.monotonic() + 30
    while {slurm_cluster.job(job_id)["JobState"] for job_id in jobs.values()} != {"RUNNING"}:
        assert time.monotonic() < deadline, [slurm_cluster.job(job_id) for job_id in jobs.values()]
        time.sleep(0.05)
    timing("two users' 1-CPU jobs submitted -> both RUNNING", time.monotonic() - submitted)

    spans = {}
    for user, job_id in jobs.items():
        done = slurm_cluster.wait_for_job(job_id, "COMPLETED", timeout=30)
        assert done["UserId"].startswith(f"{user.name}(")
        text = output(user, job_id)
        assert f"user {user.name}" in text
        spans[user.name] = (timestamps(text, "start"), timestamps(text, "end"))
    (start_a, end_a), (start_b, end_b) = spans.values()
    assert start_a < end_b and start_b < end_a, f"the jobs did not overlap: {spans}"


def test_pending_for_resources_then_cancelled(slurm_cluster: SlurmCluster, slurm_users, timing: Timing) -> None:
    a, b = slurm_users
    cpus = int(slurm_cluster.node()["CPUTot"])
    blocker = submit(slurm_cluster, a, "#!/bin/sh\nexec sleep 300\n", "--cpus-per-task=1")
    slurm_cluster.wait_for_job(blocker, "RUNNING", timeout=30)

    submitted = time.monotonic()
    big = submit(slurm_cluster, b, "#!/bin/sh\necho ran\n", f"--cpus-per-task={cpus}")
    reasons = []  # what an adapter polling every 0.1 s would have shown
    while time.monotonic() < submitted + 3 or "Resources" not in reasons:
        record = slurm_cluster.job(big)
        assert record["JobState"] == "PENDING", record
        assert time.monotonic() < submitted + 30, reasons
        if not reasons or reasons[-1] != record["Reason"]:
            reasons.append(record["Reason"])
        time.sleep(0.1)
    pending = slurm_cluster.wait_for_job(big, "PENDING", reason="Resources", timeout=30)
    assert pending["NodeList"] in ("", "(null)"), pending  # none yet
    print(f"[slurm] pending: Reason over 3 s: {' -> '.join(reasons)}; "
          f"NodeList={pending['NodeList']!r} StartTime={pending['StartTime']}")
    assert slurm_cluster.squeue("-h", "-j", str(big), "-o", "%T %r").split() == ["PENDING", "Resources"]

    # Another user may not cancel it; its owner may.
    refused = slurm_cluster.command("scancel", str(blocker), user=b.name, check=False)
    assert refused.returncode != 0, refused
    print(f"[slurm] scancel of another user's job: exit {refused.returncode}: {refused.stderr.strip()}")
    assert slurm_cluster.job(blocker)["JobState"] == "RUNNING"

    slurm_cluster.scancel(str(big), user=b.name)
    cancelled = slurm_cluster.wait_for_job(big, "CANCELLED", timeout=10)
    assert cancelled["NodeList"] in ("", "(null)"), cancelled  # it never ran

    before = time.monotonic()
    slurm_cluster.scancel(str(blocker), user=a.name)
    cancelled = slurm_cluster.wait_for_job(blocker, "CANCELLED", timeout=30)
    timing("scancel of a running job -> CANCELLED", time.monotonic() - before)
    print(f"[slurm] cancelled running job: Reason={cancelled['Reason']} ExitCode={cancelled['ExitCode']}")
    deadline = time.monotonic() + 30
    while processes_of(uid_of(a)):
        assert time.monotonic() < deadline, processes_of(uid_of(a))
        time.sleep(0.05)
    timing("scancel -> no process of the user left", time.monotonic() - before)


SIGINT_SCRIPT = """#!/bin/bash
set -m  # job control: the child below gets its own process group and does not ignore SIGINT
( trap 'echo child-got-INT; exit 1' INT; sleep 300 & wait ) &
child=$!
trap 'echo script-got-INT; kill -0 $child && echo child-alive; kill -TERM -- -$child; exit 130' INT
echo ready
wait
"""


def test_sigint_reaches_the_batch_script_only(slurm_cluster: SlurmCluster, slurm_users, timing: Timing) -> None:
    a, _ = slurm_users
    job_id = submit(slurm_cluster, a, SIGINT_SCRIPT)
    slurm_cluster.wait_for_job(job_id, "RUNNING", timeout=30)
    wait_for_output(a, job_id, "ready")

    sent = time.monotonic()
    slurm_cluster.scancel("--signal=INT", "--batch", str(job_id), user=a.name)
    seen = wait_for_output(a, job_id, "script-got-INT", timeout=10)
    timing("scancel --signal=INT --batch -> trap runs in the batch script", seen - sent)
    ended = slurm_cluster.wait_for_job(job_id, "FAILED", "COMPLETED", "CANCELLED", timeout=30)
    timing("scancel --signal=INT --batch -> job ended (script exits 130)", time.monotonic() - sent)
    text = output(a, job_id)
    assert "child-alive" in text, text
    assert "child-got-INT" not in text, text
    print(f"[slurm] after SIGINT: JobState={ended['JobState']} Reason={ended['Reason']} "
          f"ExitCode={ended['ExitCode']}")
    assert (ended["JobState"], ended["ExitCode"]) == ("FAILED", "130:0")


def test_lost_node_ends_node_fail_and_comes_back(slurm_cluster: SlurmCluster, slurm_users, timing: Timing) -> None:
    """A batch job is requeued when its node fails (JobRequeue=1 is Slurm's default, so a
    cluster's admin may have it): the adapter must submit with --no-requeue, which ends NODE_FAIL."""
    a, b = slurm_users
    lost = submit(slurm_cluster, a, "#!/bin/sh\necho started\nexec sleep 301\n", "--no-requeue")
    requeued = submit(slurm_cluster, b, "#!/bin/sh\necho started\nexec sleep 302\n")
    for user, job_id in ((a, lost), (b, requeued)):
        slurm_cluster.wait_for_job(job_id, "RUNNING", timeout=30)
        wait_for_output(user, job_id, "started")

    stopped = time.monotonic()
    slurm_cluster.stop_slurmd()
    failed = slurm_cluster.wait_for_job(lost, "NODE_FAIL", timeout=90)
    timing("slurmd stopped -> job NODE_FAIL (--no-requeue)", time.monotonic() - stopped)
    state = slurm_cluster.wait_for_node({"DOWN"}, timeout=30, responding=False)
    timing("slurmd stopped -> node DOWN", time.monotonic() - stopped)
    node = slurm_cluster.node()
    print(f"[slurm] node lost: JobState={failed['JobState']} Reason={failed['Reason']} "
          f"ExitCode={failed['ExitCode']} NodeList={failed['NodeList']}; sinfo {state!r}, "
          f"node Reason={node.get('Reason')!r}")
    again = slurm_cluster.job(requeued)
    print(f"[slurm] without --no-requeue: JobState={again['JobState']} Reason={again['Reason']} "
          f"Restarts={again['Restarts']}")
    assert (again["JobState"], again["Restarts"]) == ("PENDING", "1"), again
    slurm_cluster.scancel(str(requeued))  # or it runs a second time once the node is back
    survivors = [line for line in processes_of(uid_of(a)) + processes_of(uid_of(b))
                 if line.startswith("sleep 30")]
    print(f"[slurm] the jobs' processes while slurmd is down: {survivors or 'none'}")

    restarted = time.monotonic()
    slurm_cluster.start_slurmd()
    timing("slurmd started -> node back in service", time.monotonic() - restarted)
    deadline = time.monotonic() + 30
    while [line for line in processes_of(uid_of(a)) + processes_of(uid_of(b))
           if line.startswith("sleep 30")]:
        assert time.monotonic() < deadline, "the lost jobs' processes outlived slurmd's return"
        time.sleep(0.1)
    timing("slurmd started -> the lost jobs' processes gone", time.monotonic() - restarted)
    assert slurm_cluster.job(lost)["JobState"] == "NODE_FAIL"

    after = submit(slurm_cluster, a, "#!/bin/sh\nid -un\n")
    slurm_cluster.wait_for_job(after, "COMPLETED", timeout=30)
    assert output(a, after).strip() == a.name
