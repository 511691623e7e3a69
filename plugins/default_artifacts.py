"""The images every build collects (seed 001): ``*.bin`` and ``*.mtd`` from the deploy directory."""

from __future__ import annotations

from autobuild.adapters.plugins import hookimpl
from autobuild.domain.jobs import Job

PATTERNS = ["*.bin", "*.mtd"]


@hookimpl
def autobuild_artifact_patterns(job: Job) -> list[str]:
    return list(PATTERNS)
