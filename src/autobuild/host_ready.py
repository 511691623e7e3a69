"""Is this a host real BitBake runs on? The two things a fresh Debian 12 / Ubuntu 24.04 lacks.

- The ``en_US.UTF-8`` locale: bitbake's sanity check refuses to start without it ("Your system
  needs to support the en_US.UTF-8 locale"); Debian generates no locale by default.
- User namespaces: bitbake uses them to cut tasks off the network. Ubuntu 24.04 sets
  ``kernel.apparmor_restrict_unprivileged_userns=1``, which lets only programs whose AppArmor
  profile grants ``userns`` create them ("User namespaces are not usable by BitBake, possibly
  due to AppArmor"). install.sh then loads ``deploy/apparmor/autobuild-bitbake``, a profile for
  bitbake in build workspaces only, rather than turning the restriction off for everyone.

Everything read from the system comes through parameters (``proc_sys``, ``securityfs``,
``locales``) so tests use a fake ``/proc/sys`` tree.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

LOCALE = "en_US.UTF-8"
USERNS_SYSCTL = "kernel/apparmor_restrict_unprivileged_userns"
PROFILE_NAME = "autobuild-bitbake"
PROFILE_PATH = Path("/etc/apparmor.d") / PROFILE_NAME
PROC_SYS = Path("/proc/sys")
SECURITYFS = Path("/sys/kernel/security/apparmor")
LOCALE_FIX_DEBIAN = ("sudo sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen && "
                     "sudo locale-gen")
LOCALE_FIX_UBUNTU = "sudo locale-gen en_US.UTF-8"
PROFILE_FIX = (f"rerun sudo ./deploy/install.sh (it installs and loads {PROFILE_PATH}), or by hand: "
               f"sudo install -m 0644 /opt/autobuild/deploy/apparmor/{PROFILE_NAME} {PROFILE_PATH} && "
               f"sudo apparmor_parser -r {PROFILE_PATH}")


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str
    fix: str = ""


def normalise_locale(name: str) -> str:
    """``en_US.UTF-8``, ``en_US.utf8`` and ``en_US.utf-8`` are the same locale."""
    lang, dot, codeset = name.strip().partition(".")
    return f"{lang}.{codeset.lower().replace('-', '')}" if dot else lang


def installed_locales() -> list[str]:
    """What ``locale -a`` lists (empty when it cannot run)."""
    try:
        result = subprocess.run(["locale", "-a"], capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return []
    return result.stdout.split()


def has_locale(locales: Iterable[str], wanted: str = LOCALE) -> bool:
    return normalise_locale(wanted) in {normalise_locale(name) for name in locales}


def userns_restricted(proc_sys: Path = PROC_SYS) -> bool | None:
    """True when AppArmor restricts unprivileged user namespaces, False when the sysctl says it
    does not, None when this kernel has no such sysctl (Debian, most other kernels)."""
    try:
        value = (proc_sys / USERNS_SYSCTL).read_text().strip()
    except FileNotFoundError:
        return None
    except OSError:
        return None
    return value not in ("", "0")


def profile_loaded(securityfs: Path = SECURITYFS, name: str = PROFILE_NAME) -> bool | None:
    """Whether the kernel has the profile loaded (None when securityfs cannot tell)."""
    try:
        lines = (securityfs / "profiles").read_text().splitlines()
    except OSError:
        return None
    return any(line.split(" (", 1)[0] == name for line in lines)


def findings(proc_sys: Path = PROC_SYS, securityfs: Path = SECURITYFS,
             locales: Iterable[str] | None = None, profile_path: Path = PROFILE_PATH,
             os_release: Path = Path("/etc/os-release")) -> list[Finding]:
    """One finding for the locale, one or two for user namespaces, each with its fix."""
    out: list[Finding] = []
    names = list(installed_locales() if locales is None else locales)
    ubuntu = False
    try:
        ubuntu = "ID=ubuntu" in os_release.read_text().split()
    except OSError:
        pass
    out.append(Finding(has_locale(names), f"locale {LOCALE} is installed (bitbake refuses to "
                       "start without it)", LOCALE_FIX_UBUNTU if ubuntu else LOCALE_FIX_DEBIAN))
    restricted = userns_restricted(proc_sys)
    if restricted is None:
        out.append(Finding(True, "user namespaces are not restricted by AppArmor on this kernel "
                           "(bitbake can cut tasks off the network)"))
    elif not restricted:
        out.append(Finding(True, "user namespaces are not restricted by AppArmor "
                           "(kernel.apparmor_restrict_unprivileged_userns=0)"))
    else:
        installed = profile_path.is_file()
        loaded = profile_loaded(securityfs)
        what = (f"kernel.apparmor_restrict_unprivileged_userns=1: the AppArmor profile {PROFILE_NAME} "
                "lets bitbake in build workspaces use user namespaces")
        if not installed:
            out.append(Finding(False, what + f" ({profile_path} missing)", PROFILE_FIX))
        elif loaded is False:
            out.append(Finding(False, what + " (installed but not loaded)",
                               f"sudo apparmor_parser -r {profile_path}"))
        else:
            note = "" if loaded else " (installed; whether it is loaded cannot be read here)"
            out.append(Finding(True, what + note))
    return out
