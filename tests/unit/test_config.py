from pathlib import Path

import pytest

from autobuild.config import ConfigError, Settings


def test_defaults_are_the_seed_paths():
    s = Settings.from_env({})
    assert s.db_path == Path("/srv/autobuild/data/jobs.db")
    assert s.jobs_root == Path("/srv/autobuild/jobs")
    assert s.runner_path == Path("/opt/autobuild/runner/run_job.sh")
    assert (s.max_running, s.use_sudo, s.dev_mode) == (1, True, False)


def test_environment_overrides():
    s = Settings.from_env({"AUTO_BUILD_DB": "/tmp/x.db", "AUTO_BUILD_MAX_RUNNING": "3",
                           "AUTO_BUILD_ALLOWED_GIT_HOSTS": "gitlab.example.com, git.example.org",
                           "AUTO_BUILD_DISABLED_PLUGINS": "mtd_extras", "AUTO_BUILD_NO_SUDO": "1"})
    assert s.db_path == Path("/tmp/x.db") and s.max_running == 3 and not s.use_sudo
    assert s.allowed_git_hosts == {"gitlab.example.com", "git.example.org"}
    assert s.disabled_plugins == {"mtd_extras"}


@pytest.mark.parametrize("value", ["zero", "0", "-1"])
def test_bad_numbers_name_the_variable(value):
    with pytest.raises(ConfigError, match="AUTO_BUILD_MAX_RUNNING"):
        Settings.from_env({"AUTO_BUILD_MAX_RUNNING": value})


def test_no_secret_key_refuses_to_start_unless_dev():
    with pytest.raises(ConfigError, match="AUTO_BUILD_SECRET_KEY"):
        Settings.from_env({}).session_secret()
    with pytest.raises(ConfigError, match="too short"):
        Settings.from_env({"AUTO_BUILD_SECRET_KEY": "short"}).session_secret()
    dev = Settings.from_env({"AUTO_BUILD_DEV": "1"})
    assert len(dev.session_secret()) >= 32
    assert Settings.from_env({"AUTO_BUILD_SECRET_KEY": "k" * 40}).session_secret() == "k" * 40
