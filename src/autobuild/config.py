"""Settings from AUTO_BUILD_* environment variables, with the seed's defaults."""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from .domain.layout import LAUNCH_DIR
from .domain.orders import (
    DEFAULT_CANCEL_GRACE, MAX_CANCEL_GRACE, BuildSettings, ClusterRequest, InvalidOrder,
    parse_hashserve, parse_parallel_make,
)


log = logging.getLogger(__name__)

MIN_SECRET_KEY_CHARS = 32
DEFAULT_SECRET_KEY_FILE = Path("/etc/autobuild/secret_key")


class ConfigError(Exception):
    """The configuration cannot work; the message says which variable to fix."""


def _split(value: str) -> frozenset[str]:
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0,
         maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{name} must be at most {maximum}")
    return value


def _hashserve(raw: str) -> str | None:
    try:
        return parse_hashserve(raw)
    except ValueError as exc:
        raise ConfigError(f"AUTO_BUILD_HASHSERVE {exc}") from None


def _parallel_make(raw: str) -> int | None:
    try:
        return parse_parallel_make(raw)
    except ValueError as exc:
        raise ConfigError(f"AUTO_BUILD_PARALLEL_MAKE {exc}") from None


EXECUTORS = ("local", "slurm")
_MEMORY = re.compile(r"^([1-9][0-9]{0,9})\s*([MGT]?)B?$", re.IGNORECASE)


def _executor(raw: str) -> str:
    value = raw.strip().lower() or "local"
    if value not in EXECUTORS:
        raise ConfigError(f"AUTO_BUILD_EXECUTOR must be one of {', '.join(EXECUTORS)}, "
                          f"not {raw.strip()!r}")
    return value


def _memory_mb(raw: str) -> int | None:
    """``AUTO_BUILD_SLURM_MEMORY``: ``64G``, ``512M``, ``65536`` (MB); None for empty."""
    value = raw.strip()
    if not value:
        return None
    match = _MEMORY.match(value)
    if not match:
        raise ConfigError(f"AUTO_BUILD_SLURM_MEMORY must be like 64G or 8192M, not {value!r}")
    number, unit = int(match.group(1)), match.group(2).upper()
    return number * {"": 1, "M": 1, "G": 1024, "T": 1024 * 1024}[unit]


def _minutes(raw: str, default: int) -> int:
    """``AUTO_BUILD_SLURM_TIME_LIMIT`` as sbatch --time reads it: ``minutes``,
    ``minutes:seconds``, ``hours:minutes:seconds``, ``days-hours[:minutes[:seconds]]``
    (seconds round up to a minute); the default for empty."""
    value = raw.strip()
    if not value:
        return default
    days_text, dash, clock = value.rpartition("-") if "-" in value else ("", "", value)
    parts = clock.split(":")
    if not (all(p.isdigit() and len(p) <= 5 for p in parts) and len(parts) <= 3
            and (not dash or days_text.isdigit() and len(days_text) <= 3)):
        raise ConfigError(f"AUTO_BUILD_SLURM_TIME_LIMIT must be like 240, 4:00:00 or "
                          f"1-12:00:00 (as sbatch --time), not {value!r}")
    numbers = [int(p) for p in parts]
    if dash:  # days-hours[:minutes[:seconds]]
        hours, minutes, seconds = (numbers + [0, 0])[:3]
        total = int(days_text) * 1440 + hours * 60 + minutes + (1 if seconds else 0)
    elif len(numbers) == 3:
        total = numbers[0] * 60 + numbers[1] + (1 if numbers[2] else 0)
    else:  # minutes[:seconds]
        total = numbers[0] + (1 if len(numbers) == 2 and numbers[1] else 0)
    if total < 1:
        raise ConfigError(f"AUTO_BUILD_SLURM_TIME_LIMIT must be at least a minute, not {value!r}")
    return total


