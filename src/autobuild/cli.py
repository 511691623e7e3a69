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
    # One worker: the scheduler lives in this process and must be the only one.
    uvicorn.run(app, host=settings.host, port=settings.port, workers=1, proxy_headers=True,
                forwarded_allow_ips="127.0.0.1", log_level="info")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="autobuild", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the web service (settings from AUTO_BUILD_* variables)")
    check = sub.add_parser("check", help="diagnose this installation, with the fix for each problem")
    check.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE,
                       help=f"the service's environment file (default {DEFAULT_ENV_FILE})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            return _serve(Settings.from_env())
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
