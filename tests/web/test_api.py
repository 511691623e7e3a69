"""The JSON API: jobs, the chunked log, artifacts and downloads, cancel and rebuild."""

import os

import pytest

from autobuild.domain.jobs import JobStatus
from tests.web.helpers import page_csrf, submit


def api_post(client, path):
    return client.post(path, headers={"X-CSRF-Token": page_csrf(client, "/")})


@pytest.fixture
def job(alice, fakes):
    assert submit(alice).status_code == 303
    return fakes.jobs.get(1)


def finish(supervisor, fakes, job_id=1, exit_code=0):
    supervisor.tick()
    fakes.runner.finish(job_id, exit_code)
    supervisor.tick()


def test_job_list_is_paginated_newest_first(alice, fakes):
    for _ in range(3):
        submit(alice)

    body = alice.get("/api/jobs", params={"per_page": 2}).json()

    assert [item["id"] for item in body["items"]] == [3, 2]
    assert (body["per_page"], body["newer"], body["older"]) == (2, None, 2)
    second = alice.get("/api/jobs", params={"per_page": 2, "before": body["older"]}).json()
    assert [item["id"] for item in second["items"]] == [1]
    assert (second["newer"], second["older"]) == (1, None)
    back = alice.get("/api/jobs", params={"per_page": 2, "after": second["newer"]}).json()
    assert [item["id"] for item in back["items"]] == [3, 2]
    numbered = alice.get("/api/jobs", params={"per_page": 2, "page": 2}).json()
    assert [item["id"] for item in numbered["items"]] == [1]


def test_job_list_filters(alice, bob, fakes):
    submit(alice, target="core-image-minimal")
    submit(bob, target="core-image-sato")
    fakes.jobs.rows[2].status = JobStatus.FAILED

    def ids(**params):
        return [item["id"] for item in alice.get("/api/jobs", params=params).json()["items"]]

    assert ids(owner="bob") == [2]
    assert ids(status="FAILED") == [2] and ids(status="PENDING") == [1]
    assert ids(q="SATO") == [2] and ids(q="core-image") == [2, 1] and ids(q="%") == []
    assert alice.get("/api/jobs", params={"status": "nope"}).status_code == 400


def test_job_detail(alice, bob, job, fakes, supervisor):
    supervisor.tick()
    fakes.clock.advance(90)

    body = alice.get("/api/jobs/1").json()

    assert body["id"] == 1
    assert body["status"] == "RUNNING"
    assert body["owner"] == "alice"
    assert body["created_at"] == "2026-01-01T12:00:00Z"
    assert body["started_at"] == "2026-01-01T12:00:00Z"
    assert body["duration_seconds"] == 90
    assert body["can_cancel"] is True
    assert bob.get("/api/jobs/1").json()["can_cancel"] is False


@pytest.mark.parametrize("path", ["/api/jobs/5", "/api/jobs/5/log", "/api/jobs/5/artifacts",
                                  "/api/jobs/5/artifacts/a.bin", "/api/jobs/5/log/stream"])
def test_unknown_job_is_404_json(alice, path):
    response = alice.get(path)

    assert response.status_code == 404
    assert response.json() == {"detail": "Build #5 does not exist."}


def test_bad_ids_and_queries_are_4xx_json(alice, job):
    assert alice.get("/api/jobs/abc").status_code == 404
    assert alice.get("/api/jobs/abc").json()["detail"]
    response = alice.get("/api/jobs/1/log", params={"offset": -1})
    assert response.status_code == 400
    assert "offset" in response.json()["detail"]


def test_log_is_read_in_chunks_by_byte_offset(alice, job, fakes):
    fakes.files.append_log(1, b"NOTE: Running task 1 of 2\nNOTE: Running task 2 of 2\n")

    first = alice.get("/api/jobs/1/log", params={"offset": 0, "limit": 10}).json()
    rest = alice.get("/api/jobs/1/log", params={"offset": first["next_offset"]}).json()

    assert first == {"offset": 0, "next_offset": 10, "text": "NOTE: Runn",
                     "complete": False, "status": "PENDING"}
    assert rest["offset"] == 10
    assert first["text"] + rest["text"] == "NOTE: Running task 1 of 2\nNOTE: Running task 2 of 2\n"
    assert rest["next_offset"] == 52
    assert rest["complete"] is False  # the job has not ended: more may come


def test_log_chunk_never_splits_a_utf8_character(alice, job, fakes):
    fakes.files.append_log(1, "ab€cd".encode())  # € is 3 bytes: offsets 2..4

    first = alice.get("/api/jobs/1/log", params={"limit": 3}).json()
    second = alice.get("/api/jobs/1/log", params={"offset": first["next_offset"],
                                                   "limit": 3}).json()

    assert (first["text"], first["next_offset"]) == ("ab", 2)
    assert (second["text"], second["next_offset"]) == ("€", 5)


def test_log_is_complete_once_the_job_ended_and_all_was_read(alice, job, fakes, supervisor):
    fakes.files.append_log(1, b"done\n")
    finish(supervisor, fakes)

    body = alice.get("/api/jobs/1/log").json()

    assert body["text"] == "done\n"
    assert body["complete"] is True
    assert body["status"] == "SUCCESS"
    partial = alice.get("/api/jobs/1/log", params={"limit": 2}).json()
    assert partial["complete"] is False