@dataclass(frozen=True)
class Settings:
    db_path: Path = Path("/srv/autobuild/data/jobs.db")
    jobs_root: Path = Path("/srv/autobuild/jobs")
    runner_path: Path = Path("/opt/autobuild/runner/run_job.sh")
    secret_key_file: Path = DEFAULT_SECRET_KEY_FILE  # one line, root:autobuild 0640
    secret_key: str = ""  # deprecated: AUTO_BUILD_SECRET_KEY, used only when the file is missing
    dev_mode: bool = False
    use_sudo: bool = True
    max_running: int = 1
    allowed_git_hosts: frozenset[str] = field(default_factory=frozenset)
    disabled_plugins: frozenset[str] = field(default_factory=frozenset)
    users_group: str = "autobuild-users"
    admin_group: str | None = None  # may cancel any build, revoke any API token; None: nobody
    cookie_secure: bool = False  # Secure even over plain HTTP (it is set over HTTPS anyway)
    session_hours: int = 8  # a session ends this long after sign-in, or after its last use
    max_streams_per_user: int = 20  # live-log streams one user may hold open at once
    max_queued_per_user: int = 20  # builds one user may have waiting in the queue
    login_failures: int = 5  # failed logins a minute per user name and per address
    max_login_checks: int = 4  # password checks (sudo + PAM) in flight at once
    login_failure_seconds: float = 3.0  # every failed login is answered after this long
    hsts_seconds: int = 31536000  # Strict-Transport-Security max-age over HTTPS; 0: none
    retention_days: int = 30  # logs and artifacts of ended jobs are removed after this
    min_free_gb: int = 20  # no build starts with less free on the jobs root; 0: no check
    # Build settings every build's runner is given in its order (see Settings.build_settings).
    cache_dir: Path = Path("/srv/autobuild/cache")  # shared downloads/ and sstate-cache/
    hashserve: str | None = None  # BB_HASHSERVE: host:port or "auto"
    bb_number_threads: int | None = None
    parallel_make: int | None = None  # as "-j N"
    keep_workspace: bool = False  # keep work/ (clone, build/tmp) after the build
    cancel_grace: int = DEFAULT_CANCEL_GRACE  # s from a cancel's SIGINT to SIGTERM, on any node
    poll_interval: float = 1.0
    # Where builds run: "local" (this host, max_running at a time) or "slurm" (handed to a
    # Slurm cluster as they come, each asking for cluster_request()).
    executor: str = "local"
    slurm_partition: str | None = None
    slurm_cpus: int = 8
    slurm_memory_mb: int | None = None
    slurm_time_limit_minutes: int = 240
    slurm_account: str | None = None
    # Tests only: stop the process (as kill -9 would) at this named step of submit/start.
    crash_at: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            db_path=Path(env.get("AUTO_BUILD_DB") or defaults.db_path),
            jobs_root=Path(env.get("AUTO_BUILD_JOBS_ROOT") or defaults.jobs_root),
            runner_path=Path(env.get("AUTO_BUILD_RUNNER") or defaults.runner_path),
            secret_key_file=Path(env.get("AUTO_BUILD_SECRET_KEY_FILE")
                                 or defaults.secret_key_file),
            secret_key=env.get("AUTO_BUILD_SECRET_KEY", ""),
            dev_mode=_flag(env.get("AUTO_BUILD_DEV")),
            use_sudo=not _flag(env.get("AUTO_BUILD_NO_SUDO")),
            max_running=_int(env, "AUTO_BUILD_MAX_RUNNING", 1, minimum=1),
            allowed_git_hosts=_split(env.get("AUTO_BUILD_ALLOWED_GIT_HOSTS", "")),
            disabled_plugins=_split(env.get("AUTO_BUILD_DISABLED_PLUGINS", "")),
            users_group=env.get("AUTO_BUILD_USERS_GROUP") or defaults.users_group,
            admin_group=env.get("AUTO_BUILD_ADMIN_GROUP", "").strip() or None,
            cookie_secure=_flag(env.get("AUTO_BUILD_COOKIE_SECURE")),
            session_hours=_int(env, "AUTO_BUILD_SESSION_HOURS", defaults.session_hours,
                               minimum=1),
            max_streams_per_user=_int(env, "AUTO_BUILD_MAX_STREAMS_PER_USER",
                                      defaults.max_streams_per_user, minimum=1),
            max_queued_per_user=_int(env, "AUTO_BUILD_MAX_QUEUED_PER_USER",
                                     defaults.max_queued_per_user, minimum=1),
            login_failures=_int(env, "AUTO_BUILD_LOGIN_FAILURES_PER_MINUTE",
                                defaults.login_failures, minimum=1),
            max_login_checks=_int(env, "AUTO_BUILD_MAX_LOGIN_CHECKS",
                                  defaults.max_login_checks, minimum=1),
            hsts_seconds=_int(env, "AUTO_BUILD_HSTS_SECONDS", defaults.hsts_seconds),
            retention_days=_int(env, "AUTO_BUILD_RETENTION_DAYS", defaults.retention_days,
                                minimum=1),
            min_free_gb=_int(env, "AUTO_BUILD_MIN_FREE_GB", defaults.min_free_gb),
            host=env.get("AUTO_BUILD_HOST") or defaults.host,
            port=_int(env, "AUTO_BUILD_PORT", defaults.port, minimum=1),
            cache_dir=Path(env.get("AUTO_BUILD_CACHE_DIR") or defaults.cache_dir),
            hashserve=_hashserve(env.get("AUTO_BUILD_HASHSERVE", "")),
            bb_number_threads=_int(env, "AUTO_BUILD_BB_NUMBER_THREADS", 0, minimum=1) or None,
            parallel_make=_parallel_make(env.get("AUTO_BUILD_PARALLEL_MAKE", "")),
            keep_workspace=_flag(env.get("AUTO_BUILD_KEEP_WORKSPACE")),
            cancel_grace=_int(env, "AUTO_BUILD_CANCEL_GRACE", defaults.cancel_grace,
                              maximum=MAX_CANCEL_GRACE),
            crash_at=env.get("AUTO_BUILD_TEST_CRASH_AT", "").strip() or None,
            executor=_executor(env.get("AUTO_BUILD_EXECUTOR", "")),
            slurm_partition=env.get("AUTO_BUILD_SLURM_PARTITION", "").strip() or None,
            slurm_cpus=_int(env, "AUTO_BUILD_SLURM_CPUS", defaults.slurm_cpus, minimum=1),
            slurm_memory_mb=_memory_mb(env.get("AUTO_BUILD_SLURM_MEMORY", "")),
            slurm_time_limit_minutes=_minutes(env.get("AUTO_BUILD_SLURM_TIME_LIMIT", ""),
                                              defaults.slurm_time_limit_minutes),
            slurm_account=env.get("AUTO_BUILD_SLURM_ACCOUNT", "").strip() or None,
        )

    def cluster_request(self) -> ClusterRequest:
        """What each build asks of the Slurm cluster (AUTO_BUILD_SLURM_*)."""
        try:
            return ClusterRequest(partition=self.slurm_partition, cpus=self.slurm_cpus,
                                  memory_mb=self.slurm_memory_mb,
                                  time_limit_minutes=self.slurm_time_limit_minutes,
                                  account=self.slurm_account)
        except InvalidOrder as exc:
            raise ConfigError(f"AUTO_BUILD_SLURM_*: {exc}") from None

    def build_settings(self) -> BuildSettings:
        """What every build's runner is told, in its order."""
        try:
            return BuildSettings(cache_dir=str(self.cache_dir), hashserve=self.hashserve,
                                 bb_number_threads=self.bb_number_threads,
                                 parallel_make=self.parallel_make,
                                 keep_workspace=self.keep_workspace,
                                 cancel_grace=self.cancel_grace)
        except InvalidOrder as exc:
            raise ConfigError(f"AUTO_BUILD_CACHE_DIR or a build setting: {exc}") from None

    @property
    def session_lifetime(self) -> timedelta:
        """How long a session lasts, both since sign-in and since it was last used."""
        return timedelta(hours=self.session_hours)

    @property
    def launch_dir(self) -> Path:
        """The service's own per-job launch logs, beside the database (no engineer writes there)."""
        return self.db_path.parent / LAUNCH_DIR

    def session_secret(self) -> str:
        """The cookie-signing key, from ``secret_key_file``.

        Raises ConfigError (the service refuses to start) when the file is missing, unreadable
        or holds fewer than 32 characters; a missing file falls back to the deprecated
        AUTO_BUILD_SECRET_KEY (with a warning), and in dev mode to a random in-memory key."""
        path = self.secret_key_file
        fix = ("`sudo /opt/autobuild/venv/bin/autobuild rotate-key` (or sudo ./deploy/install.sh) "
               "writes it; AUTO_BUILD_SECRET_KEY_FILE names another file")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            text = None
        except (OSError, UnicodeDecodeError) as exc:
            if self.dev_mode:
                return secrets.token_urlsafe(32)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"cannot read the session key file {path}: {reason}; it must be "
                              f"readable by the service (root:autobuild 0640); {fix}") from None
        if text is not None:
            key = text.strip()
            if len(key) < MIN_SECRET_KEY_CHARS or "\n" in key:
                raise ConfigError(f"the session key file {path} must hold one line of at least "
                                  f"{MIN_SECRET_KEY_CHARS} random characters; {fix}")
            return key
        if self.secret_key:
            if len(self.secret_key) < 16:
                raise ConfigError("AUTO_BUILD_SECRET_KEY is too short: use at least 16 characters")
            log.warning("the session key comes from AUTO_BUILD_SECRET_KEY in the environment, "
                        "which is deprecated: move it to %s (sudo ./deploy/install.sh does)", path)
            return self.secret_key
        if self.dev_mode:
            return secrets.token_urlsafe(32)  # dev only: sessions end when the process does
        raise ConfigError(f"the session key file {path} does not exist: {fix} "
                          f"(or set AUTO_BUILD_DEV=1 on a developer machine)")


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a systemd EnvironmentFile (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values
