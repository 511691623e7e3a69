"""The extra images of the earlier Autobuild (seed 000): MTD tarballs and static MTD images."""

from __future__ import annotations

from autobuild.adapters.plugins import hookimpl
from autobuild.domain.jobs import Job

PATTERNS = ["*.mtd.tar", "*.static.mtd*"]


@hookimpl
def autobuild_artifact_patterns(job: Job) -> list[str]:
    return list(PATTERNS)
