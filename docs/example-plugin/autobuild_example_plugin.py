"""Example Autobuild plugin: collect ``.wic.gz`` disk images and log every status change.

Set ``EXAMPLE_NOTIFY_FILE`` in /etc/autobuild/autobuild.env to the file that should get one
line per status change (the service user must be able to append to it).
"""

from __future__ import annotations

import os

from autobuild.adapters.plugins import hookimpl


@hookimpl
def autobuild_artifact_patterns(job):
    patterns = ["*.wic.gz"]
    if job.machine.startswith("raspberrypi"):
        patterns.append("*.wic.bmap")  # lets bmaptool flash the SD card image quickly
    return patterns


@hookimpl
def autobuild_job_status_changed(job, old, new):
    path = os.environ.get("EXAMPLE_NOTIFY_FILE")
    if not path:
        return
    with open(path, "a", encoding="utf-8") as log:
        log.write(f"job {job.id} of {job.owner} ({job.machine} {job.target}): {old} -> {new}\n")
