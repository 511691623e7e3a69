"""The `autobuild` command: `autobuild serve` runs the web service."""

from __future__ import annotations

import argparse
import logging
import sys

from .config import ConfigError, Settings


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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            return _serve(settings)
    except ConfigError as exc:
        print(f"autobuild: configuration error: {exc}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
