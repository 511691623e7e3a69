"""Slurm tests: a real single-node cluster (munged, slurmctld, slurmd) on 127.0.0.1.

Like the system tests they run only as root with AUTOBUILD_SYSTEM_TESTS=1 (`.ci/run` sets it
on CI and installs slurm-wlm and munge): the session writes /etc/slurm/slurm.conf (refusing
to replace one it did not write), starts the daemons, and submits jobs as two throwaway Linux
users. The cluster is stopped at the end of the session if the session started it.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.slurm_cluster import BASE, SlurmCluster, SlurmClusterError
from tests.system.conftest import _ensure_account  # the system tests' way to make users

HERE = Path(__file__).resolve().parent
USERS = ("abtest-slurm-a", "abtest-slurm-b")  # not the system tests' engineers: own passwords
WORK = BASE / "work"  # job scripts' output, one directory per user
TIMINGS: list[tuple[str, float]] = []  # what the tests measured, for the terminal summary


def _not_enabled_reason() -> str | None:
    if os.environ.get("AUTOBUILD_SYSTEM_TESTS") != "1":
        return "Slurm tests start slurmctld and slurmd on this machine: set AUTOBUILD_SYSTEM_TESTS=1 (CI does)"
    if os.geteuid() != 0:
        return "Slurm tests need root (they start the Slurm daemons and create Linux users)"
    if not shutil.which("slurmctld") or not shutil.which("munged", path="/usr/sbin:/usr/bin"):
        return "Slurm tests need Debian's slurm-wlm and munge (.ci/run installs them)"
    return None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slurm: needs root, AUTOBUILD_SYSTEM_TESTS=1 and slurm-wlm "
                                       "(starts a single-node Slurm cluster)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _not_enabled_reason()
    for item in items:
        if HERE not in Path(str(item.fspath)).resolve().parents:
            continue
        item.add_marker(pytest.mark.slurm)
        item.add_marker(pytest.mark.timeout(180))
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.section("Slurm timings (single node, 127.0.0.1)")
        for label, seconds in TIMINGS:
            terminalreporter.write_line(f"{seconds:8.2f} s  {label}")


@pytest.fixture
def timing() -> Callable[[str, float], None]:
    """Record a measured duration: printed at once (-s) and in the terminal summary."""
    def record(label: str, seconds: float) -> None:
        TIMINGS.append((label, seconds))
        print(f"[slurm timing] {label}: {seconds:.2f} s")
    return record


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """The single-node cluster, up and idle; stopped afterwards if this session started it."""
    cluster = SlurmCluster()
    try:
        cluster.up()
    except SlurmClusterError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.close()


@dataclass(frozen=True)
class SlurmUser:
    """A throwaway Linux user and a directory of theirs for job output."""

    name: str
    work: Path


@pytest.fixture(scope="session")
def slurm_users() -> tuple[SlurmUser, SlurmUser]:
    made = []
    for name in USERS:
        account = _ensure_account(name)
        work = WORK / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True, mode=0o755)
        os.chown(work, account.uid, -1)
        made.append(SlurmUser(name, work))
    WORK.chmod(0o755)
    return made[0], made[1]
