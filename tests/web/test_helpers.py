"""The web layer's small pure helpers: redirects, ranges, names, sizes, durations."""

import pytest

from autobuild.web.rendering import human_duration, human_size, repo_name
from autobuild.web.downloads import attachment, parse_range
from autobuild.web.routes.stream import resume_offset
from autobuild.web.security import safe_next


@pytest.mark.parametrize("target", ["/", "/jobs/3", "/?page=2", "/settings#token"])
def test_safe_next_keeps_paths_on_this_site(target):
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [None, "", "jobs/3", "//evil.example", "///evil.example", "/\\evil.example",
     "https://evil.example/", "javascript:alert(1)", "/a\nb", "/a b", "/\x00"],
)
def test_safe_next_sends_everything_else_home(target):
    assert safe_next(target) == "/"


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("bytes=0-9", (0, 9)), ("bytes=5-", (5, 99)),
     ("bytes=-10", (90, 99)), ("bytes=-500", (0, 99)), ("bytes=90-500", (90, 99)),
     ("bytes=0-1,5-6", None), ("items=0-1", None), ("bytes=-", None)],
)
def test_parse_range(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=9-3", "bytes=-0"])
def test_parse_range_outside_the_file(header):
    with pytest.raises(ValueError):
        parse_range(header, 100)


def test_content_disposition_is_safe_for_any_name():
    assert attachment("a.bin") == "attachment; filename=\"a.bin\"; filename*=UTF-8''a.bin"
    value = attachment('ü"\\;.mtd')
    assert value.startswith('attachment; filename="_' + "__;.mtd" + '"')
    assert "\n" not in attachment("a\nb")


@pytest.mark.parametrize(
    ("last_event_id", "offset", "expected"),
    [(None, 0, 0), (None, 12, 12), ("40", 12, 40), (" 40 ", 0, 40), ("x", 7, 7),
     ("\u00b2", 7, 7), ("-5", 7, 7), ("9" * 30, 7, 7)],
)
def test_resume_offset_prefers_a_numeric_last_event_id(last_event_id, offset, expected):
    assert resume_offset(last_event_id, offset) == expected


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (50 * 1024 * 1024, "50.0 MiB"),
     (3 * 1024**3, "3.0 GiB")],
)
def test_human_size(size, text):
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0, "0s"), (59.9, "59s"), (61, "1m 01s"), (3600 + 120, "1h 02m")],
)
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_repo_name_is_the_path_without_git():
    assert repo_name("https://gitlab.example.com/group/sub/project.git") == "group/sub/project"
    assert repo_name("https://gitlab.example.com:8443/p") == "p"
