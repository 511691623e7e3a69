"""What the service tells the runner: a build order, or the address of a job to cancel or purge.

The order travels on the runner's stdin as one JSON object (never through a file an engineer
could write). The runner trusts nothing in it: ``from_json`` re-checks every field with the
same rules the service used when it accepted the request.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .artifacts import is_valid_pattern
from .layout import is_job_id, is_user_name
from .requests import BuildRequest, InvalidRequest

MAX_ORDER_BYTES = 64 * 1024
DEFAULT_ARTIFACT_PATTERNS = ("*.bin", "*.mtd")
DEFAULT_CACHE_DIR = "/srv/autobuild/cache"
# A cancelled build gets SIGINT (bitbake stops its tasks cleanly), then SIGTERM this many
# seconds later if it is still running, then SIGKILL (the runner, wherever the build runs).
DEFAULT_CANCEL_GRACE = 20
MAX_CANCEL_GRACE = 3600

_HASHSERVE = re.compile(r"^(auto|[A-Za-z0-9][A-Za-z0-9.-]{0,252}:[0-9]{1,5})$")
_PARALLEL_MAKE = re.compile(r"^(?:-j\s*)?([0-9]{1,4})$")
_ABSOLUTE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]{0,1023}$")


class InvalidOrder(ValueError):
    """The runner was given something it must not act on; the message says what."""


def parse_hashserve(raw: str) -> str | None:
    """``BB_HASHSERVE``: ``host:port`` or ``auto``; None for empty; ValueError otherwise."""
    value = raw.strip()
    if not value:
        return None
    if not _HASHSERVE.match(value) or (
            value != "auto" and not 0 < int(value.rsplit(":", 1)[1]) < 65536):
        raise ValueError(f"must be host:port or auto, not {value!r}")
    return value


def parse_parallel_make(raw: str) -> int | None:
    """``PARALLEL_MAKE`` as a number of jobs (``8`` or ``-j 8``); None for empty."""
    value = raw.strip()
    if not value:
        return None
    match = _PARALLEL_MAKE.match(value)
    if not match or int(match.group(1)) < 1:
        raise ValueError(f"must be a number of jobs such as 8 or '-j 8', not {value!r}")
    return int(match.group(1))


def is_safe_absolute_path(value: object) -> bool:
    """An absolute path of plain characters with no ``.`` or ``..`` segment."""
    if not isinstance(value, str) or not _ABSOLUTE_PATH.match(value):
        return False
    return all(part not in (".", "..") for part in value.split("/"))


@dataclass(frozen=True)
class BuildSettings:
    """The service's settings for every build (shared caches, parallelism, workspace)."""

    cache_dir: str = DEFAULT_CACHE_DIR
    hashserve: str | None = None
    bb_number_threads: int | None = None
    parallel_make: int | None = None
    keep_workspace: bool = False
    cancel_grace: int = DEFAULT_CANCEL_GRACE  # seconds between a cancel's SIGINT and SIGTERM

    def __post_init__(self) -> None:
        if not is_safe_absolute_path(self.cache_dir):
            raise InvalidOrder(f"cache_dir is not a plain absolute path: {self.cache_dir!r}")
        if self.hashserve is not None:
            try:
                parse_hashserve(self.hashserve)
            except ValueError as exc:
                raise InvalidOrder(f"hashserve {exc}") from None
        for name in ("bb_number_threads", "parallel_make"):
            value = getattr(self, name)
            if value is not None and not (_is_int(value) and 1 <= value <= 9999):
                raise InvalidOrder(f"{name} must be a number from 1 to 9999")
        if not isinstance(self.keep_workspace, bool):
            raise InvalidOrder("keep_workspace must be true or false")
        if not (_is_int(self.cancel_grace) and 0 <= self.cancel_grace <= MAX_CANCEL_GRACE):
            raise InvalidOrder(f"cancel_grace must be a number of seconds from 0 to "
                               f"{MAX_CANCEL_GRACE}")

    def as_dict(self) -> dict[str, Any]:
        return {"cache_dir": self.cache_dir, "hashserve": self.hashserve,
                "bb_number_threads": self.bb_number_threads,
                "parallel_make": self.parallel_make, "keep_workspace": self.keep_workspace,
                "cancel_grace": self.cancel_grace}

    @classmethod
    def from_dict(cls, data: object) -> BuildSettings:
        if not isinstance(data, dict):
            raise InvalidOrder("settings must be an object")
        unknown = set(data) - set(cls().as_dict())
        if unknown:
            raise InvalidOrder(f"unknown settings: {', '.join(sorted(map(str, unknown)))}")
        return cls(**data)


