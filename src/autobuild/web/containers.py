"""The dependency-injector container: which adapter implements each port, built from Settings."""

from __future__ import annotations

from dependency_injector import containers, providers

import threading

from ..adapters.clock import SystemClock
from ..adapters.crash_points import CrashAt
from ..adapters.disk_space import StatvfsDiskSpace
from ..adapters.job_files import JobDirectory
from ..adapters.pam_auth import PamAuthenticator
from ..adapters.plugins import PluginHooks, build_plugin_manager
from ..adapters.pushing_events import PushingJobEvents
from ..adapters.sqlite_jobs import SqliteJobRepository
from ..adapters.sqlite_sessions import SqliteSessionStore
from ..adapters.sqlite_api_tokens import SqliteApiTokenStore
from ..adapters.local_runner import LocalBuildRunner
from ..adapters.slurm_runner import SlurmBuildRunner
from ..adapters.inotify_log_watch import InotifyLogWatches
from ..adapters.log_tailer import LogTailers
from ..adapters.token_store import RunnerTokenStore
from ..adapters.unix_groups import GroupAdministrators, members_for
from ..config import Settings
from ..domain.api_tokens import ApiTokens, TokenAdministration
from ..domain.disk import DiskGuard
from ..domain.insights import Insights
from ..domain.commands import JobCommands
from ..domain.comparison import BuildComparisons
from ..domain.limits import StreamSlots
from ..domain.logins import LoginThrottle
from ..domain.permissions import Permissions
from ..domain.queries import DEFAULT_LOG_CHUNK, JobQueries
from ..domain.sessions import Sessions
from ..domain.suggestions import BuildSuggestions
from ..domain.supervision import Supervisor
from ..scheduler import Scheduler
from .login_pacing import LoginPacer, SystemTimer


class Container(containers.DeclarativeContainer):
    """One instance per app. Providers are thread-safe singletons (handlers run in a pool),
    created on first use, so building the container connects to nothing."""

    settings = providers.Dependency(instance_of=Settings)

    jobs = providers.ThreadSafeSingleton(SqliteJobRepository, settings.provided.db_path)
    files = providers.ThreadSafeSingleton(JobDirectory, settings.provided.jobs_root)
    checkpoints = providers.ThreadSafeSingleton(CrashAt, settings.provided.crash_at)
    # Where builds run (AUTO_BUILD_EXECUTOR): on this host, or handed to a Slurm cluster.
    runner = providers.Selector(
        settings.provided.executor,
        local=providers.ThreadSafeSingleton(
            LocalBuildRunner,
            settings.provided.runner_path,
            settings.provided.jobs_root,
            settings.provided.launch_dir,
            settings.provided.use_sudo,
            checkpoints,
        ),
        slurm=providers.ThreadSafeSingleton(
            SlurmBuildRunner,
            settings.provided.runner_path,
            settings.provided.jobs_root,
            settings.provided.launch_dir,
            settings.provided.use_sudo,
            checkpoints,
            cluster=settings.provided.cluster_request.call(),
        ),
    )
    # inotify sees writes made on this host only: builds on cluster nodes write the logs on
    # shared storage (NFS), so there each job's tailer looks (stat) 4 times a second instead.
    log_watches = providers.Selector(
        settings.provided.executor,
        local=providers.ThreadSafeSingleton(InotifyLogWatches, settings.provided.jobs_root),
        slurm=providers.Object(None),
    )
    tokens = providers.ThreadSafeSingleton(
        RunnerTokenStore, settings.provided.runner_path, settings.provided.use_sudo
    )
    auth = providers.ThreadSafeSingleton(
        PamAuthenticator, settings.provided.runner_path, settings.provided.use_sudo
    )
    plugin_manager = providers.ThreadSafeSingleton(
        build_plugin_manager, settings.provided.disabled_plugins
    )
    events = providers.ThreadSafeSingleton(PluginHooks, plugin_manager)
    clock = providers.ThreadSafeSingleton(SystemClock)
    admins = providers.ThreadSafeSingleton(GroupAdministrators, settings.provided.admin_group)
    disk_space = providers.ThreadSafeSingleton(StatvfsDiskSpace)
    disk_guard = providers.ThreadSafeSingleton(
        DiskGuard, disk_space, settings.provided.jobs_root, settings.provided.min_free_gb
    )

    # One lock for every change of a job, shared by request threads and the scheduler.
    job_lock = providers.ThreadSafeSingleton(threading.RLock)
    permissions = providers.ThreadSafeSingleton(Permissions, admins)
    queries = providers.ThreadSafeSingleton(JobQueries, jobs, files)
    suggestions = providers.ThreadSafeSingleton(
        BuildSuggestions, jobs, permissions, settings.provided.allowed_git_hosts
    )
    insights = providers.ThreadSafeSingleton(Insights, jobs, queries)
    comparisons = providers.ThreadSafeSingleton(BuildComparisons, jobs, queries, files)
    log_tailers = providers.ThreadSafeSingleton(
        LogTailers, queries.provided.read_log, queries.provided.get, DEFAULT_LOG_CHUNK,
        log_watches, queries.provided.track_progress,
    )
    # Status changes reach the plugins, then wake the job's tailer (pushed to its viewers).
    job_events = providers.ThreadSafeSingleton(PushingJobEvents, events, log_tailers)
    commands = providers.ThreadSafeSingleton(
        JobCommands, jobs, runner, job_events, clock, permissions, job_lock,
        settings.provided.allowed_git_hosts, checkpoints,
        max_queued=settings.provided.max_queued_per_user,
    )
    supervisor = providers.ThreadSafeSingleton(
        Supervisor, jobs, runner, job_events, clock, job_lock, settings.provided.max_running,
        build_settings=settings.provided.build_settings.call(),
        disk_guard=disk_guard, checkpoints=checkpoints, provenance=queries.provided.provenance,
    )
    scheduler = providers.ThreadSafeSingleton(
        Scheduler, supervisor, runner, settings.provided.poll_interval
    )

    # Sessions, logins and per-user limits.
    session_store = providers.ThreadSafeSingleton(SqliteSessionStore, settings.provided.db_path)
    members = providers.ThreadSafeSingleton(
        members_for, settings.provided.users_group, settings.provided.use_sudo
    )
    sessions = providers.ThreadSafeSingleton(
        Sessions, session_store, members, clock, settings.provided.session_lifetime
    )
    # Personal API tokens: scripts call the API as an engineer (Authorization: Bearer).
    api_token_store = providers.ThreadSafeSingleton(SqliteApiTokenStore, settings.provided.db_path)
    api_tokens = providers.ThreadSafeSingleton(ApiTokens, api_token_store, members, clock)
    token_admin = providers.ThreadSafeSingleton(
        TokenAdministration, api_token_store, admins, clock
    )
    login_throttle = providers.ThreadSafeSingleton(
        LoginThrottle, clock, settings.provided.login_failures
    )
    timer = providers.ThreadSafeSingleton(SystemTimer)
    login_pacer = providers.ThreadSafeSingleton(
        LoginPacer, settings.provided.max_login_checks, settings.provided.login_failure_seconds,
        timer,
    )
    stream_slots = providers.ThreadSafeSingleton(
        StreamSlots, settings.provided.max_streams_per_user
    )
