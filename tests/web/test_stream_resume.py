"""Byte offsets stay exact through the shared tailer: across slow-viewer resyncs, reconnects
with Last-Event-ID, and many viewers of one job (one reader)."""

import threading

import pytest

from autobuild.adapters import log_tailer
from autobuild.adapters.log_tailer import RESYNC, Subscription
from autobuild.web.routes import stream
from tests.web.helpers import event_data, parse_sse, submit

pytestmark = pytest.mark.timeout(30)

URL = "/api/jobs/1/log/stream"
LINES = [f"NOTE: line {n} ü€😀\n".encode() for n in range(60)]


@pytest.fixture(autouse=True)
def quick_polling(monkeypatch):
    monkeypatch.setattr(stream, "POLL_SECONDS", 0.005)


@pytest.fixture
def running(alice, fakes, supervisor):
    assert submit(alice).status_code == 303
    supervisor.tick()
    return 1


def check_exact(events, start=0):
    """The log events' text and ids: each id is the byte offset just after its text."""
    text, position = b"", start
    for event in events:
        if event.get("event") == "log":
            data = event_data(event)["text"].encode()
            position += len(data)
            assert int(event["id"]) == position
            text += data
    return text, position


def feed_and_finish(fakes, supervisor, lines):
    for line in lines:
        fakes.files.append_log(1, line)
    fakes.runner.finish(1, 0)
    supervisor.tick()


def test_a_viewer_told_to_resync_again_and_again_misses_and_repeats_nothing(
        alice, running, fakes, supervisor, monkeypatch):
    offered = []
    original = Subscription.offer

    def lossy(self, item):  # every other update is lost: the viewer must resync
        offered.append(item)
        original(self, RESYNC if len(offered) % 2 else item)

    monkeypatch.setattr(Subscription, "offer", lossy)
    with alice.stream("GET", URL) as response:
        events = parse_sse(response.iter_lines())
        got = [next(events), next(events)]  # comment, status
        writer = threading.Thread(target=feed_and_finish, args=(fakes, supervisor, LINES))
        writer.start()
        got += list(events)
        writer.join()

    text, position = check_exact(got)
    assert text == b"".join(LINES)
    assert got[-1]["event"] == "end" and event_data(got[-1])["offset"] == position
    assert offered  # the tailer did push


def test_reconnecting_with_last_event_id_mid_build_continues_exactly(
        alice, running, fakes, supervisor):
    fakes.files.append_log(1, b"".join(LINES[:20]))
    with alice.stream("GET", URL) as response:
        events = parse_sse(response.iter_lines())
        first = []
        while sum(len(event_data(e)["text"].encode()) for e in first
                  if e.get("event") == "log") < 10:
            first.append(next(events))
    _, resume_at = check_exact(first)
    fakes.files.append_log(1, b"".join(LINES[20:40]))

    with alice.stream("GET", URL, headers={"Last-Event-ID": str(resume_at)}) as response:
        events = parse_sse(response.iter_lines())
        second = [next(events), next(events)]
        writer = threading.Thread(target=feed_and_finish, args=(fakes, supervisor, LINES[40:]))
        writer.start()
        second += list(events)
        writer.join()

    text, _ = check_exact(second, start=resume_at)
    assert b"".join(LINES)[:resume_at] + text == b"".join(LINES)


def test_viewers_of_one_job_share_one_reader(alice, running, fakes, supervisor, monkeypatch):
    monkeypatch.setattr(stream, "POLL_SECONDS", 0.05)
    reads = []
    original = fakes.files.read_log
    monkeypatch.setattr(fakes.files, "read_log",
                        lambda *args: reads.append(args) or original(*args))
    alice.__enter__()  # one event loop for every request, as in the served app
    streams = [alice.stream("GET", URL) for _ in range(3)]
    try:
        responses = [s.__enter__() for s in streams]
        iterators = [parse_sse(r.iter_lines()) for r in responses]
        for events in iterators:
            next(events), next(events)  # comment, status: all three are subscribed
        reads.clear()
        threading.Event().wait(0.5)
        quiet = len(reads)
        fakes.files.append_log(1, b"one line\n")
        for events in iterators:
            assert event_data(next(events))["text"] == "one line\n"
    finally:
        for s in streams:
            s.__exit__(None, None, None)
        alice.__exit__(None, None, None)
    assert quiet <= 14  # one look per POLL_SECONDS for the job, not one per viewer


def test_a_queue_is_bounded(monkeypatch):
    monkeypatch.setattr(log_tailer, "QUEUE_UPDATES", 2)

    async def scenario():
        subscription = Subscription()
        for n in range(10):
            subscription.offer(n)
        return [subscription.queue.get_nowait() for _ in range(subscription.queue.qsize())]

    import asyncio
    backlog = asyncio.run(scenario())
    assert len(backlog) <= 2 and RESYNC in backlog