_SLURM_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
MAX_CLUSTER_CPUS = 4096
MAX_CLUSTER_MEMORY_MB = 64 * 1024 * 1024
MAX_CLUSTER_MINUTES = 366 * 24 * 60


@dataclass(frozen=True)
class ClusterRequest:
    """What each build asks of a batch cluster (Slurm): the partition and account (None: the
    cluster's default), CPUs, memory (None: the partition's default) and a time limit."""

    partition: str | None = None
    cpus: int = 8
    memory_mb: int | None = None
    time_limit_minutes: int = 240
    account: str | None = None

    def __post_init__(self) -> None:
        for name in ("partition", "account"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not _SLURM_NAME.fullmatch(value)):
                raise InvalidOrder(f"{name} is not a plain Slurm name: {value!r}")
        if not _is_int(self.cpus) or not 1 <= self.cpus <= MAX_CLUSTER_CPUS:
            raise InvalidOrder(f"cpus must be 1-{MAX_CLUSTER_CPUS}, not {self.cpus!r}")
        if self.memory_mb is not None and (
                not _is_int(self.memory_mb) or not 1 <= self.memory_mb <= MAX_CLUSTER_MEMORY_MB):
            raise InvalidOrder(f"memory_mb must be 1-{MAX_CLUSTER_MEMORY_MB}, not {self.memory_mb!r}")
        if not _is_int(self.time_limit_minutes) or not (
                1 <= self.time_limit_minutes <= MAX_CLUSTER_MINUTES):
            raise InvalidOrder(f"time_limit_minutes must be 1-{MAX_CLUSTER_MINUTES}, "
                               f"not {self.time_limit_minutes!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"partition": self.partition, "cpus": self.cpus, "memory_mb": self.memory_mb,
                "time_limit_minutes": self.time_limit_minutes, "account": self.account}

    @classmethod
    def from_dict(cls, data: object) -> ClusterRequest:
        if not isinstance(data, dict):
            raise InvalidOrder("cluster must be an object")
        unknown = set(data) - set(cls().as_dict())
        if unknown:
            raise InvalidOrder(f"unknown cluster fields: {', '.join(sorted(map(str, unknown)))}")
        return cls(**data)


@dataclass(frozen=True)
class JobAddress:
    """Which job, of whom, under which jobs root: all a cancel or a purge needs."""

    job_id: int
    owner: str
    jobs_root: str

    def __post_init__(self) -> None:
        if not is_job_id(self.job_id):
            raise InvalidOrder("job_id must be a positive whole number")
        if not is_user_name(self.owner):
            raise InvalidOrder(f"owner is not a user name: {self.owner!r}")
        if not is_safe_absolute_path(self.jobs_root):
            raise InvalidOrder(f"jobs_root is not a plain absolute path: {self.jobs_root!r}")

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "owner": self.owner, "jobs_root": self.jobs_root}

    def to_json(self) -> str:
        return json.dumps(self.as_dict())

    @classmethod
    def from_json(cls, text: str | bytes) -> JobAddress:
        data = _load(text)
        unknown = set(data) - {"job_id", "owner", "jobs_root"}
        if unknown:
            raise InvalidOrder(f"unknown fields: {', '.join(sorted(unknown))}")
        return cls(job_id=data.get("job_id"), owner=data.get("owner"),  # type: ignore[arg-type]
                   jobs_root=data.get("jobs_root"))  # type: ignore[arg-type]


