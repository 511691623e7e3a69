"""Web tests: a fresh app per test, every port replaced by the fakes from tests/fakes.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

from autobuild.config import Settings
from autobuild.domain.commands import JobCommands
from autobuild.domain.queries import JobQueries
from autobuild.domain.supervision import Supervisor
from autobuild.web.app import create_app
from tests.fakes import (
    FakeAdministrators,
    FakeApiTokenStore,
    FakeAuthenticator,
    FakeClock,
    FakeDiskSpace,
    FakeEvents,
    FakeJobFiles,
    FakeJobRepository,
    FakeMembers,
    FakeRunner,
    FakeSessionStore,
    FakeTimer,
    FakeTokenStore,
)
from tests.web.helpers import login


@dataclass
class Fakes:
    clock: FakeClock = field(default_factory=FakeClock)
    jobs: FakeJobRepository = field(default_factory=FakeJobRepository)
    files: FakeJobFiles = field(default_factory=FakeJobFiles)
    events: FakeEvents = field(default_factory=FakeEvents)
    auth: FakeAuthenticator = field(default_factory=FakeAuthenticator)
    tokens: FakeTokenStore = field(default_factory=FakeTokenStore)
    disk: FakeDiskSpace = field(default_factory=FakeDiskSpace)
    admins: FakeAdministrators = field(default_factory=FakeAdministrators)
    sessions: FakeSessionStore = field(default_factory=FakeSessionStore)
    members: FakeMembers = field(default_factory=FakeMembers)
    api_token_store: FakeApiTokenStore = field(default_factory=FakeApiTokenStore)
    timer: FakeTimer = field(default_factory=FakeTimer)
    runner: FakeRunner = field(init=False)

    def __post_init__(self) -> None:
        self.runner = FakeRunner(self.files, self.clock)

    def overrides(self) -> dict[str, object]:
        return {"jobs": self.jobs, "files": self.files, "runner": self.runner,
                "events": self.events, "auth": self.auth, "tokens": self.tokens,
                "clock": self.clock, "admins": self.admins, "disk_space": self.disk,
                "session_store": self.sessions, "members": self.members, "timer": self.timer,
                "api_token_store": self.api_token_store}


@pytest.fixture
def fakes() -> Fakes:
    return Fakes()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        db_path=tmp_path / "data" / "jobs.db",
        jobs_root=tmp_path / "jobs",
        runner_path=tmp_path / "runner" / "run_job.sh",
        secret_key_file=tmp_path / "secret_key",  # none: dev mode's in-memory key
        dev_mode=True,
        use_sudo=False,
        poll_interval=0.05,
    )


@pytest.fixture
def app(settings: Settings, fakes: Fakes) -> Iterator[FastAPI]:
    app = create_app(settings, overrides=fakes.overrides())
    yield app
    container = app.state.container
    container.unwire()
    container.reset_singletons()


@pytest.fixture
def supervisor(app: FastAPI) -> Supervisor:
    return app.state.container.supervisor()


@pytest.fixture
def commands(app: FastAPI) -> JobCommands:
    return app.state.container.commands()


@pytest.fixture
def queries(app: FastAPI) -> JobQueries:
    return app.state.container.queries()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with_client = TestClient(app, follow_redirects=False)
    yield with_client
    with_client.close()


@pytest.fixture
def alice(client: TestClient) -> TestClient:
    """``client``, signed in as alice."""
    login(client, "alice")
    return client


@pytest.fixture
def bob(app: FastAPI) -> Iterator[TestClient]:
    """A second browser, signed in as bob."""
    other = TestClient(app, follow_redirects=False)
    login(other, "bob")
    yield other
    other.close()
