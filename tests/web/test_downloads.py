"""Downloads: the raw log (whole, Range, 416) and the hand-over to nginx (X-Accel-Redirect)."""

import pytest

from tests.web.helpers import submit

ACCEL = {"X-Autobuild-Accel": "1"}


@pytest.fixture
def job(alice, fakes):
    assert submit(alice).status_code == 303
    return fakes.jobs.get(1)


def test_the_raw_log_is_the_whole_file_as_plain_text_inline(alice, job, fakes):
    data = "NOTE: Running task 1 of 2\nÜmlaut\n".encode() * 1000
    fakes.files.append_log(1, data)

    response = alice.get("/api/jobs/1/log/raw")

    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"].startswith('inline; filename="build-1.log"')
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "x-accel-redirect" not in response.headers


def test_the_raw_log_resumes_with_a_range_as_the_artifact_download_does(alice, job, fakes):
    data = bytes(range(256)) * 4
    fakes.files.append_log(1, data)

    middle = alice.get("/api/jobs/1/log/raw", headers={"Range": "bytes=10-19"})
    tail = alice.get("/api/jobs/1/log/raw", headers={"Range": "bytes=1000-"})
    suffix = alice.get("/api/jobs/1/log/raw", headers={"Range": "bytes=-4"})
    beyond = alice.get("/api/jobs/1/log/raw", headers={"Range": "bytes=1024-"})
    garbled = alice.get("/api/jobs/1/log/raw", headers={"Range": "bytes=1-2,5-6"})

    assert (middle.status_code, middle.content) == (206, data[10:20])
    assert middle.headers["content-range"] == "bytes 10-19/1024"
    assert (tail.status_code, tail.content) == (206, data[1000:])
    assert suffix.content == data[-4:]
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == "bytes */1024"
    assert (garbled.status_code, garbled.content) == (200, data)


def test_a_job_without_a_log_and_an_unknown_job_are_404(alice, job):
    none_yet = alice.get("/api/jobs/1/log/raw")
    unknown = alice.get("/api/jobs/5/log/raw")

    assert none_yet.status_code == 404
    assert none_yet.json() == {"detail": "This build has no log yet."}
    assert unknown.status_code == 404
    assert unknown.json() == {"detail": "Build #5 does not exist."}


def test_every_engineer_may_read_the_raw_log_but_nobody_signed_out(alice, bob, job, fakes, app):
    from starlette.testclient import TestClient

    fakes.files.append_log(1, b"log\n")
    assert bob.get("/api/jobs/1/log/raw").content == b"log\n"
    with TestClient(app, follow_redirects=False) as anonymous:
        for headers in ({}, ACCEL):
            response = anonymous.get("/api/jobs/1/log/raw", headers=headers)
            assert response.status_code == 401
            assert "x-accel-redirect" not in response.headers
            assert b"log" not in response.content


# --- behind nginx ----------------------------------------------------------------------------

def test_behind_nginx_an_artifact_is_handed_over_by_its_path_in_the_jobs_root(alice, job, fakes):
    fakes.files.artifacts[1] = {"image.bin": b"secret bytes"}

    response = alice.get("/api/jobs/1/artifacts/image.bin",
                         headers={**ACCEL, "Range": "bytes=0-3"})

    assert response.status_code == 200  # nginx answers the Range itself
    assert response.headers["x-accel-redirect"] == "/_autobuild/jobs/alice/1/artifacts/image.bin"
    assert response.content == b""
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"].startswith('attachment; filename="image.bin"')
    assert response.headers["cache-control"] == "private, no-cache"


def test_behind_nginx_the_raw_log_is_handed_over_with_its_type_and_name(alice, job, fakes):
    fakes.files.append_log(1, b"the log\n")

    response = alice.get("/api/jobs/1/log/raw", headers=ACCEL)

    assert response.headers["x-accel-redirect"] == "/_autobuild/jobs/alice/1/logs/build.log"
    assert response.content == b""
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-disposition"].startswith('inline; filename="build-1.log"')


def test_the_handed_over_path_is_percent_encoded(alice, job, fakes):
    fakes.files.artifacts[1] = {'büld "x" 100%?#.bin': b"abc"}

    response = alice.get("/api/jobs/1/artifacts/b%C3%BCld%20%22x%22%20100%25%3F%23.bin",
                         headers=ACCEL)

    assert response.headers["x-accel-redirect"] == (
        "/_autobuild/jobs/alice/1/artifacts/b%C3%BCld%20%22x%22%20100%25%3F%23.bin")


def test_the_hand_over_closes_the_file_the_service_checked(alice, job, fakes):
    opened = []

    def open_artifact(job, name):
        fileobj, info = original(job, name)
        opened.append(fileobj)
        return fileobj, info

    fakes.files.artifacts[1] = {"a.bin": b"abc"}
    original, fakes.files.open_artifact = fakes.files.open_artifact, open_artifact

    alice.get("/api/jobs/1/artifacts/a.bin", headers=ACCEL)

    assert len(opened) == 1 and opened[0].closed


@pytest.mark.parametrize("path", ["/api/jobs/1/artifacts/missing.bin",
                                  "/api/jobs/1/artifacts/..%2f..%2fetc%2fpasswd",
                                  "/api/jobs/1/artifacts/.hidden",
                                  "/api/jobs/5/artifacts/a.bin", "/api/jobs/5/log/raw",
                                  "/api/jobs/1/log/raw"])
def test_nothing_the_service_refuses_is_handed_over(alice, job, fakes, path):
    fakes.files.artifacts[1] = {"a.bin": b"data", ".hidden": b"no"}

    response = alice.get(path, headers=ACCEL)

    assert response.status_code == 404
    assert "x-accel-redirect" not in response.headers


@pytest.mark.parametrize("value", ["0", "", "yes", "1, 1"])
def test_any_other_value_of_the_header_gets_the_bytes_from_the_app(alice, job, fakes, value):
    fakes.files.artifacts[1] = {"a.bin": b"abc"}

    response = alice.get("/api/jobs/1/artifacts/a.bin", headers={"X-Autobuild-Accel": value})

    assert response.content == b"abc"
    assert "x-accel-redirect" not in response.headers


def test_a_client_that_sends_the_header_itself_gets_a_path_it_could_see_and_no_bytes(
        alice, bob, job, fakes):
    # Without nginx in front (a local user talking to 127.0.0.1:8000), the header only turns
    # the answer into an empty one naming the file: the same job, owner and name the API lists.
    fakes.files.artifacts[1] = {"a.bin": b"alice's image"}

    response = bob.get("/api/jobs/1/artifacts/a.bin", headers=ACCEL)

    assert response.content == b""
    assert response.headers["x-accel-redirect"] == "/_autobuild/jobs/alice/1/artifacts/a.bin"
    assert [a["name"] for a in bob.get("/api/jobs/1/artifacts").json()] == ["a.bin"]

