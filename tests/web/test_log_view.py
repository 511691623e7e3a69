"""What the job page's log view gets from the server to open on the end of a long log: the
log size in the page, the raw log link, and chunks that start anywhere (even inside a UTF-8
character) showing nothing garbled once the first, cut line is dropped as app.js does."""

import math
import re
from pathlib import Path

import pytest

from autobuild.web.routes import stream
from tests.web.helpers import event_data, parse_sse, submit

pytestmark = pytest.mark.timeout(30)

APP_JS = Path(stream.__file__).resolve().parents[1] / "static" / "app.js"
# Lines of 2-, 3- and 4-byte characters, so every cut lands somewhere inside one at some point.
LINES = [f"{n:05d} größe → 𝄞 «{'é' * (n % 7)}»\n" for n in range(400)]
LOG = "".join(LINES).encode()


@pytest.fixture
def job(alice, fakes, supervisor):
    assert submit(alice).status_code == 303
    supervisor.tick()
    return 1


def app_js_number(name: str) -> int:
    """A constant of app.js written as a number or a product (``256 * 1024``)."""
    match = re.search(rf"var {name} = ([0-9 *]+);", APP_JS.read_text())
    assert match, f"{name} is not a number in app.js"
    return math.prod(int(factor) for factor in match.group(1).split("*"))


def after_first_line(text: str) -> str:
    """What app.js shows of a chunk read from inside the log: from its first whole line."""
    return text[text.index("\n") + 1:]


def line_starts() -> list[int]:
    starts, at = [], 0
    for line in LINES:
        starts.append(at)
        at += len(line.encode())
    return starts


def test_the_job_page_carries_the_log_size_the_view_opens_from(alice, job, fakes):
    assert 'data-log-size="0"' in alice.get("/jobs/1").text  # no log yet
    fakes.files.append_log(1, LOG)

    page = alice.get("/jobs/1").text

    assert f'data-log-size="{len(LOG)}"' in page


def test_the_job_page_links_the_raw_log_to_open_in_the_browser(alice, job):
    page = alice.get("/jobs/1").text

    link = re.search(r'<a [^>]*id="log-raw"[^>]*>', page)
    assert link, "no raw log link"
    assert 'href="/api/jobs/1/log/raw"' in link.group(0)
    assert "download" not in link.group(0)
    assert 'id="log-earlier-button"' in page
    assert re.search(r'id="log-earlier"[^>]* hidden', page), "shown before app.js knows the range"


def test_a_purged_build_has_no_raw_log_link(alice, job, fakes, supervisor):
    fakes.runner.finish(1, 0)
    supervisor.tick()
    stored = fakes.jobs.get(1)
    fakes.runner.purge(stored)
    stored.mark_purged(fakes.clock.now())
    fakes.jobs.save(stored)

    assert 'id="log-raw"' not in alice.get("/jobs/1").text


def test_a_chunk_read_from_inside_a_character_shows_whole_lines_after_its_first(alice, job, fakes):
    fakes.files.append_log(1, LOG)
    starts = line_starts()

    for cut in range(starts[3] + 1, starts[5]):  # every byte of two lines, inside characters too
        chunk = alice.get("/api/jobs/1/log", params={"offset": cut, "limit": 4096}).json()

        assert chunk["offset"] == cut
        following = next(n for n, start in enumerate(starts) if start >= cut)
        if starts[following] == cut:
            following += 1  # a chunk from a line start: app.js drops that whole line as well
        shown = after_first_line(chunk["text"])
        assert "\ufffd" not in shown
        assert shown == LOG[starts[following]:chunk["next_offset"]].decode()
        assert "".join(LINES[following:]).startswith(shown)


def test_load_earlier_gets_exactly_the_bytes_before_the_view(alice, job, fakes):
    """A range that ends at a line start ends where asked (nothing held back) and, cut at its
    first line, is the lines just before it, whatever byte it started at."""
    fakes.files.append_log(1, LOG)
    starts = line_starts()
    head = starts[300]

    for start in range(head - 2000, head - 1900):
        chunk = alice.get("/api/jobs/1/log",
                          params={"offset": start, "limit": head - start}).json()

        assert chunk["next_offset"] == head
        shown = after_first_line(chunk["text"])
        assert "".join(LINES[:300]).endswith(shown)
        assert len(shown.encode()) < 2000 and shown.endswith("\n")


def test_the_stream_from_inside_a_character_sends_nothing_garbled_after_the_first_line(
        alice, job, fakes, supervisor):
    fakes.files.append_log(1, LOG)
    fakes.runner.finish(1, 0)
    supervisor.tick()
    cut = line_starts()[200] - 2  # inside the closing "»" of line 199

    with alice.stream("GET", "/api/jobs/1/log/stream", params={"offset": cut}) as response:
        events = list(parse_sse(response.iter_lines()))

    text = "".join(event_data(e)["text"] for e in events if e.get("event") == "log")
    assert text.startswith("\ufffd")  # the cut character, in the line app.js drops
    assert after_first_line(text) == "".join(LINES[200:])
    assert events[-1]["event"] == "end"


def test_app_js_asks_no_more_than_the_chunk_endpoint_gives():
    assert app_js_number("MAX_CHUNK_BYTES") == stream.MAX_LOG_LIMIT
    assert app_js_number("EARLIER_BYTES") < stream.MAX_LOG_LIMIT
    assert app_js_number("MAX_LOG_LINES") <= app_js_number("MAX_READING_LINES")
