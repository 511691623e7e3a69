#!/usr/bin/env bash
# Autobuild runner: the only program the service may run through sudo, as the engineer.
#
#   run_job.sh <job_id> <repo_url> <ref> <machine> <target>   clone, bitbake, collect images
#   run_job.sh --check-login      password on stdin; exit 0 ok, 1 refused, 2 usage error
#   run_job.sh --store-token      GitLab token on stdin -> ~/.autobuild/gitlab_token
#   run_job.sh --has-token        prints yes or no
#   run_job.sh --cancel <job_id>  stop a running build (SIGINT, then SIGTERM, then SIGKILL)
#   run_job.sh --purge <job_id>   delete what the ended build wrote (logs, artifacts, workspace)
#
# A sudoers rule without arguments allows any arguments, so every one is validated here with
# the rules of autobuild/domain/requests.py. Knobs (sudo's env_reset drops them, so the
# defaults apply in production): AUTO_BUILD_JOBS_ROOT, AUTO_BUILD_PYTHON,
# AUTO_BUILD_CANCEL_GRACE. The service's build settings (caches, threads, kas file, keeping
# the workspace) come from <job_dir>/build-settings, read by read_build_settings.
set -euo pipefail

RUNNER_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
readonly RUNNER_DIR
readonly JOBS_ROOT="${AUTO_BUILD_JOBS_ROOT:-/srv/autobuild/jobs}"
readonly DEFAULT_PATTERNS=('*.bin' '*.mtd')
readonly MAX_TOKEN_LENGTH=512
readonly MAX_TASK_LOGS=20                 # failed-task logs kept per build
readonly MAX_TASK_LOG_BYTES=$((16 << 20)) # the end of a bigger task log is kept

# Set by the build mode; read by the traps.
PATTERNS=()
JOB_DIR=""
BUILD_PID=""
CANCEL_SIGNAL=""

# From <job_dir>/build-settings (read_build_settings); each validated, defaults here.
CACHE_DIR=/srv/autobuild/cache
HASHSERVE=""
BB_THREADS=""
PARALLEL_MAKE_JOBS=""
KEEP_WORKSPACE=0
KAS_FILE=""
readonly SPACE_RESERVE_BYTES=$((64 << 10))  # freed at the end so the status fits on a full disk
readonly LOW_SPACE_KB=1024                  # a failed build with less free than this: disk full

die() {  # die <exit code> <message>
    printf 'run_job.sh: %s\n' "$2" >&2
    exit "$1"
}

usage_error() {
    printf 'run_job.sh: %s\n' "$1" >&2
    cat >&2 <<'EOF'
usage: run_job.sh <job_id> <repo_url> <ref> <machine> <target>
       run_job.sh --check-login | --store-token | --has-token    (secret on stdin)
       run_job.sh --cancel <job_id> | --purge <job_id>
EOF
    exit 2
}

# --- validation: the same rules as domain/requests.py --------------------------------------

valid_job_id() {
    [[ $1 =~ ^[0-9]{1,12}$ ]]
}

REPO_ORIGIN=""  # https://host[:port] of the last URL that passed valid_url

