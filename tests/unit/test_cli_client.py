"""The command-line client's pure parts (src/autobuild/web/static/autobuild-cli), imported from
its file as the engineer runs it: SSE parsing, the command line, the config file, exit codes."""

import io
import json
import os
import stat

import pytest

from tests.support.cli_module import CLI_FILE, load_cli


cli = load_cli("autobuild_cli")
SECRET = "abt_" + "S" * 43  # of the form the service makes
ENV_TOKEN = "abt_" + "E" * 43


def test_it_imports_only_the_standard_library():
    import ast
    import sys
    tree = ast.parse(CLI_FILE.read_text())
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module}
    assert names <= set(sys.stdlib_module_names), names - set(sys.stdlib_module_names)


# --- SSE ---------------------------------------------------------------------------------------

def _events(text):
    parser = cli.SseParser()
    return [event for line in io.StringIO(text) for event in [parser.feed(line)] if event]


def test_sse_events_with_ids_comments_and_multiline_data():
    stream = (": log of build #3\nretry: 2000\n\n"
              "event: status\ndata: {\"status\": \"RUNNING\"}\n\n"
              "event: log\r\ndata: {\"text\": \"a\\n\"}\r\nid: 42\r\n\r\n"
              ": ping\n\n"
              "data: one\ndata:two\n\n")
    events = _events(stream)
    assert events == [
        {"event": "status", "data": '{"status": "RUNNING"}', "id": None},
        {"event": "log", "data": '{"text": "a\\n"}', "id": "42"},
        {"event": "message", "data": "one\ntwo", "id": None},
    ]


def test_sse_last_id_and_retry_are_remembered():
    parser = cli.SseParser()
    for line in ["retry: 1500\n", "event: log\n", "id: 7\n", "data: {}\n", "\n", "data: x\n", "\n"]:
        parser.feed(line)
    assert parser.retry == 1500 and parser.last_id == "7"


def test_an_event_without_data_is_not_dispatched():
    assert _events("event: end\n\n") == []


# --- the command line --------------------------------------------------------------------------

def test_submit_arguments():
    args = cli.build_parser().parse_args(
        ["submit", "--repo", "https://git.example.com/p.git", "--machine", "qemux86-64",
         "--target", "core-image-minimal", "--kas", "kas/x.yml", "--follow"])
    assert (args.repo, args.ref, args.machine, args.target, args.kas, args.follow) == (
        "https://git.example.com/p.git", "main", "qemux86-64", "core-image-minimal",
        "kas/x.yml", True)


def test_url_before_or_after_the_command():
    parser = cli.build_parser()
    assert parser.parse_args(["--url", "https://a", "status", "3"]).url == "https://a"
    assert parser.parse_args(["status", "3", "--url", "https://b"]).url == "https://b"
    assert parser.parse_args(["list"]).url is None


