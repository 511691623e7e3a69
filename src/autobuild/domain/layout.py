"""Where a build's files live, and what the runner's log says: one home for every name.

The jobs root belongs to the service user and is sticky and setgid (others may create
entries but never touch anyone else's): each engineer has one directory in it, made by their
first build (or by ``install.sh --add-user``), and each build one directory in that:

    <jobs root>/<owner>/<id>/          made by the runner, as the owner, exclusively
        runner.json                    the runner's own record: pid, process group, start time
        cancel-requested               left by a cancel that came before runner.json
        logs/build.log                 everything the build printed
        logs/digest.json               progress and failure lines of the whole log, kept by
                                       the runner as the log grows (domain/digest.py)
        logs/failed-tasks/<name>       the ends of the logs of failed bitbake tasks
        artifacts/<name>               the collected images
        artifacts.sha256               their checksums (sha256sum format)
        buildhistory/<file>            buildhistory's files about the built image, when the
                                       build inherits buildhistory (BUILDHISTORY_IMAGE_FILES)
        buildstats.tsv                 BitBake's buildstats condensed to a line a task
                                       (domain/buildstats.py), by the runner
        status.json                    written last, atomically: how the build ended
        work/                          the clone and build tree; private (0700), removed at the end
    <jobs root>/<owner>/<id>.slurm.out
                                       what Slurm's batch job printed (a build run on a
                                       cluster), beside the job directory: Slurm opens it
                                       before the runner makes the directory

Everything below ``<owner>/`` is the owner's, readable by the service through the group the
setgid root gives it, writable by nobody else. The service's own per-job file (the launch log)
lives in its data directory, which no engineer can write.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

# Modes. Group = the service's group (inherited from the setgid jobs root); others: nothing.
# The jobs root: owner the service, sticky + setgid; the members of the users group may
# create (an ACL entry -wx: their runner makes <owner>/), others may only pass (--x: nginx).
# With that entry the group bits stat shows are the ACL mask: JOBS_ROOT_MODE_SHOWN.
JOBS_ROOT_MODE = 0o3751
JOBS_ROOT_MODE_SHOWN = 0o3771
JOBS_ROOT_MEMBERS_ACL = "-wx"
# Where the filesystem has no ACLs: others may create (-wx) but not list, as before.
JOBS_ROOT_MODE_NO_ACL = 0o3753
OWNER_DIR_MODE = 0o2750
JOB_DIR_MODE = 0o2750
WORK_DIR_MODE = 0o700  # the clone and build tree: the owner's alone
FILE_MODE = 0o640
RUNNER_UMASK = 0o027

# Names inside a job directory.
RUNNER_RECORD = "runner.json"
CANCEL_REQUEST = "cancel-requested"
LOGS_DIR = "logs"
BUILD_LOG = "build.log"
DIGEST = "digest.json"
TASK_LOGS_DIR = "failed-tasks"
ARTIFACTS_DIR = "artifacts"
CHECKSUMS = "artifacts.sha256"
STATUS = "status.json"
WORK_DIR = "work"
SOURCE_DIR = "src"  # work/src: the clone
KAS_BUILD_DIR = "build"  # work/build: kas's build directory
TIMING = "buildstats.tsv"  # the build's buildstats, condensed (domain/buildstats.py)
SPACE_RESERVE = ".space-reserve"  # freed at the end so the status fits on a full disk

LOG_PATH = (LOGS_DIR, BUILD_LOG)
DIGEST_PATH = (LOGS_DIR, DIGEST)
TASK_LOGS_PATH = (LOGS_DIR, TASK_LOGS_DIR)

# What BitBake's buildstats class writes below the build directory: tmp/buildstats/<BUILDNAME>/
# with build_stats and <PF>/<task> files (meta/classes-global/buildstats.bbclass).
BUILDSTATS_PATH = ("tmp", "buildstats")
BUILDSTATS_SUMMARY = "build_stats"

MAX_STATUS_BYTES = 64 * 1024
MAX_RECORD_BYTES = 4096
MAX_CHECKSUMS_BYTES = 1024 * 1024
MAX_TASK_LOGS = 20  # failed-task logs the runner keeps per build
MAX_TASK_LOG_BYTES = 16 << 20  # the end of a bigger task log is kept

# The service's own files: <data dir>/launch/<id>.log, what sudo and the runner print before the
# build log exists. The runner inherits it as stdout/stderr; while any process holds it open, a
# lock the service took on it before the launch stays held, which is how the service knows the
# runner is alive (no pids needed).
LAUNCH_DIR = "launch"

_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


def is_user_name(name: object) -> bool:
    """A Linux user name builds may run as and a directory name in the jobs root."""
    return isinstance(name, str) and bool(_USERNAME.match(name))


def is_job_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 10**12


def job_dir(owner: str, job_id: int) -> PurePosixPath:
    """The job's directory relative to the jobs root: ``<owner>/<id>``."""
    if not is_user_name(owner):
        raise ValueError(f"not a user name: {owner!r}")
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return PurePosixPath(owner, str(job_id))


