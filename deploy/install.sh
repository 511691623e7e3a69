#!/usr/bin/env bash
# Installs (or updates) Autobuild on this machine and starts it. Run as root from a checkout:
#   sudo ./deploy/install.sh [--no-yocto-deps] [--add-user NAME]... [--no-start]
#        [--tls-cert FILE --tls-key FILE | --tls-self-signed | --no-tls]
# Idempotent: a second run keeps the secret key, the database and the jobs, and reports
# "no changes" when nothing had to change.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: sudo ./deploy/install.sh [options]
  --no-yocto-deps   do not install the Yocto host packages (build-essential, chrpath, ...)
  --add-user NAME   add Linux user NAME to the autobuild-users group (may repeat)
  --no-start        install everything but do not (re)start the service and nginx
  --tls-cert FILE --tls-key FILE
                    serve HTTPS on 443 with this certificate (PEM, full chain) and key;
                    port 80 redirects to it
  --tls-self-signed serve HTTPS with a self-signed certificate made for this host name
                    (kept on later runs; browsers warn until you trust it)
  --no-tls          back to plain HTTP on port 80 (the default for a new install)
  Without a TLS option a new install serves HTTP; an install that has TLS keeps it.
  -h, --help        this help
USAGE
}

yocto_deps=1
start=1
add_users=()
tls_cert="" tls_key="" tls_mode=keep
while (($#)); do
    case "$1" in
        --no-yocto-deps) yocto_deps=0 ;;
        --no-start) start=0 ;;
        --add-user)
            [[ $# -ge 2 ]] || { echo "install.sh: --add-user needs a user name" >&2; exit 2; }
            add_users+=("$2"); shift ;;
        --tls-cert|--tls-key)
            [[ $# -ge 2 ]] || { echo "install.sh: $1 needs a file" >&2; exit 2; }
            [[ -f "$2" && -r "$2" ]] || { echo "install.sh: $1: cannot read $2" >&2; exit 2; }
            if [[ $1 == --tls-cert ]]; then tls_cert=$(readlink -f "$2"); else tls_key=$(readlink -f "$2"); fi
            tls_mode="admin"; shift ;;
        --tls-self-signed) tls_mode=self-signed ;;
        --no-tls) tls_mode=off ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done
if [[ $tls_mode == admin && ( -z "$tls_cert" || -z "$tls_key" ) ]]; then
    echo "install.sh: --tls-cert and --tls-key go together" >&2; exit 2
fi

src=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
prefix=/opt/autobuild
srv=/srv/autobuild
etc=/etc/autobuild
service_user=autobuild
users_group=autobuild-users
web_group=autobuild-web  # domain/layout.py WEB_GROUP: nginx reads downloads through it
changes=0

say() { printf '  %s\n' "$*"; }
have_systemd() { [[ -d /run/systemd/system ]] && [[ "$(ps -p 1 -o comm=)" == systemd ]]; }
service_running() {
    if have_systemd; then systemctl is-active --quiet autobuild.service
    else [[ -x "$prefix/deploy/autobuild-ctl" ]] && "$prefix/deploy/autobuild-ctl" status >/dev/null 2>&1
    fi
}
stopped_service=0
changed() { changes=$((changes + 1)); printf '  * %s\n' "$*"; }
fail() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
trap 'fail "step failed at line $LINENO (see the output above)"' ERR

[[ $(id -u) -eq 0 ]] || fail "run me as root: sudo $0"
[[ -f "$src/pyproject.toml" && -f "$src/runner/run_job.sh" ]] || fail "run me from an Autobuild checkout ($src is not one)"
echo "Installing Autobuild from $src"

# --- packages ---------------------------------------------------------------------------
packages=(python3 python3-venv git sudo nginx ca-certificates openssl acl locales)
# The Yocto Project's host packages for Ubuntu 24.04 (and Debian 12).
yocto_packages=(build-essential chrpath cpio debianutils diffstat file gawk gcc git
    iputils-ping libacl1 lz4 locales python3 python3-git python3-jinja2 python3-pexpect
    python3-pip python3-subunit socat texinfo unzip wget xz-utils zstd)
if ((yocto_deps)); then packages+=("${yocto_packages[@]}"); fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
echo "Packages"
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || fail "apt-get update failed: check the network and /etc/apt/sources.list"
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || fail "could not install: ${missing[*]}"
    changed "installed ${missing[*]}"
else
    say "all present"
fi

# --- a host real BitBake runs on -----------------------------------------------------------
echo "Host for BitBake"
# bitbake refuses to start without the en_US.UTF-8 locale (Debian generates none by default).
if locale -a 2>/dev/null | grep -qix 'en_US.utf-\?8'; then
    say "locale en_US.UTF-8 present"
else
    if [[ -f /etc/locale.gen ]] && grep -q '^# *en_US.UTF-8 UTF-8' /etc/locale.gen; then
        sed -i 's/^# *\(en_US.UTF-8 UTF-8\)/\1/' /etc/locale.gen  # Debian: locale-gen reads it
    elif [[ -f /etc/locale.gen ]] && ! grep -q '^en_US.UTF-8 UTF-8' /etc/locale.gen; then
        echo 'en_US.UTF-8 UTF-8' >>/etc/locale.gen
    fi
    if grep -qs '^en_US.UTF-8 UTF-8' /etc/locale.gen; then
        locale-gen >/dev/null || fail "locale-gen failed: bitbake needs the en_US.UTF-8 locale"
    else
        locale-gen en_US.UTF-8 >/dev/null || fail "locale-gen en_US.UTF-8 failed: bitbake needs that locale"  # Ubuntu
    fi
    locale -a 2>/dev/null | grep -qix 'en_US.utf-\?8' || fail "the en_US.UTF-8 locale is still missing after locale-gen"
    changed "generated the en_US.UTF-8 locale (bitbake refuses to run without it)"
fi
# Ubuntu 24.04 lets only AppArmor-profiled programs create user namespaces, which bitbake uses
# to cut tasks off the network. The narrowest fix that works (the one Ubuntu's bug 2056555 and
# the Yocto community give): a profile that allows `userns` to bitbake alone, here only to
# bitbake inside build workspaces under $srv/jobs; the restriction stays on for the rest.
userns_sysctl=/proc/sys/kernel/apparmor_restrict_unprivileged_userns
apparmor_profile=/etc/apparmor.d/autobuild-bitbake
if [[ "$(cat "$userns_sysctl" 2>/dev/null)" == 1 ]]; then
    command -v apparmor_parser >/dev/null || fail "kernel.apparmor_restrict_unprivileged_userns=1 but apparmor_parser is missing: sudo apt-get install apparmor"
    profile_changed=0
    if ! cmp -s "$src/deploy/apparmor/autobuild-bitbake" "$apparmor_profile"; then
        install -D -m 0644 -o root -g root "$src/deploy/apparmor/autobuild-bitbake" "$apparmor_profile"
        profile_changed=1
    fi
    if ((profile_changed)) || ! grep -qs '^autobuild-bitbake ' /sys/kernel/security/apparmor/profiles; then
        apparmor_parser -r -W "$apparmor_profile" || fail "apparmor_parser could not load $apparmor_profile"
        changed "AppArmor restricts user namespaces here (kernel.apparmor_restrict_unprivileged_userns=1): installed and loaded $apparmor_profile, which allows them to bitbake under $srv/jobs/<user>/<id>/work/ only; the restriction stays on for every other program"
    else
        say "AppArmor profile $apparmor_profile loaded (bitbake in build workspaces may use user namespaces)"
    fi
elif [[ -e "$userns_sysctl" ]]; then
    say "AppArmor does not restrict user namespaces here (kernel.apparmor_restrict_unprivileged_userns=0): nothing to do"
else
    say "no AppArmor user-namespace restriction on this kernel: nothing to do"
fi

# --- users and groups -------------------------------------------------------------------
echo "Users"
if ! getent group "$users_group" >/dev/null; then
    groupadd --system "$users_group"
    changed "created group $users_group (members may log in and build)"
fi
if ! id "$service_user" >/dev/null 2>&1; then
    useradd --system --user-group --home-dir "$srv" --no-create-home \
        --shell /usr/sbin/nologin "$service_user"
    changed "created system user $service_user"
fi
# The service is not an engineer: in their group it could run builds as itself and reach
# what engineers share. It reads build output through its own group instead.
if id -nG "$service_user" | tr ' ' '\n' | grep -qx "$users_group"; then
    gpasswd -d "$service_user" "$users_group" >/dev/null
    changed "removed $service_user from $users_group (the service reads builds through group $service_user)"
fi
if id -nG "$service_user" | tr ' ' '\n' | grep -qx shadow; then
    gpasswd -d "$service_user" shadow >/dev/null
    changed "removed $service_user from group shadow (the service must not read password hashes)"
fi
# nginx serves downloads the service hands over (X-Accel-Redirect) through its own group, to
# which builds grant read on their log and images only: never the service's group, which
# also reads the signing key.
nginx_user=$(sed -n 's/^[[:space:]]*user[[:space:]]\+\([^[:space:];]\+\).*/\1/p' /etc/nginx/nginx.conf 2>/dev/null | head -n1)
nginx_user=${nginx_user:-www-data}
if ! getent group "$web_group" >/dev/null; then
    groupadd --system "$web_group"
    changed "created group $web_group (nginx reads build logs and images through it)"
fi
if id "$nginx_user" >/dev/null 2>&1; then
    if ! id -nG "$nginx_user" | tr ' ' '\n' | grep -qx "$web_group"; then
        usermod -aG "$web_group" "$nginx_user"
        changed "added nginx's user $nginx_user to $web_group"
    fi
    for g in "$service_user" "$users_group"; do
        if id -nG "$nginx_user" | tr ' ' '\n' | grep -qx "$g"; then
            gpasswd -d "$nginx_user" "$g" >/dev/null
            changed "removed nginx's user $nginx_user from $g (it reads builds through $web_group only)"
        fi
    done
else
    say "WARNING: nginx's user $nginx_user does not exist: downloads are served by the service"
fi
for u in "${add_users[@]}"; do
    id "$u" >/dev/null 2>&1 || fail "--add-user: no such user: $u"
    [[ "$u" != root && "$u" != "$service_user" ]] || fail "--add-user: $u may not use Autobuild"
    [[ "$u" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || fail "--add-user: $u is not a name Autobuild accepts (a-z, 0-9, _ and -)"
    if ! id -nG "$u" | tr ' ' '\n' | grep -qx "$users_group"; then
        usermod -aG "$users_group" "$u"
        changed "added $u to $users_group"
    fi
done
say "service user $service_user, group $users_group"

# --- code, venv, runner -----------------------------------------------------------------
echo "Code in $prefix"
# Root-owned and not writable by the service: sudo runs run_job.sh as every engineer.
install -d -m 0755 -o root -g root "$prefix"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
for item in pyproject.toml README.md src plugins runner deploy docs; do
    [[ -e "$src/$item" ]] && cp -a "$src/$item" "$stage/"
done
find "$stage" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
chown -R root:root "$stage"
chmod -R u+rwX,go+rX,go-w "$stage"
code_changed=0
for item in pyproject.toml README.md src plugins runner deploy docs; do
    [[ -e "$stage/$item" ]] || continue
    if ! diff -r -q "$stage/$item" "$prefix/$item" >/dev/null 2>&1; then
        rm -rf "$prefix/$item.new"
        cp -a "$stage/$item" "$prefix/$item.new"
        rm -rf "${prefix:?}/${item:?}"
        mv "$prefix/$item.new" "$prefix/$item"
        code_changed=1
    fi
done
for exe in "$prefix"/runner/*.sh "$prefix/deploy/autobuild-ctl"; do chmod 0755 "$exe"; done
if ((code_changed)); then changed "copied the code"; else say "code up to date"; fi

# Built from Debian's /usr/bin/python3: engineers (through sudo) must be able to run it.
stamp="$prefix/venv/.autobuild-installed"
want=$( (cd "$prefix" && find pyproject.toml src plugins -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1)
if [[ ! -x "$prefix/venv/bin/python" ]]; then
    /usr/bin/python3 -m venv "$prefix/venv" || fail "could not create the venv (is python3-venv installed?)"
    changed "created $prefix/venv from /usr/bin/python3"
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$want" ]]; then
    if ! pip_out=$("$prefix/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$prefix" 2>&1); then
        printf '%s\n' "$pip_out" | grep -v '^WARNING: Location' >&2 || true
        fail "pip install failed (see above): is the package registry reachable?"
    fi
    rm -rf "$prefix/build" "$prefix"/src/*.egg-info  # pip's in-tree build leftovers
    echo "$want" >"$stamp"
    changed "installed the Python package into $prefix/venv"
else
    say "venv up to date"
fi
chown -R root:root "$prefix"
chmod -R go-w "$prefix"

# --- directories ------------------------------------------------------------------------
echo "Directories"
ensure_dir() {  # path owner group mode
    local path=$1 owner=$2 group=$3 mode=$4 now
    # Some of these live in directories the service owns (data/launch): a link planted there
    # must not make root chown or chmod what it points at.
    [[ ! -L "$path" ]] || fail "$path is a symbolic link; remove it (sudo rm $path) and run install.sh again"
    if [[ ! -d "$path" ]]; then
        install -d -o "$owner" -g "$group" -m "$mode" "$path"
        changed "created $path ($owner:$group $mode)"
        return
    fi
    now=$(stat -c '%U:%G %a' "$path")
    if [[ "$now" != "$owner:$group ${mode#0}" ]]; then
        chown -h "$owner:$group" "$path"
        chmod "$mode" "$path"
        changed "fixed $path ($now -> $owner:$group $mode)"
    fi
}
ensure_acl() {  # path: the group (engineers) may write whatever anyone adds, whatever the umask
    local path=$1 want=$'user::rwx\ngroup::rwx\nother::---'
    if [[ "$(getfacl -pcd "$path" 2>/dev/null)" != "$want" ]]; then
        if ! setfacl -m d:u::rwx,d:g::rwx,d:o::--- "$path" 2>/dev/null; then
            say "WARNING: cannot set ACLs on $path (mount it with acl support): builds will not share what they add to the cache"
            return 0
        fi
        # Directories made by earlier builds (umask 002, no ACL) get the same default.
        find "$path" -mindepth 1 -xdev -type d -exec setfacl -P -m d:u::rwx,d:g::rwx,d:o::--- {} + 2>/dev/null || true
        changed "default ACL on $path: $users_group may write what any build adds"
    fi
}
ensure_dir "$srv" root root 0755
ensure_dir "$srv/data" "$service_user" "$service_user" 0750
# The launch logs: what sudo and the runner print before a build's own log exists.
ensure_dir "$srv/data/launch" "$service_user" "$service_user" 0750
# Sticky + setgid; the engineers ($users_group, an ACL entry -wx) may create their <user>/
# (group $service_user, so the service reads it), nobody may list, rename or delete another's;
# others may only pass (nginx). Nobody else can make a directory there: AppArmor's bitbake
# profile (userns) attaches to workspaces below it. domain/layout.py JOBS_ROOT_*.
jobs_acl="user::rwx,group::r-x,group:$users_group:-wx,mask::rwx,other::--x"
jobs_root_ok() {
    [[ "$(stat -c '%U:%G %a' "$srv/jobs")" == "$service_user:$service_user 3771" ]] &&
        [[ "$(getfacl -pc "$srv/jobs" 2>/dev/null | grep -v -e '^$' -e '^default:' | paste -sd, -)" == "$jobs_acl" ]]
}
[[ ! -L "$srv/jobs" ]] || fail "$srv/jobs is a symbolic link; remove it (sudo rm $srv/jobs) and run install.sh again"
if [[ ! -d "$srv/jobs" ]]; then
    install -d -o "$service_user" -g "$service_user" -m 3751 "$srv/jobs"
fi
if ! jobs_root_ok; then
    before=$(stat -c '%U:%G %a' "$srv/jobs")
    chown -h "$service_user:$service_user" "$srv/jobs"
    chmod 3751 "$srv/jobs"
    if setfacl -P -m "u::rwx,g::r-x,g:$users_group:-wx,m::rwx,o::--x" "$srv/jobs" 2>/dev/null && jobs_root_ok; then
        changed "$srv/jobs is $service_user:$service_user 3751, and $users_group may create their directory (ACL)"
    else
        chmod 3753 "$srv/jobs"
        say "WARNING: cannot set ACLs on $srv/jobs (mount it with acl support): any local user may create a directory in it"
        [[ "$before" == "$service_user:$service_user 3753" ]] || changed "$srv/jobs is $service_user:$service_user 3753 (no ACLs)"
    fi
fi
# nginx may search each engineer's directory (--x, nothing more): directories made in the jobs
# root inherit it; each build passes the same on to its own directories and grants read on its
# log and images (the runner does, as the engineer).
web_search="user::rwx,group::r-x,group:$web_group:--x,mask::r-x,other::---"
web_acl_ok() {  # path: the default ACL [and the access entry] nginx needs
    [[ "$(getfacl -pcd "$1" 2>/dev/null | grep -v "^$" | paste -sd, -)" == "$web_search" ]] || return 1
    [[ ${2:-} != access ]] || getfacl -pc "$1" 2>/dev/null | grep -qx "group:$web_group:--x"
}
web_acl_set() {  # path [access]
    local spec="d:u::rwx,d:g::r-x,d:g:$web_group:--x,d:m::r-x,d:o::---"
    [[ ${2:-} != access ]] || spec="g:$web_group:--x,$spec"
    setfacl -P -m "$spec" "$1" 2>/dev/null
}
if ! web_acl_ok "$srv/jobs"; then
    if web_acl_set "$srv/jobs"; then
        changed "default ACL on $srv/jobs: nginx ($web_group) may search the engineers' directories made in it"
    else
        say "WARNING: cannot set ACLs on $srv/jobs (mount it with acl support): downloads are served by the service, not nginx"
    fi
fi
# The shared caches: members only, setgid, group-writable through default ACLs.
ensure_dir "$srv/cache" root "$users_group" 2750
for cache in downloads sstate-cache; do
    ensure_dir "$srv/cache/$cache" root "$users_group" 2770
    ensure_acl "$srv/cache/$cache"
done
# Every engineer's own directory, made now so that nobody else can take the name first.
mapfile -t engineers < <(getent group "$users_group" | cut -d: -f4 | tr ',' '\n' | grep -v -x -e '' -e "$service_user" -e root || true)
for u in "${engineers[@]}" "${add_users[@]}"; do
    if [[ ! "$u" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || ! id "$u" >/dev/null 2>&1; then continue; fi
    dir="$srv/jobs/$u"
    if [[ -L "$dir" || ( -e "$dir" && ! -d "$dir" ) ]] || { [[ -d "$dir" ]] && [[ "$(stat -c %U "$dir")" != "$u" ]]; }; then
        say "WARNING: $dir belongs to $(stat -c %U "$dir") (or is not a directory), not $u: $u's builds will fail until an admin removes it (sudo rm -r $dir)"
    elif [[ ! -d "$dir" ]]; then
        # mkdir refuses a name somebody took meanwhile (a link included); the new directory is
        # root's until the mode is set, so nobody can swap it before the last step.
        if mkdir -m 0750 -- "$dir" 2>/dev/null && chmod 2750 -- "$dir" && chown -h "$u:$service_user" -- "$dir"; then
            changed "created $dir ($u:$service_user 2750)"
        else
            say "WARNING: could not create $dir (somebody took the name?): $u's first build will say why"
        fi
    fi
    # A directory from before nginx served downloads; as root, setting it keeps its setgid.
    if [[ -d "$dir" && ! -L "$dir" && "$(stat -c %U "$dir")" == "$u" ]] && ! web_acl_ok "$dir" access \
        && web_acl_set "$dir" access; then
        changed "ACL on $dir: nginx ($web_group) may search it"
    fi
done
say "$srv/{data,jobs,cache}"

# --- old job directories ------------------------------------------------------------------
# Builds of the old layout (jobs/<id>, shared by all engineers) move to jobs/<owner>/<id>, with
# the service stopped; builds still running keep going (upgrade-layout explains).
echo "Job directories"
autobuild_cli="$prefix/venv/bin/autobuild"
upgrade_needed=0
upgrade_rc=0
"$autobuild_cli" upgrade-layout --check >"$stage/upgrade-check" 2>&1 || upgrade_rc=$?
case $upgrade_rc in
    0) ;;
    1) upgrade_needed=1 ;;
    *) cat "$stage/upgrade-check" >&2; fail "autobuild upgrade-layout --check failed" ;;
esac
if ((upgrade_needed || code_changed)) && service_running; then
    "$prefix/deploy/autobuild-ctl" stop >/dev/null
    stopped_service=1
    changed "stopped the service for the upgrade (running builds keep going)"
fi
if ((upgrade_needed)); then
    upgrade_rc=0
    "$autobuild_cli" upgrade-layout >"$stage/upgrade-out" 2>&1 || upgrade_rc=$?
    sed 's/^/    /' "$stage/upgrade-out"
    ((upgrade_rc == 0)) || say "WARNING: some old job directories were left in place (see above; autobuild check lists them)"
    changed "brought the old job directories under the new rules"
else
    say "all in the new layout"
fi

# --- configuration ----------------------------------------------------------------------
echo "Configuration"
install_file() {  # source target mode [owner:group]
    local from=$1 to=$2 mode=$3 owner=${4:-root:root}
    if ! cmp -s "$from" "$to" || [[ "$(stat -c '%a %U:%G' "$to")" != "${mode#0} $owner" ]]; then
        install -D -m "$mode" -o "${owner%:*}" -g "${owner#*:}" "$from" "$to"
        changed "installed $to"
    fi
}
visudo -cf "$src/deploy/sudoers/autobuild" >/dev/null || fail "deploy/sudoers/autobuild does not pass visudo -c; not installed"
install_file "$src/deploy/sudoers/autobuild" /etc/sudoers.d/autobuild 0440
for runas in root "$service_user"; do
    if sudo -n -l -U "$service_user" -u "$runas" "$prefix/runner/run_job.sh" >/dev/null 2>&1; then
        fail "sudo lets $service_user run the runner as $runas: remove the other sudoers rule that allows it (sudo -l -U $service_user)"
    fi
done
install_file "$src/deploy/pam/autobuild" /etc/pam.d/autobuild 0644

install -d -m 0750 -o root -g "$service_user" "$etc"
if [[ ! -f "$etc/autobuild.env" ]]; then
    install -m 0640 -o root -g "$service_user" "$src/deploy/autobuild.env.example" "$etc/autobuild.env"
    changed "wrote $etc/autobuild.env (settings; the secret key goes to $etc/secret_key)"
else
    say "$etc/autobuild.env kept"
fi
# The session signing key: a file only the service reads (root:autobuild 0640), never the
# environment; an old key in autobuild.env moves there (sessions go on).
if ! key_out=$("$prefix/venv/bin/python" -I -m autobuild.secret_key ensure --key-file "$etc/secret_key" \
        --env-file "$etc/autobuild.env" --group "$service_user" 2>&1); then
    printf '%s\n' "$key_out" >&2
    fail "could not write $etc/secret_key"
fi
while IFS= read -r line; do
    [[ -n "$line" ]] && changed "${line#\* }"
done <<<"$key_out"
[[ -n "$key_out" ]] || say "$etc/secret_key kept (root:$service_user 0640; rotate: autobuild rotate-key)"

install_file "$src/deploy/systemd/autobuild.service" /etc/systemd/system/autobuild.service 0644
# TLS: the admin's certificate, or a self-signed one made here (said plainly), in $etc/tls/;
# nginx then listens on 443 and port 80 redirects. An install that has TLS keeps it.
tls_dir=$etc/tls
if [[ $tls_mode == keep ]]; then
    if [[ -s "$tls_dir/autobuild.crt" && -s "$tls_dir/autobuild.key" ]]; then tls_mode=kept; else tls_mode=none; fi
fi
case $tls_mode in
    admin)
        openssl x509 -in "$tls_cert" -noout 2>/dev/null || fail "--tls-cert $tls_cert is not a PEM certificate"
        openssl pkey -in "$tls_key" -noout 2>/dev/null || fail "--tls-key $tls_key is not a PEM private key (or it has a passphrase)"
        if [[ "$(openssl x509 -in "$tls_cert" -noout -pubkey | openssl sha256)" != "$(openssl pkey -in "$tls_key" -pubout | openssl sha256)" ]]; then
            fail "--tls-key $tls_key does not belong to the certificate $tls_cert"
        fi
        install -d -m 0750 -o root -g root "$tls_dir"
        install_file "$tls_cert" "$tls_dir/autobuild.crt" 0644
        install_file "$tls_key" "$tls_dir/autobuild.key" 0600
        rm -f "$tls_dir/self-signed"
        say "HTTPS with your certificate ($(openssl x509 -in "$tls_dir/autobuild.crt" -noout -subject | sed 's/^subject= *//'), until $(openssl x509 -in "$tls_dir/autobuild.crt" -noout -enddate | cut -d= -f2))"
        ;;
    self-signed)
        host_name=$(hostname -f 2>/dev/null || hostname)
        install -d -m 0750 -o root -g root "$tls_dir"
        if [[ -f "$tls_dir/self-signed" && -s "$tls_dir/autobuild.crt" && -s "$tls_dir/autobuild.key" ]] \
            && [[ "$(cat "$tls_dir/self-signed")" == "$host_name" ]] \
            && openssl x509 -in "$tls_dir/autobuild.crt" -noout -checkend 2592000 >/dev/null; then
            say "HTTPS with the self-signed certificate made earlier for $host_name ($tls_dir/autobuild.crt)"
        else
            (umask 077 && openssl req -x509 -newkey rsa:3072 -sha256 -days 825 -nodes \
                -keyout "$tls_dir/autobuild.key.new" -out "$tls_dir/autobuild.crt.new" \
                -subj "/CN=$host_name" \
                -addext "subjectAltName=DNS:$host_name,DNS:$(hostname),DNS:localhost,IP:127.0.0.1" \
                >/dev/null 2>&1) || fail "openssl could not make a self-signed certificate"
            chmod 0644 "$tls_dir/autobuild.crt.new"
            mv "$tls_dir/autobuild.key.new" "$tls_dir/autobuild.key"
            mv "$tls_dir/autobuild.crt.new" "$tls_dir/autobuild.crt"
            echo "$host_name" >"$tls_dir/self-signed"
            changed "made a SELF-SIGNED certificate for $host_name (valid 825 days): $tls_dir/autobuild.crt, key $tls_dir/autobuild.key. Browsers warn until users trust it; replace it with install.sh --tls-cert FILE --tls-key FILE"
        fi
        ;;
    kept) say "HTTPS kept ($tls_dir/autobuild.crt; --no-tls goes back to HTTP)" ;;
    off)
        if [[ -d "$tls_dir" ]]; then
            rm -rf -- "$tls_dir"
            changed "TLS off (--no-tls): removed $tls_dir; nginx serves plain HTTP on port 80"
        fi
        tls_mode=none ;;
    none) say "plain HTTP on port 80 (--tls-cert/--tls-key or --tls-self-signed for HTTPS)" ;;
