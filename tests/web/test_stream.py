"""The live log over Server-Sent Events: order, ids = byte offsets, resume, status, end."""

import time

import pytest

from autobuild.web.routes import stream
from tests.web.helpers import event_data, parse_sse, submit

pytestmark = pytest.mark.timeout(30)

URL = "/api/jobs/1/log/stream"


@pytest.fixture(autouse=True)
def quick_polling(monkeypatch):
    monkeypatch.setattr(stream, "POLL_SECONDS", 0.02)


@pytest.fixture
def job(alice, fakes):
    assert submit(alice).status_code == 303
    return 1


def finish(supervisor, fakes, exit_code=0):
    supervisor.tick()
    fakes.runner.finish(1, exit_code)
    supervisor.tick()


def read_all(client, **kwargs):
    with client.stream("GET", URL, **kwargs) as response:
        assert response.status_code == 200
        return list(parse_sse(response.iter_lines()))


def test_stream_of_a_finished_job_sends_status_log_then_end(alice, job, fakes, supervisor):
    log = b"".join(f"NOTE: Running task {n} of 3000 (do_compile)\n".encode()
                   for n in range(1, 3001))  # more than one chunk
    fakes.files.append_log(1, log)
    finish(supervisor, fakes)

    events = read_all(alice)

    assert "comment" in events[0]  # sent at once
    kinds = [e.get("event") for e in events[1:]]
    assert kinds[0] == "status"
    assert kinds[-1] == "end"
    assert set(kinds[1:-1]) == {"log", "progress"}  # the status does not change
    assert event_data(events[1])["status"] == "SUCCESS"
    assert event_data(events[1])["exit_code"] == 0
    logs = [e for e in events if e.get("event") == "log"]
    assert len(logs) >= 2
    assert "".join(event_data(e)["text"] for e in logs).encode() == log
    offsets = [int(e["id"]) for e in logs]
    assert offsets == sorted(offsets) and offsets[-1] == len(log)
    sent = 0
    for event in logs:  # each id is the byte offset just after that event's text
        sent += len(event_data(event)["text"].encode())
        assert int(event["id"]) == sent
    assert event_data(events[-1])["status"] == "SUCCESS"


def test_stream_headers_keep_proxies_from_buffering(alice, job, fakes, supervisor):
    finish(supervisor, fakes)

    with alice.stream("GET", URL) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["x-accel-buffering"] == "no"
        assert response.headers["cache-control"] == "no-cache"


def test_last_event_id_resumes_without_repeating(alice, job, fakes, supervisor):
    text = "line one\nline two ü\nline three\n"
    fakes.files.append_log(1, text.encode())
    finish(supervisor, fakes)
    first = read_all(alice)
    resume_at = int([e for e in first if e.get("event") == "log"][0]["id"])

    events = read_all(alice, headers={"Last-Event-ID": "9"})

    logs = [event_data(e)["text"] for e in events if e.get("event") == "log"]
    assert "".join(logs) == text.encode()[9:].decode()
    assert resume_at == len(text.encode())
    at_end = read_all(alice, headers={"Last-Event-ID": str(resume_at)})
    assert [e.get("event") for e in at_end[1:]] == ["status", "end"]


def test_offset_parameter_resumes_and_last_event_id_wins(alice, job, fakes, supervisor):
    fakes.files.append_log(1, b"0123456789")
    finish(supervisor, fakes)

    by_offset = read_all(alice, params={"offset": 4})
    both = read_all(alice, params={"offset": 4}, headers={"Last-Event-ID": "7"})

    assert [event_data(e)["text"] for e in by_offset if e.get("event") == "log"] == ["456789"]
    assert [event_data(e)["text"] for e in both if e.get("event") == "log"] == ["789"]


def test_live_stream_follows_the_log_and_status_until_the_end(alice, job, fakes, supervisor):
    supervisor.tick()  # RUNNING
    fakes.files.append_log(1, b"NOTE: Running task 1 of 2\n")

    with alice.stream("GET", URL) as response:
        events = parse_sse(response.iter_lines())
        assert "comment" in next(events)
        status = next(events)
        assert status["event"] == "status" and event_data(status)["status"] == "RUNNING"
        first = next(events)
        assert first["event"] == "log" and first["id"] == "26"

        # The build goes on, then ends, while the browser is connected.
        fakes.files.append_log(1, b"NOTE: Running task 2 of 2\n")
        second = next(events)
        assert event_data(second)["text"] == "NOTE: Running task 2 of 2\n"
        assert second["id"] == "52"
        fakes.clock.advance(30)
        fakes.files.append_log(1, b"NOTE: Tasks Summary: all succeeded.\n")
        fakes.runner.finish(1, 0)
        supervisor.tick()

        rest = list(events)

    # The last log lines and the final status may come in either order; end comes last.
    assert rest[-1]["event"] == "end"
    assert "".join(event_data(e)["text"] for e in rest if e["event"] == "log") == \
        "NOTE: Tasks Summary: all succeeded.\n"
    statuses = [event_data(e) for e in rest if e["event"] == "status"]
    assert len(statuses) == 1
    assert statuses[0]["status"] == "SUCCESS"
    assert statuses[0]["finished_at"] == "2026-01-01T12:00:30Z"


def test_a_status_event_is_sent_on_every_change(alice, job, fakes, supervisor):
    with alice.stream("GET", URL) as response:
        events = parse_sse(response.iter_lines())
        next(events)
        assert event_data(next(events))["status"] == "PENDING"

        supervisor.tick()
        running = next(events)
        assert running["event"] == "status" and event_data(running)["status"] == "RUNNING"

        fakes.runner.finish(1, 3)
        supervisor.tick()
        failed = next(events)
        assert event_data(failed)["status"] == "FAILED"
        assert event_data(failed)["exit_code"] == 3
        assert event_data(failed)["reason"] == "the build ended with exit code 3"
        assert next(events)["event"] == "end"


def test_a_quiet_stream_sleeps_instead_of_spinning(alice, job, fakes, supervisor, monkeypatch):
    monkeypatch.setattr(stream, "POLL_SECONDS", 0.1)
    reads = []
    original = fakes.files.read_log
    monkeypatch.setattr(fakes.files, "read_log",
                        lambda *args: reads.append(args) or original(*args))

    with alice.stream("GET", URL) as response:
        events = parse_sse(response.iter_lines())
        next(events)
        next(events)  # status: the loop is running
        reads.clear()
        time.sleep(0.5)
        count = len(reads)
        supervisor.tick()
        fakes.runner.finish(1, 0)
        supervisor.tick()
        assert [e["event"] for e in events][-1] == "end"

    assert 2 <= count <= 8  # about one look per POLL_SECONDS


def test_closing_the_stream_stops_the_generator(alice, job, fakes):
    reads = []
    original = fakes.files.read_log
    fakes.files.read_log = lambda *args: reads.append(args) or original(*args)

    with alice.stream("GET", URL) as response:
        events = parse_sse(response.iter_lines())
        next(events)
        next(events)
    time.sleep(0.2)
    count = len(reads)
    time.sleep(0.3)

    assert len(reads) == count  # nobody is reading the log any more