def test_artifacts_are_listed_with_name_size_mtime_and_sha256(alice, job, fakes):
    fakes.files.artifacts[1] = {"image.bin": b"123", "flash.mtd": b"12345"}
    fakes.files.checksums[1] = {"image.bin": "a665a459" + "0" * 56}

    body = alice.get("/api/jobs/1/artifacts").json()

    assert body == [
        {"name": "flash.mtd", "size": 5, "mtime": "2026-01-01T00:00:00Z", "sha256": None},
        {"name": "image.bin", "size": 3, "mtime": "2026-01-01T00:00:00Z",
         "sha256": "a665a459" + "0" * 56},
    ]


def test_download_is_byte_identical_with_length_and_attachment(alice, job, fakes):
    data = os.urandom(600 * 1024 + 7)  # several read chunks
    fakes.files.artifacts[1] = {"core-image-minimal-qemux86-64.bin": data}

    response = alice.get("/api/jobs/1/artifacts/core-image-minimal-qemux86-64.bin")

    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith(
        'attachment; filename="core-image-minimal-qemux86-64.bin"')
    assert response.headers["accept-ranges"] == "bytes"


def test_download_names_with_odd_characters_are_quoted(alice, job, fakes):
    fakes.files.artifacts[1] = {'büld "x".bin': b"abc"}

    response = alice.get("/api/jobs/1/artifacts/b%C3%BCld%20%22x%22.bin")

    assert response.content == b"abc"
    disposition = response.headers["content-disposition"]
    assert 'filename="b_ld _x_.bin"' in disposition
    assert "filename*=UTF-8''b%C3%BCld%20%22x%22.bin" in disposition


def test_download_resumes_with_a_range(alice, job, fakes):
    data = bytes(range(256)) * 4
    fakes.files.artifacts[1] = {"a.bin": data}

    middle = alice.get("/api/jobs/1/artifacts/a.bin", headers={"Range": "bytes=10-19"})
    tail = alice.get("/api/jobs/1/artifacts/a.bin", headers={"Range": "bytes=1000-"})
    suffix = alice.get("/api/jobs/1/artifacts/a.bin", headers={"Range": "bytes=-4"})
    beyond = alice.get("/api/jobs/1/artifacts/a.bin", headers={"Range": "bytes=5000-"})
    garbled = alice.get("/api/jobs/1/artifacts/a.bin", headers={"Range": "lines=1-2"})

    assert middle.status_code == 206
    assert middle.content == data[10:20]
    assert middle.headers["content-range"] == "bytes 10-19/1024"
    assert tail.content == data[1000:]
    assert suffix.content == data[-4:]
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == "bytes */1024"
    assert garbled.status_code == 200
    assert garbled.content == data


@pytest.mark.parametrize(
    "raw_name",
    ["missing.bin", "..%2fjob.json", "%2e%2e", "%2e%2e%2fx", "..%2f..%2fetc%2fpasswd",
     "%2Fetc%2Fpasswd", "a.bin%00", ".hidden", "sub%2fa.bin", "..%5ca.bin"],
)
def test_download_of_anything_but_a_plain_existing_name_is_404(alice, job, fakes, raw_name):
    fakes.files.artifacts[1] = {"a.bin": b"data", ".hidden": b"no"}

    response = alice.get("/api/jobs/1/artifacts/" + raw_name)

    assert response.status_code == 404
    assert response.json() == {"detail": "This build has no artifact of that name."}


def test_artifacts_of_one_job_are_not_served_from_another(alice, fakes):
    submit(alice)
    submit(alice)
    fakes.files.artifacts[1] = {"a.bin": b"one"}

    assert alice.get("/api/jobs/2/artifacts/a.bin").status_code == 404


def test_api_cancel_by_owner_and_by_someone_else(alice, bob, job, fakes):
    refused = api_post(bob, "/api/jobs/1/cancel")
    assert refused.status_code == 403
    assert refused.json() == {"detail": "only the owner of a build can cancel it"}
    assert fakes.jobs.get(1).status is JobStatus.PENDING

    response = api_post(alice, "/api/jobs/1/cancel")

    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED"
    assert fakes.jobs.get(1).status is JobStatus.CANCELLED


def test_api_rebuild_creates_a_job_for_the_caller(bob, alice, job, fakes):
    response = api_post(alice, "/api/jobs/1/rebuild")

    assert response.status_code == 201
    assert response.headers["location"] == "/api/jobs/2"
    assert response.json()["owner"] == "alice"
    assert fakes.jobs.get(2).owner == "alice"


def test_api_rebuild_of_a_colleagues_build_says_to_use_the_form(bob, alice, job, fakes):
    """One call would clone alice's URL with bob's token; the form names the host first."""
    response = api_post(bob, "/api/jobs/1/rebuild")

    assert response.status_code == 403
    assert "/new?from=1" in response.json()["detail"]
    assert fakes.jobs.get(2) is None
