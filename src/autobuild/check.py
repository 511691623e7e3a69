"""`autobuild check`: diagnose an installation, one line per check with the fix when it fails."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import ConfigError, Settings
from . import host_ready, secret_key
from .domain import layout

SERVICE_USER = "autobuild"
SUDOERS = Path("/etc/sudoers.d/autobuild")
PAM_SERVICE = Path("/etc/pam.d/autobuild")
NGINX_SITE = Path("/etc/nginx/sites-enabled/autobuild.conf")
NGINX_CONF = Path("/etc/nginx/nginx.conf")
SERVICE_COMMAND = "/opt/autobuild/venv/bin/autobuild"
CTL = "/opt/autobuild/deploy/autobuild-ctl"


@dataclass(frozen=True)
class Result:
    ok: bool
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"✓ {self.what}" if self.ok else f"✗ {self.what} — fix: {self.fix}"


def _mode(path: Path) -> tuple[str, str, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    try:
        owner = pwd.getpwuid(st.st_uid).pw_name
    except KeyError:
        owner = str(st.st_uid)
    try:
        group = grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        group = str(st.st_gid)
    return owner, group, stat.S_IMODE(st.st_mode)


CACHE_DEFAULT_ACL = ("user::rwx", "group::rwx", "other::---")


def _acl(path: Path, default: bool) -> tuple[str, ...] | None:
    """The access entries of ``path``'s ACL, or its default ones; None without getfacl."""
    if not shutil.which("getfacl"):
        return None
    result = _run(["getfacl", "-pcd" if default else "-pc", str(path)])
    if result.returncode != 0:
        return None
    lines = [line for line in result.stdout.splitlines() if line]
    if default:
        return tuple(line for line in lines if "mask" not in line)
    return tuple(line for line in lines if not line.startswith("default:"))


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def _group_members(name: str) -> list[str]:
    try:
        group = grp.getgrnam(name)
    except KeyError:
        return []
    members = set(group.gr_mem)
    members.update(p.pw_name for p in pwd.getpwall() if p.pw_gid == group.gr_gid)
    return sorted(members - {SERVICE_USER})


def _nginx_user(conf: Path = NGINX_CONF) -> str:
    """The user nginx's workers run as (its ``user`` directive; Debian's www-data)."""
    try:
        for line in conf.read_text().splitlines():
            words = line.split("#", 1)[0].replace(";", " ").split()
            if len(words) >= 2 and words[0] == "user":
                return words[1]
    except OSError:
        pass
    return "www-data"


def _writable_by(top: Path, user: str) -> list[str]:
    """Paths below ``top`` (not following links) that ``user`` could write: owned by it, or
    group/other-writable for a group it is in."""
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        return []
    gids = {account.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames, ""]:
            path = os.path.join(dirpath, name) if name else dirpath
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = st.st_mode
            if (st.st_uid == account.pw_uid or (st.st_gid in gids and mode & 0o020)
                    or mode & 0o002):
                found.append(path)
    return found


