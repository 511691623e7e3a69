"""A real single-node Slurm cluster on 127.0.0.1 for the tests: munged, slurmctld and slurmd.

Needs root and Debian's ``slurm-wlm`` and ``munge`` (``.ci/run`` installs them). ``up()`` is
idempotent: it makes the munge key if there is none and starts munged if no daemon answers,
writes ``/etc/slurm/slurm.conf`` (Debian's slurm reads it there, and so do sbatch & co. when
the service runs them through sudo with a clean environment), starts slurmctld and slurmd if
they are not running (restarting them if the configuration changed), and waits until the node
is idle. The configuration says on its first line that the test suite wrote it; a slurm.conf
without that line is an admin's and is never overwritten.

State, spool, pid files and logs live in ``/var/lib/autobuild-slurm-tests``. A slurmctld the
helper starts begins with no jobs (``-c``): job ids start again at 1 after ``down()``.

    with SlurmCluster() as cluster:       # up(); down() at the end only if it started them
        job_id = cluster.sbatch("#!/bin/sh\\nid -un\\n", "--output=/tmp/x.out", user="alice")
        cluster.wait_for_job(job_id, "COMPLETED")
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MARKER = "# Written by Autobuild's test suite (tests/support/slurm_cluster.py); it rewrites this file."
SLURM_CONF = Path("/etc/slurm/slurm.conf")
BASE = Path("/var/lib/autobuild-slurm-tests")
MUNGE_KEY = Path("/etc/munge/munge.key")
MUNGE_RUN = Path("/run/munge")
PARTITION = "autobuild"
CLUSTER_NAME = "autobuild-test"
DEF_MEM_PER_CPU = 256  # MB a job gets per CPU when it asks no --mem (memory is consumable)
NODE_STATE_FLAGS = "*~#!%$@^-"  # sinfo's suffixes: * is "not responding"
TERMINAL_STATES = frozenset({"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
                             "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"})


class SlurmClusterError(RuntimeError):
    """The cluster could not be brought up or did not do what was asked in time."""


@dataclass(frozen=True)
class NodeShape:
    """This machine as slurmd sees it (``slurmd -C``)."""

    cpus: int
    boards: int
    sockets_per_board: int
    cores_per_socket: int
    threads_per_core: int
    real_memory: int

    @classmethod
    def detect(cls) -> NodeShape:
        out = _run("slurmd", "-C").stdout
        fields = dict(re.findall(r"(\w+)=(\S+)", out))
        try:
            return cls(int(fields["CPUs"]), int(fields["Boards"]), int(fields["SocketsPerBoard"]),
                       int(fields["CoresPerSocket"]), int(fields["ThreadsPerCore"]),
                       int(fields["RealMemory"]))
        except KeyError as missing:
            raise SlurmClusterError(f"slurmd -C did not say {missing}:\n{out}") from None


def render_conf(hostname: str, shape: NodeShape, base: Path = BASE,
                slurm_user: str = "slurm") -> str:
    """The whole slurm.conf: one node, ``hostname`` on 127.0.0.1, one partition."""
    return "\n".join([
        MARKER,
        "# A single-node cluster on 127.0.0.1 for the tests; no accounting.",
        f"ClusterName={CLUSTER_NAME}",
        f"SlurmctldHost={hostname}(127.0.0.1)",
        f"SlurmUser={slurm_user}",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"StateSaveLocation={base}/state",
        f"SlurmdSpoolDir={base}/spool",
        f"SlurmctldPidFile={base}/run/slurmctld.pid",
        f"SlurmdPidFile={base}/run/slurmd.pid",
        f"SlurmctldLogFile={base}/log/slurmctld.log",
        f"SlurmdLogFile={base}/log/slurmd.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # What works in a container: no cgroups.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "MpiDefault=none",
        "MailProg=/bin/true",
        "SwitchType=switch/none",
        # Slurm's defaults otherwise, as on a real cluster: batch jobs are scheduled at most
        # every 3 s (batch_sched_delay), so a job starts 0-3 s after sbatch on an idle node.
        "SchedulerType=sched/backfill",
        # Cores and memory are consumable: two 1-CPU jobs share a 2-core node.
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        f"DefMemPerCPU={DEF_MEM_PER_CPU}",
        "AccountingStorageType=accounting_storage/none",
        "JobAcctGatherType=jobacct_gather/none",
        "JobCompType=jobcomp/none",
        # Short timers: a stopped slurmd means a DOWN node and NODE_FAIL jobs within seconds,
        # a job past its time limit is killed 5 s after SIGTERM, and finished jobs stay in
        # `scontrol show job` for 10 minutes.
        "SlurmctldTimeout=10",
        "SlurmdTimeout=10",
        "KillWait=5",
        "OverTimeLimit=0",
        "MinJobAge=600",
        "InactiveLimit=0",
        "Waittime=0",
        "ReturnToService=2",
        f"NodeName={hostname} NodeAddr=127.0.0.1 CPUs={shape.cpus} Boards={shape.boards}"
        f" SocketsPerBoard={shape.sockets_per_board} CoresPerSocket={shape.cores_per_socket}"
        f" ThreadsPerCore={shape.threads_per_core} RealMemory={shape.real_memory} State=UNKNOWN",
        f"PartitionName={PARTITION} Nodes={hostname} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])


def parse_record(line: str) -> dict[str, str]:
    """``scontrol show job -o`` (one line of Key=Value pairs, values may hold spaces)."""
    pairs = re.findall(r"(?:^|\s)([A-Za-z][\w:/]*)=(.*?)(?=\s+[A-Za-z][\w:/]*=|\s*$)", line.strip())
    return dict(pairs)


def _run(*cmd: str, input: str | None = None, check: bool = True, timeout: float = 60,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    try:
        result = subprocess.run(list(cmd), input=input, capture_output=True, text=True,
                                timeout=timeout, env=env,
                                stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError:
        raise SlurmClusterError(f"{cmd[0]} is not installed (apt-get install slurm-wlm munge)") from None
    if check and result.returncode != 0:
        raise SlurmClusterError(f"{shlex.join(cmd)} failed ({result.returncode}):\n"
                                f"{result.stdout}{result.stderr}")
    return result


def _pid_alive(pid: int, comm: str) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == comm
    except OSError:
        return False


class SlurmCluster:
    """munged + slurmctld + slurmd on 127.0.0.1, driven as root. See the module's docstring."""

    def __init__(self, base: Path = BASE, conf: Path = SLURM_CONF) -> None:
        self.base = base
        self.conf = conf
        self.hostname = socket.gethostname().split(".")[0]
        self.partition = PARTITION
        self._started: set[str] = set()  # munged and the daemons this object started
        self._brought_up: set[str] = set()  # the daemons up() started

    # --- bring up, tear down -----------------------------------------------------------------

    def __enter__(self) -> SlurmCluster:
        return self.up()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """``down()`` if ``up()`` started slurmctld or slurmd, else leave them running (a
        slurmd only restarted by ``start_slurmd()`` was running before)."""
        if self._brought_up:
            self.down()

    def up(self, timeout: float = 60) -> SlurmCluster:
        if os.geteuid() != 0:
            raise SlurmClusterError("the Slurm test cluster needs root")
        self._refuse_foreign_conf()
        self.ensure_munge()
        slurm_user = "slurm" if _user_exists("slurm") else "root"
        self._make_dirs(slurm_user)
        wanted = render_conf(self.hostname, NodeShape.detect(), self.base, slurm_user)
        if self._write_conf(wanted):
            self._stop("slurmd")
            self._stop("slurmctld")
        for daemon, args in (("slurmctld", ("-c",)), ("slurmd", ())):
            if not self.running(daemon):
                self._start(daemon, *args)
                self._brought_up.add(daemon)
        self.wait_for_node({"IDLE", "MIXED", "ALLOCATED"}, timeout=timeout)
        return self

    def down(self) -> None:
        """Stop slurmd and slurmctld (munged stays: it is harmless and maybe not ours)."""
        self._stop("slurmd")
        self._stop("slurmctld")

    def stop_slurmd(self, sig: int = signal.SIGTERM) -> None:
        """Stop slurmd only (the node is lost to slurmctld; the jobs' slurmstepd stay)."""
        self._stop("slurmd", sig)

    def start_slurmd(self, timeout: float = 60) -> None:
        """Start slurmd again and wait until slurmctld has the node back in service."""
        if not self.running("slurmd"):
            self._start("slurmd")
        self.wait_for_node({"IDLE", "MIXED", "ALLOCATED"}, timeout=timeout)

    def ensure_munge(self) -> None:
        if not _user_exists("munge"):
            raise SlurmClusterError("no munge user: apt-get install munge")
        munge = pwd.getpwnam("munge")
        if not MUNGE_KEY.exists():
            MUNGE_KEY.parent.mkdir(mode=0o700, exist_ok=True)
            os.chown(MUNGE_KEY.parent, munge.pw_uid, munge.pw_gid)
            fd = os.open(MUNGE_KEY, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
            try:
                os.write(fd, os.urandom(128))
                os.fchown(fd, munge.pw_uid, munge.pw_gid)
            finally:
                os.close(fd)
        if _run("munge", "-n", check=False).returncode == 0:
            return
        MUNGE_RUN.mkdir(mode=0o755, exist_ok=True)
        os.chown(MUNGE_RUN, munge.pw_uid, munge.pw_gid)
        # No daemon answers, so a socket or lock left by one that died is stale: --force.
        _run("runuser", "-u", "munge", "--", "/usr/sbin/munged", "--force")
        self._started.add("munged")
        deadline = time.monotonic() + 10
        while _run("munge", "-n", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise SlurmClusterError("munged started but does not answer `munge -n`")
            time.sleep(0.1)

    # --- the daemons ---------------------------------------------------------------------------

    def pid(self, daemon: str) -> int | None:
        """The running daemon's pid (from its pid file, checked in /proc), or None."""
        try:
            pid = int((self.base / "run" / f"{daemon}.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _pid_alive(pid, daemon) else None

    def running(self, daemon: str) -> bool:
        return self.pid(daemon) is not None

    def log_file(self, daemon: str) -> Path:
        return self.base / "log" / f"{daemon}.log"

    def logs(self, lines: int = 40) -> str:
        """The end of both daemons' logs, for error messages."""
        parts = []
        for daemon in ("slurmctld", "slurmd"):
            for path in (self.log_file(daemon), self.base / "log" / f"{daemon}.stderr"):
                if path.exists():
                    tail = path.read_text(errors="replace").splitlines()[-lines:]
                    parts.append(f"--- {path} (last {lines} lines)\n" + "\n".join(tail))
        return "\n".join(parts) or "(no daemon logs)"

    def _make_dirs(self, slurm_user: str) -> None:
        account = pwd.getpwnam(slurm_user)
        for sub, mode, owner in (("state", 0o700, account), ("spool", 0o755, None),
                                 ("run", 0o755, account), ("log", 0o755, account)):
            path = self.base / sub
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(mode)
            if owner is not None:
                os.chown(path, owner.pw_uid, owner.pw_gid)

    def _refuse_foreign_conf(self) -> None:
        if self.conf.exists() and not self.conf.read_text(errors="replace").startswith(MARKER):
            raise SlurmClusterError(
                f"{self.conf} exists and was not written by the test suite: refusing to "
                f"overwrite it (move it away to run the Slurm tests on this machine)")

    def _write_conf(self, wanted: str) -> bool:
        """Write slurm.conf if it differs; True if it did. Never touches a foreign one."""
        self._refuse_foreign_conf()
        if self.conf.exists() and self.conf.read_text(errors="replace") == wanted:
            return False
        self.conf.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.conf.with_name(self.conf.name + ".autobuild-tests")
        temporary.write_text(wanted)
        temporary.chmod(0o644)
        temporary.replace(self.conf)
        return True

    def _start(self, daemon: str, *args: str) -> None:
        stderr = self.base / "log" / f"{daemon}.stderr"
        with open(stderr, "ab") as out:  # the daemon keeps it after forking: no pipes to hang on
            result = subprocess.run([f"/usr/sbin/{daemon}", *args], stdin=subprocess.DEVNULL,
                                    stdout=out, stderr=out, timeout=60)
        deadline = time.monotonic() + 20
        while not self.running(daemon):
            if result.returncode != 0 or time.monotonic() > deadline:
                raise SlurmClusterError(f"{daemon} did not start (exit {result.returncode}):\n"
                                        f"{self.logs()}")
            time.sleep(0.1)
        self._started.add(daemon)

    def _stop(self, daemon: str, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        pid = self.pid(daemon)
        if pid is None:
            return
        os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while _pid_alive(pid, daemon):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
            time.sleep(0.05)

    # --- commands --------------------------------------------------------------------------

    def command(self, *cmd: str, user: str | None = None, input: str | None = None,
                check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a Slurm client command, as root or as ``user`` through sudo (clean environment,
        as the service runs them)."""
        prefix = ["sudo", "-n", "-u", user, "--"] if user else []
        return _run(*prefix, *cmd, input=input, check=check)

    def scontrol(self, *args: str, user: str | None = None, check: bool = True) -> str:
        return self.command("scontrol", *args, user=user, check=check).stdout

    def squeue(self, *args: str, user: str | None = None) -> str:
        return self.command("squeue", *args, user=user).stdout

    def sinfo(self, *args: str) -> str:
        return self.command("sinfo", *args).stdout

    def sbatch(self, script: str, *args: str, user: str | None = None) -> int:
        """Submit ``script`` (given on sbatch's standard input) with ``--parsable``; the job id."""
        out = self.command("sbatch", "--parsable", *args, user=user, input=script).stdout
        return int(out.strip().split(";")[0])

    def scancel(self, *args: str, user: str | None = None) -> None:
        self.command("scancel", *args, user=user)

    def job(self, job_id: int) -> dict[str, str]:
        """``scontrol show job -o <id>`` as a dict (JobState, Reason, NodeList, ExitCode, ...)."""
        return parse_record(self.scontrol("show", "job", "-o", str(job_id)))

    def node(self) -> dict[str, str]:
        return parse_record(self.scontrol("show", "node", "-o", self.hostname))

    def node_state(self) -> str:
        """The node's state as sinfo says it (e.g. ``idle``, ``mixed``, ``down*``)."""
        result = self.command("sinfo", "-h", "-n", self.hostname, "-o", "%T", check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    # --- waiting ---------------------------------------------------------------------------

    def wait_for_job(self, job_id: int, *states: str, timeout: float = 60,
                     reason: str | None = None) -> dict[str, str]:
        """Poll until the job's JobState is one of ``states`` (and its Reason is ``reason``, if
        given); the job's record. A terminal state not asked for fails at once."""
        deadline = time.monotonic() + timeout
        while True:
            record = self.job(job_id)
            state = record.get("JobState", "")
            if state in states and (reason is None or record.get("Reason") == reason):
                return record
            if state in TERMINAL_STATES and state not in states:
                raise SlurmClusterError(f"job {job_id} ended {state}, not {states}: {record}")
            if time.monotonic() > deadline:
                raise SlurmClusterError(f"job {job_id} not {states} (reason {reason}) after "
                                        f"{timeout} s: {record}\n{self.logs()}")
            time.sleep(0.1)

    def wait_for_node(self, states: set[str], timeout: float = 60, responding: bool = True) -> str:
        """Poll sinfo until the node's state, without its flags, is one of ``states`` (e.g.
        ``{"IDLE"}``) and, if ``responding``, slurmctld hears from its slurmd (no ``*``)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.node_state()
            if state.rstrip(NODE_STATE_FLAGS).upper() in states and not (responding and "*" in state):
                return state
            if time.monotonic() > deadline:
                raise SlurmClusterError(f"node {self.hostname} is {state or 'not answering'!r}, "
                                        f"not {sorted(states)}, after {timeout} s:\n{self.logs()}")
            time.sleep(0.2)


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
