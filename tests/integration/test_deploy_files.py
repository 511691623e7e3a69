"""The shipped deploy files are valid for the tools that read them."""

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.mark.skipif(not shutil.which("visudo"), reason="visudo not installed (apt-get install sudo)")
def test_sudoers_file_passes_visudo_and_allows_only_the_runner_for_the_group():
    path = DEPLOY / "sudoers" / "autobuild"
    result = subprocess.run(["visudo", "-cf", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    # Never as root nor as the service itself, even if either joined the group: in a Runas
    # list the last match wins, so the exclusions must come after the group.
    assert rules == ["autobuild ALL=(%autobuild-users,!root,!autobuild) NOPASSWD: "
                     "/opt/autobuild/runner/run_job.sh"]


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
def test_install_script_and_ctl_pass_shellcheck():
    for name in ("install.sh", "autobuild-ctl"):
        result = subprocess.run(["shellcheck", str(DEPLOY / name)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout


def test_install_script_makes_the_new_layout():
    from autobuild.domain import layout

    install = (DEPLOY / "install.sh").read_text()
    assert f'ensure_dir "$srv/jobs" "$service_user" "$service_user" {layout.JOBS_ROOT_MODE:o}' in install
    assert f'ensure_dir "$srv/data/{layout.LAUNCH_DIR}" "$service_user" "$service_user" 0750' in install
    assert 'ensure_dir "$srv/cache/$cache" root "$users_group" 2770' in install
    assert "setfacl -m d:u::rwx,d:g::rwx,d:o::---" in install
    assert f'install -d -o "$u" -g "$service_user" -m {layout.OWNER_DIR_MODE:o}' in install
    # The service leaves the engineers' group, and the old job directories are moved.
    assert 'gpasswd -d "$service_user" "$users_group"' in install
    assert "usermod -aG \"$users_group\" \"$service_user\"" not in install
    assert "upgrade-layout --check" in install and '"$autobuild_cli" upgrade-layout >' in install
    # ACLs need the acl package, on the server and in CI.
    assert " acl)" in install or " acl " in install
    assert " acl" in (ROOT / ".ci" / "run").read_text()


def test_systemd_unit_keeps_builds_alive_and_allows_sudo():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DEPLOY / "systemd" / "autobuild.service")
    service = unit["Service"]
    assert service["User"] == "autobuild"
    assert service["KillMode"] == "process"
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/autobuild/autobuild.env"
    for forbidden in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictSUIDSGID",
                      "SystemCallFilter", "PrivateUsers"):
        assert forbidden not in service, f"{forbidden} would break builds started through sudo"


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed")
def test_nginx_site_passes_nginx_t_and_does_not_buffer_the_log_stream(tmp_path):
    site = DEPLOY / "nginx" / "autobuild.conf"
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
                    f"events {{}}\nhttp {{\naccess_log off;\ninclude {site};\n}}\n")
    result = subprocess.run(["nginx", "-t", "-c", str(main), "-p", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    text = site.read_text()
    stream = text[text.index("log/stream"):]
    assert "proxy_buffering off" in stream[:stream.index("}")]


def test_pam_service_checks_password_and_account():
    lines = [line.split() for line in (DEPLOY / "pam" / "autobuild").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert ["auth", "required", "pam_unix.so"] in lines
    assert ["account", "required", "pam_unix.so"] in lines


def test_env_example_names_only_known_settings():
    from autobuild.config import Settings

    env = dict(line.split("=", 1) for line in (DEPLOY / "autobuild.env.example").read_text()
               .splitlines() if line and not line.startswith("#"))
    env["AUTO_BUILD_SECRET_KEY"] = "x" * 32
    settings = Settings.from_env(env)
    assert settings.jobs_root == Path("/srv/autobuild/jobs")
    assert settings.max_running == 1 and settings.use_sudo


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=True, interpolation=None)
    unit.optionxform = str
    assert unit.read(DEPLOY / "systemd" / name), name
    return unit


def test_gc_timer_runs_autobuild_gc_daily_as_the_service_user():
    service = _unit("autobuild-gc.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["User"] == "autobuild"
    assert service["EnvironmentFile"] == "/etc/autobuild/autobuild.env"
    assert service["ExecStart"] == "/opt/autobuild/venv/bin/autobuild gc"
    assert "NoNewPrivileges" not in service  # the runner deletes build files through sudo
    timer = _unit("autobuild-gc.timer")
    assert timer["Timer"]["OnCalendar"] == "daily"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"
    # The timer starts the unit of its own name, and install.sh installs and enables both.
    install = (DEPLOY / "install.sh").read_text()
    for name in ("autobuild-gc.service", "autobuild-gc.timer"):
        assert f"/etc/systemd/system/{name}" in install
    assert "enable --now --quiet autobuild-gc.timer" in install


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck not installed")
def test_cron_fallback_runs_gc_as_the_service_user_with_the_env_file():
    path = DEPLOY / "cron.daily-autobuild-gc"
    result = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    text = path.read_text()
    assert "runuser -u autobuild" in text and ". /etc/autobuild/autobuild.env" in text
    assert "/opt/autobuild/venv/bin/autobuild gc" in text
    assert path.stat().st_mode & 0o111
    assert "/etc/cron.daily/autobuild-gc" in (DEPLOY / "install.sh").read_text()


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_gc_units_pass_systemd_analyze(tmp_path):
    for name in ("autobuild-gc.service", "autobuild-gc.timer"):
        shutil.copy(DEPLOY / "systemd" / name, tmp_path / name)
    result = subprocess.run(["systemd-analyze", "verify", "--man=no",
                             str(tmp_path / "autobuild-gc.timer")],
                            capture_output=True, text=True)
    problems = [line for line in result.stderr.splitlines()
                if "autobuild-gc" in line and "Command /opt/autobuild" not in line]
    assert problems == [], result.stderr
