from datetime import timedelta
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


def _env(tmp_path, **values):
    return {"AUTO_BUILD_SECRET_KEY_FILE": str(tmp_path / "secret_key"), **values}


def test_the_session_key_is_read_from_its_file(tmp_path):
    (tmp_path / "secret_key").write_text("k" * 43 + "\n")

    assert Settings.from_env(_env(tmp_path)).session_secret() == "k" * 43
    assert Settings.from_env({}).secret_key_file == Path("/etc/autobuild/secret_key")


def test_no_key_file_refuses_to_start_unless_dev(tmp_path):
    with pytest.raises(ConfigError, match="does not exist.*rotate-key"):
        Settings.from_env(_env(tmp_path)).session_secret()
    dev = Settings.from_env(_env(tmp_path, AUTO_BUILD_DEV="1"))
    assert len(dev.session_secret()) >= 32
    assert dev.session_secret() != dev.session_secret()  # in memory, never written


@pytest.mark.parametrize("content", ["", "short\n", "k" * 31, "k" * 20 + "\n" + "k" * 20])
def test_a_key_file_without_one_long_line_refuses_to_start(tmp_path, content):
    (tmp_path / "secret_key").write_text(content)

    with pytest.raises(ConfigError, match="at least 32"):
        Settings.from_env(_env(tmp_path)).session_secret()
    with pytest.raises(ConfigError):  # even in dev mode: a broken file is a mistake to fix
        Settings.from_env(_env(tmp_path, AUTO_BUILD_DEV="1")).session_secret()


def test_an_unreadable_key_file_says_so(tmp_path):
    (tmp_path / "secret_key").mkdir()  # unreadable as a file, whoever runs the test

    with pytest.raises(ConfigError, match="cannot read the session key file"):
        Settings.from_env(_env(tmp_path)).session_secret()


def test_the_key_in_the_environment_still_works_with_a_warning(tmp_path, caplog):
    with pytest.raises(ConfigError, match="too short"):
        Settings.from_env(_env(tmp_path, AUTO_BUILD_SECRET_KEY="short")).session_secret()

    settings = Settings.from_env(_env(tmp_path, AUTO_BUILD_SECRET_KEY="k" * 40))
    assert settings.session_secret() == "k" * 40
    assert "deprecated" in caplog.text
    (tmp_path / "secret_key").write_text("f" * 40)
    assert settings.session_secret() == "f" * 40  # the file wins once it exists


def test_session_and_limit_settings():
    defaults = Settings.from_env({})
    assert defaults.session_lifetime == timedelta(hours=8)
    assert (defaults.max_streams_per_user, defaults.max_queued_per_user) == (20, 20)
    assert (defaults.login_failures, defaults.max_login_checks) == (5, 4)
    s = Settings.from_env({"AUTO_BUILD_SESSION_HOURS": "12",
                           "AUTO_BUILD_MAX_STREAMS_PER_USER": "5",
                           "AUTO_BUILD_MAX_QUEUED_PER_USER": "3",
                           "AUTO_BUILD_LOGIN_FAILURES_PER_MINUTE": "10",
                           "AUTO_BUILD_MAX_LOGIN_CHECKS": "2",
                           "AUTO_BUILD_HSTS_SECONDS": "0"})
    assert s.session_lifetime == timedelta(hours=12)
    assert (s.max_streams_per_user, s.max_queued_per_user, s.login_failures,
            s.max_login_checks, s.hsts_seconds) == (5, 3, 10, 2, 0)
    with pytest.raises(ConfigError, match="AUTO_BUILD_SESSION_HOURS"):
        Settings.from_env({"AUTO_BUILD_SESSION_HOURS": "0"})


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


def test_the_cancel_grace_is_a_build_setting():
    assert Settings.from_env({}).build_settings().cancel_grace == 20
    assert Settings.from_env({"AUTO_BUILD_CANCEL_GRACE": "90"}).build_settings().cancel_grace == 90
    assert Settings.from_env({"AUTO_BUILD_CANCEL_GRACE": "0"}).build_settings().cancel_grace == 0


