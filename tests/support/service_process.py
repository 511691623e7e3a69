"""The web service in a process of its own, for tests that kill it: ``python -m
tests.support.service_process <port>``, settings from AUTO_BUILD_* variables as in
production, only the login faked (PAM needs a real user with a password; the system tests
have that): the user named in AUTOBUILD_TEST_USER signs in with AUTOBUILD_TEST_PASSWORD."""

from __future__ import annotations

import os
import sys

import uvicorn

from autobuild.config import Settings
from autobuild.web.app import create_app
from tests.fakes import FakeAuthenticator


def main() -> None:
    port = int(sys.argv[1])
    auth = FakeAuthenticator({os.environ["AUTOBUILD_TEST_USER"]:
                              os.environ["AUTOBUILD_TEST_PASSWORD"]})
    app = create_app(Settings.from_env(), overrides={"auth": auth})
    uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning")


if __name__ == "__main__":
    main()
