#!/usr/bin/env bash
# GIT_ASKPASS helper of the runner: answers git's prompts, for the repository's own origin only.
#
# "Username for 'https://host'"         -> oauth2
# "Password for 'https://oauth2@host'"  -> the token in the file AUTOBUILD_TOKEN_FILE names
# The runner (autobuild.runner.steps) sets AUTOBUILD_TOKEN_FILE (~/.autobuild/gitlab_token,
# home from the passwd database) and AUTOBUILD_GIT_ORIGIN (https://host[:port] of the
# repository), so the token is never in an argument, the environment, a URL or a git config.
# Any other origin (a submodule elsewhere, a redirect) gets nothing.
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

token_file=${AUTOBUILD_TOKEN_FILE:-}
[[ -n $token_file ]] || refuse "no GitLab token on file (the runner named none)"
[[ -f $token_file && -r $token_file ]] || refuse "no GitLab token on file ($token_file)"
token=""
IFS= read -r token <"$token_file" || true
[[ -n $token ]] || refuse "the token file $token_file is empty"

case $kind in
    Username) printf '%s\n' oauth2 ;;
    Password) printf '%s\n' "$token" ;;
esac
