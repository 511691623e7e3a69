"""Validated build parameters: what a user may ask the runner to clone and build.

Every value here ends up on the runner's command line (and from there in git and bitbake
argument lists), so the patterns are strict: nothing may start with ``-`` (it would be read
as an option), and nothing may contain shell metacharacters, whitespace or control characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit


class InvalidRequest(ValueError):
    """One or more fields of a build request are not acceptable; ``errors`` maps field -> message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_URL_PATH = re.compile(r"^/[A-Za-z0-9._~+/-]*$")
_HEX_COMMIT = re.compile(r"[0-9a-fA-F]{7,64}")  # an abbreviation up to a SHA-256 id
_MACHINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_TARGET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$")
# git's own forbidden characters, and (stricter than git) the shell's: no value the runner is
# given may hold one, even though none reaches a shell today.
_REF_FORBIDDEN_CHARS = (set(" ~^:?*[\\") | set("$`;|&<>()'\"!") | {chr(c) for c in range(0x20)}
                        | {"\x7f"})
MAX_URL_LENGTH = 2048
MAX_REF_LENGTH = 255


def _valid_hostname(host: str) -> bool:
    if not host or len(host) > 253:
        return False
    return all(_HOST_LABEL.match(label) for label in host.rstrip(".").split("."))


@dataclass(frozen=True)
class RepoUrl:
    """An ``https://host[:port]/path`` URL: no credentials, no query, no fragment."""

    value: str

    @classmethod
    def parse(cls, raw: str, allowed_hosts: frozenset[str] | set[str] = frozenset()) -> RepoUrl:
        text = raw.strip()
        if not text:
            raise ValueError("enter the repository's https:// URL")
        if len(text) > MAX_URL_LENGTH:
            raise ValueError("the URL is too long")
        if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
            raise ValueError("the URL must not contain spaces or control characters")
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise ValueError("this is not a valid URL") from None
        if parts.scheme != "https" or not text.startswith("https://"):
            raise ValueError("only https:// repository URLs are accepted")
        if "@" in parts.netloc:
            raise ValueError("put no user name or token in the URL; save your token in Settings")
        host = (parts.hostname or "").lower()
        if not _valid_hostname(host):
            raise ValueError("the URL has no valid host name")
        if port is not None and not 0 < port < 65536:
            raise ValueError("the port is out of range")
        if parts.query or parts.fragment or "?" in text or "#" in text:
            raise ValueError("the URL must not have a query (?...) or fragment (#...)")
        if not parts.path or parts.path == "/" or not _URL_PATH.match(parts.path):
            raise ValueError("the URL needs a repository path such as /group/project.git")
        if any(seg in (".", "..") for seg in parts.path.split("/")):
            raise ValueError("the URL path must not contain . or .. segments")
        if allowed_hosts and host not in {h.lower() for h in allowed_hosts}:
            raise ValueError(f"builds may only clone from: {', '.join(sorted(allowed_hosts))}")
        return cls(text)

    def __str__(self) -> str:
        return self.value


def _check_ref_format(ref: str) -> str | None:
    """The rules of ``git check-ref-format --allow-onelevel``; returns a message or None."""
    if ref.startswith("-"):
        return "a ref must not start with '-'"
    if ref == "@" or "@{" in ref:
        return "a ref must not be '@' or contain '@{'"
    if not ref.isascii():
        return "a ref must be plain ASCII"
    if any(ch in _REF_FORBIDDEN_CHARS for ch in ref):
        return ("a ref must not contain spaces, control characters or any of "
                "~ ^ : ? * [ \\ $ ` ; | & < > ( ) ' \" !")
    if ".." in ref:
        return "a ref must not contain '..'"
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        return "a ref must not start or end with '/' or contain '//'"
    if ref.endswith("."):
        return "a ref must not end with '.'"
    for component in ref.split("/"):
        if component.startswith("."):
            return "no part of a ref may start with '.'"
        if component.endswith(".lock"):
            return "no part of a ref may end with '.lock'"
    return None


