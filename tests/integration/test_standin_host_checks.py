"""The stand-in bitbake checks the host as the real one does: a host that is not ready for
real BitBake fails the tests the way it would fail a real build."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

BITBAKE = Path(__file__).resolve().parents[1] / "fixtures" / "poky-standin" / "bitbake" / "bin" / "bitbake"


def _build_dir(tmp_path: Path) -> Path:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "bblayers.conf").write_text('BBLAYERS ?= ""\n')
    (tmp_path / "conf" / "local.conf").write_text('MACHINE = "qemux86-64"\n')
    return tmp_path


def _bitbake(build: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BITBAKE), "core-image-minimal"], cwd=build,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "STANDIN_BITBAKE_DELAY": "0", **env})


def test_without_the_en_us_utf8_locale_bitbake_refuses_like_the_sanity_checker(tmp_path):
    result = _bitbake(_build_dir(tmp_path), LOCPATH=str(tmp_path / "no-locales"))
    assert result.returncode == 1
    assert "Your system needs to support the en_US.UTF-8 locale." in result.stdout
    assert "Running task" not in result.stdout  # nothing built


def test_on_a_ready_host_it_builds(tmp_path):
    result = _bitbake(_build_dir(tmp_path))
    assert result.returncode == 0, result.stdout
    assert "all succeeded" in result.stdout


def _load_standin():
    loader = importlib.machinery.SourceFileLoader("standin_bitbake", str(BITBAKE))
    spec = importlib.util.spec_from_loader("standin_bitbake", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.skipif(os.geteuid() != 0, reason="the AppArmor stand-in drops to nobody (root only)")
def test_user_namespaces_blocked_like_apparmor_does_stop_bitbake_with_its_message(capsys):
    """Ubuntu 24.04 without a profile: unshare succeeds, the uid map cannot be written and the
    process is left as nobody. Reproduced by becoming nobody where the uid map is written."""
    standin = _load_standin()

    def apparmor_restricted(uid, gid):
        os.setuid(65534)
        raise PermissionError(1, "Operation not permitted", "/proc/self/uid_map")

    standin._disable_network = apparmor_restricted
    assert standin.userns_problem().startswith("User namespaces are not usable by BitBake, "
                                               "possibly due to AppArmor.")
    assert standin.host_sanity() is False
    assert "possibly due to AppArmor" in capsys.readouterr().out


def test_a_kernel_without_unprivileged_user_namespaces_is_not_an_error():
    """Like bb.utils.disable_network: when unshare itself fails, bitbake goes on without."""
    standin = _load_standin()
    standin._disable_network = lambda uid, gid: None
    assert standin.userns_problem() is None
