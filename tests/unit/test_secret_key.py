"""The session key file: written atomically with its rights, moved out of the environment
file on upgrade, rotated by `autobuild rotate-key`, and inspected by `autobuild check`."""

from __future__ import annotations

import grp
import os
import stat
import subprocess
from pathlib import Path

import pytest

from autobuild import secret_key

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="writes root-owned key files (run as root)")

GROUP = grp.getgrgid(os.getgid()).gr_name  # stands in for `autobuild`


def _rights(path: Path) -> tuple[int, int, int]:
    st = os.lstat(path)
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def _env(tmp_path: Path, *lines: str) -> Path:
    env = tmp_path / "autobuild.env"
    env.write_text("".join(f"{line}\n" for line in lines))
    env.chmod(0o640)
    return env


def test_a_new_install_gets_a_random_key_file_root_group_0640(tmp_path):
    key_file, env = tmp_path / "secret_key", _env(tmp_path, "AUTO_BUILD_DB=/x")
    changes = secret_key.ensure(key_file, env, GROUP, reads_key_file=True)
    assert len(changes) == 1 and "new random key" in changes[0]
    assert _rights(key_file) == (0, grp.getgrnam(GROUP).gr_gid, 0o640)
    key = key_file.read_text()
    assert key.endswith("\n") and key.count("\n") == 1 and secret_key.valid_key(key.strip())
    assert len(key.strip()) >= 64
    assert env.read_text() == "AUTO_BUILD_DB=/x\n"
    # Idempotent: nothing changes the second time.
    assert secret_key.ensure(key_file, env, GROUP, reads_key_file=True) == []
    assert key_file.read_text() == key


def test_an_upgrade_moves_the_key_out_of_the_env_file_and_sessions_go_on(tmp_path):
    old = "k" * 40 + "_-" + "Z" * 20
    key_file = tmp_path / "secret_key"
    env = _env(tmp_path, "# settings", f"AUTO_BUILD_SECRET_KEY={old}", "AUTO_BUILD_PORT=8000")
    changes = secret_key.ensure(key_file, env, GROUP, reads_key_file=True)
    assert key_file.read_text() == old + "\n"
    assert env.read_text() == "# settings\nAUTO_BUILD_PORT=8000\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    assert any("sessions go on" in c for c in changes) and any("removed" in c for c in changes)


def test_a_service_that_does_not_read_the_file_yet_keeps_the_same_key_in_its_env(tmp_path):
    key_file, env = tmp_path / "secret_key", _env(tmp_path, "AUTO_BUILD_PORT=8000")
    secret_key.ensure(key_file, env, GROUP, reads_key_file=False)
    key = key_file.read_text().strip()
    assert secret_key.env_key(env) == key
    assert secret_key.ensure(key_file, env, GROUP, reads_key_file=False) == []


def test_a_short_old_key_is_replaced_and_the_output_says_everyone_signs_in_again(tmp_path):
    key_file, env = tmp_path / "secret_key", _env(tmp_path, "AUTO_BUILD_SECRET_KEY=short-but-16chars")
    changes = secret_key.ensure(key_file, env, GROUP, reads_key_file=True)
    assert "signs in again" in changes[0]
    assert key_file.read_text().strip() != "short-but-16chars"


def test_wrong_rights_are_fixed_and_a_link_is_replaced_by_a_file(tmp_path):
    key_file, env = tmp_path / "secret_key", _env(tmp_path)
    secret_key.ensure(key_file, env, GROUP, reads_key_file=True)
    key_file.chmod(0o644)
    assert "fixed" in secret_key.ensure(key_file, env, GROUP, reads_key_file=True)[0]
    assert _rights(key_file)[2] == 0o640
    target = tmp_path / "elsewhere"
    target.write_text("x" * 64 + "\n")
    key_file.unlink()
    key_file.symlink_to(target)
    secret_key.ensure(key_file, env, GROUP, reads_key_file=True)
    assert not key_file.is_symlink() and target.read_text() == "x" * 64 + "\n"


def test_inspect_names_each_problem_with_its_fix(tmp_path):
    key_file = tmp_path / "secret_key"
    missing = secret_key.inspect(key_file, GROUP)
    assert not missing.ok and "does not exist" in missing.problems[0][0]
    assert "rotate-key" in missing.problems[0][1]
    key_file.write_text("too-short\n")
    key_file.chmod(0o604)
    state = secret_key.inspect(key_file, GROUP)
    texts = " | ".join(p for p, _ in state.problems)
    assert "mode 604" in texts and "URL-safe" in texts
    assert any(fix == f"sudo chmod 640 {key_file}" for _, fix in state.problems)


def test_rotate_writes_a_new_key_atomically_and_restarts(tmp_path, capsys):
    key_file, env = tmp_path / "secret_key", _env(tmp_path)
    secret_key.ensure(key_file, env, GROUP, reads_key_file=True)
    before = key_file.read_text()
    restarts = []

    def restart():
        restarts.append(key_file.read_text())
        return subprocess.CompletedProcess(["ctl"], 0, "autobuild started", "")

    assert secret_key.rotate(key_file, env, GROUP, restart=restart, reads_key_file=True) == 0
    after = key_file.read_text()
    assert after != before and secret_key.valid_key(after.strip())
    assert restarts == [after]  # restarted after the new key was in place
    assert _rights(key_file) == (0, grp.getgrnam(GROUP).gr_gid, 0o640)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp left
    assert "everyone signs in again" in capsys.readouterr().out


def test_rotate_says_when_the_restart_failed(tmp_path, capsys):
    key_file, env = tmp_path / "secret_key", _env(tmp_path)
    failed = secret_key.rotate(key_file, env, GROUP, reads_key_file=True,
                               restart=lambda: subprocess.CompletedProcess(["ctl"], 1, "", "port busy"))
    assert failed == 1
    assert "did not restart" in capsys.readouterr().err


def test_the_cli_offers_rotate_key():
    from autobuild.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["rotate-key", "--help"])
    assert exc.value.code == 0