valid_url() {
    local LC_ALL=C url=$1 host port path label segment labels segments origin
    local re='^https://([A-Za-z0-9.-]+)(:([0-9]{0,5}))?(/[A-Za-z0-9._~+/-]*)$'
    (( ${#url} <= 2048 )) && [[ $url =~ $re ]] || return 1
    host=${BASH_REMATCH[1]} port=${BASH_REMATCH[3]} path=${BASH_REMATCH[4]}
    origin="https://$host${port:+:$port}"
    (( ${#host} <= 253 )) || return 1
    while [[ $host == *. ]]; do host=${host%.}; done
    [[ -n $host ]] || return 1
    IFS=. read -ra labels <<<"$host"
    for label in "${labels[@]}"; do
        [[ $label =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$ ]] || return 1
    done
    if [[ -n $port ]]; then
        (( 10#$port > 0 && 10#$port < 65536 )) || return 1
    fi
    [[ $path != / ]] || return 1
    IFS=/ read -ra segments <<<"$path"
    for segment in "${segments[@]}"; do
        [[ $segment != . && $segment != .. ]] || return 1
    done
    REPO_ORIGIN=$origin
}

valid_ref() {
    local LC_ALL=C ref=$1 component components
    local forbidden='[[:cntrl:] ~^:?*[\]'
    (( ${#ref} >= 1 && ${#ref} <= 255 )) || return 1
    [[ $ref =~ ^[0-9a-fA-F]{7,40}$ ]] && return 0
    [[ $ref != -* && $ref != @ && $ref != *@\{* ]] || return 1
    [[ $ref =~ ^[[:print:]]+$ && ! $ref =~ $forbidden ]] || return 1  # plain ASCII
    [[ $ref != *..* && $ref != /* && $ref != */ && $ref != *//* && $ref != *. ]] || return 1
    IFS=/ read -ra components <<<"$ref"
    for component in "${components[@]}"; do
        [[ $component != .* && $component != *.lock ]] || return 1
    done
}

valid_machine() {
    local LC_ALL=C
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$ ]]
}

valid_target() {
    local LC_ALL=C
    [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._+:-]{0,127}$ ]]
}

valid_pattern() {  # a file-name glob: no '/', no leading '-' or '.'
    local LC_ALL=C re='^[][A-Za-z0-9_*?!+][][A-Za-z0-9._*?!+-]{0,127}$'
    [[ $1 =~ $re ]]
}

# --- the user, their home and their processes ---------------------------------------------

user_home() {  # the home of the user we run as, from the passwd database (not $HOME)
    local entry home
    entry=$(getent passwd "$(id -un)") || die 2 "user $(id -un) is not in the passwd database"
    IFS=: read -r _ _ _ _ _ home _ <<<"$entry"
    [[ $home == /* ]] || die 2 "user $(id -un) has no absolute home directory"
    printf '%s\n' "$home"
}

proc_uid() {  # real uid of a process, or nothing
    local key real _rest
    while read -r key real _rest; do
        if [[ $key == Uid: ]]; then
            printf '%s\n' "$real"
            return 0
        fi
    done 2>/dev/null <"/proc/$1/status" || true
}

is_runner_of() {  # is_runner_of <pid> <job_id>: a live run_job.sh of this job, run by us
    local pid=$1 job_id=$2 arg previous="" state
    [[ -r /proc/$pid/cmdline && $(proc_uid "$pid") == "$(id -u)" ]] || return 1
    state=$(process_state "$pid")
    [[ -n $state && $state != Z ]] || return 1
    while IFS= read -r -d '' arg; do
        if [[ ($previous == run_job.sh || $previous == */run_job.sh) && $arg == "$job_id" ]]; then
            return 0
        fi
        previous=$arg
    done 2>/dev/null <"/proc/$pid/cmdline"
    return 1
}

process_state() {  # the state letter of a process (R, S, Z...), or nothing
    local stat rest
    { stat=$(<"/proc/$1/stat"); } 2>/dev/null || return 0
    rest=${stat##*) }
    printf '%s\n' "${rest%% *}"
}

group_members() {  # live processes of process group $1 that belong to us
    local pgid=$1 dir stat rest state pg uid
    uid=$(id -u)
    for dir in /proc/[0-9]*; do
        { stat=$(<"$dir/stat"); } 2>/dev/null || continue
        rest=${stat##*) }
        read -r state _ pg _ <<<"$rest"
        [[ $pg == "$pgid" && $state != Z ]] || continue
        [[ $(proc_uid "${dir#/proc/}") == "$uid" ]] || continue
        printf '%s\n' "${dir#/proc/}"
    done
}

group_alive() {
    [[ -n $(group_members "$1") ]]
}

# --- small file helpers -------------------------------------------------------------------

write_atomically() {  # write_atomically <path> <mode> <content>: temp file, then rename
    local path=$1 mode=$2 content=$3 tmp
    tmp=$(mktemp -- "${path%/*}/.${path##*/}.XXXXXX") || return 1
    # Checked one by one: callers may run with set +e, and a full disk must not leave a
    # truncated file in place of a good one.
    if ! { printf '%s' "$content" >"$tmp" && chmod "$mode" -- "$tmp" && mv -f -- "$tmp" "$path"; }; then
        rm -f -- "$tmp"
        return 1
    fi
}

utc_now() {
    date -u +%Y-%m-%dT%H:%M:%SZ
}

step() {
    printf '==> %s\n' "$*"
}

# --- --check-login, --store-token, --has-token ------------------------------------------

check_login() {
    (( $# == 0 )) || usage_error "--check-login takes no arguments"
    local python=${AUTO_BUILD_PYTHON:-}
    if [[ -z $python ]]; then
        # The installed venv, or the checkout's .venv on a developer machine.
        python="$RUNNER_DIR/../venv/bin/python"
        if [[ ! -x $python && -x $RUNNER_DIR/../.venv/bin/python ]]; then
            python="$RUNNER_DIR/../.venv/bin/python"
        fi
    fi
    [[ -x $python ]] || die 3 "no Python at $python (set AUTO_BUILD_PYTHON or install the venv)"
    exec "$python" -I "$RUNNER_DIR/pam_check.py"
}

store_token() {
    (( $# == 0 )) || usage_error "--store-token takes no arguments"
    umask 077
    local LC_ALL=C token="" home dir
    IFS= read -r -d '' -n $(( MAX_TOKEN_LENGTH + 3 )) token || true
    token=${token%$'\n'}
    token=${token%$'\r'}
    [[ -n $token ]] || die 2 "the token is empty"
    (( ${#token} <= MAX_TOKEN_LENGTH )) || die 2 "the token is longer than $MAX_TOKEN_LENGTH characters"
    [[ $token =~ ^[!-~]+$ ]] || die 2 "the token must not contain spaces, control or non-ASCII characters"
    home=$(user_home)
    dir="$home/.autobuild"
    [[ ! -L $dir ]] || die 2 "$dir is a symbolic link; refusing to write the token through it"
    [[ -d $dir ]] || mkdir -m 700 -- "$dir"
    chmod 700 -- "$dir"
    write_atomically "$dir/gitlab_token" 600 "$token"$'\n'
    echo "token saved"
}

has_token() {
    (( $# == 0 )) || usage_error "--has-token takes no arguments"
    local file
    file="$(user_home)/.autobuild/gitlab_token"
    if [[ -f $file && -s $file ]]; then echo yes; else echo no; fi
}

# --- --cancel -------------------------------------------------------------------------------

cancel_job() {
    (( $# == 1 )) || usage_error "--cancel takes one job id"
    valid_job_id "$1" || usage_error "invalid job id"
    local job_id=$1 job_dir="$JOBS_ROOT/$1" pid="" pgid="" grace=${AUTO_BUILD_CANCEL_GRACE:-20}
    [[ $grace =~ ^[0-9]{1,4}$ ]] || grace=20
    if [[ ! -d $job_dir || -L $job_dir || -e $job_dir/status.json ]]; then
        echo "job $job_id is not running"
        exit 3
    fi
    if [[ ! -f $job_dir/runner.pid ]]; then
        # Starting right now: leave a note the runner reads once it has written runner.pid.
        write_atomically "$job_dir/cancel-requested" 640 "$(utc_now)"$'\n'
        [[ -f $job_dir/runner.pid ]] || { echo "job $job_id will stop as soon as it starts"; exit 0; }
    fi
    read -r pid pgid _ <"$job_dir/runner.pid" || true
    [[ $pid =~ ^[1-9][0-9]{0,9}$ && $pgid =~ ^[1-9][0-9]{0,9}$ ]] || die 3 "$job_dir/runner.pid is malformed"

    cancel_alive() { is_runner_of "$pid" "$job_id" || group_alive "$pgid"; }
    cancel_signal() {  # the runner forwards to its build group; without it, signal the group
        if is_runner_of "$pid" "$job_id"; then
            kill -s "$1" -- "$pid" 2>/dev/null || true
        elif group_alive "$pgid"; then
            kill -s "$1" -- "-$pgid" 2>/dev/null || true
        fi
    }
    cancel_wait() {  # cancel_wait <seconds>: true once nothing of the job runs any more
        local i
        for (( i = 0; i < $1 * 5; i++ )); do
            cancel_alive || return 0
            sleep 0.2
        done
        ! cancel_alive
    }

    if ! cancel_alive; then
        echo "job $job_id is not running"
        exit 3
    fi
    echo "job $job_id: sending SIGINT"
    cancel_signal INT
    cancel_wait "$grace" && exit 0
    echo "job $job_id: still running after ${grace}s, sending SIGTERM"
    cancel_signal TERM
    cancel_wait 10 && exit 0
    echo "job $job_id: still running, sending SIGKILL"
    kill -KILL -- "-$pgid" 2>/dev/null || true
    cancel_wait 5 && exit 0
    kill -KILL -- "$pid" 2>/dev/null || true
    exit 0
}

# --- --purge --------------------------------------------------------------------------------

purge_job() {  # retention: delete what this user's build wrote in the job directory
    (( $# == 1 )) || usage_error "--purge takes one job id"
    valid_job_id "$1" || usage_error "invalid job id"
    local job_id=$1 job_dir="$JOBS_ROOT/$1" real pid="" pgid="" entry uid
    if [[ ! -e $job_dir && ! -L $job_dir ]]; then
        echo "job $job_id: nothing to remove"
        exit 0
    fi
    [[ -d $job_dir && ! -L $job_dir ]] || die 2 "$job_dir is not a directory"
    real=$(realpath -e -- "$job_dir") || die 2 "cannot resolve $job_dir"
    [[ $real == "$(realpath -e -- "$JOBS_ROOT")/$job_id" ]] || die 2 "$job_dir is not inside $JOBS_ROOT"
    if [[ ! -e $job_dir/status.json && -f $job_dir/runner.pid ]]; then
        read -r pid pgid _ <"$job_dir/runner.pid" || true
        if [[ $pid =~ ^[1-9][0-9]{0,9}$ ]] && is_runner_of "$pid" "$job_id" ||
            { [[ $pgid =~ ^[1-9][0-9]{0,9}$ ]] && group_alive "$pgid"; }; then
            die 3 "job $job_id is still running; cancel it first"
        fi
    fi
    uid=$(id -u)
    # Only entries this user owns (what the build wrote); the service removes its own files.
    # find does not follow symlinks; rm removes a link itself, and rm -rf never follows the
    # links inside a directory nor enters another filesystem.
    while IFS= read -r -d '' entry; do
        if [[ -d $entry && ! -L $entry ]]; then
            [[ $(realpath -e -- "$entry") == "$real/${entry##*/}" ]] || die 2 "$entry moved while purging"
            rm -rf --one-file-system -- "$entry"
        else
            rm -f -- "$entry"
        fi
    done < <(find "$job_dir" -mindepth 1 -maxdepth 1 -user "$uid" -print0)
    echo "job $job_id: logs, artifacts and workspace removed"
}

# --- the build ------------------------------------------------------------------------------

finish_build() {  # EXIT trap: final log line, exit_code, then status.json (last, atomically)
    local code=$? status
    set +e
    trap '' INT TERM HUP
    if [[ -n $CANCEL_SIGNAL ]] && (( code != 0 )); then
        status=CANCELLED
        case $CANCEL_SIGNAL in INT) code=130 ;; HUP) code=129 ;; *) code=143 ;; esac
    elif (( code == 0 )); then
        status=SUCCESS
    else
        status=FAILED
    fi
    if [[ $status == FAILED ]] && build_ran_out_of_space; then
        cleanup_workspace 1  # even a kept workspace: the status must fit, and others build too
        echo "ERROR: No space left on device: the disk holding $JOB_DIR filled up during this build"
    else
        cleanup_workspace 0
    fi
    rm -f -- "$JOB_DIR/.space-reserve"
    printf '==> Build finished: %s (exit %d)\n' "$status" "$code"
    write_atomically "$JOB_DIR/exit_code" 640 "$code"$'\n'
    write_atomically "$JOB_DIR/status.json" 640 \
        "$(printf '{"status": "%s", "exit_code": %d, "finished_at": "%s"}' "$status" "$code" "$(utc_now)")"$'\n'
    exit "$code"
}

on_signal() {  # forward INT/TERM/HUP to the build's process group; finish_build records it
    local sig=$1
    if [[ -z $CANCEL_SIGNAL ]]; then
        CANCEL_SIGNAL=$sig
        step "Cancelling: SIG$sig received, stopping the build"
        # The build checks this note once its own signal handling is set up (see build_steps).
        [[ -e $JOB_DIR/cancel-requested ]] ||
            write_atomically "$JOB_DIR/cancel-requested" 640 "$(utc_now)"$'\n' || true
    fi
    if [[ -n $BUILD_PID ]]; then
        kill -s "$sig" -- "-$BUILD_PID" 2>/dev/null || true
    fi
}

reap_build_group() {  # nothing the build started may outlive the runner
    local pgid=$1 sig i
    for sig in TERM KILL; do  # 5 s to end by itself, then SIGTERM, 5 s more, then SIGKILL
        for (( i = 0; i < 25; i++ )); do
            group_alive "$pgid" || return 0
            sleep 0.2
        done
        step "Stopping leftover build processes (SIG$sig)"
        kill -s "$sig" -- "-$pgid" 2>/dev/null || true
    done
}

setup_git_env() {  # every git process: https only, our askpass, no credential helper
    local name
    for name in "${!GIT_@}"; do
        case $name in
            GIT_SSL_CAINFO | GIT_SSL_CAPATH) ;;
            *) unset "$name" ;;
        esac
    done
    unset SSH_ASKPASS
    export GIT_TERMINAL_PROMPT=0
    export GIT_ASKPASS="$RUNNER_DIR/git-askpass.sh"
    export AUTOBUILD_GIT_ORIGIN="$REPO_ORIGIN"  # askpass answers only this host
    export GIT_ALLOW_PROTOCOL=https
    export GIT_CONFIG_COUNT=3
    export GIT_CONFIG_KEY_0=credential.helper GIT_CONFIG_VALUE_0=""
    export GIT_CONFIG_KEY_1=protocol.allow GIT_CONFIG_VALUE_1=never
    export GIT_CONFIG_KEY_2=protocol.https.allow GIT_CONFIG_VALUE_2=always
}

resolve_ref() {  # print the commit a branch, tag or commit id names in the clone
    local ref=$1 candidate
    for candidate in "refs/remotes/origin/$ref" "refs/tags/$ref"; do
        git rev-parse --quiet --verify "$candidate^{commit}" 2>/dev/null && return 0
    done
    if [[ $ref =~ ^[0-9a-fA-F]{7,40}$ ]]; then
        git rev-parse --quiet --verify "$ref^{commit}" 2>/dev/null && return 0
    fi
    return 1
}

pass_to_bitbake() {  # let bitbake see these exported variables
    local name
    for name; do
        if [[ -n ${BB_ENV_EXTRAWHITE:-} ]]; then  # before Yocto 4.0 (kirkstone)
            [[ " $BB_ENV_EXTRAWHITE " == *" $name "* ]] || BB_ENV_EXTRAWHITE+=" $name"
            export BB_ENV_EXTRAWHITE
        else
            [[ " ${BB_ENV_PASSTHROUGH_ADDITIONS:-} " == *" $name "* ]] ||
                BB_ENV_PASSTHROUGH_ADDITIONS="${BB_ENV_PASSTHROUGH_ADDITIONS:+$BB_ENV_PASSTHROUGH_ADDITIONS }$name"
            export BB_ENV_PASSTHROUGH_ADDITIONS
        fi
    done
}

# --- build settings, shared caches, workspace -------------------------------------------

valid_kas_file() {  # the rules of domain/requests.py KasFile: a relative path in the clone
    local LC_ALL=C path=$1 segment segments
    (( ${#path} >= 1 && ${#path} <= 200 )) || return 1
    [[ $path == *.yml || $path == *.yaml || $path == *.json ]] || return 1
    [[ $path != /* && $path != */ && $path != *//* ]] || return 1
    IFS=/ read -ra segments <<<"$path"
    for segment in "${segments[@]}"; do
        [[ $segment =~ ^[A-Za-z0-9_][A-Za-z0-9._-]*$ ]] || return 1
    done
}

read_build_settings() {  # KEY=VALUE lines the service wrote: each value checked, never sourced
    local file="$JOB_DIR/build-settings" line key value LC_ALL=C
    [[ -f $file && ! -L $file ]] || return 0
    while IFS= read -r line || [[ -n $line ]]; do
        [[ -n $line && $line != \#* && $line == *=* ]] || continue
        key=${line%%=*} value=${line#*=}
        case $key in
            CACHE_DIR)
                if [[ $value =~ ^/[A-Za-z0-9._/+-]{0,1023}$ && /$value/ != */../* && /$value/ != */./* ]]; then
                    CACHE_DIR=${value%/}
                else
                    printf 'WARNING: ignoring the build setting CACHE_DIR=%q\n' "$value"
                fi ;;
            HASHSERVE)
                if [[ $value == auto || $value =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,252}:[0-9]{1,5}$ ]]; then
                    HASHSERVE=$value
                else
                    printf 'WARNING: ignoring the build setting HASHSERVE=%q\n' "$value"
                fi ;;
            BB_NUMBER_THREADS)
                if [[ $value =~ ^[1-9][0-9]{0,3}$ ]]; then
                    BB_THREADS=$value
                else
                    printf 'WARNING: ignoring the build setting BB_NUMBER_THREADS=%q\n' "$value"
                fi ;;
            PARALLEL_MAKE)
                if [[ $value =~ ^(-j[[:space:]]?)?([1-9][0-9]{0,3})$ ]]; then
                    PARALLEL_MAKE_JOBS=${BASH_REMATCH[2]}
                else
                    printf 'WARNING: ignoring the build setting PARALLEL_MAKE=%q\n' "$value"
                fi ;;
            KEEP_WORKSPACE)
                if [[ $value == [01] ]]; then
                    KEEP_WORKSPACE=$value
                else
                    printf 'WARNING: ignoring the build setting KEEP_WORKSPACE=%q\n' "$value"
                fi ;;
            KAS_FILE)
                if valid_kas_file "$value"; then
                    KAS_FILE=$value
                else
                    printf 'WARNING: ignoring the build setting KAS_FILE=%q\n' "$value"
                fi ;;
            *) ;;  # a newer service's setting: not for this runner
        esac
    done <"$file"
}

write_auto_conf() {  # write_auto_conf <build dir>: caches and parallelism, never local.conf
    local conf="$1/conf" cache=$CACHE_DIR text=""
    if [[ -d $cache/downloads && -w $cache/downloads && -d $cache/sstate-cache && -w $cache/sstate-cache ]]; then
        text+="DL_DIR = \"$cache/downloads\""$'\n'"SSTATE_DIR = \"$cache/sstate-cache\""$'\n'
    else
        echo "NOTE: no shared caches (need writable $cache/downloads and $cache/sstate-cache):" \
            "this build downloads and builds everything itself"
    fi
    [[ -z $HASHSERVE ]] || text+="BB_HASHSERVE = \"$HASHSERVE\""$'\n'
    [[ -z $BB_THREADS ]] || text+="BB_NUMBER_THREADS = \"$BB_THREADS\""$'\n'
    [[ -z $PARALLEL_MAKE_JOBS ]] || text+="PARALLEL_MAKE = \"-j $PARALLEL_MAKE_JOBS\""$'\n'
    [[ -n $text ]] || return 0
    [[ ! -L $conf ]] || { echo "ERROR: $conf is a symbolic link"; return 1; }
    mkdir -p -- "$conf"
    [[ ! -L $conf/auto.conf ]] || rm -f -- "$conf/auto.conf"
    write_atomically "$conf/auto.conf" 664 "# Written by Autobuild for this build (shared caches, parallelism)."$'\n'"$text"
    echo "conf/auto.conf:"
    printf '    %s\n' "${text%$'\n'}"
}

find_kas() {  # the kas pinned in the service's venv
    local candidate
    for candidate in "$RUNNER_DIR/../venv/bin/kas" \
        ${AUTO_BUILD_PYTHON:+"${AUTO_BUILD_PYTHON%/*}/kas"} "$RUNNER_DIR/../.venv/bin/kas"; do
        if [[ -x $candidate ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

kas_build() {  # kas_build <src> <kas file> <machine> <target>: kas with our overrides
    local src=$1 file=$2 machine=$3 target=$4 kas real name
    if ! real=$(realpath -e -- "$src/$file" 2>/dev/null) || [[ $real != "$src"/* || ! -f $real ]]; then
        echo "ERROR: the kas file $file is not a file in the repository"
        return 1
    fi
    if ! kas=$(find_kas); then
        echo "ERROR: kas is not installed next to the runner (expected $RUNNER_DIR/../venv/bin/kas)"
        return 1
    fi
    for name in "${!KAS_@}"; do unset "$name"; done
    # kas hands TMPDIR to bitbake, where it is the build's own tmp directory.
    unset TMPDIR BBPATH BUILDDIR BB_ENV_PASSTHROUGH_ADDITIONS BB_ENV_EXTRAWHITE
    export KAS_WORK_DIR="$JOB_DIR/work" KAS_BUILD_DIR="$JOB_DIR/work/build"
    export KAS_MACHINE=$machine KAS_TARGET=$target
    write_auto_conf "$KAS_BUILD_DIR" || return 1
    # kas passes these through to bitbake as well.
    if [[ -d $CACHE_DIR/downloads && -w $CACHE_DIR/downloads && -d $CACHE_DIR/sstate-cache && -w $CACHE_DIR/sstate-cache ]]; then
        export DL_DIR="$CACHE_DIR/downloads" SSTATE_DIR="$CACHE_DIR/sstate-cache"
    fi
    [[ -z $HASHSERVE ]] || export BB_HASHSERVE=$HASHSERVE
    [[ -z $BB_THREADS ]] || export BB_NUMBER_THREADS=$BB_THREADS
    [[ -z $PARALLEL_MAKE_JOBS ]] || export PARALLEL_MAKE="-j $PARALLEL_MAKE_JOBS"
    step "kas build $file: bitbake $target (MACHINE=$machine)"
    "$kas" --version
    "$kas" build -- "$real"
}

dir_kb() {  # disk use of a directory in KiB (this filesystem only), 0 if unknown
    local kb
    kb=$(du -skx -- "$1" 2>/dev/null | cut -f1) || true
    printf '%s\n' "${kb:-0}"
}

free_kb() {  # KiB available to us on the filesystem holding $1, or nothing
    df -Pk -- "$1" 2>/dev/null | awk 'NR == 2 { print $4 }' || true
}

human_kb() {
    local kb=$1
    if (( kb >= 1048576 )); then
        printf '%d.%d GiB\n' $(( kb / 1048576 )) $(( kb % 1048576 * 10 / 1048576 ))
    elif (( kb >= 1024 )); then
        printf '%d MiB\n' $(( kb / 1024 ))
    else
        printf '%d KiB\n' "$kb"
    fi
}

cleanup_workspace() {  # cleanup_workspace <force>: remove work/ (clone, build/tmp) unless kept
    local force=$1 work="$JOB_DIR/work" kb
    [[ -d $work && ! -L $work ]] || return 0
    if [[ $KEEP_WORKSPACE == 1 && $force != 1 ]]; then
        echo "Keeping the workspace (KEEP_WORKSPACE=1): work/ uses $(human_kb "$(dir_kb "$work")")"
        return 0
    fi
    step "Removing the workspace"
    kb=$(dir_kb "$work")
    # Yocto leaves read-only directories (e.g. Go's module cache): make them writable first.
    if ! rm -rf --one-file-system -- "$work" 2>/dev/null; then
        chmod -R u+rwX -- "$work" 2>/dev/null
        rm -rf --one-file-system -- "$work" || true
    fi
    if [[ -e $work ]]; then
        echo "WARNING: could not remove all of $work"
    else
        echo "Removed work/ (the clone and build/tmp): $(human_kb "$kb") freed"
    fi
}

build_ran_out_of_space() {  # true when a failed build filled the disk
    local free
    free=$(free_kb "$JOB_DIR")
    if [[ $free =~ ^[0-9]+$ ]] && (( free < LOW_SPACE_KB )); then
        return 0
    fi
    grep -a -q -F -- 'No space left on device' "$JOB_DIR/logs/build.log" 2>/dev/null
}

write_checksums() {  # write_checksums <name>...: artifacts.sha256 in sha256sum format
    local sums
    (( $# > 0 )) || return 0
    sums=$(cd -- "$JOB_DIR/artifacts" && sha256sum -- "$@")
    write_atomically "$JOB_DIR/artifacts.sha256" 640 "$sums"$'\n'
    echo "sha256 of $# artifact(s) in artifacts.sha256"
}

read_patterns() {  # fills PATTERNS from <job_dir>/artifact-patterns (defaults if missing)
    local file="$JOB_DIR/artifact-patterns" line
    PATTERNS=()
    if [[ ! -f $file || -L $file ]]; then
        PATTERNS=("${DEFAULT_PATTERNS[@]}")
        return 0
    fi
    while IFS= read -r line || [[ -n $line ]]; do
        [[ -n $line && $line != \#* ]] || continue
        if valid_pattern "$line"; then
            PATTERNS+=("$line")
        else
            printf 'WARNING: ignoring the invalid artifact pattern %q\n' "$line"
        fi
    done <"$file"
}

collect_artifacts() {  # copy matching regular files (and links that stay in the build tree)
    local build=$1 machine=$2 deploy tree pattern path name src tmp count=0
    local -A seen=()
    local -a collected=()
    deploy="$build/tmp/deploy/images/$machine"
    read_patterns
    if [[ ! -d $deploy ]]; then
        echo "no artifacts matched: $deploy does not exist"
        return 0
    fi
    tree=$(realpath -e -- "$build")
    shopt -s nullglob
    for pattern in "${PATTERNS[@]}"; do
        # shellcheck disable=SC2206  # unquoted on purpose: the (validated) pattern is the glob
        local matches=("$deploy"/$pattern)
        for path in "${matches[@]}"; do
            name=${path##*/}
            [[ -z ${seen[$name]+x} ]] || continue
            seen[$name]=1
            src=$path
            if [[ -L $path ]]; then
                if ! src=$(realpath -e -- "$path" 2>/dev/null); then
                    echo "skipped $name: its link leads nowhere"
                    continue
                fi
                if [[ $src != "$tree"/* ]]; then
                    echo "skipped $name: its link leads outside the build tree"
                    continue
                fi
            fi
            if [[ ! -f $src || -L $src ]]; then
                echo "skipped $name: not a regular file"
                continue
            fi
            tmp=$(mktemp -- "$JOB_DIR/work/.artifact.XXXXXX")
            cp --reflink=auto -- "$src" "$tmp"
            chmod 640 -- "$tmp"
            mv -fT -- "$tmp" "$JOB_DIR/artifacts/$name"
            echo "collected $name ($(stat -c %s -- "$JOB_DIR/artifacts/$name") bytes)"
            count=$(( count + 1 ))
            collected+=("$name")
        done
    done
    shopt -u nullglob
    if (( count == 0 )); then
        echo "no artifacts matched ${PATTERNS[*]:-(no patterns)} in $deploy"
    fi
    write_checksums "${collected[@]}"
}

failed_task_log_name() {  # the same name as autobuild/domain/failures.py task_log_name
    local LC_ALL=C path=$1 name n
    local -a parts
    IFS=/ read -ra parts <<<"$path"
    n=${#parts[@]}
    if (( n >= 4 )) && [[ ${parts[n-2]} == temp ]]; then
        name="${parts[n-4]}_${parts[n-3]}_${parts[n-1]}"
    else
        name=${parts[n-1]:-}
    fi
    name=${name//[^A-Za-z0-9._+-]/_}
    while [[ $name == [.-]* ]]; do name=${name:1}; done
    name=${name:0:200}
    printf '%s\n' "${name:-task-log}"
}

save_failed_task_logs() {  # copy the logs bitbake names as failed into logs/failed-tasks/
    # Called from an || branch, where set -e does not apply: every step checks for itself.
    local dest="$JOB_DIR/logs/failed-tasks" tree line path real name tmp count=0
    local -a lines
    tree=$(realpath -e -- "$JOB_DIR/work") || return 0
    # Read them all first: this function's own messages are appended to the same log.
    mapfile -t lines < <(grep -a -o -- 'Logfile of failure stored in: .*' "$JOB_DIR/logs/build.log")
    for line in "${lines[@]}"; do
        path=${line#Logfile of failure stored in: }
        path=${path%"${path##*[![:space:]]}"}
        [[ $path == /* ]] || continue
        # Only regular files inside this build's workspace: a log line must not make the
        # runner copy, say, ~/.ssh/id_rsa into the job directory that the team can read.
        if ! real=$(realpath -e -- "$path" 2>/dev/null) || [[ $real != "$tree"/* ]]; then
            echo "not saving the task log $path: it is not inside the build's workspace"
            continue
        fi
        if [[ ! -f $real ]]; then
            echo "not saving the task log $path: not a regular file"
            continue
        fi
        name=$(failed_task_log_name "$path")
        [[ ! -e $dest/$name && ! -L $dest/$name ]] || continue
        if [[ -L $dest ]] || { [[ ! -d $dest ]] && ! mkdir -- "$dest"; }; then
            echo "not saving task logs: cannot create $dest"
            return 0
        fi
        if tmp=$(mktemp -- "$dest/.$name.XXXXXX") &&
            tail -c "$MAX_TASK_LOG_BYTES" -- "$real" >"$tmp" &&
            chmod 640 -- "$tmp" && mv -fT -- "$tmp" "$dest/$name"; then
            echo "saved the log of the failed task as logs/failed-tasks/$name"
        else
            [[ -z ${tmp:-} ]] || rm -f -- "$tmp"
            echo "could not save the task log $path"
        fi
        count=$(( count + 1 ))
        (( count < MAX_TASK_LOGS )) || break
    done
}

build_steps() {  # runs in its own process group; its exit code is the build result
    set +m
    trap - INT TERM HUP
    # A signal that arrived while this subshell was being set up may have been lost.
    [[ ! -e $JOB_DIR/cancel-requested ]] || exit 130
    local repo_url=$1 ref=$2 machine=$3 target=$4 src="$JOB_DIR/work/src" token_file commit rc
    local kas_file
    token_file="$HOME/.autobuild/gitlab_token"
    umask 002  # what the build adds to the shared caches stays writable for the whole group
    setup_git_env

    step "Cloning $repo_url"
    if [[ ! -s $token_file ]]; then
        echo "NOTE: no GitLab token on file ($token_file): cloning without one works only for" \
            "public repositories. Save your token in Settings."
    fi
    git clone --no-checkout -- "$repo_url" "$src" || {
        rc=$?
        echo "ERROR: could not clone $repo_url: check the URL, and that the GitLab token saved in" \
            "Settings can read this repository"
        return "$rc"
    }
    cd -- "$src"

    step "Checking out $ref"
    if ! commit=$(resolve_ref "$ref"); then
        echo "ERROR: '$ref' is not a branch, tag or commit of $repo_url"
        return 1
    fi
    git -c advice.detachedHead=false checkout --quiet --detach "$commit"
    git log -1 --format='HEAD is now at %h %s'
    if [[ -f .gitmodules ]]; then
        step "Updating submodules"
        git submodule update --init --recursive
    fi

    kas_file=$KAS_FILE
    if [[ -z $kas_file && -f kas.yml ]]; then
        kas_file=kas.yml
    fi
    if [[ -n $kas_file ]]; then
        kas_build "$src" "$kas_file" "$machine" "$target" || {
            rc=$?
            echo "ERROR: kas build $kas_file failed (exit $rc)"
            save_failed_task_logs
            return "$rc"
        }
        step "Collecting artifacts"
        collect_artifacts "$JOB_DIR/work/build" "$machine"
        return 0
    fi

    step "Setting up the build environment (oe-init-build-env)"
    if [[ ! -f oe-init-build-env ]]; then
        echo "ERROR: $repo_url has no oe-init-build-env at its top level (is it a poky-style repository?)"
        return 1
    fi
    unset BBPATH BBSERVER BUILDDIR BB_ENV_PASSTHROUGH_ADDITIONS BB_ENV_EXTRAWHITE TEMPLATECONF
    set +u  # poky's scripts use unset variables
    # shellcheck source=/dev/null
    if ! source ./oe-init-build-env build; then
        set -u
        echo "ERROR: oe-init-build-env failed"
        return 1
    fi
    set -u
    cd -- "$src/build"
    export MACHINE=$machine
    pass_to_bitbake MACHINE
    write_auto_conf "$src/build"

    step "bitbake $target (MACHINE=$machine)"
    bitbake -- "$target" || {
        rc=$?
        echo "ERROR: bitbake $target failed (exit $rc)"
        save_failed_task_logs
        return "$rc"
    }

    step "Collecting artifacts"
    collect_artifacts "$src/build" "$machine"
}

run_build() {
    (( $# == 5 )) || usage_error "expected 5 arguments, got $#"
    local job_id=$1 repo_url=$2 ref=$3 machine=$4 target=$5 dir rc=0 home
    valid_job_id "$job_id" || usage_error "invalid job id: digits only"
    valid_url "$repo_url" ||
        usage_error "invalid repository URL: use https://host/path, with no user name, query or fragment"
    valid_ref "$ref" || usage_error "invalid ref: use a branch, a tag or a 7-40 digit commit id"
    valid_machine "$machine" || usage_error "invalid MACHINE: letters, digits and . _ + - only"
    valid_target "$target" || usage_error "invalid target: letters, digits and . _ + : - only"

    JOB_DIR="$JOBS_ROOT/$job_id"
    [[ -d $JOB_DIR && ! -L $JOB_DIR ]] || die 2 "job directory $JOB_DIR does not exist"
    if [[ -e $JOB_DIR/status.json || -L $JOB_DIR/status.json || -e $JOB_DIR/runner.pid ]]; then
        die 2 "job $job_id has already run"
    fi
    umask 027
    for dir in logs artifacts work; do
        [[ ! -L $JOB_DIR/$dir ]] || die 2 "$JOB_DIR/$dir is a symbolic link"
        [[ -d $JOB_DIR/$dir ]] || mkdir -- "$JOB_DIR/$dir" || die 2 "cannot create $JOB_DIR/$dir"
    done
    [[ ! -L $JOB_DIR/logs/build.log ]] || die 2 "$JOB_DIR/logs/build.log is a symbolic link"
    home=$(user_home)
    export HOME=$home
    export LANG=${LANG:-C.UTF-8}

    exec >>"$JOB_DIR/logs/build.log" 2>&1 </dev/null
    trap finish_build EXIT
    trap 'on_signal INT' INT
    trap 'on_signal TERM' TERM
    trap 'on_signal HUP' HUP
    step "Job $job_id for $(id -un) on ${HOSTNAME:-$(uname -n)} at $(utc_now)"
    echo "    repository $repo_url, ref $ref, MACHINE $machine, target $target"
    read_build_settings
    [[ -z $KAS_FILE ]] || echo "    kas file $KAS_FILE"
    head -c "$SPACE_RESERVE_BYTES" /dev/zero >"$JOB_DIR/.space-reserve" ||
        echo "WARNING: the disk holding $JOB_DIR is full"
    [[ -z $CANCEL_SIGNAL ]] || exit 1

    set -m  # job control: the build gets its own process group, which cancel signals as one
    build_steps "$repo_url" "$ref" "$machine" "$target" &
    BUILD_PID=$!
    set +m
    write_atomically "$JOB_DIR/runner.pid" 640 "$$ $BUILD_PID"$'\n'
    if [[ -e $JOB_DIR/cancel-requested ]]; then
        on_signal INT
    fi

    # A trapped signal interrupts wait; keep waiting until the build itself has ended.
    while :; do
        rc=0
        wait "$BUILD_PID" || rc=$?
        if (( rc == 127 )) || [[ -z $(process_state "$BUILD_PID") ]] || [[ -z $CANCEL_SIGNAL ]]; then
            break
        fi
    done
    reap_build_group "$BUILD_PID"
    exit "$rc"
}

main() {
    case "${1:-}" in
        --check-login) shift; check_login "$@" ;;
        --store-token) shift; store_token "$@" ;;
        --has-token) shift; has_token "$@" ;;
        --cancel) shift; cancel_job "$@" ;;
        --purge) shift; purge_job "$@" ;;
        -*) usage_error "unknown option: ${1}" ;;
        *) run_build "$@" ;;
    esac
}

main "$@"
