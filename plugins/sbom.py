"""Yocto's software bill of materials for every build: the image manifest and the SPDX output.

The manifest ``<image>-<machine>.rootfs.manifest`` (``<image>-<machine>.manifest`` before
nanbield) lists the image's packages; ``create-spdx`` writes ``<image>-<machine>.spdx.json``
with its ``.spdx.index.json`` and ``.spdx.tar.zst`` (SPDX 2.2; ``.rootfs`` before the
suffix since nanbield), or ``<image>-<machine>.rootfs.spdx.json`` (SPDX 3). A build that
made none of them collects nothing more.
"""

from __future__ import annotations

from autobuild.adapters.plugins import hookimpl
from autobuild.domain.jobs import Job

PATTERNS = ["*.manifest", "*.spdx.json", "*.spdx.index.json", "*.spdx.tar.zst"]


@hookimpl
def autobuild_artifact_patterns(job: Job) -> list[str]:
    return list(PATTERNS)
