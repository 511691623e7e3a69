"""Templates, the filters they use, and the JSON shape of a job."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from starlette.responses import Response

from .. import __version__
from ..domain.artifacts import ArtifactInfo
from ..domain.buildstats import TaskTiming, TimingDifference, TimingView
from ..domain.failures import FailureSummary
from ..domain.jobs import Job, JobStatus
from ..domain.manifests import PackageCount
from ..domain.progress import Progress
from ..domain.comparison import MAX_PACKAGES_LISTED, Changed, Comparison, PackageChange
from ..domain.provenance import Provenance, short_commit
from .security import csrf_token, current_user, pop_flashes
from .timing_chart import timing_chart

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 UTC with a trailing Z (what the API and the page's script read)."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def human_size(size: int) -> str:
    """1536 -> "1.5 KiB"; bytes are shown whole."""
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def human_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    total = int(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def repo_name(url: str) -> str:
    """``group/project`` from an https clone URL, for narrow table cells."""
    path = url.split("://", 1)[-1].split("/", 1)[-1]
    return path.removesuffix(".git") or url


def job_json(job: Job, now: datetime, user: str | None = None,
             can_cancel: bool | None = None) -> dict[str, Any]:
    """A job as the API returns it; ``can_cancel`` (Permissions.may_cancel) defaults to the
    owner rule."""
    return {
        "id": job.id,
        "owner": job.owner,
        "repo_url": job.repo_url,
        "ref": job.ref,
        "machine": job.machine,
        "target": job.target,
        "kas_file": job.kas_file,
        "status": str(job.status),
        "created_at": iso(job.created_at),
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "exit_code": job.exit_code,
        "reason": job.reason,
        "cancel_requested_by": job.cancel_requested_by,
        "waiting_reason": job.waiting_reason,
        "node": job.node,
        "commit": job.commit,
        "commit_short": None if job.commit is None else short_commit(job.commit),
        "purged_at": iso(job.purged_at),
        "duration_seconds": job.duration_seconds(now),
        "can_cancel": (user == job.owner and not job.is_terminal) if can_cancel is None
        else can_cancel,
    }


def failure_json(summary: FailureSummary) -> dict[str, Any] | None:
    """The job page's "Why it failed" as JSON; None when the log says nothing recognisable."""
    if summary.is_empty:
        return None
    return {
        "disk_problem": summary.disk_problem,
        "git_problem": summary.git_problem,
        "tasks": [{"recipe": t.recipe, "task": t.task, "messages": list(t.messages),
                   "log_name": t.log_name, "log_tail": t.log_tail} for t in summary.tasks],
        "more_tasks": summary.more_tasks,
        "incomplete": summary.incomplete,
        "read_bytes": summary.read_bytes,
        "log_bytes": summary.log_bytes,
    }


def status_json(job: Job) -> dict[str, Any]:
    """The payload of the SSE ``status`` event."""
    return {
        "status": str(job.status),
        "exit_code": job.exit_code,
        "reason": job.reason,
        "started_at": iso(job.started_at),
        "finished_at": iso(job.finished_at),
        "waiting_reason": job.waiting_reason if job.status is JobStatus.PENDING else None,
        "node": job.node,
    }


def progress_json(progress: Progress) -> dict[str, Any]:
    """A build's progress as the API and the SSE ``progress`` event give it."""
    return {
        "phase": str(progress.phase),
        "label": progress.label,
        "percent": progress.percent,
        "setscene_done": progress.setscene_done,
        "setscene_total": progress.setscene_total,
        "tasks_done": progress.tasks_done,
        "tasks_total": progress.tasks_total,
        "current": progress.current,
    }


def artifact_json(info: ArtifactInfo) -> dict[str, Any]:
    return {"name": info.name, "size": info.size, "mtime": iso(info.mtime), "sha256": info.sha256}


def packages_json(packages: PackageCount | None) -> dict[str, Any] | None:
    """The package count of the build's image manifest; None when it collected none."""
    return None if packages is None else {"count": packages.count, "manifest": packages.manifest}


def provenance_json(built: Provenance) -> dict[str, Any] | None:
    """What the build really built (commit, Build Configuration, layers); None when its log
    says none of it (yet)."""
    if built.is_empty:
        return None
    return {"commit": built.commit, "variables": dict(built.variables),
            "layers": [{"name": layer.name, "branch": layer.branch, "revision": layer.revision}
                       for layer in built.layers],
            "kas_file": built.kas_file,
            "kas_repos": [{"name": repo.name, "commit": repo.commit, "url": repo.url}
                          for repo in built.kas_repos]}


def _task_json(t: TaskTiming) -> dict[str, Any]:
    return {"recipe": t.recipe, "task": t.task, "version": t.version, "start": t.start,
            "end": t.end, "elapsed": t.elapsed, "cpu": t.cpu, "failed": t.failed}


