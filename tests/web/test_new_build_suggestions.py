"""The New build form suggests recent values and starts from the engineer's last build."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime

from autobuild.domain.jobs import Submission
from autobuild.domain.requests import BuildRequest
from tests.web.helpers import VALID_JOB, submit

BOARD = "https://gitlab.example.com/bsp/meta-board.git"


def datalist(page: str, name: str) -> list[tuple[str, str]]:
    """(value, label) of each option of the field's datalist, in order."""
    match = re.search(rf'<datalist id="l-{name}">(.*?)</datalist>', page, re.S)
    if not match:
        return []
    return [(html.unescape(v), html.unescape(label)) for v, label in
            re.findall(r'<option value="([^"]*)" label="([^"]*)">', match.group(1))]


def input_value(page: str, name: str) -> str:
    match = re.search(rf'<input id="f-{name}" name="{name}" type="text" value="([^"]*)"', page)
    assert match, f"no {name} input"
    return html.unescape(match.group(1))


def store(fakes, owner: str, repo_url: str, machine: str = "qemux86-64",
          target: str = "core-image-minimal") -> None:
    """A build as an older version may have stored it: not validated again."""
    request = BuildRequest.parse(VALID_JOB["repo_url"], "main", machine, target)
    job = fakes.jobs.add(Submission(owner, request, datetime(2026, 1, 1, tzinfo=UTC)))
    job.repo_url = repo_url
    fakes.jobs.save(job)


def test_the_form_suggests_own_values_first_then_the_teams(alice, bob):
    submit(alice, machine="qemuarm64", target="core-image-base")
    submit(bob, repo_url=BOARD, machine="imx8mm-evk", target="core-image-weston")
    submit(alice, machine="qemux86-64")

    page = alice.get("/new").text

    assert datalist(page, "machine") == [("qemux86-64", "your build #3"),
                                         ("qemuarm64", "your build #1"),
                                         ("imx8mm-evk", "bob’s build #2")]
    assert [v for v, _ in datalist(page, "target")] == [
        "core-image-minimal", "core-image-base", "core-image-weston"]
    # bob's repository is on the host alice clones from already
    assert [v for v, _ in datalist(page, "repo_url")] == [VALID_JOB["repo_url"], BOARD]
    assert 'list="l-machine"' in page and 'list="l-target"' in page


def test_a_first_build_has_no_lists_and_the_defaults(alice):
    page = alice.get("/new").text

    assert "<datalist" not in page
    assert input_value(page, "ref") == "main"
    assert input_value(page, "target") == "core-image-minimal"
    assert input_value(page, "repo_url") == ""
    assert 'id="prefilled"' not in page


def test_no_repository_with_credentials_or_on_a_strangers_host_is_suggested(alice, bob, fakes):
    submit(alice)
    store(fakes, "bob", "https://oauth2:glpat-SECRET@gitlab.example.com/bsp/x.git")
    store(fakes, "bob", "https://gitlab.example.com/bsp/y.git?private_token=SECRET")
    store(fakes, "bob", "https://attacker.example.net/bsp/yocto-image.git")

    page = alice.get("/new").text

    assert [v for v, _ in datalist(page, "repo_url")] == [VALID_JOB["repo_url"]]
    assert "SECRET" not in page and "attacker.example.net" not in page


def test_the_form_starts_from_the_last_own_build_kas_file_included(alice, bob):
    submit(alice, repo_url=BOARD, ref="v2.1", machine="imx8mm-evk", target="core-image-base",
           kas_file="kas/board.yml")
    submit(bob, machine="raspberrypi4")  # newer, but bob's

    page = alice.get("/new").text

    assert [input_value(page, n) for n in ("repo_url", "ref", "machine", "target", "kas_file")] \
        == [BOARD, "v2.1", "imx8mm-evk", "core-image-base", "kas/board.yml"]
    assert 'Filled in from your last build, <a href="/jobs/1">#1</a>' in page


def test_without_a_kas_file_last_time_the_kas_field_stays_empty(alice):
    submit(alice, kas_file="kas/board.yml")
    submit(alice, machine="qemuarm64")

    page = alice.get("/new").text

    assert input_value(page, "kas_file") == ""
    assert input_value(page, "machine") == "qemuarm64"


def test_a_rebuild_link_fills_the_form_from_its_build_not_from_the_last(alice, bob):
    submit(bob, machine="imx8mm-evk")  # 1
    submit(alice, machine="qemuarm64")  # 2: alice's last

    page = alice.get("/new?from=1").text

    assert input_value(page, "machine") == "imx8mm-evk"
    assert "bob's build #1" in html.unescape(page)
    assert 'id="prefilled"' not in page
    assert [v for v, _ in datalist(page, "machine")] == ["qemuarm64", "imx8mm-evk"]


def test_a_form_shown_again_after_an_error_keeps_what_the_user_typed(alice, fakes):
    submit(alice, machine="imx8mm-evk", target="core-image-base")

    response = submit(alice, repo_url=BOARD, machine="bad machine", target="my-image", ref="dev")

    assert response.status_code == 422
    page = response.text
    assert [input_value(page, n) for n in ("repo_url", "ref", "machine", "target")] == [
        BOARD, "dev", "bad machine", "my-image"]
    assert 'id="prefilled"' not in page
    assert [v for v, _ in datalist(page, "machine")] == ["imx8mm-evk"]  # the lists stay
    assert fakes.jobs.count() == 1
