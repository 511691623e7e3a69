"""What the New build form offers: repositories, MACHINEs and targets from the engineer's own
and the team's recent builds, and the engineer's last build to start from.

Rules:
- the engineer's own values come first, newest first, then the team's; each value once; at
  most ``limit`` of each kind;
- only builds the engineer may see (Permissions.may_see) are read;
- every value offered is one the form accepts today (requests.py): a repository URL never
  carries a user name, token, query or fragment, and is on an allowed host when the
  administrator set a list;
- a colleague's repository is offered only on a host the engineer has built from already, or
  when the administrator's allowed hosts vouch for every host: picking a suggestion never
  sends the engineer's GitLab token to a host they have not chosen themselves;
- the form starts from the engineer's last build (repository, ref, MACHINE, target, kas file),
  leaving out any of its values the form would refuse today.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from .permissions import Permissions
from .ports import JobRepository, RecentBuild
from .requests import GitRef, KasFile, Machine, RepoUrl, Target

SUGGESTIONS_PER_FIELD = 20
# How many recent builds are read: the engineer's own, and everybody's (one index walk each).
OWN_BUILDS_READ = 200
TEAM_BUILDS_READ = 1000


@dataclass(frozen=True)
class Suggestion:
    """A value to offer, and the newest build it comes from (its owner and id)."""

    value: str
    owner: str
    job_id: int


@dataclass(frozen=True)
class FormSuggestions:
    repo_urls: tuple[Suggestion, ...] = ()
    machines: tuple[Suggestion, ...] = ()
    targets: tuple[Suggestion, ...] = ()
    last: dict[str, str] | None = None  # the last build's form values, None without one
    last_id: int | None = None


def _accepts(parse: Callable[[str], object], value: str) -> bool:
    try:
        parse(value)
    except ValueError:
        return False
    return True


def _host(url: str) -> tuple[str, int]:
    """Where a URL sends the token: host and port (another port may be another server)."""
    parts = urlsplit(url)
    try:
        port = parts.port or 443
    except ValueError:
        port = -1
    return (parts.hostname or "").lower(), port


def _distinct(builds: Iterable[RecentBuild], value_of: Callable[[RecentBuild], str],
              accept: Callable[[RecentBuild], bool], limit: int) -> tuple[Suggestion, ...]:
    seen: dict[str, Suggestion] = {}
    for build in builds:
        value = value_of(build).strip()
        if value and value not in seen and accept(build):
            seen[value] = Suggestion(value, build.owner, build.id)
            if len(seen) == limit:
                break
    return tuple(seen.values())


def suggest(user: str, own: list[RecentBuild], team: list[RecentBuild],
            allowed_hosts: frozenset[str] = frozenset(),
            limit: int = SUGGESTIONS_PER_FIELD) -> FormSuggestions:
    """The suggestions for ``user`` from their builds ``own`` and the ``team``'s (newest
    first, both only builds ``user`` may see; ``team`` may hold ``user``'s own too)."""
    own = [b for b in own if b.owner == user]
    ordered = own + [b for b in team if b.owner != user]

    def valid_url(url: str) -> bool:
        return _accepts(lambda text: RepoUrl.parse(text, allowed_hosts), url)

    own_hosts = {_host(b.repo_url) for b in own if valid_url(b.repo_url)}

    def offered_repo(build: RecentBuild) -> bool:
        if not valid_url(build.repo_url):
            return False
        return build.owner == user or bool(allowed_hosts) or _host(build.repo_url) in own_hosts

    return FormSuggestions(
        repo_urls=_distinct(ordered, lambda b: b.repo_url, offered_repo, limit),
        machines=_distinct(ordered, lambda b: b.machine,
                           lambda b: _accepts(Machine.parse, b.machine), limit),
        targets=_distinct(ordered, lambda b: b.target,
                          lambda b: _accepts(Target.parse, b.target), limit),
        last=_form_values(own[0], valid_url) if own else None,
        last_id=own[0].id if own else None,
    )


def _form_values(build: RecentBuild, valid_url: Callable[[str], bool]) -> dict[str, str]:
    """The form's fields filled from ``build``, each only if the form accepts it today."""
    checks: dict[str, tuple[str, Callable[[str], bool]]] = {
        "repo_url": (build.repo_url, valid_url),
        "ref": (build.ref, lambda v: _accepts(GitRef.parse, v)),
        "machine": (build.machine, lambda v: _accepts(Machine.parse, v)),
        "target": (build.target, lambda v: _accepts(Target.parse, v)),
        "kas_file": (build.kas_file or "", lambda v: not v or _accepts(KasFile.parse, v)),
    }
    return {name: value if check(value) else "" for name, (value, check) in checks.items()}


class BuildSuggestions:
    """Reads the recent builds and makes the suggestions of ``suggest`` for one engineer."""

    def __init__(self, jobs: JobRepository, permissions: Permissions,
                 allowed_hosts: frozenset[str] = frozenset()) -> None:
        self._jobs = jobs
        self._permissions = permissions
        self._allowed_hosts = allowed_hosts

    def for_user(self, user: str) -> FormSuggestions:
        own = self._jobs.recent_builds(user, OWN_BUILDS_READ)
        team = [b for b in self._jobs.recent_builds(None, TEAM_BUILDS_READ)
                if self._permissions.may_see(b.owner, user)]
        return suggest(user, own, team, self._allowed_hosts)
