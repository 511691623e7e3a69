"""The `autobuild` command: `autobuild serve` runs the web service."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from pathlib import Path

from .config import ConfigError, Settings, read_env_file

DEFAULT_ENV_FILE = Path("/etc/autobuild/autobuild.env")


def _serve(settings: Settings) -> int:
    import uvicorn

    from .web.app import create_app

    app = create_app(settings)
    # One worker: the scheduler lives in this process and must be the only one. nginx (on this
    # host) replaces X-Forwarded-For/-Proto with the real client address and scheme; they are
    # trusted from 127.0.0.1 only, so nobody else can claim another address or https.
    # uvloop and httptools: what serves hundreds of live logs at once (bench/b1_latency).
    uvicorn.run(app, host=settings.host, port=settings.port, workers=1, proxy_headers=True,
                forwarded_allow_ips="127.0.0.1", server_header=False, log_level="info",
                loop="uvloop", http="httptools")
    return 0


def _gc(settings: Settings, dry_run: bool) -> int:
    """Remove the logs and artifacts of jobs that ended more than the retention ago."""
    from .adapters.clock import SystemClock
    from .adapters.job_files import JobDirectory
    from .adapters.sqlite_jobs import SqliteJobRepository
    from .adapters.local_runner import LocalBuildRunner
    from .domain.retention import Retention
    from .web.rendering import human_size, when

    retention = Retention(
        SqliteJobRepository(settings.db_path), JobDirectory(settings.jobs_root),
        LocalBuildRunner(settings.runner_path, settings.jobs_root, settings.launch_dir,
                         settings.use_sudo),
        SystemClock(), settings.retention_days)
    try:
        results = retention.run(dry_run=dry_run)
    except RuntimeError as exc:  # the database cannot be opened (purges never raise)
        print(f"autobuild gc: {exc}", file=sys.stderr)
        return 1
    verb = "would remove" if dry_run else "removed"
    freed = failed = 0
    for result in results:
        job = result.job
        line = (f"job #{job.id} of {job.owner} ({job.status}, finished "
                f"{when(job.finished_at)}): {human_size(result.bytes_used)}")
        if result.purged:
            freed += result.bytes_used
            print(f"{verb} {line}")
        else:
            failed += 1
            print(f"could not remove {line}: {result.error}", file=sys.stderr)
    kept = f"kept {settings.retention_days} days"
    if not results:
        print(f"nothing to remove: no build ended more than {settings.retention_days} days ago "
              "still has its files")
    elif dry_run:
        print(f"{len(results)} job(s) expired ({kept}); {human_size(freed)} would be freed")
    else:
        print(f"{len(results) - failed} job(s) removed ({kept}); {human_size(freed)} freed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autobuild", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web service (settings from AUTO_BUILD_* variables)")
    check = sub.add_parser("check", help="diagnose this installation, with the fix for each problem")
    check.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE,
                       help=f"the service's environment file (default {DEFAULT_ENV_FILE})")
    gc = sub.add_parser("gc", help="remove logs and artifacts older than AUTO_BUILD_RETENTION_DAYS")
    gc.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    upgrade = sub.add_parser("upgrade-layout", help="as root, with the service stopped: move old "
                             "job directories (jobs/<id>) to jobs/<owner>/<id> under the new rules")
    upgrade.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE,
                         help=f"the service's environment file (default {DEFAULT_ENV_FILE})")
    upgrade.add_argument("--check", action="store_true",
                         help="only list what would change (exit 1 when something would)")
    rotate = sub.add_parser("rotate-key", help="as root: write a new session signing key to "
                            "/etc/autobuild/secret_key and restart the service (everyone signs in again)")
    rotate.add_argument("--no-restart", action="store_true", help="only write the new key")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            return _serve(Settings.from_env())
        if args.command == "gc":
            return _gc(Settings.from_env(), args.dry_run)
        if args.command == "upgrade-layout":
            from .upgrade import run as upgrade_layout

            env = dict(os.environ)
            if args.env_file.is_file():
                env.update(read_env_file(args.env_file))
            settings = Settings.from_env(env)
            return upgrade_layout(settings.jobs_root, settings.db_path, check_only=args.check)
        if args.command == "rotate-key":
            from .secret_key import rotate as rotate_key

            return rotate_key(restart=None) if args.no_restart else rotate_key()
        if args.command == "check":
            from .check import run_checks

            env = dict(os.environ)
            if args.env_file.is_file():
                env.update(read_env_file(args.env_file))
            else:
                print(f"note: {args.env_file} not found; using the current environment")
            return run_checks(Settings.from_env(env))
    except ConfigError as exc:
        print(f"autobuild: configuration error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