class HostCheck:
    """The checks, in the order an admin would fix them."""

    def __init__(self, settings: Settings, proc: Path = Path("/proc"),
                 proc_sys: Path = host_ready.PROC_SYS,
                 securityfs: Path = host_ready.SECURITYFS) -> None:
        self.s = settings
        self.proc = proc
        self.proc_sys = proc_sys
        self.securityfs = securityfs

    def results(self) -> Iterator[Result]:
        checks: list[Callable[[], Iterator[Result]]] = [
            self.service_user, self.directories, self.job_owners, self.runner, self.sudo_rules, self.pam,
            self.secret_key, self.database, self.bitbake_host, self.service, self.nginx,
            self.slurm,
        ]
        for check in checks:
            try:
                yield from check()
            except Exception as exc:  # a check that crashes is itself a finding
                yield Result(False, f"{check.__name__} could not be checked ({exc})",
                             "run `autobuild check` as root")

    def service_user(self) -> Iterator[Result]:
        group = self.s.users_group
        try:
            pwd.getpwnam(SERVICE_USER)
        except KeyError:
            yield Result(False, f"service user {SERVICE_USER} exists", "run sudo ./deploy/install.sh")
            return
        yield Result(True, f"service user {SERVICE_USER} exists")
        try:
            grp.getgrnam(group)
        except KeyError:
            yield Result(False, f"group {group} exists", f"sudo groupadd --system {group}")
            return
        groups = {g.gr_name for g in grp.getgrall() if SERVICE_USER in g.gr_mem}
        yield Result(group not in groups,
                     f"{SERVICE_USER} is NOT in {group} (it reads builds through group {SERVICE_USER})",
                     f"sudo gpasswd -d {SERVICE_USER} {group}")
        yield Result("shadow" not in groups, f"{SERVICE_USER} is not in shadow (cannot read password hashes)",
                     f"sudo gpasswd -d {SERVICE_USER} shadow")
        members = _group_members(group)
        yield Result(bool(members), f"{group} has engineers ({', '.join(members) or 'none'})",
                     f"sudo usermod -aG {group} <user>  (or install.sh --add-user <user>)")

    def directories(self) -> Iterator[Result]:
        group = self.s.users_group
        caches = [self.s.cache_dir / "downloads", self.s.cache_dir / "sstate-cache"]
        expected = [
            (self.s.db_path.parent, SERVICE_USER, SERVICE_USER, 0o750),
            (self.s.db_path.parent / layout.LAUNCH_DIR, SERVICE_USER, SERVICE_USER, 0o750),
            *((cache, "root", group, 0o2770) for cache in caches),
        ]
        for path, owner, grp_name, mode in expected:
            actual = _mode(path)
            want = f"{owner}:{grp_name} {mode:o}"
            if actual is None:
                yield Result(False, f"{path} exists", f"sudo install -d -o {owner} -g {grp_name} -m {mode:o} {path}")
                continue
            have = f"{actual[0]}:{actual[1]} {actual[2]:o}"
            yield Result(have == want, f"{path} is {want}" + ("" if have == want else f" (is {have})"),
                         f"sudo chown {owner}:{grp_name} {path} && sudo chmod {mode:o} {path}")
        yield self._jobs_root(group)
        for cache in caches:
            if _mode(cache) is None:
                continue
            acl = _acl(cache, default=True)
            yield Result(acl == CACHE_DEFAULT_ACL,
                         f"{cache} has the default ACL {','.join(CACHE_DEFAULT_ACL)} (what any build "
                         f"adds stays writable for {group})" + ("" if acl is not None else
                                                                 " (getfacl missing or failed)"),
                         f"sudo setfacl -m d:u::rwx,d:g::rwx,d:o::--- {cache}  (sudo apt-get install acl; "
                         "or rerun install.sh)")

    def _jobs_root(self, group: str) -> Result:
        """Only the engineers may create in the jobs root (AppArmor's bitbake profile
        attaches below it): mode 3751 and an ACL entry for their group."""
        root = self.s.jobs_root
        actual, acl = _mode(root), _acl(root, default=False)
        have = "missing" if actual is None else f"{actual[0]}:{actual[1]} {actual[2]:o}"
        want = f"{SERVICE_USER}:{SERVICE_USER} {layout.JOBS_ROOT_MODE_SHOWN:o}"
        members = f"group:{group}:{layout.JOBS_ROOT_MEMBERS_ACL}"
        ok = have == want and acl is not None and {members, "group::r-x", "other::--x"} <= set(acl)
        return Result(ok, f"{root} is {SERVICE_USER}:{SERVICE_USER} {layout.JOBS_ROOT_MODE:o} "
                          f"and only {group} may create in it ({members})"
                      + ("" if ok else f" (is {have}, ACL {','.join(acl or ()) or 'none'})"),
                      f"sudo chown {SERVICE_USER}:{SERVICE_USER} {root} && sudo chmod "
                      f"{layout.JOBS_ROOT_MODE:o} {root} && sudo setfacl -m "
                      f"g:{group}:{layout.JOBS_ROOT_MEMBERS_ACL},m::rwx,o::--x {root}  "
                      "(or rerun install.sh)")

    def job_owners(self) -> Iterator[Result]:
        """Every entry of the jobs root is a directory of the user it is named after."""
        root = self.s.jobs_root
        try:
            names = sorted(os.listdir(root))
        except OSError as exc:
            yield Result(False, f"{root} can be listed ({exc.strerror})", "run `autobuild check` as root")
            return
        bad = 0
        for name in names:
            path = root / name
            try:
                st = os.lstat(path)
            except OSError:
                continue
            owner = _user_name(st.st_uid)
            if name.isdigit() and stat.S_ISLNK(st.st_mode):
                continue  # upgrade-layout's link for a build of the old layout still running
            if name.isdigit() or ".orphaned-" in name:
                bad += 1
                yield Result(False, f"jobs/{name} is a job directory of the old layout",
                             f"sudo /opt/autobuild/venv/bin/autobuild upgrade-layout (with the service "
                             f"stopped), or sudo rm -r {path}")
            elif not stat.S_ISDIR(st.st_mode) or owner != name:
                bad += 1
                what = "is not a directory" if not stat.S_ISDIR(st.st_mode) else f"belongs to {owner}"
                yield Result(False, f"jobs/{name} {what}",
                             f"sudo rm -r {path}  (only {name}'s own builds belong there)")
        if not bad:
            yield Result(True, f"every entry of {root} is its engineer's own directory ({len(names)})")

    def runner(self) -> Iterator[Result]:
        runner = self.s.runner_path
        code_root = runner.parent.parent
        for path in (code_root, runner.parent, runner):
            actual = _mode(path)
            if actual is None:
                yield Result(False, f"{path} exists", "run sudo ./deploy/install.sh")
                return
            safe = actual[0] == "root" and not actual[2] & 0o022
            yield Result(safe, f"{path} is root-owned and not writable by group or others",
                         f"sudo chown root:root {path} && sudo chmod go-w {path}")
        # Nothing the runner runs may be changed by the service: else a bug in the web service
        # becomes code execution as every engineer.
        writable = _writable_by(code_root, SERVICE_USER)
        yield Result(not writable, f"nothing in {code_root} is writable by {SERVICE_USER}"
                     + (f" ({', '.join(writable[:3])}{' ...' if len(writable) > 3 else ''})" if writable else ""),
                     f"sudo chown -R root:root {code_root} && sudo chmod -R go-w {code_root}")

    def sudo_rules(self) -> Iterator[Result]:
        yield Result(SUDOERS.is_file(), f"{SUDOERS} installed", "run sudo ./deploy/install.sh")
        if not shutil.which("sudo"):
            yield Result(False, "sudo is installed", "sudo apt-get install sudo")
            return
        members = _group_members(self.s.users_group)
        runner = str(self.s.runner_path)
        if members:
            member = members[0]
            allowed = _run(["sudo", "-n", "-l", "-U", SERVICE_USER, "-u", member, runner])
            yield Result(allowed.returncode == 0, f"{SERVICE_USER} may run the runner as {member}",
                         f"check {SUDOERS}: it must say (%{self.s.users_group}) NOPASSWD: {runner}")
        for runas in ("root", SERVICE_USER):
            refused = _run(["sudo", "-n", "-l", "-U", SERVICE_USER, "-u", runas, runner])
            yield Result(refused.returncode != 0, f"{SERVICE_USER} may NOT run the runner as {runas}",
                         f"rerun install.sh (its rule ends with ,!root,!{SERVICE_USER}) and remove any "
                         f"other rule for {SERVICE_USER}")
        other = _run(["sudo", "-n", "-l", "-U", SERVICE_USER, "-u", members[0] if members else "nobody",
                      "/bin/sh"])
        yield Result(other.returncode != 0, f"{SERVICE_USER} may run nothing else through sudo",
                     f"remove any rule for {SERVICE_USER} other than the one in {SUDOERS}")

    def pam(self) -> Iterator[Result]:
        yield Result(PAM_SERVICE.is_file(), f"PAM service file {PAM_SERVICE} present",
                     "sudo install -m 0644 deploy/pam/autobuild /etc/pam.d/autobuild")

    def secret_key(self) -> Iterator[Result]:
        path = Path(getattr(self.s, "secret_key_file", None) or secret_key.KEY_FILE)
        state = secret_key.inspect(path, SERVICE_USER)
        if state.ok:
            yield Result(True, f"session key file {state.describe()} (rotate: autobuild rotate-key)")
        for problem, fix in state.problems:
            yield Result(False, f"session key file: {problem}", fix)
        if secret_key.service_reads_key_file():
            yield Result(not self.s.secret_key,
                         "no secret key in the service's environment (AUTO_BUILD_SECRET_KEY)",
                         "remove the AUTO_BUILD_SECRET_KEY line from /etc/autobuild/autobuild.env "
                         "(rerun install.sh: it moves the key into the key file)")
            return
        # This version of the service still reads the key from its environment.
        try:
            self.s.session_secret()
        except ConfigError as exc:
            yield Result(False, "session secret key set", str(exc))
            return
        yield Result(bool(self.s.secret_key), "session secret key set",
                     "rerun sudo ./deploy/install.sh (it writes the key)")

    def bitbake_host(self) -> Iterator[Result]:
        for finding in host_ready.findings(self.proc_sys, self.securityfs):
            yield Result(finding.ok, finding.what, finding.fix)

    def _service_pids(self) -> list[int]:
        """Processes running `autobuild serve` from the installed venv as the service user."""
        try:
            uid = pwd.getpwnam(SERVICE_USER).pw_uid
        except KeyError:
            return []
        pids = []
        for entry in self.proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
                owner = entry.stat().st_uid
            except OSError:
                continue
            words = [a.decode(errors="replace") for a in argv if a]
            if owner == uid and "serve" in words and any(w.endswith("/bin/autobuild") or w == SERVICE_COMMAND
                                                         for w in words[:3]):
                pids.append(int(entry.name))
        return sorted(pids)

    def service(self) -> Iterator[Result]:
        start = f"sudo {CTL} start  (it says why the service cannot start)"
        pids = self._service_pids()
        yield Result(bool(pids), f"the service runs (autobuild serve as {SERVICE_USER}"
                     + (f", pid {', '.join(map(str, pids))})" if pids else ": no such process)"),
                     start)
        url = f"http://127.0.0.1:{self.s.port}/login"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
                status = response.status
            problem = "" if status == 200 else f"HTTP {status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            problem = str(getattr(exc, "reason", exc))
        yield Result(not problem, f"the service answers on 127.0.0.1:{self.s.port} (GET /login"
                     + (": 200)" if not problem else f": {problem})"),
                     start + "; its log: journalctl -u autobuild, or /var/log/autobuild/service.log "
                     "without systemd")

    def database(self) -> Iterator[Result]:
        db = self.s.db_path
        if not db.exists():
            yield Result(_mode(db.parent) is not None and _mode(db.parent)[0] == SERVICE_USER,
                         f"database {db} will be created on first start",
                         f"sudo install -d -o {SERVICE_USER} -g {SERVICE_USER} -m 750 {db.parent}")
            return
        owner = _mode(db)
        yield Result(owner is not None and owner[0] == SERVICE_USER and bool(owner[2] & 0o200),
                     f"database {db} is writable by {SERVICE_USER}", f"sudo chown {SERVICE_USER}: {db}")
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.Error as exc:
            verdict = str(exc)
        yield Result(verdict == "ok", f"database passes quick_check ({verdict})",
                     "restore the database from a backup")

    def nginx(self) -> Iterator[Result]:
        yield Result(NGINX_SITE.exists(), f"nginx site enabled ({NGINX_SITE})",
                     "sudo ln -s ../sites-available/autobuild.conf /etc/nginx/sites-enabled/")
        if not shutil.which("nginx"):
            yield Result(False, "nginx installed", "sudo apt-get install nginx")
            return
        test = _run(["nginx", "-t"])
        last = (test.stderr.strip().splitlines() or ["no output"])[-1]
        yield Result(test.returncode == 0, f"nginx -t ({last})", "fix the configuration nginx -t names")
        yield from self.nginx_groups(_nginx_user())

    def slurm(self) -> Iterator[Result]:
        if self.s.executor == "slurm":
            yield from slurm_checks(self.s, _run)

    def nginx_groups(self, user: str) -> Iterator[Result]:
        """nginx serves downloads through WEB_GROUP, never through the service's group."""
        web = layout.WEB_GROUP
        try:
            members = grp.getgrnam(web).gr_mem
        except KeyError:
            yield Result(False, f"group {web} exists (nginx serves downloads through it)",
                         "run sudo ./deploy/install.sh (until then the service serves them)")
            return
        yield Result(user in members, f"nginx's user {user} is in {web}",
                     f"sudo usermod -aG {web} {user} && sudo systemctl reload nginx")
        groups = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
        yield Result(SERVICE_USER not in groups,
                     f"nginx's user {user} is NOT in {SERVICE_USER} (that group reads the signing key)",
                     f"sudo gpasswd -d {user} {SERVICE_USER}")


