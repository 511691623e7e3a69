"""E-mail notifications: the owner of a build gets a mail when it ends.

Configured from the service's environment (read at the first status change; restart the
service after changing it). Off unless ``AUTO_BUILD_SMTP_HOST`` is set:

- ``AUTO_BUILD_SMTP_HOST``, ``AUTO_BUILD_SMTP_PORT`` (default 25, or 587 with STARTTLS);
- ``AUTO_BUILD_SMTP_STARTTLS=1`` to encrypt; ``AUTO_BUILD_SMTP_USER`` and
  ``AUTO_BUILD_SMTP_PASSWORD`` to log in (only over STARTTLS);
- ``AUTO_BUILD_SMTP_FROM`` (default ``autobuild@<AUTO_BUILD_MAIL_DOMAIN>``);
- ``AUTO_BUILD_MAIL_DOMAIN``: mail goes to ``<owner>@<domain>`` (required);
- ``AUTO_BUILD_BASE_URL``: puts the job page's link in the mail.

Mail is sent from a background thread with a 5 s timeout and 3 attempts, like the webhook.
"""

from __future__ import annotations

import logging
import os
import smtplib
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage

from autobuild.adapters.plugins import hookimpl
from autobuild.domain.jobs import Job, JobStatus

from ._worker import BackgroundSender
from .webhook import job_url

log = logging.getLogger(__name__)

TIMEOUT = 5.0


@dataclass(frozen=True)
class SmtpConfig:
    host: str | None = None
    port: int = 25
    sender: str = ""
    mail_domain: str | None = None
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    base_url: str | None = None
    timeout: float = TIMEOUT

    @property
    def enabled(self) -> bool:
        return bool(self.host and self.mail_domain)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SmtpConfig:
        env = os.environ if env is None else env
        host = env.get("AUTO_BUILD_SMTP_HOST", "").strip() or None
        starttls = env.get("AUTO_BUILD_SMTP_STARTTLS", "").strip().lower() in {"1", "true", "yes", "on"}
        domain = env.get("AUTO_BUILD_MAIL_DOMAIN", "").strip().lstrip("@") or None
        if host and not domain:
            log.warning("AUTO_BUILD_SMTP_HOST is set but AUTO_BUILD_MAIL_DOMAIN is not: "
                        "no build mail is sent (it goes to <owner>@<AUTO_BUILD_MAIL_DOMAIN>)")
        port_text = env.get("AUTO_BUILD_SMTP_PORT", "").strip()
        try:
            port = int(port_text) if port_text else (587 if starttls else 25)
        except ValueError:
            log.warning("AUTO_BUILD_SMTP_PORT=%r is not a number; using 25", port_text)
            port = 25
        return cls(host=host, port=port, starttls=starttls, mail_domain=domain,
                   sender=env.get("AUTO_BUILD_SMTP_FROM", "").strip() or f"autobuild@{domain}",
                   user=env.get("AUTO_BUILD_SMTP_USER", "").strip() or None,
                   password=env.get("AUTO_BUILD_SMTP_PASSWORD") or None,
                   base_url=env.get("AUTO_BUILD_BASE_URL", "").strip() or None)


def build_message(config: SmtpConfig, job: Job) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.sender
    message["To"] = f"{job.owner}@{config.mail_domain}"
    message["Subject"] = f"[Autobuild] #{job.id} {job.target} ({job.machine}): {job.status}"
    lines = [f"Build #{job.id} of {job.target} for MACHINE {job.machine} ended: {job.status}."]
    if job.reason:
        lines.append(f"Reason: {job.reason}")
    lines += ["", f"Repository: {job.repo_url}", f"Ref: {job.ref}"]
    if job.commit:  # what the ref resolved to: the build can be traced (and rebuilt) exactly
        lines.append(f"Commit: {job.commit}")
    if job.kas_file:
        lines.append(f"kas file: {job.kas_file}")
    if job.exit_code is not None:
        lines.append(f"Exit code: {job.exit_code}")
    if url := job_url(config.base_url, job):
        lines += ["", f"Log and images: {url}"]
    message.set_content("\n".join(lines) + "\n")
    return message


class EmailNotifier:
    """The plugin, as an object: tests register one with their own config and sender."""

    def __init__(self, config: SmtpConfig, sender: BackgroundSender | None = None) -> None:
        self.config = config
        self.sender = sender or BackgroundSender("autobuild-email")

    @hookimpl
    def autobuild_job_status_changed(self, job: Job, old: JobStatus, new: JobStatus) -> None:
        if not self.config.enabled or not new.is_terminal:
            return
        message = build_message(self.config, job)
        self.sender.submit(f"mail about job {job.id} to {message['To']}",
                           lambda: self._send(message))

    def _send(self, message: EmailMessage) -> None:
        config = self.config
        assert config.host is not None
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
                if config.user:
                    smtp.login(config.user, config.password or "")
            smtp.send_message(message)


_notifier: EmailNotifier | None = None
_lock = threading.Lock()


def _default() -> EmailNotifier:
    global _notifier
    with _lock:
        if _notifier is None:
            _notifier = EmailNotifier(SmtpConfig.from_env())
        return _notifier


@hookimpl
def autobuild_job_status_changed(job: Job, old: JobStatus, new: JobStatus) -> None:
    _default().autobuild_job_status_changed(job, old, new)
