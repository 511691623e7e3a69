#!/usr/bin/env bash
# Autobuild runner shim: the only program the service may run through sudo, as the engineer.
# Root-owned and short on purpose: it runs the runner module (autobuild.runner) with the
# service's venv Python in isolated mode and a fixed environment; the module validates
# everything (modes: build, cancel, purge, check-login, store-token, has-token; on a Slurm
# cluster submit, slurm-jobs, slurm-cancel: the batch job runs this file's own path, exported).
set -euo pipefail

here=$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")
root=$(dirname -- "$here")
python="$root/venv/bin/python"           # an installation (/opt/autobuild)
if [[ ! -x $python ]]; then
    python="$root/.venv/bin/python"      # a developer's checkout
fi
if [[ ! -x $python ]]; then
    printf 'run_job.sh: no Python venv next to %s\n' "$here" >&2
    exit 3
fi

# Dev and test knobs, passed on only when set (sudo's env_reset drops them in production).
knobs=()
for name in GIT_SSL_CAINFO GIT_SSL_CAPATH SSL_CERT_FILE \
    SUDO_UID SUDO_USER STANDIN_BITBAKE_DELAY STANDIN_BUILDSTATS_SEED; do
    if [[ -n ${!name+x} ]]; then
        knobs+=("$name=${!name}")
    fi
done

exec env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 AUTOBUILD_RUNNER="$here/run_job.sh" "${knobs[@]}" \
    "$python" -I -m autobuild.runner "$@"
