"""``python -I -m autobuild.runner <mode> ...``: the entry point run_job.sh execs."""

import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