def artifact_path(owner: str, job_id: int, name: str) -> PurePosixPath:
    """An artifact relative to the jobs root: ``<owner>/<id>/artifacts/<name>``."""
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"not a file name: {name!r}")
    return job_dir(owner, job_id) / ARTIFACTS_DIR / name


def log_path(owner: str, job_id: int) -> PurePosixPath:
    """The build log relative to the jobs root: ``<owner>/<id>/logs/build.log``."""
    return job_dir(owner, job_id).joinpath(*LOG_PATH)


# What nginx may serve (artifacts, the build log) it reads through this group, which the runner
# grants read on exactly those (and search on the directories above them) with POSIX ACLs.
# nginx's workers are members; the service's group would also give them the signing key.
WEB_GROUP = "autobuild-web"


def launch_log_name(job_id: int) -> str:
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"{job_id}.log"


# A build run on a Slurm cluster: what its batch job printed (sbatch --output), in the owner's
# directory beside the job directory; removed with the job.
SLURM_OUTPUT_SUFFIX = ".slurm.out"


def slurm_output_name(job_id: int) -> str:
    """The batch job's output, in ``<jobs root>/<owner>/``: ``<id>.slurm.out``."""
    if not is_job_id(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return f"{job_id}{SLURM_OUTPUT_SUFFIX}"


# The runner's step headers in build.log ("==> Cloning https://..."): progress and the
# failure summary read them, the runner writes them.
STEP_PREFIX = "==> "
STEP_JOB = "Job "
STEP_CLONING = "Cloning "
STEP_CHECKOUT = "Checking out "
STEP_SUBMODULES = "Updating submodules"
STEP_COMMIT = "Commit "  # "==> Commit <full sha>": what the ref resolved to (provenance)
STEP_SETUP = "Setting up the build environment"
STEP_KAS = "kas build "
STEP_KAS_FILE = "Kas file "  # "==> Kas file <path>": the kas project a build used (provenance)
# "==> Kas repo <name> <commit> <url>": a repository kas checked out, with the commit; the url
# without user or password, or KAS_THIS_REPOSITORY for the build's own repository.
STEP_KAS_REPO = "Kas repo "
KAS_THIS_REPOSITORY = "(this repository)"
STEP_BITBAKE = "bitbake "
STEP_COLLECTING = "Collecting artifacts"
STEP_CANCELLING = "Cancelling"
STEP_CLEANUP = "Removing the workspace"
STEP_FINISHED = "Build finished: "


def step_line(text: str) -> str:
    """A step header as it appears in the log (without the newline)."""
    return f"{STEP_PREFIX}{text}"


# --- buildhistory (buildhistory.bbclass, when a build has INHERIT += "buildhistory") --------
# In the build tree: <TOPDIR>/buildhistory/images/<MACHINE_ARCH>/<TCLIBC>/<IMAGE_BASENAME>/
# (BUILDHISTORY_DIR_IMAGE); the runner copies the files below of the built image into
# <job>/buildhistory/ (small text files; a bigger one is left out).
BUILDHISTORY_DIR = "buildhistory"
BUILDHISTORY_IMAGES = "images"
IMAGE_INFO = "image-info.txt"  # "NAME = value" lines, IMAGESIZE in KiB
INSTALLED_PACKAGE_NAMES = "installed-package-names.txt"
INSTALLED_PACKAGE_SIZES = "installed-package-sizes.txt"  # "<KiB>\tKiB\t<package>"
INSTALLED_PACKAGES = "installed-packages.txt"  # the package files' names
FILES_IN_IMAGE = "files-in-image.txt"
BUILD_ID = "build-id.txt"
BUILDHISTORY_IMAGE_FILES = (IMAGE_INFO, INSTALLED_PACKAGE_NAMES, INSTALLED_PACKAGE_SIZES,
                            INSTALLED_PACKAGES, FILES_IN_IMAGE, BUILD_ID)
MAX_BUILDHISTORY_FILE_BYTES = 16 << 20  # files-in-image.txt of a big image: a few MiB
# What the service reads of the files it parses (image-info, installed-package-names and
# -sizes: a big image's are under 1 MiB); a bigger one is not read (two builds compared read
# three each, so one request stays a few tens of MiB whatever the builds wrote).
MAX_BUILDHISTORY_READ_BYTES = 2 << 20
MAX_BUILDHISTORY_LIBCS = 8  # <TCLIBC> directories looked at (glibc, musl, ...)


def machine_arch(machine: str) -> str:
    """MACHINE_ARCH as bitbake.conf derives it from MACHINE: "-" becomes "_"."""
    return machine.replace("-", "_")
