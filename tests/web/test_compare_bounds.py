"""What one compare request may cost, whatever two builds wrote into their buildhistory and
manifest (files of an engineer's build are hostile input)."""

from __future__ import annotations

import tracemalloc

from autobuild.domain import layout
from autobuild.domain.manifests import MAX_MANIFEST_BYTES
from tests.web.helpers import submit

MANIFEST = "core-image-minimal-qemux86-64.rootfs.manifest"
PEAK = 48 << 20  # one request, both builds' files parsed


def _ended_build(client, fakes, supervisor) -> int:
    assert submit(client).status_code == 303
    supervisor.tick()
    job_id = max(fakes.files.logs, default=0) + 1
    fakes.files.logs[job_id] = b""
    fakes.runner.finish(job_id, 1)
    supervisor.tick()
    return job_id


def _lines(template: str, limit: int) -> bytes:
    """As many distinct lines of ``template`` (``{i}``: a number) as fit in ``limit`` bytes."""
    out, size, i = [], 0, 0
    while True:
        line = (template.format(i=i) + "\n").encode()
        if size + len(line) > limit:
            return b"".join(out)
        out.append(line)
        size += len(line)
        i += 1


def _peak_of_compare(client, a: int, b: int) -> int:
    tracemalloc.start()
    try:
        response = client.get("/api/jobs/compare", params={"a": a, "b": b})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert response.status_code == 200, response.text
    return peak


def test_buildhistory_files_of_millions_of_short_lines_cost_a_compare_little(bob, alice, fakes,
                                                                             supervisor):
    """The reviewer's files (16 MiB each of "ab" lines, as big as the runner keeps them) made
    one compare request peak at 335 MiB."""
    limit = layout.MAX_BUILDHISTORY_FILE_BYTES
    first, second = (_ended_build(bob, fakes, supervisor) for _ in range(2))
    for job_id in (first, second):
        fakes.files.buildhistory[job_id] = {
            layout.INSTALLED_PACKAGE_NAMES: b"ab\n" * (limit // 3),
            layout.INSTALLED_PACKAGE_SIZES: b"1 KiB a\n" * (limit // 8),
            layout.IMAGE_INFO: b"A=b\n" * (limit // 4)}
    peak = _peak_of_compare(alice, first, second)
    assert peak < PEAK, f"one request peaked at {peak >> 20} MiB"


def test_the_biggest_files_a_compare_reads_of_distinct_lines_stay_bounded(bob, alice, fakes,
                                                                          supervisor):
    """Files just small enough to be read, every line a different package: what is parsed is
    capped by lines, so the request stays within tens of MiB (and still answers)."""
    read = layout.MAX_BUILDHISTORY_READ_BYTES
    first, second = (_ended_build(bob, fakes, supervisor) for _ in range(2))
    for job_id in (first, second):
        fakes.files.buildhistory[job_id] = {
            layout.INSTALLED_PACKAGE_NAMES: _lines("p{i}-" + str(job_id), read),
            layout.INSTALLED_PACKAGE_SIZES: _lines("{i} KiB p{i}-" + str(job_id), read),
            layout.IMAGE_INFO: _lines("A{i} = b", read)}
    fakes.files.artifacts[first] = {MANIFEST: _lines("p{i} core2-64 1.{i}", MAX_MANIFEST_BYTES)}
    peak = _peak_of_compare(alice, first, second)
    assert peak < PEAK, f"one request peaked at {peak >> 20} MiB"


def test_buildhistory_files_bigger_than_a_compare_reads_are_left_out(bob, alice, fakes,
                                                                     supervisor):
    first, second = (_ended_build(bob, fakes, supervisor) for _ in range(2))
    fakes.files.buildhistory[first] = {
        layout.IMAGE_INFO: b"IMAGESIZE = 700\n" + b"#\n" * layout.MAX_BUILDHISTORY_READ_BYTES}
    fakes.files.buildhistory[second] = {layout.IMAGE_INFO: b"IMAGESIZE = 800\n"}
    body = alice.get("/api/jobs/compare", params={"a": first, "b": second}).json()
    assert body["image_size_kib"] == {"before": None, "after": 800, "delta": None}  # not read
