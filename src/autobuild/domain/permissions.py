"""Who may do what to a job."""

from __future__ import annotations

from .jobs import Job
from .ports import Administrators


class NotAllowed(Exception):
    """The user may not do this to this job; the message is fit to show."""


class Permissions:
    """Only the owner of a build, or an administrator, may stop it; anyone signed in may
    read every job and rebuild it as their own."""

    def __init__(self, admins: Administrators | None = None) -> None:
        self._admins = admins

    def may_see(self, owner: str, user: str | None) -> bool:
        """Whether ``user`` may see a build of ``owner``'s (its page, log, artifacts, its
        parameters as a suggestion, a comparison with it)."""
        return bool(user)

    def may_read(self, job: Job, user: str | None) -> bool:
        """Whether ``user`` may see ``job``: the rule of may_see."""
        return self.may_see(job.owner, user)

    def check_read(self, job: Job, user: str | None) -> None:
        if not self.may_read(job, user):
            raise NotAllowed(f"you may not see build #{job.id}")

    def may_stop(self, job: Job, user: str | None) -> bool:
        if not user:
            return False
        return job.owner == user or (self._admins is not None and self._admins.is_admin(user))

    def may_cancel(self, job: Job, user: str | None) -> bool:
        """Whether ``user`` may cancel ``job`` now: it has not ended, and ``user`` owns it or
        is an administrator."""
        return not job.is_terminal and self.may_stop(job, user)

    def check_stop(self, job: Job, user: str) -> None:
        if not self.may_stop(job, user):
            raise NotAllowed("only the owner of a build can cancel it")
