"""Webhook notifications: a JSON POST to each URL in AUTO_BUILD_WEBHOOK_URLS when a build ends.

Configured from the service's environment (read at the first status change; restart the
service after changing it):

- ``AUTO_BUILD_WEBHOOK_URLS``: comma-separated http(s) URLs; empty or unset: nothing is sent;
- ``AUTO_BUILD_WEBHOOK_EVENTS``: ``terminal`` (default: SUCCESS, FAILED, CANCELLED) or ``all``;
- ``AUTO_BUILD_BASE_URL``: e.g. ``https://autobuild.example.com``, to put the job page's link
  in the payload.

Each POST has a 5 s timeout and is tried 3 times (pauses of 2 s, then 4 s), in a background
thread: the service never waits for a webhook.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from autobuild.adapters.plugins import hookimpl
from autobuild.domain.jobs import Job, JobStatus

from ._worker import BackgroundSender

log = logging.getLogger(__name__)

TIMEOUT = 5.0


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def job_payload(job: Job) -> dict[str, Any]:
    """The job as the webhook and the API describe it."""
    return {
        "id": job.id, "owner": job.owner, "repo_url": job.repo_url, "ref": job.ref,
        "commit": job.commit, "kas_file": job.kas_file,
        "machine": job.machine, "target": job.target, "status": str(job.status),
        "created_at": _iso(job.created_at), "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at), "exit_code": job.exit_code,
        "reason": job.reason, "cancel_requested_by": job.cancel_requested_by,
    }


def job_url(base_url: str | None, job: Job) -> str | None:
    return f"{base_url.rstrip('/')}/jobs/{job.id}" if base_url else None


@dataclass(frozen=True)
class WebhookConfig:
    urls: tuple[str, ...] = ()
    all_events: bool = False
    base_url: str | None = None
    timeout: float = TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookConfig:
        env = os.environ if env is None else env
        urls = []
        for url in env.get("AUTO_BUILD_WEBHOOK_URLS", "").split(","):
            url = url.strip()
            if not url:
                continue
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                log.warning("AUTO_BUILD_WEBHOOK_URLS: %r is not an http(s) URL; ignored", url)
                continue
            urls.append(url)
        events = env.get("AUTO_BUILD_WEBHOOK_EVENTS", "terminal").strip().lower()
        return cls(urls=tuple(urls), all_events=events == "all",
                   base_url=env.get("AUTO_BUILD_BASE_URL", "").strip() or None)


class WebhookNotifier:
    """The plugin, as an object: tests register one with their own config and sender."""

    def __init__(self, config: WebhookConfig, sender: BackgroundSender | None = None) -> None:
        self.config = config
        self.sender = sender or BackgroundSender("autobuild-webhook")

    @hookimpl
    def autobuild_job_status_changed(self, job: Job, old: JobStatus, new: JobStatus) -> None:
        if not self.config.urls or not (self.config.all_events or new.is_terminal):
            return
        body = json.dumps({"job": job_payload(job), "old": str(old), "new": str(new),
                           "url": job_url(self.config.base_url, job)}).encode()
        for url in self.config.urls:
            self.sender.submit(f"job {job.id} {old} -> {new} to {url}",
                               lambda url=url: self._post(url, body))

    def _post(self, url: str, body: bytes) -> None:
        request = urllib.request.Request(
            url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "autobuild-webhook"})
        # urlopen raises HTTPError for 4xx/5xx answers: those are retried too.
        with urllib.request.urlopen(request, timeout=self.config.timeout) as response:
            response.read(64 * 1024)


_notifier: WebhookNotifier | None = None
_lock = threading.Lock()


def _default() -> WebhookNotifier:
    global _notifier
    with _lock:
        if _notifier is None:
            _notifier = WebhookNotifier(WebhookConfig.from_env())
        return _notifier


@hookimpl
def autobuild_job_status_changed(job: Job, old: JobStatus, new: JobStatus) -> None:
    _default().autobuild_job_status_changed(job, old, new)