@dataclass(frozen=True)
class GitRef:
    """A branch, a tag, or a 7-64 digit hex commit id (64: a SHA-256 repository)."""

    value: str

    @classmethod
    def parse(cls, raw: str) -> GitRef:
        text = raw.strip()
        if not text:
            raise ValueError("enter a branch, tag or commit")
        if len(text) > MAX_REF_LENGTH:
            raise ValueError("the ref is too long")
        if _HEX_COMMIT.fullmatch(text):
            return cls(text)
        problem = _check_ref_format(text)
        if problem:
            raise ValueError(problem)
        return cls(text)

    @property
    def is_commit(self) -> bool:
        return bool(_HEX_COMMIT.fullmatch(self.value))

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Machine:
    """A Yocto MACHINE name such as ``qemux86-64`` or ``imx8mm-lpddr4-evk``."""

    value: str

    @classmethod
    def parse(cls, raw: str) -> Machine:
        text = raw.strip()
        if not _MACHINE.match(text):
            raise ValueError(
                "MACHINE is letters, digits and . _ + - (up to 64), starting with a letter or digit"
            )
        return cls(text)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Target:
    """A bitbake target such as ``core-image-minimal`` or ``mc:second:core-image-base``."""

    value: str

    @classmethod
    def parse(cls, raw: str) -> Target:
        text = raw.strip()
        if not _TARGET.match(text):
            raise ValueError(
                "the target is letters, digits and . _ + : - (up to 128), starting with a letter or digit"
            )
        return cls(text)

    def __str__(self) -> str:
        return self.value


_KAS_SEGMENT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
_KAS_SUFFIXES = (".yml", ".yaml", ".json")
MAX_KAS_FILE_LENGTH = 200


@dataclass(frozen=True)
class KasFile:
    """A kas configuration file inside the repository, such as ``kas/qemu.yml``.

    A relative path of plain segments (``[A-Za-z0-9._-]``, none starting with ``.`` or ``-``,
    so no ``..``), ending in .yml, .yaml or .json, at most 200 characters: joined to the
    clone's directory it always stays inside it.
    """

    value: str

    @classmethod
    def parse(cls, raw: str) -> KasFile:
        text = raw.strip()
        if not text:
            raise ValueError("enter the kas file's path in the repository, such as kas/qemu.yml")
        if len(text) > MAX_KAS_FILE_LENGTH:
            raise ValueError(f"the kas file path is longer than {MAX_KAS_FILE_LENGTH} characters")
        if not text.endswith(_KAS_SUFFIXES):
            raise ValueError("the kas file must end in .yml, .yaml or .json")
        if not all(_KAS_SEGMENT.match(segment) for segment in text.split("/")):
            raise ValueError("the kas file is a relative path of letters, digits and . _ - "
                             "(no part may start with '.' or '-')")
        return cls(text)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class BuildRequest:
    """A complete, validated build request."""

    repo_url: RepoUrl
    ref: GitRef
    machine: Machine
    target: Target
    kas_file: KasFile | None = None

    @classmethod
    def parse(
        cls,
        repo_url: str,
        ref: str,
        machine: str,
        target: str,
        allowed_hosts: frozenset[str] | set[str] = frozenset(),
        kas_file: str | None = None,
    ) -> BuildRequest:
        """Validate every field; raises InvalidRequest naming each bad field at once.

        An empty or missing ``kas_file`` means none (the runner looks for kas.yml itself)."""
        errors: dict[str, str] = {}
        values: dict[str, object] = {}
        parsers = {
            "repo_url": lambda: RepoUrl.parse(repo_url, allowed_hosts),
            "ref": lambda: GitRef.parse(ref),
            "machine": lambda: Machine.parse(machine),
            "target": lambda: Target.parse(target),
        }
        if kas_file and kas_file.strip():
            parsers["kas_file"] = lambda: KasFile.parse(kas_file)
        for name, parse in parsers.items():
            try:
                values[name] = parse()
            except ValueError as exc:
                errors[name] = str(exc)
        if errors:
            raise InvalidRequest(errors)
        return cls(**values)  # type: ignore[arg-type]
