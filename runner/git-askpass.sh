#!/usr/bin/env bash
# GIT_ASKPASS helper of run_job.sh: answers git's prompts, for the repository's own host only.
#
# "Username for 'https://host'"         -> oauth2
# "Password for 'https://oauth2@host'"  -> the token in ~/.autobuild/gitlab_token
# The token is read here, from the home of the user we run as (passwd database, not $HOME),
# so it is never in an argument, the environment, a URL or a git config. run_job.sh exports
# AUTOBUILD_GIT_ORIGIN (https://host[:port] of the repository); any other host (a submodule
# elsewhere, a redirect) gets nothing.
set -euo pipefail

refuse() {
    printf 'git-askpass: %s\n' "$1" >&2
    exit 1
}

prompt=${1:-}
re="^(Username|Password) for '(https://[^']*)': ?$"
[[ $prompt =~ $re ]] || refuse "unexpected prompt"
kind=${BASH_REMATCH[1]}
url=${BASH_REMATCH[2]}
if [[ $url == https://*@* ]]; then
    url="https://${url#*@}"
fi
origin=${AUTOBUILD_GIT_ORIGIN:-}
[[ -n $origin && $url == "$origin" ]] ||
    refuse "not sending the GitLab token to $url: the build clones from ${origin:-(unknown)}"

entry=$(getent passwd "$(id -un)") || refuse "user $(id -un) is not in the passwd database"
IFS=: read -r _ _ _ _ _ home _ <<<"$entry"
token_file="$home/.autobuild/gitlab_token"
[[ -f $token_file && -r $token_file ]] || refuse "no GitLab token on file ($token_file)"
token=""
IFS= read -r token <"$token_file" || true
[[ -n $token ]] || refuse "the token file $token_file is empty"

case $kind in
    Username) printf '%s\n' oauth2 ;;
    Password) printf '%s\n' "$token" ;;
esac
