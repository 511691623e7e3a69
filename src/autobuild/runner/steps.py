"""The build itself, run in the runner's child (its own session and process group).

Clone over HTTPS (the token only through GIT_ASKPASS, only to the repository's own origin),
check out the ref, build with kas or with poky's ``oe-init-build-env`` + bitbake, then collect
the images. The child's working directory is ``work/`` (entered by descriptor); every program
runs there with umask 002, stdin from /dev/null and stdout/stderr on the build log.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from autobuild.domain.layout import (
    KAS_BUILD_DIR, SOURCE_DIR, STEP_BITBAKE, STEP_CHECKOUT, STEP_CLONING, STEP_COLLECTING,
    STEP_COMMIT, STEP_KAS, STEP_KAS_FILE, STEP_SETUP, STEP_SUBMODULES, step_line,
)
from autobuild.domain.orders import BuildOrder
from autobuild.domain.provenance import MAX_KAS_REPOS, kas_repo_line, without_userinfo

from .account import token_path
from .fsops import atomic_file, fd_path, make_dir, open_dir, write_all
from .jobdir import Identity, JobFiles
from .outputs import collect_artifacts, collect_buildhistory, save_task_logs
from .outputs import collect_artifacts, save_task_logs
from .timing import keep_timing

Say = Callable[[str], None]
BUILD_UMASK = 0o002  # what the build adds to the shared caches stays writable for the group
POKY_BUILD_DIR = "build"  # <clone>/build: oe-init-build-env's build directory
INIT_SCRIPT = "oe-init-build-env"
DEFAULT_KAS_FILE = "kas.yml"
MAX_KAS_DUMP_BYTES = 4 << 20  # kas dump's JSON of the project (what the repos resolved to)
KAS_DUMP_SECONDS = 300
AUTO_CONF = "auto.conf"
CONF_DIR = "conf"
# The only shell: poky's environment script must be sourced. It prints to the log; the
# environment it leaves is handed back on the descriptor named in $2, and Python runs bitbake.
SOURCE_SCRIPT = '. ./oe-init-build-env "$1" || exit 1\nenv -0 >&"$2"\n'
# Variables a build environment must not inherit from whoever started the runner.
_DROPPED_PREFIXES = ("GIT_", "SUDO_", "AUTO_BUILD_", "KAS_", "BB_")
_DROPPED = {"SSH_ASKPASS", "BBPATH", "BBSERVER", "BUILDDIR", "TEMPLATECONF", "TMPDIR",
            "MACHINE", "DL_DIR", "SSTATE_DIR", "PARALLEL_MAKE"}
_KEPT_GIT = {"GIT_SSL_CAINFO", "GIT_SSL_CAPATH"}


def runner_dir() -> Path:
    """``runner/`` of the installation running us: <root>/venv/bin/python -> <root>/runner."""
    return Path(sys.executable).parent.parent.parent / "runner"


def askpass_program() -> Path:
    return runner_dir() / "git-askpass.sh"


def kas_program() -> Path:
    """The kas pinned in the venv whose Python runs the runner."""
    return Path(sys.executable).parent / "kas"


def repo_origin(url: str) -> str:
    """``https://host[:port]`` of the repository, as git names it in its prompts."""
    return f"https://{urlsplit(url).netloc}"


def build_environment(me: Identity, url: str, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every program of the build: https only, our askpass, no helper."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items()
           if (not k.startswith(_DROPPED_PREFIXES) or k in _KEPT_GIT) and k not in _DROPPED}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update({
        "HOME": me.home, "USER": me.name, "LOGNAME": me.name,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": str(askpass_program()),
        "AUTOBUILD_GIT_ORIGIN": repo_origin(url),  # askpass answers only this origin
        "AUTOBUILD_TOKEN_FILE": token_path(me),
        "GIT_ALLOW_PROTOCOL": "https",
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_0": "credential.helper", "GIT_CONFIG_VALUE_0": "",
        "GIT_CONFIG_KEY_1": "protocol.allow", "GIT_CONFIG_VALUE_1": "never",
        "GIT_CONFIG_KEY_2": "protocol.https.allow", "GIT_CONFIG_VALUE_2": "always",
    })
    return env


def auto_conf_lines(order: BuildOrder, caches_usable: bool) -> list[str]:
    """conf/auto.conf of the build: the shared caches and parallelism (never local.conf)."""
    settings = order.settings
    lines = []
    if caches_usable:
        lines += [f'DL_DIR = "{settings.cache_dir}/downloads"',
                  f'SSTATE_DIR = "{settings.cache_dir}/sstate-cache"']
    if settings.hashserve:
        lines.append(f'BB_HASHSERVE = "{settings.hashserve}"')
    if settings.bb_number_threads:
        lines.append(f'BB_NUMBER_THREADS = "{settings.bb_number_threads}"')
    if settings.parallel_make:
        lines.append(f'PARALLEL_MAKE = "-j {settings.parallel_make}"')
    return lines