@dataclass(frozen=True)
class BuildOrder:
    """Everything the runner needs to run one build, decided by the service when the job was
    submitted (parameters, artifact patterns, settings)."""

    address: JobAddress
    request: BuildRequest
    artifact_patterns: tuple[str, ...] = DEFAULT_ARTIFACT_PATTERNS
    settings: BuildSettings = field(default_factory=BuildSettings)
    # Where the build runs when it is handed to a batch cluster (the runner's submit mode);
    # None: here, by the runner itself (build mode).
    cluster: ClusterRequest | None = None

    def __post_init__(self) -> None:
        bad = [p for p in self.artifact_patterns if not is_valid_pattern(p)]
        if bad:
            raise InvalidOrder(f"invalid artifact patterns: {', '.join(map(repr, bad))}")

    def to_json(self) -> str:
        request = self.request
        return json.dumps({
            **self.address.as_dict(),
            "repo_url": str(request.repo_url), "ref": str(request.ref),
            "machine": str(request.machine), "target": str(request.target),
            "kas_file": str(request.kas_file) if request.kas_file else None,
            "artifact_patterns": list(self.artifact_patterns),
            "settings": self.settings.as_dict(),
            **({"cluster": self.cluster.as_dict()} if self.cluster is not None else {}),
        })

    @classmethod
    def from_json(cls, text: str | bytes) -> BuildOrder:
        """Parse and check an order; raises InvalidOrder naming what is wrong."""
        data = _load(text)
        known = {"job_id", "owner", "jobs_root", "repo_url", "ref", "machine", "target",
                 "kas_file", "artifact_patterns", "settings", "cluster"}
        unknown = set(data) - known
        if unknown:
            raise InvalidOrder(f"unknown fields: {', '.join(sorted(unknown))}")
        address = JobAddress(job_id=data.get("job_id"), owner=data.get("owner"),  # type: ignore[arg-type]
                             jobs_root=data.get("jobs_root"))  # type: ignore[arg-type]
        texts = {}
        for name in ("repo_url", "ref", "machine", "target"):
            value = data.get(name)
            if not isinstance(value, str):
                raise InvalidOrder(f"{name} must be a string")
            texts[name] = value
        kas_file = data.get("kas_file")
        if kas_file is not None and not isinstance(kas_file, str):
            raise InvalidOrder("kas_file must be a string or null")
        try:
            request = BuildRequest.parse(texts["repo_url"], texts["ref"], texts["machine"],
                                         texts["target"], kas_file=kas_file)
        except InvalidRequest as exc:
            raise InvalidOrder(str(exc)) from None
        # The service stripped nothing: a value that only parses once trimmed was not sent by it.
        if (str(request.repo_url), str(request.ref), str(request.machine),
                str(request.target)) != tuple(texts.values()):
            raise InvalidOrder("build parameters must not have surrounding spaces")
        patterns = data.get("artifact_patterns", list(DEFAULT_ARTIFACT_PATTERNS))
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise InvalidOrder("artifact_patterns must be a list of strings")
        cluster = data.get("cluster")
        return cls(address=address, request=request, artifact_patterns=tuple(patterns),
                   settings=BuildSettings.from_dict(data.get("settings", {})),
                   cluster=None if cluster is None else ClusterRequest.from_dict(cluster))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _load(text: str | bytes) -> dict[str, Any]:
    if len(text) > MAX_ORDER_BYTES:
        raise InvalidOrder(f"the order is larger than {MAX_ORDER_BYTES} bytes")
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidOrder("the order is not JSON") from None
    if not isinstance(data, dict):
        raise InvalidOrder("the order must be a JSON object")
    return data