@pytest.mark.parametrize(("name", "value"), [
    ("AUTO_BUILD_HASHSERVE", "host"), ("AUTO_BUILD_HASHSERVE", "h:0"),
    ("AUTO_BUILD_HASHSERVE", "h:99999"), ("AUTO_BUILD_HASHSERVE", "$(id):1"),
    ("AUTO_BUILD_BB_NUMBER_THREADS", "0"), ("AUTO_BUILD_BB_NUMBER_THREADS", "many"),
    ("AUTO_BUILD_PARALLEL_MAKE", "-j 0"), ("AUTO_BUILD_PARALLEL_MAKE", "-l 4"),
    ("AUTO_BUILD_PARALLEL_MAKE", "-j 8 -l 4"),
    ("AUTO_BUILD_CANCEL_GRACE", "-1"), ("AUTO_BUILD_CANCEL_GRACE", "3601"),
    ("AUTO_BUILD_CANCEL_GRACE", "20s"),
])
def test_bad_build_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_builds_run_here_unless_slurm_is_chosen():
    assert Settings.from_env({}).executor == "local"
    assert Settings.from_env({"AUTO_BUILD_EXECUTOR": " Slurm "}).executor == "slurm"
    with pytest.raises(ConfigError, match="AUTO_BUILD_EXECUTOR must be one of local, slurm"):
        Settings.from_env({"AUTO_BUILD_EXECUTOR": "kubernetes"})


def test_what_each_build_asks_of_slurm():
    settings = Settings.from_env({
        "AUTO_BUILD_EXECUTOR": "slurm", "AUTO_BUILD_SLURM_PARTITION": "yocto",
        "AUTO_BUILD_SLURM_CPUS": "32", "AUTO_BUILD_SLURM_MEMORY": "100G",
        "AUTO_BUILD_SLURM_TIME_LIMIT": "1-12:00:00", "AUTO_BUILD_SLURM_ACCOUNT": "bsp-team"})
    request = settings.cluster_request()
    assert (request.partition, request.cpus, request.memory_mb, request.time_limit_minutes,
            request.account) == ("yocto", 32, 100 * 1024, 36 * 60, "bsp-team")
    defaults = Settings.from_env({}).cluster_request()
    assert (defaults.partition, defaults.cpus, defaults.memory_mb, defaults.time_limit_minutes,
            defaults.account) == (None, 8, None, 240, None)


@pytest.mark.parametrize("value,minutes", [("240", 240), ("4:00:00", 240), ("90:30", 91),
                                           ("2-3", 3060), ("1-12:00:00", 2160)])
def test_the_time_limit_reads_as_sbatch_reads_it(value, minutes):
    settings = Settings.from_env({"AUTO_BUILD_SLURM_TIME_LIMIT": value})
    assert settings.slurm_time_limit_minutes == minutes


@pytest.mark.parametrize("name,value", [
    ("AUTO_BUILD_SLURM_MEMORY", "lots"), ("AUTO_BUILD_SLURM_MEMORY", "-1G"),
    ("AUTO_BUILD_SLURM_TIME_LIMIT", "forever"), ("AUTO_BUILD_SLURM_TIME_LIMIT", "0"),
    ("AUTO_BUILD_SLURM_TIME_LIMIT", "1:2:3:4"), ("AUTO_BUILD_SLURM_CPUS", "0"),
])
def test_bad_slurm_settings_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


@pytest.mark.parametrize("name,value", [("AUTO_BUILD_SLURM_PARTITION", "--wrap=id"),
                                        ("AUTO_BUILD_SLURM_ACCOUNT", "a b")])
def test_option_like_slurm_names_are_refused(name, value):
    with pytest.raises(ConfigError, match="AUTO_BUILD_SLURM"):
        Settings.from_env({name: value}).cluster_request()
