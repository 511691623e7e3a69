#!/usr/bin/env bash
# Installs (or updates) Autobuild on this machine and starts it. Run as root from a checkout:
#   sudo ./deploy/install.sh [--no-yocto-deps] [--add-user NAME]... [--no-start]
# Idempotent: a second run keeps the secret key, the database and the jobs, and reports
# "no changes" when nothing had to change.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: sudo ./deploy/install.sh [options]
  --no-yocto-deps   do not install the Yocto host packages (build-essential, chrpath, ...)
  --add-user NAME   add Linux user NAME to the autobuild-users group (may repeat)
  --no-start        install everything but do not (re)start the service and nginx
  -h, --help        this help
USAGE
}

yocto_deps=1
start=1
add_users=()
while (($#)); do
    case "$1" in
        --no-yocto-deps) yocto_deps=0 ;;
        --no-start) start=0 ;;
        --add-user)
            [[ $# -ge 2 ]] || { echo "install.sh: --add-user needs a user name" >&2; exit 2; }
            add_users+=("$2"); shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

src=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
prefix=/opt/autobuild
srv=/srv/autobuild
etc=/etc/autobuild
service_user=autobuild
users_group=autobuild-users
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
packages=(python3 python3-venv git sudo nginx ca-certificates openssl acl)
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
    if [[ ! -d "$path" ]]; then
        install -d -o "$owner" -g "$group" -m "$mode" "$path"
        changed "created $path ($owner:$group $mode)"
        return
    fi
    now=$(stat -c '%U:%G %a' "$path")
    if [[ "$now" != "$owner:$group ${mode#0}" ]]; then
        chown "$owner:$group" "$path"
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
        find "$path" -mindepth 1 -xdev -type d -exec setfacl -m d:u::rwx,d:g::rwx,d:o::--- {} + 2>/dev/null || true
        changed "default ACL on $path: $users_group may write what any build adds"
    fi
}
ensure_dir "$srv" root root 0755
ensure_dir "$srv/data" "$service_user" "$service_user" 0750
# The launch logs: what sudo and the runner print before a build's own log exists.
ensure_dir "$srv/data/launch" "$service_user" "$service_user" 0750
# Sticky + setgid, others -wx: each engineer's first build may create <user>/ (group
# $service_user, so the service reads it), nobody may list, rename or delete another's.
ensure_dir "$srv/jobs" "$service_user" "$service_user" 3753
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
    secret=$(/usr/bin/python3 -c 'import secrets; print(secrets.token_urlsafe(48))')
    sed "s|^AUTO_BUILD_SECRET_KEY=.*|AUTO_BUILD_SECRET_KEY=$secret|" \
        "$src/deploy/autobuild.env.example" >"$stage/autobuild.env"
    install -m 0640 -o root -g "$service_user" "$stage/autobuild.env" "$etc/autobuild.env"
    changed "wrote $etc/autobuild.env with a new secret key"
else
    say "$etc/autobuild.env kept (secret key unchanged)"
fi

install_file "$src/deploy/systemd/autobuild.service" /etc/systemd/system/autobuild.service 0644
install_file "$src/deploy/nginx/autobuild.conf" /etc/nginx/sites-available/autobuild.conf 0644
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
if ((start)); then
    if [[ -d /run/systemd/system ]] && [[ "$(ps -p 1 -o comm=)" == systemd ]]; then
        systemctl daemon-reload
        systemctl is-enabled --quiet autobuild.service || { systemctl enable --quiet autobuild.service; changed "enabled autobuild.service"; }
        systemctl is-enabled --quiet nginx.service || systemctl enable --quiet nginx.service
        if ((changes)) || ! systemctl is-active --quiet autobuild.service; then
            systemctl restart autobuild.service
            changed "restarted autobuild.service"
        fi
        if ! systemctl is-active --quiet nginx.service; then
            systemctl start nginx.service
            changed "started nginx"
        elif ((changes)); then
            systemctl reload nginx.service
        fi
    else
        say "systemd is not PID 1 here: starting the service directly as $service_user with the unit's command and environment"
        if ((changes)) || ! "$prefix/deploy/autobuild-ctl" status >/dev/null; then
            "$prefix/deploy/autobuild-ctl" restart | sed 's/^/  /'
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
    "$prefix/deploy/autobuild-ctl" start | sed 's/^/  /'
    say "started the service again (it was running before the upgrade; --no-start)"
else
    say "not started (--no-start)"
fi

if ((changes)); then
    echo "Done: $changes change(s). Open http://$(hostname -f 2>/dev/null || hostname)/ and sign in as a member of $users_group."
else
    echo "Done: no changes (everything was already installed and running)."
fi
