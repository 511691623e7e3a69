"""autobuild-cli run as an engineer runs it (a process, against the app over HTTP): what it
says about artifacts (which it checked, which it did not list, none at all), a refused token
(what fixes it, where the token came from) and an https:// URL on a plain HTTP port."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.web.helpers import submit
from tests.web.test_cli_terminal_safety import run, service, token  # noqa: F401 (fixtures)

UNKNOWN_TOKEN = "abt_" + "Z" * 43  # of the service's form, but none it made (or one revoked)


def _build(alice, fakes, supervisor, artifacts: dict[str, bytes],
           checksums: dict[str, str] | None = None) -> int:
    """alice's finished build with these artifacts (and the sha256 the service knows)."""
    assert submit(alice).status_code == 303
    supervisor.tick()
    job_id = max(fakes.runner.launches)
    fakes.files.artifacts[job_id] = artifacts
    fakes.files.checksums[job_id] = checksums or {}
    fakes.runner.finish(job_id, 0)
    supervisor.tick()
    return job_id


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- downloads say what they checked ---------------------------------------------------------

def test_a_download_says_sha256_ok_only_when_the_service_has_one(run, alice, fakes, supervisor,
                                                                tmp_path):
    job = _build(alice, fakes, supervisor, {"image.wic": b"wic", "notes.txt": b"no sum"},
                 {"image.wic": _sha(b"wic")})
    out = tmp_path / "out"

    first = run("artifacts", str(job), "--download", str(out))

    assert first.returncode == 0, first.stderr
    assert "image.wic: downloaded, sha256 OK\n" in first.stderr
    assert "notes.txt: downloaded (size checked; the service has no sha256 for it)\n" \
        in first.stderr
    assert (out / "notes.txt").read_bytes() == b"no sum"
    again = run("artifacts", str(job), "--download", str(out))
    assert "image.wic: verified, sha256 OK\n" in again.stderr
    assert "notes.txt: verified (size checked; the service has no sha256 for it)\n" \
        in again.stderr


def test_a_wrong_file_with_a_sha256_still_fails_loudly(run, alice, fakes, supervisor, tmp_path):
    job = _build(alice, fakes, supervisor, {"image.wic": b"wic"}, {"image.wic": _sha(b"wic")})
    (tmp_path / "image.wic").write_bytes(b"WIC")  # the right size, not the build's bytes

    result = run("artifacts", str(job), "--download", str(tmp_path))

    assert result.returncode == 1
    assert "image.wic: sha256 MISMATCH" in result.stderr and "OK" not in result.stderr


# --- the listing: no sha256, none at all, more than it shows, --name -------------------------

def test_the_list_shows_a_dash_for_a_missing_sha256(run, alice, fakes, supervisor):
    job = _build(alice, fakes, supervisor, {"a.wic": b"a", "b.txt": b"bb"}, {"a.wic": _sha(b"a")})

    result = run("artifacts", str(job))

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"a.wic  1 B  sha256:{_sha(b'a')}\nb.txt  2 B  sha256:-\n"
    assert "None" not in result.stdout and result.stderr == ""


def test_a_build_without_artifacts_says_so(run, alice, fakes, supervisor):
    job = _build(alice, fakes, supervisor, {})

    result = run("artifacts", str(job))

    assert result.returncode == 0
    assert result.stdout == ""
    assert result.stderr == f"build #{job} has no artifacts\n"
    assert json.loads(run("artifacts", str(job), "--json").stdout) == []


MANY = {f"pkg-{n:05d}.ipk": b"p" * (n % 7) for n in range(1003)}


def test_files_beyond_the_listing_are_counted_and_name_finds_one(run, alice, fakes, supervisor,
                                                                tmp_path):
    job = _build(alice, fakes, supervisor, MANY)

    listed = run("artifacts", str(job))

    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("\n") == 1000
    assert "pkg-01000.ipk" not in listed.stdout
    assert listed.stderr == "3 more files are not listed; --name NAME --download DIR fetches one\n"

    named = run("artifacts", str(job), "--name", "pkg-01000.ipk", "--name", "pkg-00003.ipk")
    assert named.returncode == 0, named.stderr
    assert named.stdout == "pkg-00003.ipk  3 B  sha256:-\npkg-01000.ipk  6 B  sha256:-\n"
    assert named.stderr == ""
    as_json = json.loads(run("artifacts", str(job), "--name", "pkg-01000.ipk", "--json").stdout)
    assert as_json == [{"name": "pkg-01000.ipk", "size": 6, "sha256": None}]
    del fakes.files.artifacts[job]["pkg-01002.ipk"], fakes.files.artifacts[job]["pkg-01001.ipk"]
    assert run("artifacts", str(job)).stderr == ("1 more file is not listed; --name NAME "
                                                 "--download DIR fetches one\n")

    fetched = run("artifacts", str(job), "--name", "pkg-01000.ipk", "--download", str(tmp_path))
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stderr == ("pkg-01000.ipk: downloaded (size checked; the service has no "
                              "sha256 for it)\n")
    assert (tmp_path / "pkg-01000.ipk").read_bytes() == b"p" * 6


def test_a_name_the_build_has_not_is_one_line_and_exit_1(run, alice, fakes, supervisor):
    job = _build(alice, fakes, supervisor, {"a.wic": b"a"})

    result = run("artifacts", str(job), "--name", "nothing.wic")

    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"autobuild-cli: error: build #{job} has no artifact named " \
                            "nothing.wic\n"


# --- a refused token: what fixes it depends on where it came from ----------------------------

def test_a_refused_token_in_the_environment_says_to_update_the_variable(run):
    env = {**run.env, "AUTOBUILD_TOKEN": UNKNOWN_TOKEN}

    result = _run_with(run, env, "list")

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and UNKNOWN_TOKEN not in result.stderr
    assert "refused the API token in AUTOBUILD_TOKEN" in result.stderr
    assert "update AUTOBUILD_TOKEN (e.g. your CI variable)" in result.stderr
    assert "login" not in result.stderr


def test_a_refused_saved_token_says_to_log_in_again(run, tmp_path):
    config = tmp_path / ".config" / "autobuild"
    config.mkdir(parents=True)
    (config / "config.json").write_text(json.dumps({"url": run.env["AUTOBUILD_URL"],
                                                    "token": UNKNOWN_TOKEN}))
    env = {name: value for name, value in run.env.items() if name != "AUTOBUILD_TOKEN"}

    result = _run_with(run, env, "list")

    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and UNKNOWN_TOKEN not in result.stderr
    assert "refused the API token saved by login" in result.stderr
    assert "run 'autobuild-cli login'" in result.stderr


def _run_with(run, env, *args):
    saved = dict(run.env)
    run.env.clear()
    run.env.update(env)
    try:
        return run(*args)
    finally:
        run.env.clear()
        run.env.update(saved)


# --- https:// on a port that answers plain HTTP ----------------------------------------------

@pytest.mark.parametrize("command", [["list"], ["follow", "1"]])
def test_https_to_a_plain_http_port_is_one_line_that_says_so(run, service, command):
    url = service.replace("http://", "https://")

    result = run("--url", url, *command)

    assert result.returncode == 1
    assert result.stderr == (f"autobuild-cli: error: cannot reach {url}: it does not answer "
                             "HTTPS on that port (is it http://, or another port?)\n")
    assert "SSL" not in result.stderr and "Traceback" not in result.stderr
    assert run.env["AUTOBUILD_TOKEN"] not in result.stderr + result.stdout