@pytest.mark.parametrize("argv", [[], ["status"], ["status", "x"], ["status", "0"],
                                  ["submit", "--repo", "r"], ["list", "--limit", "999"],
                                  ["frobnicate"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(argv)
    assert exited.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_no_login_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("AUTOBUILD_URL", raising=False)
    monkeypatch.delenv("AUTOBUILD_TOKEN", raising=False)
    assert cli.main(["status", "3"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "login" in err


def test_an_unreachable_service_is_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AUTOBUILD_TOKEN", "abt_secret-token-value" + "v" * 25)
    assert cli.main(["--url", "http://127.0.0.1:9", "list"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("autobuild-cli: error: cannot reach http://127.0.0.1:9")
    assert err.count("\n") == 1 and "abt_secret" not in err


def test_the_help_says_how_to_trust_an_internal_ca(capsys):
    for argv in (["--help"], ["login", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "--ca-file FILE" in text and "internal CA" in text
    assert "absolute path of --ca-file" in text  # login's own help: what it saves


# --- the config file ---------------------------------------------------------------------------

def test_the_config_file_is_0600_in_a_0700_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    old = os.umask(0o022)
    try:
        cli.save_config({"url": "https://a", "token": "abt_x"})
    finally:
        os.umask(old)
    path = tmp_path / ".config" / "autobuild" / "config.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"url": "https://a", "token": "abt_x"}
    assert cli.load_config() == {"url": "https://a", "token": "abt_x"}
    assert [p.name for p in path.parent.iterdir()] == ["config.json"]  # no temporary left


def test_the_environment_token_wins_and_url_is_checked(monkeypatch):
    monkeypatch.setenv("AUTOBUILD_TOKEN", ENV_TOKEN)
    monkeypatch.delenv("AUTOBUILD_URL", raising=False)
    args = cli.build_parser().parse_args(["list"])
    assert cli.settings_from(args, {"url": "https://a/", "token": "abt_file"}) == (
        "https://a", ENV_TOKEN, None, False, cli.TOKEN_FROM_ENVIRONMENT)
    with pytest.raises(cli.CliError):
        cli.normalise_url("ftp://a")
    with pytest.raises(cli.CliError):
        cli.normalise_url("https://user:pw@a")


def test_a_ca_file_is_absolute_and_known_as_saved_when_it_comes_from_login(tmp_path, monkeypatch):
    monkeypatch.delenv("AUTOBUILD_URL", raising=False)
    monkeypatch.delenv("AUTOBUILD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    config = {"url": "https://a", "token": SECRET, "ca_file": "/etc/team/ca.pem"}
    given = cli.build_parser().parse_args(["list", "--ca-file", "ca.pem"])
    assert cli.settings_from(given, config)[2:] == (str(tmp_path / "ca.pem"), False,
                                                    cli.TOKEN_FROM_LOGIN)
    saved = cli.build_parser().parse_args(["list"])
    assert cli.settings_from(saved, config)[2:] == ("/etc/team/ca.pem", True, cli.TOKEN_FROM_LOGIN)


def test_a_refused_certificate_is_not_retried_by_follow(monkeypatch):
    class RefusingApi:
        def open(self, *args, **kwargs):
            raise cli.CliError("refused the TLS certificate", lasting=True)

    def no_sleep(seconds):
        raise AssertionError("retried a certificate that cannot pass")

    monkeypatch.setattr(cli.time, "sleep", no_sleep)
    with pytest.raises(cli.CliError, match="refused the TLS certificate"):
        cli.follow(RefusingApi(), 3, io.StringIO(), io.StringIO())


# --- exit codes and artifact names -------------------------------------------------------------

@pytest.mark.parametrize("job, code", [
    ({"status": "SUCCESS", "exit_code": 0}, 0),
    ({"status": "FAILED", "exit_code": 1}, 1),
    ({"status": "FAILED", "exit_code": 3}, 3),
    ({"status": "FAILED", "exit_code": None}, 1),
    ({"status": "FAILED", "exit_code": -9}, 1),
    ({"status": "CANCELLED", "exit_code": None}, 130),
])
def test_exit_code_of_a_finished_build(job, code):
    assert cli.exit_code_of(job) == code


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../b", "a//b", "", "a\\b"])
def test_artifact_names_that_leave_the_directory_are_refused(tmp_path, name):
    with pytest.raises(cli.CliError):
        cli.safe_target(str(tmp_path), name)


def test_nested_artifact_names_stay_inside(tmp_path):
    assert cli.safe_target(str(tmp_path), "sbom/x.spdx.json") == str(tmp_path / "sbom" / "x.spdx.json")


# --- provenance: list by commit, rebuild the exact commit ------------------------------------------

class RecordingApi:
    """What the commands ask of the service, answered with ``answer``."""

    url = "https://ab.example.com"

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def json(self, method, path, body=None):
        self.calls.append((method, path, body))
        return self.answer


SHA = "0f14567a2c1d6e0e7e1d2c3b4a5968778695a4b3"


def test_list_by_commit_asks_for_it_and_shows_the_short_commit(capsys):
    args = cli.build_parser().parse_args(["list", "--commit", SHA[:8].upper()])
    api = RecordingApi({"items": [{"id": 7, "status": "SUCCESS", "owner": "alice",
                                   "repo_url": "https://g/p.git", "ref": "main",
                                   "commit": SHA, "commit_short": SHA[:12],
                                   "machine": "qemux86-64", "target": "core-image-minimal"}]})
    assert cli.cmd_list(args, api) == 0
    assert api.calls == [("GET", f"/api/jobs?per_page=25&commit={SHA[:8]}", None)]
    assert f"https://g/p.git@main ({SHA[:12]})" in capsys.readouterr().out


@pytest.mark.parametrize("bad", ["abc", "xyz1234", "0f14567;", "a" * 65])
def test_a_bad_commit_is_a_usage_error(bad, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["list", "--commit", bad])
    assert exited.value.code == 2 and "not a commit" in capsys.readouterr().err


def test_rebuild_exact_asks_for_the_exact_commit(capsys):
    api = RecordingApi({"id": 8, "ref": SHA})
    assert cli.cmd_rebuild(cli.build_parser().parse_args(["rebuild", "--exact", "7"]), api) == 0
    assert api.calls == [("POST", "/api/jobs/7/rebuild", {"exact": True})]
    assert f"a rebuild of commit {SHA} of #7" in capsys.readouterr().out
    plain = RecordingApi({"id": 9, "ref": "main"})
    assert cli.cmd_rebuild(cli.build_parser().parse_args(["rebuild", "7"]), plain) == 0
    assert plain.calls == [("POST", "/api/jobs/7/rebuild", None)]


def test_status_says_what_a_kas_build_built(capsys):
    api = RecordingApi({"id": 7, "status": "SUCCESS", "owner": "alice", "repo_url": "https://g/p",
                        "ref": "main", "kas_file": "kas.yml", "provenance": {
                            "commit": SHA, "variables": {}, "layers": [], "kas_file": "kas.yml",
                            "kas_repos": [{"name": "p", "commit": SHA, "url": None},
                                          {"name": "meta-oe", "commit": "a" * 40,
                                           "url": "https://git.openembedded.org/meta-oe"}]}})
    assert cli.cmd_status(cli.build_parser().parse_args(["status", "7"]), api) == 0
    out = capsys.readouterr().out
    assert f"  commit: {SHA}\n  kas file: kas.yml\n  kas repo: p {SHA} (this repository)\n" in out
    assert f"  kas repo: meta-oe {'a' * 40} https://git.openembedded.org/meta-oe\n" in out



def test_a_token_with_a_line_break_is_refused_without_printing_it(tmp_path, monkeypatch, capsys):
    """A CI variable holding two lines: http.client refused the header and the client printed
    its error, the whole token in it, into the CI log."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("AUTOBUILD_URL", raising=False)
    monkeypatch.setenv("AUTOBUILD_TOKEN", SECRET + "\nsecond line of the CI variable")

    assert cli.main(["--url", "http://127.0.0.1:9", "list"]) == 1

    err = capsys.readouterr().err
    assert "AUTOBUILD_TOKEN is not an Autobuild API token" in err
    assert SECRET not in err and "S" * 20 not in err, err


def test_a_saved_token_with_a_line_break_is_refused_without_printing_it(tmp_path, monkeypatch,
                                                                        capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("AUTOBUILD_URL", raising=False)
    monkeypatch.delenv("AUTOBUILD_TOKEN", raising=False)
    cli.save_config({"url": "http://127.0.0.1:9", "token": SECRET + "\nx"})

    assert cli.main(["list"]) == 1

    err = capsys.readouterr().err
    assert "login' again" in err
    assert SECRET not in err and "S" * 20 not in err, err


def test_a_header_http_refuses_is_never_quoted(monkeypatch):
    api = cli.Api("http://127.0.0.1:9", SECRET)
    monkeypatch.setattr(api, "_token", SECRET + "\r\nX-Evil: 1")

    with pytest.raises(cli.CliError) as refused:
        api.open("GET", "/api/jobs")
    assert SECRET not in str(refused.value)


# --- a refused token: the advice fits where it came from -----------------------------------------

def _refused():
    import urllib.error
    return urllib.error.HTTPError("https://a/api/jobs", 401, "Unauthorized", {},
                                  io.BytesIO(b'{"detail": "Not signed in"}'))


@pytest.mark.parametrize("token_from, says, not_says", [
    (cli.TOKEN_FROM_ENVIRONMENT, "update AUTOBUILD_TOKEN (e.g. your CI variable)", "login"),
    (cli.TOKEN_FROM_LOGIN, "run 'autobuild-cli login'", "AUTOBUILD_TOKEN"),
    (cli.TOKEN_GIVEN, "refused the API token given (wrong, revoked or expired): make a new one "
                      "in Settings → API tokens", "AUTOBUILD_TOKEN"),
])
def test_a_refused_token_says_what_fixes_it_where_it_came_from(token_from, says, not_says):
    problem = cli.http_problem(_refused(), token_from)
    assert problem.status == 401
    assert says in str(problem) and not_says not in str(problem)


def test_login_with_the_environments_token_blames_the_variable(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.setenv("AUTOBUILD_TOKEN", ENV_TOKEN)

    class Refusing:
        def __init__(self, url, token, ca_file, ca_saved, token_from):
            self.token_from = token_from

        def json(self, *args):
            raise cli.http_problem(_refused(), self.token_from)

    monkeypatch.setattr(cli, "Api", Refusing)
    assert cli.main(["login", "--url", "https://a"]) == 1
    err = capsys.readouterr().err
    assert "AUTOBUILD_TOKEN" in err and ENV_TOKEN not in err
    assert not (tmp_path / ".config" / "autobuild" / "config.json").exists()


# --- https:// to a port that answers plain HTTP ---------------------------------------------------

@pytest.mark.parametrize("reason", ["WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL",
                                    "RECORD_LAYER_FAILURE", "HTTP_REQUEST"])
@pytest.mark.parametrize("wrapped", [True, False])
def test_a_plain_http_port_behind_an_https_url_is_said_in_one_line(monkeypatch, reason, wrapped):
    import ssl
    import urllib.error
    error = ssl.SSLError(1, f"[SSL: {reason}] {reason.lower()} (_ssl.c:1006)")
    error.reason = reason
    api = cli.Api("https://127.0.0.1:8000", SECRET)

    def refuse(*args, **kwargs):
        raise urllib.error.URLError(error) if wrapped else error

    monkeypatch.setattr(api._opener, "open", refuse)
    with pytest.raises(cli.CliError) as refused:
        api.open("GET", "/api/jobs")
    assert str(refused.value) == ("cannot reach https://127.0.0.1:8000: it does not answer HTTPS "
                                  "on that port (is it http://, or another port?)")
    assert refused.value.lasting


def test_another_tls_problem_is_still_said_as_it_is(monkeypatch):
    import ssl
    error = ssl.SSLError(1, "[SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version")
    error.reason = "TLSV1_ALERT_PROTOCOL_VERSION"
    api = cli.Api("https://127.0.0.1:8000", SECRET)
    monkeypatch.setattr(api._opener, "open", lambda *a, **kw: (_ for _ in ()).throw(error))
    with pytest.raises(cli.CliError, match="cannot reach .*TLSV1_ALERT_PROTOCOL_VERSION"):
        api.open("GET", "/api/jobs")


# --- a CA file only you (or root) can change -----------------------------------------------

@pytest.fixture(scope="module")
def pem(tmp_path_factory):
    from tests.support.git_https_server import make_tls_files
    ca_file, _cert, _key = make_tls_files(tmp_path_factory.mktemp("tls"))
    return ca_file.read_bytes()


def _ca_in(directory, pem, mode=0o644, dir_mode=0o755):
    directory.mkdir(exist_ok=True)
    directory.chmod(dir_mode)
    path = directory / "ca.pem"
    path.write_bytes(pem)
    path.chmod(mode)
    return str(path)


def test_a_ca_file_only_you_can_change_is_trusted(tmp_path, pem):
    assert cli.tls_context(_ca_in(tmp_path / "mine", pem)) is not None
    # in a shared directory with the sticky bit (as /tmp): others cannot replace your file
    assert cli.tls_context(_ca_in(tmp_path / "sticky", pem, dir_mode=0o1777)) is not None


@pytest.mark.parametrize(("mode", "dir_mode", "said"), [
    (0o666, 0o755, "others can write it (mode 0666)"),
    (0o644, 0o777, "is writable by others"),
    (0o644, 0o775, "is writable by others"),
])
def test_a_ca_file_a_colleague_could_swap_is_refused(tmp_path, pem, mode, dir_mode, said):
    """Their CA in your CA file's place would let them be the service to you, token and all."""
    path = _ca_in(tmp_path / "shared", pem, mode, dir_mode)

    with pytest.raises(cli.CliError) as refused:
        cli.tls_context(path)
    assert said in str(refused.value) and "only you can write" in str(refused.value)


@pytest.mark.skipif(os.getuid() != 0, reason="making a file another user's takes root")
def test_a_ca_file_of_another_user_is_refused(tmp_path, pem):
    path = _ca_in(tmp_path / "theirs", pem)
    os.chown(path, 65534, 65534)

    with pytest.raises(cli.CliError) as refused:
        cli.tls_context(path)
    assert "belongs to user id 65534" in str(refused.value)