def timing_json(view: TimingView | None) -> dict[str, Any]:
    """GET /api/jobs/{id}/timing: the job page's "Where the time went" as JSON."""
    if view is None or view.problem:
        return {"available": False, "problem": None if view is None else view.problem,
                "wall_seconds": None, "cpu_seconds": None, "task_count": 0, "failed_tasks": 0,
                "slowest_recipes": [], "slowest_tasks": [], "critical_path": [],
                "critical_path_seconds": None, "critical_path_steps": 0}
    return {"available": True, "problem": None, "wall_seconds": view.wall_seconds,
            "cpu_seconds": view.cpu_seconds, "task_count": view.task_count,
            "failed_tasks": view.failed_tasks,
            "slowest_recipes": [{"recipe": r.recipe, "elapsed": r.elapsed, "cpu": r.cpu,
                                 "tasks": r.tasks} for r in view.slowest_recipes],
            "slowest_tasks": [_task_json(t) for t in view.slowest_tasks],
            "critical_path": [_task_json(t) for t in view.critical_path],
            "critical_path_seconds": view.critical_seconds,
            "critical_path_steps": view.critical_steps}


def timing_differences_json(diffs: list[TimingDifference]) -> list[dict[str, Any]]:
    """buildstats.timing_differences as JSON, for the comparison of two builds: elapsed
    seconds before and after (null: the task did not run in that build) and the change."""
    return [{"recipe": d.recipe, "task": d.task, "before": d.before, "after": d.after,
             "delta": d.delta} for d in diffs]


_CODE_SPAN = re.compile(r"`([^`\n]+)`")


def code_spans(text: str) -> Markup:
    """The API docs' descriptions (Markdown, as OpenAPI has them): escaped, with each
    `code span` as <code>; nothing else of Markdown is used there."""
    return Markup(_CODE_SPAN.sub(r"<code>\1</code>", str(escape(text))))


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES_DIR)
    env = templates.env
    env.filters.update(
        filesize=human_size, duration=human_duration, when=when, iso=iso, repo_name=repo_name,
        signed_size=signed_size, short_commit=short_commit, code_spans=code_spans,
    )
    env.globals["version"] = __version__
    env.globals["timing_chart"] = timing_chart
    env.trim_blocks = True
    env.lstrip_blocks = True
    return templates


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    status_code: int = 200,
    anonymous: bool = False,
) -> Response:
    """Render ``name`` with what every page needs: the user, the CSRF token, pending flashes
    (``anonymous``: none of them, for pages that must not touch the session store)."""
    templates: Jinja2Templates = request.app.state.templates
    if "session" in request.scope and not anonymous:
        page = {
            "user": current_user(request),
            "csrf_token": csrf_token(request),
            "flashes": pop_flashes(request),
        }
    else:  # the 500 page is rendered outside the session middleware
        page = {"user": None, "csrf_token": "", "flashes": []}
    page.update(context or {})
    response = templates.TemplateResponse(request, name, page, status_code=status_code)
    if page["flashes"]:  # shown once: no copy in the browser's cache for Back to show again
        response.headers["Cache-Control"] = "no-store"
    return response


# --- comparison of two builds (issue 12, point 4) ----------------------------------------------

def _changed_json(change: Changed) -> dict[str, Any]:
    return {"name": change.name, "before": change.before, "after": change.after}


def _package_json(change: PackageChange) -> dict[str, Any]:
    return {"name": change.name, "before": change.before, "after": change.after,
            "before_kib": change.before_kib, "after_kib": change.after_kib,
            "kib_delta": change.kib_delta}


def comparison_json(result: Comparison, a: Job, b: Job, now: datetime,
                    user: str | None = None) -> dict[str, Any]:
    """GET /api/jobs/compare: build ``a`` against build ``b`` (before = a, after = b)."""
    return {
        "a": job_json(a, now, user), "b": job_json(b, now, user),
        "identical": result.is_empty,
        "different": [_changed_json(c) for c in result.different],
        "commit": _changed_json(result.commit) if result.commit else None,
        "variables": [_changed_json(c) for c in result.variables],
        "layers": [_changed_json(c) for c in result.layers],
        "artifacts": [{"name": c.name, "before": c.before, "after": c.after, "delta": c.delta}
                      for c in result.artifacts[:MAX_PACKAGES_LISTED]],
        "artifacts_total": len(result.artifacts),
        "artifacts_unlisted": {"before": result.artifacts_unlisted[0],
                               "after": result.artifacts_unlisted[1]},
        "image_size_kib": None if result.image_size is None else {
            "before": result.image_size.before, "after": result.image_size.after,
            "delta": result.image_size.delta},
        "packages": {
            "compared": result.packages_compared, "sizes_compared": result.sizes_compared,
            "added": [_package_json(c) for c in result.added[:MAX_PACKAGES_LISTED]],
            "removed": [_package_json(c) for c in result.removed[:MAX_PACKAGES_LISTED]],
            "changed": [_package_json(c) for c in result.changed[:MAX_PACKAGES_LISTED]],
            "added_total": len(result.added), "removed_total": len(result.removed),
            "changed_total": len(result.changed)},
        "timing": None if result.timing is None else timing_differences_json(list(result.timing)),
        "timing_elapsed": None if result.timing_wall is None else {
            "before": result.timing_wall[0], "after": result.timing_wall[1],
            "delta": round(result.timing_wall[1] - result.timing_wall[0], 2)},
    }


def signed_size(delta: int | None, unit: str = "B") -> str:
    """+1.5 KiB / -200 B / 0 B (``unit`` "KiB": the value is in KiB already)."""
    if delta is None:
        return "—"
    sign = "+" if delta > 0 else "-" if delta < 0 else ""
    size = abs(delta) * (1024 if unit == "KiB" else 1)
    return f"{sign}{human_size(size)}"
