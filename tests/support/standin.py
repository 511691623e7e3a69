"""The stand-in poky repository (tests/fixtures/poky-standin) as a bare git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "poky-standin"
KAS_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "kas-standin"

# Reproducible commits, whoever runs the tests and whatever their git config says.
_GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Stand-in",
    "GIT_AUTHOR_EMAIL": "standin@example.invalid",
    "GIT_COMMITTER_NAME": "Stand-in",
    "GIT_COMMITTER_EMAIL": "standin@example.invalid",
    "GIT_AUTHOR_DATE": "2026-01-01T12:00:00Z",
    "GIT_COMMITTER_DATE": "2026-01-01T12:00:00Z",
}


def _git(cwd: Path, *args: str) -> str:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd), **_GIT_ENV}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, check=True,
                            capture_output=True, text=True)
    return result.stdout.strip()


def create_standin_repo(bare_path: Path, submodules: dict[str, tuple[str, str]] | None = None) -> str:
    """Create a bare repository at ``bare_path`` holding the stand-in poky; returns main's sha.

    History: a first commit with VERSION "1.0", tagged ``v1.0`` (annotated), then a second
    commit on branch ``main`` with VERSION "1.1". The stand-in bitbake reports the VERSION it
    was checked out with (DISTRO_VERSION line, image contents), so tests can tell which ref
    was built. ``git rev-parse v1.0^{commit}`` in ``bare_path`` gives the first commit.
    ``submodules`` ({path: (url, commit)}) adds them to the second commit, with .gitmodules.
    """
    with tempfile.TemporaryDirectory(prefix="standin-src-") as tmp:
        work = Path(tmp) / "poky"
        shutil.copytree(FIXTURE, work, symlinks=True)
        (work / "VERSION").write_text("1.0\n")
        _git(work, "init", "--quiet", "--initial-branch=main")
        _git(work, "add", "--all")
        _git(work, "commit", "--quiet", "-m", "poky stand-in 1.0")
        _git(work, "tag", "--annotate", "-m", "release 1.0", "v1.0")
        (work / "VERSION").write_text("1.1\n")
        for path, (url, commit) in (submodules or {}).items():
            _git(work, "config", "--file", ".gitmodules", f"submodule.{path}.path", path)
            _git(work, "config", "--file", ".gitmodules", f"submodule.{path}.url", url)
            _git(work, "update-index", "--add", "--cacheinfo", f"160000,{commit},{path}")
        _git(work, "add", "VERSION", *([".gitmodules"] if submodules else []))
        _git(work, "commit", "--quiet", "-m", "poky stand-in 1.1")
        sha = _git(work, "rev-parse", "HEAD")
        bare_path.parent.mkdir(parents=True, exist_ok=True)
        _git(Path(tmp), "clone", "--quiet", "--bare", str(work), str(bare_path))
    return sha


def create_layer_repo(bare_path: Path, name: str = "meta-extra") -> str:
    """Create a bare repository holding a one-file layer (a submodule); returns its commit."""
    with tempfile.TemporaryDirectory(prefix="standin-layer-") as tmp:
        work = Path(tmp) / name
        (work / "conf").mkdir(parents=True)
        (work / "conf" / "layer.conf").write_text(f'BBFILE_COLLECTIONS += "{name}"\n')
        _git(work, "init", "--quiet", "--initial-branch=main")
        _git(work, "add", "--all")
        _git(work, "commit", "--quiet", "-m", f"{name} layer")
        sha = _git(work, "rev-parse", "HEAD")
        bare_path.parent.mkdir(parents=True, exist_ok=True)
        _git(Path(tmp), "clone", "--quiet", "--bare", str(work), str(bare_path))
    return sha


def advance_branch(bare_path: Path, version: str, branch: str = "main") -> str:
    """A new commit on ``branch`` of the bare repository, with VERSION ``version`` (what the
    stand-in bitbake reports); returns it. The branch moves on, older commits stay."""
    with tempfile.TemporaryDirectory(prefix="standin-advance-") as tmp:
        work = Path(tmp) / "work"
        _git(Path(tmp), "clone", "--quiet", "--branch", branch, str(bare_path), str(work))
        (work / "VERSION").write_text(f"{version}\n")
        _git(work, "commit", "--quiet", "--all", "-m", f"poky stand-in {version}")
        _git(work, "push", "--quiet", "origin", f"HEAD:refs/heads/{branch}")
        return _git(work, "rev-parse", "HEAD")


def commit_of(bare_path: Path, ref: str) -> str:
    """The commit ``ref`` (branch, tag or abbreviation) names in the bare repository."""
    return _git(bare_path, "rev-parse", "--verify", f"{ref}^{{commit}}")


def create_kas_repo(bare_path: Path, extra_files: dict[str, str] | None = None) -> str:
    """A bare repository holding the stand-in poky plus a kas project (kas.yml at the top,
    kas/other.yml, and ``extra_files``: {path: text}); returns its main commit. Real kas
    builds it with the stand-in bitbake."""
    with tempfile.TemporaryDirectory(prefix="standin-kas-") as tmp:
        work = Path(tmp) / "project"
        shutil.copytree(FIXTURE, work, symlinks=True)
        shutil.copytree(KAS_FIXTURE, work, symlinks=True, dirs_exist_ok=True)
        (work / "VERSION").write_text("2.0\n")
        for path, text in (extra_files or {}).items():
            (work / path).parent.mkdir(parents=True, exist_ok=True)
            (work / path).write_text(text)
        _git(work, "init", "--quiet", "--initial-branch=main")
        _git(work, "add", "--all")
        _git(work, "commit", "--quiet", "-m", "kas project on the poky stand-in")
        sha = _git(work, "rev-parse", "HEAD")
        bare_path.parent.mkdir(parents=True, exist_ok=True)
        _git(Path(tmp), "clone", "--quiet", "--bare", str(work), str(bare_path))
    return sha


# --- changes between builds (what a comparison of two builds shows) ---------------------------

PACKAGES_CONF = "meta/conf/standin-packages.conf"
LOCAL_CONF_SAMPLE = "meta/conf/templates/default/local.conf.sample"
# local.conf of a build that keeps buildhistory (as poky's own template suggests it)
BUILDHISTORY_LOCAL_CONF = """\
MACHINE ??= "qemux86-64"
DISTRO ?= "poky"
INHERIT += "buildhistory"
BUILDHISTORY_COMMIT = "0"
"""


def commit_files(bare_path: Path, files: dict[str, str | None], message: str) -> str:
    """Commit ``files`` (path -> text, None to delete) on top of main of the bare repository
    and push it there; returns the new commit."""
    with tempfile.TemporaryDirectory(prefix="standin-change-") as tmp:
        work = Path(tmp) / "poky"
        _git(Path(tmp), "clone", "--quiet", "--branch", "main", str(bare_path), str(work))
        for path, text in files.items():
            target = work / path
            if text is None:
                target.unlink(missing_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        _git(work, "add", "--all")
        _git(work, "commit", "--quiet", "--allow-empty", "-m", message)
        _git(work, "push", "--quiet", "origin", "HEAD:main")
        return _git(work, "rev-parse", "HEAD")


def enable_buildhistory(bare_path: Path) -> str:
    """Commit a local.conf template with INHERIT += "buildhistory" (the stand-in's
    oe-init-build-env copies it, as poky's copies $TEMPLATECONF/local.conf.sample)."""
    return commit_files(bare_path, {LOCAL_CONF_SAMPLE: BUILDHISTORY_LOCAL_CONF},
                        "local.conf: keep buildhistory")


def commit_packages(bare_path: Path, packages: dict[str, str | None],
                    message: str = "image: change packages") -> str:
    """Change what the stand-in's image installs and commit it: ``packages`` maps a package
    to ``"<arch> <version>"`` (added, or its version changed) or None (removed)."""
    with tempfile.TemporaryDirectory(prefix="standin-read-") as tmp:
        work = Path(tmp) / "poky"
        _git(Path(tmp), "clone", "--quiet", "--branch", "main", str(bare_path), str(work))
        conf = work / PACKAGES_CONF
        lines = conf.read_text().splitlines() if conf.exists() else [
            "# Changes to the stand-in image's packages: \"<package> <arch> <version>\" adds or",
            "# changes one, \"-<package>\" removes one."]
    for name, value in packages.items():
        lines = [line for line in lines if line.split()[:1] not in ([name], [f"-{name}"])]
        lines.append(f"-{name}" if value is None else f"{name} {value}")
    return commit_files(bare_path, {PACKAGES_CONF: "\n".join(lines) + "\n"}, message)