def caches_usable(cache_dir: str) -> bool:
    return all(os.path.isdir(p) and os.access(p, os.W_OK)
               for p in (f"{cache_dir}/downloads", f"{cache_dir}/sstate-cache"))


def pass_to_bitbake(env: dict[str, str], name: str) -> None:
    """Let bitbake see the exported ``name`` (BB_ENV_EXTRAWHITE before Yocto 4.0)."""
    key = "BB_ENV_EXTRAWHITE" if env.get("BB_ENV_EXTRAWHITE") else "BB_ENV_PASSTHROUGH_ADDITIONS"
    names = env.get(key, "").split()
    if name not in names:
        env[key] = " ".join([*names, name])


class BuildSteps:
    """The steps, in order; ``run`` returns the build's exit code."""

    def __init__(self, order: BuildOrder, files: JobFiles, me: Identity, say: Say,
                 stopping: Callable[[], bool]) -> None:
        self.order = order
        self.files = files
        self.me = me
        self.say = say
        self.stopping = stopping
        self.work = fd_path(files.work)
        self.env = build_environment(me, str(order.request.repo_url))

    # --- helpers ------------------------------------------------------------------------

    def run_program(self, argv: list[str], cwd: str = ".", env: dict[str, str] | None = None,
                    **kwargs: object) -> int:
        try:
            return subprocess.run(argv, cwd=cwd, env=env or self.env, stdin=subprocess.DEVNULL,
                                  **kwargs).returncode  # type: ignore[call-overload]
        except OSError as exc:
            self.say(f"ERROR: cannot run {argv[0]}: {exc.strerror}")
            return 127

    def git_output(self, *args: str) -> str | None:
        result = subprocess.run(["git", *args], cwd=SOURCE_DIR, env=self.env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    def resolve_ref(self, ref: str, is_commit: bool) -> str | None:
        for candidate in (f"refs/remotes/origin/{ref}", f"refs/tags/{ref}"):
            commit = self.git_output("rev-parse", "--quiet", "--verify", f"{candidate}^{{commit}}")
            if commit:
                return commit
        if is_commit:
            return self.git_output("rev-parse", "--quiet", "--verify", f"{ref}^{{commit}}")
        return None

    def inside_clone(self, relative: str) -> str | None:
        """The real path of ``relative`` when it is a regular file inside the clone."""
        clone = os.path.realpath(f"{self.work}/{SOURCE_DIR}")
        try:
            real = os.path.realpath(f"{clone}/{relative}", strict=True)
        except OSError:
            return None
        if not real.startswith(clone + "/") or not os.path.isfile(real):
            return None
        return real

    def write_auto_conf(self, build_parts: tuple[str, ...]) -> bool:
        """Write <build dir>/conf/auto.conf (build_parts: the build dir below work/)."""
        settings = self.order.settings
        usable = caches_usable(settings.cache_dir)
        if not usable:
            self.say(f"NOTE: no shared caches (need writable {settings.cache_dir}/downloads and "
                     f"{settings.cache_dir}/sstate-cache): this build downloads and builds "
                     "everything itself")
        lines = auto_conf_lines(self.order, usable)
        if not lines:
            return True
        fds: list[int] = []
        try:
            current = self.files.work
            for part in (*build_parts, CONF_DIR):
                try:
                    current = open_dir(current, part)
                except FileNotFoundError:
                    current = make_dir(current, part, 0o775)
                fds.append(current)
            text = "# Written by Autobuild for this build (shared caches, parallelism).\n"
            text += "".join(f"{line}\n" for line in lines)
            with atomic_file(current, AUTO_CONF, 0o664) as fd:
                write_all(fd, text.encode())
        except OSError as exc:
            where = "/".join((*build_parts, CONF_DIR))
            self.say(f"ERROR: cannot write {where}/{AUTO_CONF}: {exc.strerror or exc}")
            return False
        finally:
            for fd in fds:
                os.close(fd)
        self.say(f"{CONF_DIR}/{AUTO_CONF}:")
        for line in lines:
            self.say(f"    {line}")
        return True

    def failed(self, message: str, code: int, build_rel: str | None = None) -> int:
        self.say(message)
        save_task_logs(self.files.log, self.files.work, self.files.logs, self.files.path,
                       self.say)
        if build_rel is not None:
            keep_timing(self.files.work, build_rel, self.files.job, self.say)
        return code

    def collect(self, build_rel: str) -> int:
        self.say(step_line(STEP_COLLECTING))
        collect_artifacts(self.files.work, build_rel, str(self.order.request.machine),
                          self.order.artifact_patterns, self.files.artifacts, self.files.job,
                          self.files.path, self.say, self.files.web_gid)
        collect_buildhistory(self.files.work, build_rel, str(self.order.request.machine),
                             str(self.order.request.target), self.files.job, self.say)
        keep_timing(self.files.work, build_rel, self.files.job, self.say)
        return 0

    # --- the steps ------------------------------------------------------------------------

    def run(self) -> int:
        for step in (self.clone, self.checkout, self.build):
            if self.stopping():
                return 1
            code = step()
            if code:
                return code
        return 0

    def clone(self) -> int:
        url = str(self.order.request.repo_url)
        self.say(step_line(f"{STEP_CLONING}{url}"))
        token = token_path(self.me)
        try:
            has_token = os.stat(token).st_size > 0
        except OSError:
            has_token = False
        if not has_token:
            self.say(f"NOTE: no GitLab token on file ({token}): cloning without one works only "
                     "for public repositories. Save your token in Settings.")
        code = self.run_program(["git", "clone", "--no-checkout", "--", url, SOURCE_DIR])
        if code:
            self.say(f"ERROR: could not clone {url}: check the URL, and that the GitLab token "
                     "saved in Settings can read this repository")
        return code

    def checkout(self) -> int:
        request = self.order.request
        self.say(step_line(f"{STEP_CHECKOUT}{request.ref}"))
        commit = self.resolve_ref(str(request.ref), request.ref.is_commit)
        if commit is None:
            self.say(f"ERROR: '{request.ref}' is not a branch, tag or commit of {request.repo_url}")
            return 1
        code = self.run_program(["git", "-c", "advice.detachedHead=false", "checkout",
                                 "--quiet", "--detach", commit], cwd=SOURCE_DIR)
        if code:
            return code
        self.say(step_line(f"{STEP_COMMIT}{commit}"))  # what was built (provenance)
        self.run_program(["git", "log", "-1", "--format=HEAD is now at %h %s"], cwd=SOURCE_DIR)
        if os.path.isfile(f"{SOURCE_DIR}/.gitmodules"):
            if self.stopping():
                return 1
            self.say(step_line(STEP_SUBMODULES))
            return self.run_program(["git", "submodule", "update", "--init", "--recursive"],
                                    cwd=SOURCE_DIR)
        return 0

    def build(self) -> int:
        kas_file = self.order.request.kas_file
        if kas_file is not None:
            return self.kas_build(str(kas_file))
        if self.inside_clone(DEFAULT_KAS_FILE):
            return self.kas_build(DEFAULT_KAS_FILE)
        return self.poky_build()

    def kas_build(self, kas_file: str) -> int:
        request = self.order.request
        machine, target = str(request.machine), str(request.target)
        real = self.inside_clone(kas_file)
        if real is None:
            self.say(f"ERROR: the kas file {kas_file} is not a file in the repository")
            return 1
        kas = kas_program()
        if not os.access(kas, os.X_OK):
            self.say(f"ERROR: kas is not installed next to the runner (expected {kas})")
            return 1
        env = {k: v for k, v in self.env.items() if not k.startswith("KAS_")}
        env.update(KAS_WORK_DIR=self.work, KAS_BUILD_DIR=f"{self.work}/{KAS_BUILD_DIR}",
                   KAS_MACHINE=machine, KAS_TARGET=target)
        if not self.write_auto_conf((KAS_BUILD_DIR,)):
            return 1
        settings = self.order.settings
        if caches_usable(settings.cache_dir):  # kas passes these through to bitbake as well
            env.update(DL_DIR=f"{settings.cache_dir}/downloads",
                       SSTATE_DIR=f"{settings.cache_dir}/sstate-cache")
        if settings.hashserve:
            env["BB_HASHSERVE"] = settings.hashserve
        if settings.bb_number_threads:
            env["BB_NUMBER_THREADS"] = str(settings.bb_number_threads)
        if settings.parallel_make:
            env["PARALLEL_MAKE"] = f"-j {settings.parallel_make}"
        if self.stopping():
            return 1
        self.say(step_line(f"{STEP_KAS}{kas_file}: {STEP_BITBAKE}{target} (MACHINE={machine})"))
        self.run_program([str(kas), "--version"], env=env)
        # Checked out first, so the log says what each repository is at before the build.
        code = self.run_program([str(kas), "checkout", "--", real], env=env)
        if code:
            return self.failed(f"ERROR: kas checkout {kas_file} failed (exit {code})", code)
        self.say_kas_repos(str(kas), real, env, kas_file)
        if self.stopping():
            return 1
        code = self.run_program([str(kas), "build", "--", real], env=env)
        if code:
            return self.failed(f"ERROR: kas build {kas_file} failed (exit {code})", code,
                               KAS_BUILD_DIR)
        return self.collect(KAS_BUILD_DIR)

    def say_kas_repos(self, kas: str, real: str, env: dict[str, str], kas_file: str) -> None:
        """The Kas file step line, then one step line per repository kas checked out, with its
        commit (provenance), as ``kas dump --resolve-refs --resolve-local`` says; a NOTE when
        it cannot tell. The repo lines come right after the Kas file line (provenance believes
        only those), so kas dump's own output and the NOTEs go before or after them."""
        argv = [kas, "dump", "--resolve-refs", "--resolve-local", "--format", "json", "--", real]
        kas_file_line = step_line(f"{STEP_KAS_FILE}{kas_file}")
        try:
            dumped = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, timeout=KAS_DUMP_SECONDS)
            if dumped.returncode or len(dumped.stdout) > MAX_KAS_DUMP_BYTES:
                raise ValueError(f"kas dump failed (exit {dumped.returncode})")
            repos = json.loads(dumped.stdout).get("repos") or {}
            if not isinstance(repos, dict):
                raise ValueError("kas dump gave no repos")
        except (OSError, ValueError, AttributeError, RecursionError,
                subprocess.TimeoutExpired) as exc:
            self.say(kas_file_line)
            self.say(f"NOTE: the commits of the kas repositories are not recorded: {exc}")
            return
        own = without_userinfo(str(self.order.request.repo_url)).rstrip("/")
        lines, notes = [], []
        for name, spec in list(repos.items())[:MAX_KAS_REPOS]:
            spec = spec if isinstance(spec, dict) else {}
            url, commit = spec.get("url"), spec.get("commit")
            if isinstance(url, str) and without_userinfo(url).rstrip("/") == own:
                url = None  # the build's own repository
            line = kas_repo_line(name, commit, url) if isinstance(commit, str) else None
            if line is None:
                notes.append(f"NOTE: kas repository {str(name)[:100]!r}: its commit is not "
                             "recorded (not a git checkout, or an unusual name or URL)")
            else:
                lines.append(line)
        for line in [kas_file_line, *lines, *notes]:
            self.say(line)

    def poky_build(self) -> int:
        request = self.order.request
        machine, target = str(request.machine), str(request.target)
        self.say(step_line(f"{STEP_SETUP} ({INIT_SCRIPT})"))
        script = f"{SOURCE_DIR}/{INIT_SCRIPT}"
        if not os.path.isfile(script) or os.path.islink(script):
            self.say(f"ERROR: {request.repo_url} has no {INIT_SCRIPT} at its top level (is it a "
                     "poky-style repository?)")
            return 1
        if not self.write_auto_conf((SOURCE_DIR, POKY_BUILD_DIR)):
            return 1
        env = self.sourced_environment()
        if env is None:
            self.say(f"ERROR: {INIT_SCRIPT} failed")
            return 1
        env["MACHINE"] = machine
        pass_to_bitbake(env, "MACHINE")
        if self.stopping():
            return 1
        self.say(step_line(f"{STEP_BITBAKE}{target} (MACHINE={machine})"))
        code = self.run_program(["bitbake", "--", target], cwd=f"{SOURCE_DIR}/{POKY_BUILD_DIR}",
                                env=env)
        if code:
            return self.failed(f"ERROR: bitbake {target} failed (exit {code})", code,
                               f"{SOURCE_DIR}/{POKY_BUILD_DIR}")
        return self.collect(f"{SOURCE_DIR}/{POKY_BUILD_DIR}")

    def sourced_environment(self) -> dict[str, str] | None:
        """The environment ``oe-init-build-env`` leaves (sourced in bash, in the clone)."""
        read_end, write_end = os.pipe()
        try:
            process = subprocess.Popen(
                ["bash", "--noprofile", "--norc", "-c", SOURCE_SCRIPT, "bash", POKY_BUILD_DIR,
                 str(write_end)],
                cwd=SOURCE_DIR, env=self.env, stdin=subprocess.DEVNULL, pass_fds=(write_end,))
        except OSError as exc:
            os.close(read_end)
            os.close(write_end)
            self.say(f"ERROR: cannot run bash: {exc.strerror}")
            return None
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        if process.wait() != 0:
            return None
        env = {}
        for entry in data.split(b"\0"):
            name, sep, value = entry.partition(b"=")
            if sep and name:
                env[name.decode("utf-8", "surrogateescape")] = value.decode(
                    "utf-8", "surrogateescape")
        return env or None

