"""A build may leave any number of files in artifacts/: the job page, the API and the compare
page list a bounded number, say how many more there are, and every file can still be
downloaded by its name."""

from __future__ import annotations

import io
import json
import re

import pytest

from autobuild.domain.artifacts import MAX_ARTIFACTS_LISTED
from autobuild.domain.comparison import MAX_PACKAGES_LISTED
from tests.support.cli_module import load_cli
from tests.web.helpers import submit

MORE = 25
COUNT = MAX_ARTIFACTS_LISTED + MORE


def _ended_build(client, fakes, supervisor, artifacts: dict[str, bytes]) -> int:
    assert submit(client).status_code == 303
    job_id = max(fakes.jobs.rows)
    supervisor.tick()
    fakes.files.artifacts[job_id] = artifacts
    fakes.runner.finish(job_id, 0)
    supervisor.tick()
    return job_id


@pytest.fixture
def crowded(alice, fakes, supervisor) -> int:
    """A build that left more files than are listed."""
    return _ended_build(alice, fakes, supervisor,
                        {f"file-{i:05d}.bin": str(i).encode() for i in range(COUNT)})


def test_the_job_page_lists_the_first_files_and_says_clearly_the_list_is_cut(alice, crowded):
    page = alice.get(f"/jobs/{crowded}").text
    rows = re.findall(r'<a href="/api/jobs/\d+/artifacts/([^"]+)" download>', page)
    assert rows == [f"file-{i:05d}.bin" for i in range(MAX_ARTIFACTS_LISTED)]
    note = page[page.index('id="artifacts-more"'):]
    note = " ".join(re.sub(r"<[^>]+>", " ", note[:note.index("</p>")]).split())
    assert "hidden" not in note.split(">")[0]
    assert (f"The list is cut: the first {MAX_ARTIFACTS_LISTED} files by name are listed, and "
            f"{MORE} more files are not.") in note


def test_a_job_page_with_all_its_files_listed_hides_the_note(alice, fakes, supervisor):
    job_id = _ended_build(alice, fakes, supervisor, {"image.bin": b"x"})
    page = alice.get(f"/jobs/{job_id}").text
    assert re.search(r'id="artifacts-more" role="note" hidden', page)


def test_the_api_lists_the_first_files_and_counts_the_rest_in_a_header(alice, crowded):
    response = alice.get(f"/api/jobs/{crowded}/artifacts")
    assert response.status_code == 200
    assert len(response.json()) == MAX_ARTIFACTS_LISTED
    assert response.headers["X-Artifacts-Not-Listed"] == str(MORE)


def test_the_header_says_zero_when_every_file_is_listed(alice, fakes, supervisor):
    job_id = _ended_build(alice, fakes, supervisor, {"image.bin": b"x"})
    assert alice.get(f"/api/jobs/{job_id}/artifacts").headers["X-Artifacts-Not-Listed"] == "0"


def test_a_file_beyond_the_listing_still_downloads_by_its_name(alice, crowded):
    last = COUNT - 1
    response = alice.get(f"/api/jobs/{crowded}/artifacts/file-{last:05d}.bin")
    assert response.status_code == 200 and response.content == str(last).encode()


def test_the_compare_page_stays_small_whatever_a_build_left_in_artifacts(alice, bob, fakes,
                                                                        supervisor):
    """The reviewer's 50k files of 200-character names made a 15 MiB compare page."""
    mine = _ended_build(alice, fakes, supervisor, {"image.bin": b"x"})
    theirs = _ended_build(bob, fakes, supervisor,
                          {f"{i:06d}-" + "x" * 193 + ".bin": b"" for i in range(50_000)})
    page = alice.get("/jobs/compare", params={"a": mine, "b": theirs})
    api = alice.get("/api/jobs/compare", params={"a": mine, "b": theirs})
    assert page.status_code == 200 and api.status_code == 200
    assert len(page.content) < 1 << 20, f"the page is {len(page.content) >> 10} KiB"
    assert len(api.content) < 1 << 20, f"the JSON is {len(api.content) >> 10} KiB"
    data = api.json()
    assert len(data["artifacts"]) == MAX_PACKAGES_LISTED
    assert data["artifacts_total"] == MAX_ARTIFACTS_LISTED + 1  # image.bin, only before
    assert data["artifacts_unlisted"] == {"before": 0, "after": 50_000 - MAX_ARTIFACTS_LISTED}
    assert f"The first {MAX_PACKAGES_LISTED} of {MAX_ARTIFACTS_LISTED + 1} artifacts that " \
           "differ are listed." in page.text
    assert (f"Build #{theirs} left {50_000 - MAX_ARTIFACTS_LISTED} more files than its first "
            f"{MAX_ARTIFACTS_LISTED} by name: they are not compared.") in page.text
    swapped = alice.get("/api/jobs/compare", params={"a": theirs, "b": mine}).json()
    assert swapped["artifacts_unlisted"] == {"before": 50_000 - MAX_ARTIFACTS_LISTED, "after": 0}


# --- autobuild-cli: a name beyond the listing still downloads --------------------------------

def _cli():
    return load_cli("autobuild_cli_bounds")


class _Answer(io.BytesIO):
    def __init__(self, response):
        super().__init__(response.content)
        self.status, self.headers = response.status_code, response.headers


class ClientApi:
    """autobuild-cli's Api, answered by the TestClient (the signed-in session)."""

    url = "http://testserver"

    def __init__(self, client, cli):
        self.client, self.cli = client, cli

    def open(self, method, path, body=None, headers=None, timeout=None):
        response = self.client.request(method, path, json=body, headers=headers)
        if response.status_code >= 400:
            raise self.cli.CliError(f"HTTP {response.status_code}", status=response.status_code)
        return _Answer(response)

    def json(self, method, path, body=None):
        with self.open(method, path, body) as response:
            return json.loads(response.read())


def test_the_cli_downloads_by_name_a_file_beyond_the_listing(alice, crowded, tmp_path, capsys):
    cli = _cli()
    last = f"file-{COUNT - 1:05d}.bin"
    args = cli.build_parser().parse_args(["artifacts", str(crowded), "--download",
                                          str(tmp_path), "--name", last])
    assert cli.cmd_artifacts(args, ClientApi(alice, cli)) == 0
    assert (tmp_path / last).read_bytes() == str(COUNT - 1).encode()
    args = cli.build_parser().parse_args(["artifacts", str(crowded), "--download",
                                          str(tmp_path), "--name", "no-such.bin"])
    with pytest.raises(cli.CliError, match="has no artifact named no-such.bin"):
        cli.cmd_artifacts(args, ClientApi(alice, cli))


def test_the_cli_downloads_an_empty_file_beyond_the_listing(alice, fakes, supervisor, tmp_path):
    cli = _cli()
    files = {f"file-{i:05d}.bin": b"x" for i in range(COUNT)} | {"zz-empty.bin": b""}
    job_id = _ended_build(alice, fakes, supervisor, files)
    args = cli.build_parser().parse_args(["artifacts", str(job_id), "--download",
                                          str(tmp_path), "--name", "zz-empty.bin"])
    assert cli.cmd_artifacts(args, ClientApi(alice, cli)) == 0
    assert (tmp_path / "zz-empty.bin").read_bytes() == b""
