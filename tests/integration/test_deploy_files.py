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
    assert f'chmod {layout.JOBS_ROOT_MODE:o} "$srv/jobs"' in install
    assert f'"$service_user:$service_user {layout.JOBS_ROOT_MODE_SHOWN:o}"' in install
    assert f'g:$users_group:{layout.JOBS_ROOT_MEMBERS_ACL}' in install
    assert f'chmod {layout.JOBS_ROOT_MODE_NO_ACL:o} "$srv/jobs"' in install
    assert f'ensure_dir "$srv/data/{layout.LAUNCH_DIR}" "$service_user" "$service_user" 0750' in install
    assert 'ensure_dir "$srv/cache/$cache" root "$users_group" 2770' in install
    assert "setfacl -m d:u::rwx,d:g::rwx,d:o::---" in install
    assert (f'chmod {layout.OWNER_DIR_MODE:o} -- "$dir" && chown -h "$u:$service_user" -- "$dir"'
            in install)
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


# --- TLS, proxy headers, server tokens (issue 8) ----------------------------------------------

def _server_blocks(text: str) -> list[str]:
    blocks, start = [], 0
    while (start := text.find("\nserver {", start)) != -1:
        depth, i = 0, text.index("{", start)
        for i in range(i, len(text)):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
        blocks.append(text[start:i + 1])
        start = i
    return blocks


def _locations(text: str) -> str:
    return text[text.index("    # Live logs"):text.rindex("}")]


def test_every_nginx_server_hides_its_version_and_passes_the_real_client():
    for name in ("autobuild.conf", "autobuild-tls.conf"):
        text = (DEPLOY / "nginx" / name).read_text()
        blocks = _server_blocks(text)
        assert blocks, name
        for block in blocks:
            assert "server_tokens off;" in block, (name, block[:200])
        # nginx is the edge: the client's own X-Forwarded-For is replaced, not appended to.
        assert "proxy_set_header X-Forwarded-For $remote_addr;" in text
        assert "proxy_set_header X-Real-IP $remote_addr;" in text
        assert "proxy_set_header X-Forwarded-Proto $scheme;" in text
        assert "$proxy_add_x_forwarded_for" not in text


def test_the_tls_site_proxies_exactly_like_the_http_site_and_redirects_port_80():
    http = (DEPLOY / "nginx" / "autobuild.conf").read_text()
    tls = (DEPLOY / "nginx" / "autobuild-tls.conf").read_text()
    assert _locations(tls) == _locations(http)
    redirect, main = _server_blocks(tls)
    assert "listen 80;" in redirect and "return 301 https://$host$request_uri;" in redirect
    assert "proxy_pass" not in redirect
    assert "listen 443 ssl" in main
    assert "ssl_certificate /etc/autobuild/tls/autobuild.crt;" in main
    assert "ssl_certificate_key /etc/autobuild/tls/autobuild.key;" in main
    assert "TLSv1 " not in main and "TLSv1.1" not in main


def test_uvicorn_trusts_proxy_headers_from_loopback_only():
    import inspect

    from autobuild import cli

    source = inspect.getsource(cli._serve)
    assert "proxy_headers=True" in source
    assert 'forwarded_allow_ips="127.0.0.1"' in source


@pytest.mark.skipif(not (shutil.which("nginx") and shutil.which("openssl")),
                    reason="nginx and openssl needed")
def test_the_tls_site_passes_nginx_t_with_a_throwaway_certificate(tmp_path):
    cert, key = tmp_path / "autobuild.crt", tmp_path / "autobuild.key"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                           "-subj", "/CN=autobuild.test", "-keyout", str(key), "-out", str(cert)],
                          capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    site = tmp_path / "site.conf"
    site.write_text((DEPLOY / "nginx" / "autobuild-tls.conf").read_text()
                    .replace("/etc/autobuild/tls/autobuild.crt", str(cert))
                    .replace("/etc/autobuild/tls/autobuild.key", str(key)))
    main = tmp_path / "nginx.conf"
    main.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n"
                    f"events {{}}\nhttp {{\naccess_log off;\ninclude {site};\n}}\n")
    result = subprocess.run(["nginx", "-t", "-c", str(main), "-p", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_install_sets_up_tls_the_key_file_and_the_host_for_bitbake():
    install = (DEPLOY / "install.sh").read_text()
    for option in ("--tls-cert", "--tls-key", "--tls-self-signed", "--no-tls"):
        assert option in install
    assert "autobuild-tls.conf" in install and "openssl req -x509" in install
    assert "SELF-SIGNED" in install  # said plainly
    assert "-m autobuild.secret_key ensure" in install
    assert "AUTO_BUILD_SECRET_KEY=$secret" not in install  # nothing secret into the env file
    assert "locale-gen" in install and "apparmor_parser -r" in install
    assert "deploy/apparmor/autobuild-bitbake" in install
    assert "apparmor_restrict_unprivileged_userns=0" not in install.replace(
        "(kernel.apparmor_restrict_unprivileged_userns=0)", "")  # never lifts it for everyone
    env = (DEPLOY / "autobuild.env.example").read_text()
    assert "AUTO_BUILD_SECRET_KEY=" not in env


def test_ci_prepares_the_host_the_stand_in_bitbake_checks():
    ci = (ROOT / ".ci" / "run").read_text()
    assert " locales" in ci and "locale-gen" in ci and " apparmor" in ci


APPARMOR_PROFILE = DEPLOY / "apparmor" / "autobuild-bitbake"


def _apparmor_abi4() -> bool:
    return Path("/etc/apparmor.d/abi/4.0").exists()


def test_the_apparmor_profile_grants_userns_to_bitbake_in_build_workspaces_only():
    rules = [line.strip() for line in APPARMOR_PROFILE.read_text().splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert rules[0] == "abi <abi/4.0>,"
    profile = next(r for r in rules if r.startswith("profile "))
    assert profile == ("profile autobuild-bitbake /srv/autobuild/jobs/*/*/work/**/bitbake/bin/bitbake "
                       "flags=(unconfined) {")
    assert "userns," in rules


@pytest.mark.skipif(not shutil.which("apparmor_parser") or not _apparmor_abi4(),
                    reason="needs apparmor_parser 4 (apt-get install apparmor on Ubuntu 24.04)")
def test_the_apparmor_profile_passes_apparmor_parser():
    result = subprocess.run(["apparmor_parser", "-QT", str(APPARMOR_PROFILE)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(not shutil.which("apparmor_parser"), reason="apparmor_parser not installed")
def test_the_apparmor_profile_parses_except_for_the_abi_4_rule(tmp_path):
    """AppArmor 3 (Debian 12) knows neither abi 4.0 nor `userns`; the rest must still parse."""
    text = APPARMOR_PROFILE.read_text()
    if not _apparmor_abi4():
        text = text.replace("abi <abi/4.0>,", "abi <abi/3.0>,").replace("  userns,\n", "")
    profile = tmp_path / "autobuild-bitbake"
    profile.write_text(text)
    result = subprocess.run(["apparmor_parser", "-QT", str(profile)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
