"""The composition root: configuration checks, overrides, lifespan, headers, assets, errors."""

import re
import time
from dataclasses import replace

import pytest
from starlette.testclient import TestClient

from autobuild.config import ConfigError, Settings
from autobuild.domain.jobs import JobStatus
from autobuild.web.app import create_app
from tests.web.helpers import VALID_JOB, login, submit


def test_no_secret_key_and_no_dev_mode_refuses_to_start(tmp_path):
    with pytest.raises(ConfigError, match="AUTO_BUILD_SECRET_KEY"):
        create_app(Settings(db_path=tmp_path / "jobs.db", jobs_root=tmp_path / "jobs",
                            secret_key_file=tmp_path / "secret_key"))


def test_a_short_secret_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="too short"):
        create_app(Settings(secret_key="short", db_path=tmp_path / "jobs.db",
                            secret_key_file=tmp_path / "secret_key"))
    (tmp_path / "secret_key").write_text("short\n")
    with pytest.raises(ConfigError, match="at least 32"):
        create_app(Settings(db_path=tmp_path / "jobs.db", secret_key_file=tmp_path / "secret_key"))


def test_creating_the_app_touches_nothing(tmp_path):
    settings = Settings(secret_key="k" * 32, secret_key_file=tmp_path / "no-key-file",
                        db_path=tmp_path / "data" / "jobs.db",
                        jobs_root=tmp_path / "jobs", runner_path=tmp_path / "run_job.sh")

    app = create_app(settings)

    assert list(tmp_path.iterdir()) == []  # no database, no job dir, nothing run
    app.state.container.unwire()


def test_unknown_override_names_are_refused(settings):
    with pytest.raises(ValueError, match="jbos"):
        create_app(settings, overrides={"jbos": object()})


def test_a_session_signed_with_the_configured_key_survives_a_restart(settings, fakes):
    keyed = replace(settings, secret_key="s" * 32, dev_mode=False)
    first = TestClient(create_app(keyed, overrides=fakes.overrides()), follow_redirects=False)
    login(first, "alice")
    cookie = first.cookies.get("autobuild_session")
    first.app.state.container.unwire()

    second = TestClient(create_app(keyed, overrides=fakes.overrides()), follow_redirects=False)
    second.cookies.set("autobuild_session", cookie)

    assert second.get("/").status_code == 200
    second.app.state.container.unwire()


def test_cookie_secure_setting_marks_the_cookie_secure(settings, fakes):
    secure = replace(settings, cookie_secure=True)
    client = TestClient(create_app(secure, overrides=fakes.overrides()),
                        base_url="https://testserver")

    cookie = client.get("/login").headers["set-cookie"].lower()

    assert "; secure" in cookie
    client.app.state.container.unwire()


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_the_scheduler_runs_while_the_app_runs(app, fakes, commands):
    with TestClient(app, follow_redirects=False) as client:
        login(client, "alice")
        submit(client)
        assert wait_for(lambda: fakes.jobs.get(1).status is JobStatus.RUNNING)
        fakes.runner.finish(1, 0)
        assert wait_for(lambda: fakes.jobs.get(1).status is JobStatus.SUCCESS)

    commands.submit("alice", **VALID_JOB)  # after shutdown nothing starts it any more
    time.sleep(0.3)
    assert fakes.jobs.get(2).status is JobStatus.PENDING


def test_a_database_that_cannot_be_opened_stops_the_start(app, fakes):
    def unusable():
        raise RuntimeError("cannot open the jobs database")

    fakes.jobs.count = unusable

    with pytest.raises(RuntimeError, match="jobs database"):
        with TestClient(app):
            pass


def test_every_response_carries_security_headers(alice):
    for path in ["/", "/login", "/static/app.css", "/api/jobs"]:
        headers = alice.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"


def test_assets_are_local_and_pages_load_nothing_from_elsewhere(alice, fakes):
    submit(alice)
    for asset in ["/static/app.js", "/static/app.css"]:
        response = alice.get(asset)
        assert response.status_code == 200
        assert len(response.content) > 1000

    for path in ["/", "/new", "/jobs/1", "/settings", "/logout"]:
        page = alice.get(path).text
        external = re.findall(r'(?:src|href)="((?:https?:)?//[^"]*)"', page)
        assert external == [], path
        assert "<script>" not in page  # no inline script: the CSP forbids it
        assert 'name="viewport"' in page


def test_an_unexpected_error_is_a_plain_500_page(app, fakes):
    def broken(*args, **kwargs):
        raise RuntimeError("database exploded at /srv/secret/path")

    fakes.jobs.list_keyset = broken
    client = TestClient(app, follow_redirects=False, raise_server_exceptions=False)
    login(client, "alice")

    response = client.get("/")
    api = client.get("/api/jobs")

    assert response.status_code == 500
    assert "Something went wrong" in response.text
    assert "exploded" not in response.text and "Traceback" not in response.text
    assert api.status_code == 500
    assert "exploded" not in api.json()["detail"]


@pytest.mark.parametrize("executor,runner,watched", [("local", "LocalBuildRunner", True),
                                                     ("slurm", "SlurmBuildRunner", False)])
def test_the_executor_chooses_where_builds_run_and_how_logs_are_followed(tmp_path, executor,
                                                                         runner, watched):
    settings = Settings(secret_key="k" * 32, secret_key_file=tmp_path / "no-key-file",
                        db_path=tmp_path / "data" / "jobs.db", jobs_root=tmp_path / "jobs",
                        runner_path=tmp_path / "run_job.sh", executor=executor)
    app = create_app(settings)
    container = app.state.container
    try:
        assert type(container.runner()).__name__ == runner
        assert container.runner().queues is (executor == "slurm")
        # Logs written on cluster nodes (NFS) are not seen by inotify here: polled instead.
        assert (container.log_watches() is not None) is watched
    finally:
        container.unwire()
