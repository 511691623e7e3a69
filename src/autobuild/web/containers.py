"""The dependency-injector container: which adapter implements each port, built from Settings."""

from __future__ import annotations

from dependency_injector import containers, providers

from ..adapters.clock import SystemClock
from ..adapters.disk_space import StatvfsDiskSpace
from ..adapters.job_files import JobDirectory
from ..adapters.pam_auth import PamAuthenticator
from ..adapters.plugins import PluginHooks, build_plugin_manager
from ..adapters.sqlite_jobs import SqliteJobRepository
from ..adapters.sudo_runner import SudoBuildRunner
from ..adapters.token_store import RunnerTokenStore
from ..adapters.unix_groups import GroupAdministrators
from ..config import Settings
from ..domain.disk import DiskGuard
from ..domain.services import JobService
from ..scheduler import Scheduler


class Container(containers.DeclarativeContainer):
    """One instance per app. Providers are thread-safe singletons (handlers run in a pool),
    created on first use, so building the container connects to nothing."""

    settings = providers.Dependency(instance_of=Settings)

    jobs = providers.ThreadSafeSingleton(SqliteJobRepository, settings.provided.db_path)
    files = providers.ThreadSafeSingleton(JobDirectory, settings.provided.jobs_root)
    runner = providers.ThreadSafeSingleton(
        SudoBuildRunner,
        settings.provided.runner_path,
        settings.provided.jobs_root,
        settings.provided.use_sudo,
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

    job_service = providers.ThreadSafeSingleton(
        JobService,
        jobs,
        files,
        runner,
        events,
        clock,
        settings.provided.max_running,
        settings.provided.allowed_git_hosts,
        admins=admins,
        disk_guard=disk_guard,
        build_settings=settings.provided.build_settings.call(),
    )
    scheduler = providers.ThreadSafeSingleton(
        Scheduler, job_service, settings.provided.poll_interval
    )