esac
if [[ $tls_mode == none ]]; then
    install_file "$src/deploy/nginx/autobuild.conf" /etc/nginx/sites-available/autobuild.conf 0644
else
    install_file "$src/deploy/nginx/autobuild-tls.conf" /etc/nginx/sites-available/autobuild.conf 0644
fi
if [[ "$(readlink /etc/nginx/sites-enabled/autobuild.conf 2>/dev/null)" != /etc/nginx/sites-available/autobuild.conf ]]; then
    ln -sfn /etc/nginx/sites-available/autobuild.conf /etc/nginx/sites-enabled/autobuild.conf
    changed "enabled the nginx site"
fi
if [[ -L /etc/nginx/sites-enabled/default ]]; then
    rm /etc/nginx/sites-enabled/default
    changed "disabled nginx's default site (Autobuild answers on port 80)"
fi
nginx -t -q || fail "nginx -t failed: fix the nginx configuration above"

# --- retention ---------------------------------------------------------------------------
echo "Retention"
install_file "$src/deploy/systemd/autobuild-gc.service" /etc/systemd/system/autobuild-gc.service 0644
install_file "$src/deploy/systemd/autobuild-gc.timer" /etc/systemd/system/autobuild-gc.timer 0644
if [[ -d /run/systemd/system ]] && [[ "$(ps -p 1 -o comm=)" == systemd ]]; then
    if ! systemctl is-enabled --quiet autobuild-gc.timer || ! systemctl is-active --quiet autobuild-gc.timer; then
        systemctl daemon-reload
        systemctl enable --now --quiet autobuild-gc.timer
        changed "enabled autobuild-gc.timer"
    fi
    say "autobuild gc runs daily (systemctl list-timers autobuild-gc.timer)"
