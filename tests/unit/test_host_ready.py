"""Host readiness for real BitBake: the en_US.UTF-8 locale and AppArmor's user-namespace
restriction, read from a fake /proc/sys and securityfs."""

from __future__ import annotations

from pathlib import Path

import pytest

from autobuild import host_ready


def _proc_sys(tmp_path: Path, value: str | None) -> Path:
    root = tmp_path / "proc-sys"
    (root / "kernel").mkdir(parents=True)
    if value is not None:
        (root / "kernel" / "apparmor_restrict_unprivileged_userns").write_text(value + "\n")
    return root


def _securityfs(tmp_path: Path, profiles: list[str] | None) -> Path:
    root = tmp_path / "securityfs"
    root.mkdir()
    if profiles is not None:
        (root / "profiles").write_text("".join(f"{p}\n" for p in profiles))
    return root


@pytest.mark.parametrize("value, expected", [(None, None), ("0", False), ("1", True)])
def test_the_restriction_is_read_from_the_sysctl(tmp_path, value, expected):
    assert host_ready.userns_restricted(_proc_sys(tmp_path, value)) is expected


@pytest.mark.parametrize("names, ok", [
    (["C", "C.utf8", "POSIX", "en_US.utf8"], True),
    (["en_US.UTF-8"], True),
    (["en_US.utf-8"], True),
    (["C", "C.utf8", "POSIX"], False),
    (["en_GB.utf8", "en_US"], False),  # en_US alone is ISO-8859-1
    ([], False),
])
def test_the_locale_is_found_whatever_the_spelling_of_its_codeset(names, ok):
    assert host_ready.has_locale(names) is ok


def _findings(tmp_path, sysctl, profiles, locales=("en_US.utf8",), installed=False, ubuntu=False):
    profile = tmp_path / "autobuild-bitbake"
    if installed:
        profile.write_text("profile autobuild-bitbake {}\n")
    os_release = tmp_path / "os-release"
    os_release.write_text("ID=ubuntu\n" if ubuntu else "ID=debian\n")
    return host_ready.findings(_proc_sys(tmp_path, sysctl), _securityfs(tmp_path, profiles),
                               locales=list(locales), profile_path=profile, os_release=os_release)


def test_a_ready_debian_host_passes(tmp_path):
    found = _findings(tmp_path, None, None)
    assert [f.ok for f in found] == [True, True]
    assert "not restricted" in found[1].what


def test_a_missing_locale_fails_with_the_fix_for_the_distribution(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "u").mkdir()
    debian = _findings(tmp_path / "d", None, None, locales=["C.utf8"])
    assert not debian[0].ok and "locale.gen" in debian[0].fix and "locale-gen" in debian[0].fix
    ubuntu = _findings(tmp_path / "u", None, None, locales=["C.utf8"], ubuntu=True)
    assert not ubuntu[0].ok and ubuntu[0].fix == "sudo locale-gen en_US.UTF-8"


def test_restricted_user_namespaces_without_the_profile_fail_with_the_narrow_fix(tmp_path):
    found = _findings(tmp_path, "1", ["snap.lxd (enforce)"])
    assert not found[1].ok
    assert "apparmor_parser -r" in found[1].fix and "autobuild-bitbake" in found[1].fix
    assert "sysctl" not in found[1].fix  # never "turn the restriction off for everyone"


def test_restricted_user_namespaces_with_the_profile_installed_but_not_loaded_fail(tmp_path):
    found = _findings(tmp_path, "1", ["snap.lxd (enforce)"], installed=True)
    assert not found[1].ok and "not loaded" in found[1].what
    assert found[1].fix.startswith("sudo apparmor_parser -r ")


def test_restricted_user_namespaces_with_the_profile_loaded_pass(tmp_path):
    found = _findings(tmp_path, "1", ["autobuild-bitbake (unconfined)", "other (enforce)"],
                      installed=True)
    assert found[1].ok, found[1]


def test_an_unrestricted_kernel_needs_no_profile(tmp_path):
    found = _findings(tmp_path, "0", None)
    assert found[1].ok and "=0" in found[1].what