def slurm_checks(settings: Settings, run: Callable[[list[str]], subprocess.CompletedProcess[str]]
                 ) -> Iterator[Result]:
    """With AUTO_BUILD_EXECUTOR=slurm: the cluster answers, and a node sees the jobs root at
    the same path as the very same directory (shared storage: NFS in practice)."""
    partition = settings.slurm_partition
    where = ["--partition", partition] if partition else []
    try:
        info = run(["sinfo", "--noheader", "--format=%P %a %D %t", *where])
    except (OSError, subprocess.TimeoutExpired) as exc:
        yield Result(False, f"the Slurm cluster answers (sinfo: {exc})",
                     "install the Slurm client and munge on this host, with the cluster's "
                     "slurm.conf and munge key (README: Builds on a Slurm cluster)")
        return
    lines = [line for line in info.stdout.splitlines() if line.strip()]
    yield Result(info.returncode == 0 and bool(lines),
                 f"the Slurm cluster answers (sinfo: {'; '.join(lines)[:200] or info.stderr.strip()[:200] or 'nothing'})",
                 "start slurmctld, check /etc/slurm/slurm.conf and munge (README: Builds on a "
                 "Slurm cluster)" + (f"; is the partition {partition} there?" if partition else ""))
    if info.returncode != 0 or not lines:
        return
    root = settings.jobs_root
    try:
        here = os.stat(root)
    except OSError as exc:
        yield Result(False, f"{root} exists here ({exc.strerror})", "rerun install.sh")
        return
    try:
        node = run(["srun", "--quiet", "--immediate=20", "--nodes=1", "--ntasks=1", "--time=1",
                    *where, "stat", "--format=%d %i %n", str(root)])
    except (OSError, subprocess.TimeoutExpired) as exc:
        yield Result(False, f"a node sees {root} (srun: {exc})", "try again when a node is free")
        return
    fields = node.stdout.split()
    same = node.returncode == 0 and len(fields) >= 2 and fields[1] == str(here.st_ino)
    yield Result(same, f"a node sees {root} at the same path, as the same directory"
                 + ("" if same else f" ({(node.stderr or node.stdout).strip()[:200] or 'no answer'})"),
                 f"mount the jobs root {root} (and {settings.cache_dir}) on every node at the same "
                 "path from the same storage (README: Builds on a Slurm cluster)")


def run_checks(settings: Settings) -> int:
    """Print every check; 0 when all pass, 1 otherwise."""
    if os.geteuid() != 0:
        print("note: not root, so some checks may fail only for lack of permission")
    failed = 0
    for result in HostCheck(settings).results():
        print(result.line())
        failed += not result.ok
    print(f"{failed} problem(s) found" if failed else "all checks passed")
    return 1 if failed else 0