elif [[ -d /etc/cron.daily ]]; then
    install_file "$src/deploy/cron.daily-autobuild-gc" /etc/cron.daily/autobuild-gc 0755
    say "systemd is not PID 1 here: autobuild gc runs daily from /etc/cron.daily/autobuild-gc (log /var/log/autobuild/gc.log)"
else
    say "no systemd and no /etc/cron.daily: run '$prefix/venv/bin/autobuild gc' daily as $service_user"
fi

# --- start ------------------------------------------------------------------------------
echo "Service"
ctl="$prefix/deploy/autobuild-ctl"
# autobuild-ctl says "started" only once the service answers on its port, and why not otherwise.
start_service() {  # start|restart
    local out rc=0
    out=$("$ctl" "$1" 2>&1) || rc=$?
    printf '%s\n' "$out" | sed 's/^/    /'
    ((rc == 0)) || fail "the service did not start (see above); after fixing the cause: sudo $ctl start"
}
if ((start)); then
    if [[ -d /run/systemd/system ]] && [[ "$(ps -p 1 -o comm=)" == systemd ]]; then
        systemctl daemon-reload
        systemctl is-enabled --quiet autobuild.service || { systemctl enable --quiet autobuild.service; changed "enabled autobuild.service"; }
        systemctl is-enabled --quiet nginx.service || systemctl enable --quiet nginx.service
        if ((changes)) || ! systemctl is-active --quiet autobuild.service; then
            start_service restart
            changed "restarted autobuild.service"
        fi
        if ! systemctl is-active --quiet nginx.service; then
            systemctl start nginx.service
            changed "started nginx"
        elif ((changes)); then
            systemctl reload nginx.service
        fi
    else
        say "systemd is not PID 1 here: autobuild-ctl supervises the service as $service_user with the unit's command and environment (restarted if it dies)"
        if ((changes)) || ! "$ctl" status >/dev/null 2>&1; then
            start_service restart
            changed "(re)started autobuild"
        fi
        if [[ -s /run/nginx.pid ]] && kill -0 "$(cat /run/nginx.pid)" 2>/dev/null; then
            if ((changes)); then nginx -s reload 2>/dev/null; fi
        else
            nginx
            changed "started nginx"
        fi
    fi
elif ((stopped_service)); then
    start_service start
    say "started the service again (it was running before the upgrade; --no-start)"
else
    say "not started (--no-start)"
fi

if ((changes)); then
    scheme=http; [[ $tls_mode == none ]] || scheme=https
    echo "Done: $changes change(s). Open $scheme://$(hostname -f 2>/dev/null || hostname)/ and sign in as a member of $users_group."
else
    echo "Done: no changes (everything was already installed and running)."
fi
