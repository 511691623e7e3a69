from pathlib import Path

import pytest

from autobuild.config import ConfigError, Settings
from autobuild.domain.orders import BuildSettings


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


def test_admin_group_is_optional():
    assert Settings.from_env({}).admin_group is None
    assert Settings.from_env({"AUTO_BUILD_ADMIN_GROUP": "  "}).admin_group is None
    assert Settings.from_env({"AUTO_BUILD_ADMIN_GROUP": "build-admins"}).admin_group == "build-admins"


def test_retention_and_free_space_settings():
    defaults = Settings.from_env({})
    assert (defaults.retention_days, defaults.min_free_gb) == (30, 20)
    s = Settings.from_env({"AUTO_BUILD_RETENTION_DAYS": "7", "AUTO_BUILD_MIN_FREE_GB": "0"})
    assert (s.retention_days, s.min_free_gb) == (7, 0)  # 0 switches the free-space check off
    with pytest.raises(ConfigError, match="AUTO_BUILD_RETENTION_DAYS"):
        Settings.from_env({"AUTO_BUILD_RETENTION_DAYS": "0"})
    with pytest.raises(ConfigError, match="AUTO_BUILD_MIN_FREE_GB"):
        Settings.from_env({"AUTO_BUILD_MIN_FREE_GB": "lots"})


def test_build_settings_for_the_runner():
    assert Settings.from_env({}).build_settings() == BuildSettings(
        cache_dir="/srv/autobuild/cache", keep_workspace=False)
    s = Settings.from_env({"AUTO_BUILD_CACHE_DIR": "/data/yocto-cache",
                           "AUTO_BUILD_HASHSERVE": "hashserv.lan:8686",
                           "AUTO_BUILD_BB_NUMBER_THREADS": "16",
                           "AUTO_BUILD_PARALLEL_MAKE": "-j 24",
                           "AUTO_BUILD_KEEP_WORKSPACE": "1"})
    assert s.build_settings() == BuildSettings(
        cache_dir="/data/yocto-cache", keep_workspace=True, hashserve="hashserv.lan:8686",
        bb_number_threads=16, parallel_make=24)
    assert Settings.from_env({"AUTO_BUILD_PARALLEL_MAKE": "8",
                              "AUTO_BUILD_HASHSERVE": "auto"}).build_settings().parallel_make == 8


@pytest.mark.parametrize(("name", "value"), [
    ("AUTO_BUILD_HASHSERVE", "host"), ("AUTO_BUILD_HASHSERVE", "h:0"),
    ("AUTO_BUILD_HASHSERVE", "h:99999"), ("AUTO_BUILD_HASHSERVE", "$(id):1"),
    ("AUTO_BUILD_BB_NUMBER_THREADS", "0"), ("AUTO_BUILD_BB_NUMBER_THREADS", "many"),
    ("AUTO_BUILD_PARALLEL_MAKE", "-j 0"), ("AUTO_BUILD_PARALLEL_MAKE", "-l 4"),
    ("AUTO_BUILD_PARALLEL_MAKE", "-j 8 -l 4"),
])
def test_bad_build_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})
