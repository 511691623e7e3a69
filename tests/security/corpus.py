"""The bad-input corpus: one named case per attack, as data.

A case is one raw request (path and query sent byte for byte) by a chosen caller. What a case
must get back (``expect``):
- ``4xx``: refused with a 4xx status (never a 5xx, never a 2xx or 3xx);
- ``to-login``: a page that sends the caller to /login (303), as pages do for nobody signed in;
- ``undisclosed``: answered (the route shows what it may), but nothing of the planted secret,
  and none of ``absent`` in the body.
Every case, whatever it expects, must leave everything as it was: no job row, no file, no
runner launch or cancel, no token saved, the signed-in sessions still signed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from autobuild.web.app import ROUTE_MODULES

from .world import ALLOWED_HOST, ARTIFACT, OTHER, OWNER

# Who sends it: a user name (signed in), None (nobody), or a bad cookie (see test_corpus.py).
FORGED = "cookie:forged-signature"
FOREIGN_KEY = "cookie:signed-with-another-key"
GARBAGE = "cookie:garbage"
TAMPERED = "cookie:payload-edited"
EXPIRED = "cookie:expired"
REVOKED = "cookie:revoked-by-logout"
BAD_COOKIES = (FORGED, FOREIGN_KEY, GARBAGE, TAMPERED, EXPIRED, REVOKED)

# How a POST carries its CSRF token.
RIGHT, MISSING, WRONG, FOREIGN, CROSS_ORIGIN, CROSS_REFERER = (
    "right", "missing", "wrong", "another-session's", "missing+Origin:evil", "missing+Referer:evil")
EVIL = "https://evil.example.org"

PLANTS = ("passwd-link.bin", "secret-link.bin", "up-link", "fifo.bin", "hard-link.bin",
          "subdir", ".hidden.bin", "group-writable.bin", "not-owners.bin")


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    target: str
    caller: str | None = OWNER
    csrf: str = RIGHT  # POSTs only
    fields: tuple[tuple[str, str], ...] = ()  # form fields (POSTs to pages)
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None  # a raw body instead of the form
    expect: str = "4xx"
    absent: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name


def _post_paths() -> list[str]:
    """Every POST route of the app, from the route table (ids filled in with the running job)."""
    return sorted(route.path.replace("{job_id:jobid}", "3")
                  for module in ROUTE_MODULES for route in module.router.routes
                  if "POST" in getattr(route, "methods", ()))


VALID_NEW = (("repo_url", f"https://{ALLOWED_HOST}/bsp/poky.git"), ("ref", "main"),
             ("machine", "qemux86-64"), ("target", "core-image-minimal"), ("kas_file", ""))


def _fields_for(path: str) -> tuple[tuple[str, str], ...]:
    """Fields that would be accepted with the right token: only the token is missing."""
    if path == "/login":
        return (("username", OWNER), ("password", "owner-pw"))
    if path == "/new":
        return VALID_NEW
    if path in ("/settings", "/profile"):
        return (("token", "glpat-abcdefghijklmnop"),)
    return ()


# --- 1. traversal on the artifact name (every way to name something that is not an artifact) ----

ARTIFACT_NAMES = {
    "plain ../": "../status.json",
    "plain ../../ to /etc/passwd": "../../../../../../etc/passwd",
    "%-encoded slash": "..%2fstatus.json",
    "%-encoded dots and slash": "%2e%2e%2fstatus.json",
    "%-encoded to /etc/passwd": "%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "double-encoded ../": "%252e%252e%252fstatus.json",
    "double-encoded backslash": "..%255cstatus.json",
    "backslash": "..\\status.json",
    "%-encoded backslash": "..%5c..%5cstatus.json",
    "absolute path": "/etc/passwd",
    "%-encoded absolute path": "%2fetc%2fpasswd",
    "NUL after a real name": f"{ARTIFACT}%00.txt",
    "NUL alone": "%00",
    "overlong UTF-8 ../": "%c0%ae%c0%ae%c0%afstatus.json",
    "3-byte overlong UTF-8 dots": "%e0%80%ae%e0%80%ae/status.json",
    "name over 255 bytes": "a" * 300 + ".bin",
    "name over PATH_MAX": "b" * 5000 + ".bin",
    "symlink to /etc/passwd": "passwd-link.bin",
    "symlink out of the tree": "secret-link.bin",
    "symlinked directory in artifacts/": "up-link",
    "through a symlinked directory": "up-link/1/status.json",
    "FIFO": "fifo.bin",
    "hard link to a file outside": "hard-link.bin",
    "directory": "subdir",
    "file inside a directory": "subdir/inner.bin",
    "dot": ".",
    "dot-dot": "..",
    "%-encoded dot-dot": "%2e%2e",
    "hidden file": ".hidden.bin",
    "group-writable file": "group-writable.bin",
    "file of another user": "not-owners.bin",
    "the checksums file beside artifacts/": "../artifacts.sha256",
}


def traversal_cases() -> list[Case]:
    cases = [Case(f"artifact name: {label}", "GET", f"/api/jobs/1/artifacts/{name}")
             for label, name in ARTIFACT_NAMES.items()]
    cases += [
        Case("artifact name: artifacts/ is a symlinked directory", "GET",
             "/api/jobs/2/artifacts/secret.bin"),
        Case("artifact listing: only the real image, no plant", "GET", "/api/jobs/1/artifacts",
             expect="undisclosed", absent=PLANTS),
        Case("job page: only the real image, no plant", "GET", "/jobs/1",
             expect="undisclosed", absent=tuple(p for p in PLANTS if p != "subdir")),
        Case("log: logs/ is a symlinked directory", "GET", "/api/jobs/2/log?offset=0",
             expect="undisclosed"),
        Case("log stream: logs/ is a symlinked directory", "GET", "/api/jobs/2/log/stream",
             expect="undisclosed"),
        Case("job page: logs/ and artifacts/ are links", "GET", "/jobs/2", expect="undisclosed",
             absent=("secret.bin",)),
        Case("compare page: buildhistory files are links, a FIFO, a hard link, a linked dir",
             "GET", "/jobs/compare?a=1&b=2", expect="undisclosed"),
        Case("API compare: buildhistory files are links, a FIFO, a hard link, a linked dir",
             "GET", "/api/jobs/compare?a=2&b=1", expect="undisclosed"),
        Case("static: plain ../", "GET", "/static/../../../../etc/passwd"),
        Case("static: %-encoded ../", "GET", "/static/%2e%2e/%2e%2e/web/app.py"),
        Case("static: %-encoded slash", "GET", "/static/..%2f..%2fconfig.py"),
        Case("static: absolute", "GET", "/static//etc/passwd"),
        Case("static: NUL", "GET", "/static/app.css%00.html"),
    ]
    return cases


# --- 2. ids that are not integers, or not visible, on every route that takes one ----------------

BAD_IDS = {
    "1.0": "1.0", "0x1": "0x1", "-1": "-1", "1e3": "1e3", "+1": "%2B1", "space 1": "%201",
    "1 NUL": "1%00", "13 digits": "1000000000000", "huge": "9" * 40,
    "arabic-indic digit": "%D9%A1", "fullwidth digit": "%EF%BC%91", "../1": "..%2f1",
    "zero (no such job)": "0", "12 digits (no such job)": "999999999999",
}

ID_ROUTES = {
    "job page": ("GET", "/jobs/{id}"),
    "failure box": ("GET", "/jobs/{id}/failure"),
    "API job": ("GET", "/api/jobs/{id}"),
    "API artifacts": ("GET", "/api/jobs/{id}/artifacts"),
    "API download": ("GET", "/api/jobs/{id}/artifacts/" + ARTIFACT),
    "API log": ("GET", "/api/jobs/{id}/log"),
    "API log stream": ("GET", "/api/jobs/{id}/log/stream"),
    "cancel form": ("POST", "/jobs/{id}/cancel"),
    "rebuild form": ("POST", "/jobs/{id}/rebuild"),
    "API cancel": ("POST", "/api/jobs/{id}/cancel"),
    "API rebuild": ("POST", "/api/jobs/{id}/rebuild"),
    "compare page": ("GET", "/jobs/compare?b=1&a={id}"),
    "API compare": ("GET", "/api/jobs/compare?a=1&b={id}"),
}


def id_cases() -> list[Case]:
    return [Case(f"id {label!s} on {route}", method, path.replace("{id}", raw))
            for route, (method, path) in ID_ROUTES.items()
            for label, raw in BAD_IDS.items()]


# --- 3. query parameters ---------------------------------------------------------------------------

def query_cases() -> list[Case]:
    many = "9" * 5000
    return [
        Case("log offset -1", "GET", "/api/jobs/1/log?offset=-1"),
        Case("log offset not a number", "GET", "/api/jobs/1/log?offset=abc"),
        Case("log offset 5000 digits", "GET", f"/api/jobs/1/log?offset={many}"),
        Case("log limit 0", "GET", "/api/jobs/1/log?limit=0"),
        Case("log limit over 1 MiB", "GET", "/api/jobs/1/log?limit=1048577"),
        Case("stream offset -1", "GET", "/api/jobs/1/log/stream?offset=-1"),
        Case("API list page 0", "GET", "/api/jobs?page=0"),
        Case("API list per_page 0", "GET", "/api/jobs?per_page=0"),
        Case("API list per_page 201", "GET", "/api/jobs?per_page=201"),
        Case("API list page 5000 digits", "GET", f"/api/jobs?page={many}"),
        Case("job list page 5000 digits", "GET", f"/?page={many}"),
        Case("job list page not a number", "GET", "/?page=1.5"),
    ]


# --- 4. build requests: git option injection, transports, bad MACHINE/target/ref/kas file ---------

BAD_BUILD_FIELDS = {
    # repo_url: options, other transports, credentials, hosts that are not what they seem.
    "repo_url --upload-pack=": ("repo_url", "--upload-pack=touch /tmp/pwned"),
    "repo_url -c option": ("repo_url", "-c protocol.ext.allow=always"),
    "repo_url ext:: transport": ("repo_url", "ext::sh -c touch% /tmp/pwned"),
    "repo_url file://": ("repo_url", "file:///etc/shadow"),
    "repo_url plain local path": ("repo_url", "/srv/autobuild/jobs/alice/1/work/src"),
    "repo_url ssh://": ("repo_url", f"ssh://git@{ALLOWED_HOST}/bsp/poky.git"),
    "repo_url scp-like ssh": ("repo_url", f"git@{ALLOWED_HOST}:bsp/poky.git"),
    "repo_url git://": ("repo_url", f"git://{ALLOWED_HOST}/bsp/poky.git"),
    "repo_url http://": ("repo_url", f"http://{ALLOWED_HOST}/bsp/poky.git"),
    "repo_url HTTPS:// in capitals": ("repo_url", f"HTTPS://{ALLOWED_HOST}/bsp/poky.git"),
    "repo_url userinfo with a token": ("repo_url", f"https://oauth2:glpat-x@{ALLOWED_HOST}/a.git"),
    "repo_url userinfo hiding the host": ("repo_url", f"https://{ALLOWED_HOST}@evil.example.org/a.git"),
    "repo_url backslash-at trick": ("repo_url", f"https://evil.example.org\\@{ALLOWED_HOST}/a.git"),
    "repo_url IPv6 literal": ("repo_url", "https://[::1]/bsp/poky.git"),
    "repo_url IPv6 with zone": ("repo_url", "https://[fe80::1%25eth0]/bsp/poky.git"),
    "repo_url IPv4 literal": ("repo_url", "https://127.0.0.1/bsp/poky.git"),
    "repo_url IDN homoglyph host": ("repo_url", "https://gitl\u0430b.example.com/bsp/poky.git"),
    "repo_url ideographic full stop": ("repo_url", "https://gitlab\u3002example.com/bsp/poky.git"),
    "repo_url host not allowed": ("repo_url", "https://evil.example.org/bsp/poky.git"),
    "repo_url host starting with -": ("repo_url", "https://-oProxyCommand=id/bsp/poky.git"),
    "repo_url port 0": ("repo_url", f"https://{ALLOWED_HOST}:0/bsp/poky.git"),
    "repo_url port 99999": ("repo_url", f"https://{ALLOWED_HOST}:99999/bsp/poky.git"),
    "repo_url query": ("repo_url", f"https://{ALLOWED_HOST}/bsp/poky.git?upload-pack=x"),
    "repo_url fragment": ("repo_url", f"https://{ALLOWED_HOST}/bsp/poky.git#x"),
    "repo_url .. in the path": ("repo_url", f"https://{ALLOWED_HOST}/bsp/../../etc.git"),
    "repo_url newline and an option": ("repo_url",
                                       f"https://{ALLOWED_HOST}/a.git\n--upload-pack=id"),
    "repo_url NUL": ("repo_url", f"https://{ALLOWED_HOST}/a.git\x00"),
    "repo_url no path": ("repo_url", f"https://{ALLOWED_HOST}/"),
    # ref
    "ref --upload-pack=": ("ref", "--upload-pack=touch /tmp/pwned"),
    "ref -c option": ("ref", "-c"),
    "ref --output=": ("ref", "--output=/tmp/x"),
    "ref shell ;": ("ref", "main;id"),
    "ref $(...)": ("ref", "$(id)"),
    "ref ..": ("ref", "main..evil"),
    "ref @{-1}": ("ref", "@{-1}"),
    "ref .lock": ("ref", "main.lock"),
    "ref leading dot component": ("ref", "feature/.hidden"),
    "ref //": ("ref", "a//b"),
    "ref ^ and ~": ("ref", "HEAD~1^2"),
    "ref colon": ("ref", "main:README"),
    "ref space": ("ref", "main branch"),
    "ref newline": ("ref", "main\n--upload-pack=id"),
    "ref non-ASCII": ("ref", "m\u00e4in"),
    "ref over 255": ("ref", "r" * 256),
    # MACHINE
    "MACHINE leading -": ("machine", "-c"),
    "MACHINE shell ;": ("machine", "qemux86-64;id"),
    "MACHINE path": ("machine", "../../etc"),
    "MACHINE space": ("machine", "qemux86 64"),
    "MACHINE assignment": ("machine", "x=1"),
    "MACHINE over 64": ("machine", "m" * 65),
    "MACHINE empty": ("machine", ""),
    "MACHINE non-ASCII": ("machine", "q\u00e9mu"),
    # target
    "target leading -": ("target", "-c"),
    "target --option": ("target", "--runall=fetch"),
    "target shell $(...)": ("target", "$(id)"),
    "target path": ("target", "../x"),
    "target over 128": ("target", "t" * 129),
    "target newline": ("target", "core-image-minimal\n-c"),
    # kas file
    "kas_file ../": ("kas_file", "../kas.yml"),
    "kas_file absolute": ("kas_file", "/etc/kas.yml"),
    "kas_file inner ..": ("kas_file", "kas/../../x.yml"),
    "kas_file hidden": ("kas_file", ".kas.yml"),
    "kas_file leading -": ("kas_file", "-kas.yml"),
    "kas_file wrong suffix": ("kas_file", "kas/qemu.sh"),
    "kas_file backslash": ("kas_file", "kas\\qemu.yml"),
    "kas_file colon (kas multi-file)": ("kas_file", "kas/a.yml:/etc/b.yml"),
    "kas_file over 200": ("kas_file", "k" * 197 + ".yml"),
    "kas_file NUL": ("kas_file", "kas/qemu.yml\x00"),
}


def build_request_cases() -> list[Case]:
    cases = []
    for label, (name, value) in BAD_BUILD_FIELDS.items():
        fields = tuple((k, value if k == name else v) for k, v in VALID_NEW)
        cases.append(Case(f"new build: {label}", "POST", "/new", fields=fields))
    return cases


# --- 5. oversize fields, bodies and headers ------------------------------------------------------

def oversize_cases() -> list[Case]:
    huge_form = b"&".join([b"csrf_token=x"] + [b"f%d=v" % i for i in range(3000)])
    return [
        Case("oversize: repo_url of 3000 characters", "POST", "/new",
             fields=tuple((k, "https://a.example.com/" + "x" * 3000 if k == "repo_url" else v)
                          for k, v in VALID_NEW)),
        Case("oversize: 1 MiB repo_url field", "POST", "/new",
             fields=tuple((k, "https://a.example.com/" + "x" * (1 << 20) if k == "repo_url"
                           else v) for k, v in VALID_NEW)),
        Case("oversize: 8 MiB form body", "POST", "/new", fields=VALID_NEW + (("pad", "p" * (8 << 20)),)),
        Case("oversize: 3000 form fields", "POST", "/new", body=huge_form,
             headers=(("content-type", "application/x-www-form-urlencoded"),)),
        Case("oversize: token of 513 characters", "POST", "/settings",
             fields=(("token", "t" * 513),)),
        Case("oversize: token with a newline", "POST", "/settings",
             fields=(("token", "glpat-abc\ninjected"),)),
        Case("oversize: 1 MiB token", "POST", "/settings", fields=(("token", "t" * (1 << 20)),)),
        Case("oversize: user name of 300 characters at login", "POST", "/login", caller=None,
             fields=(("username", "u" * 300), ("password", "owner-pw"))),
        Case("oversize: 1 MiB password at login", "POST", "/login", caller=None,
             fields=(("username", OWNER), ("password", "p" * (1 << 20)))),
        Case("oversize: 64 KiB header line", "GET", "/api/jobs",
             headers=(("x-padding", "h" * (64 << 10)),)),
        Case("oversize: 500 header lines", "GET", "/api/jobs",
             headers=tuple((f"x-h{i}", "v") for i in range(500))),
        Case("oversize: 64 KiB Last-Event-ID", "GET", "/api/jobs/1/log/stream",
             headers=(("last-event-id", "9" * (64 << 10)),)),
        Case("oversize: 64 KiB Range", "GET", f"/api/jobs/1/artifacts/{ARTIFACT}",
             headers=(("range", "bytes=" + "0-1," * (16 << 10)),)),
        Case("oversize: Content-Length lies (1 GiB declared)", "POST", "/new",
             fields=VALID_NEW, headers=(("content-length", str(1 << 30)),)),
        Case("oversize: JSON body instead of a form", "POST", "/new",
             body=b'{"repo_url": "' + b"x" * 100_000 + b'"}',
             headers=(("content-type", "application/json"),)),
        Case("malformed: multipart without a boundary", "POST", "/new", body=b"--x\r\n",
             headers=(("content-type", "multipart/form-data"),)),
    ]


# --- 6. CSRF-less and cross-origin posts on every POST route -------------------------------------

def csrf_cases() -> list[Case]:
    cases = []
    for path in _post_paths():
        for mode in (MISSING, WRONG, FOREIGN, CROSS_ORIGIN, CROSS_REFERER):
            cases.append(Case(f"CSRF {mode} token: POST {path}", "POST", path, csrf=mode,
                              fields=_fields_for(path)))
    return cases


def not_yours_cases() -> list[Case]:
    return [
        Case("another engineer cancels the build through the API", "POST", "/api/jobs/3/cancel",
             caller=OTHER),
        Case("another engineer cancels the build through the form", "POST", "/jobs/3/cancel",
             caller=OTHER, fields=(("back", "list"),)),
        Case("nobody signed in: API job", "GET", "/api/jobs/1", caller=None),
        Case("nobody signed in: download", "GET", f"/api/jobs/1/artifacts/{ARTIFACT}", caller=None),
        Case("nobody signed in: log stream", "GET", "/api/jobs/1/log/stream", caller=None),
        Case("nobody signed in: API cancel", "POST", "/api/jobs/3/cancel", caller=None),
        Case("nobody signed in: job page", "GET", "/jobs/1", caller=None, expect="to-login"),
    ]


# --- 7. forged, expired and revoked cookies ----------------------------------------------------

def cookie_cases() -> list[Case]:
    cases = []
    for cookie in BAD_COOKIES:
        label = cookie.removeprefix("cookie:")
        cases += [
            Case(f"cookie {label}: API list", "GET", "/api/jobs", caller=cookie),
            Case(f"cookie {label}: download", "GET", f"/api/jobs/1/artifacts/{ARTIFACT}",
                 caller=cookie),
            Case(f"cookie {label}: API cancel", "POST", "/api/jobs/3/cancel", caller=cookie),
            Case(f"cookie {label}: new build", "POST", "/new", caller=cookie, fields=VALID_NEW),
            Case(f"cookie {label}: job page", "GET", "/jobs/1", caller=cookie, expect="to-login"),
        ]
    return cases


def all_cases() -> list[Case]:
    cases = (traversal_cases() + id_cases() + query_cases() + build_request_cases()
             + oversize_cases() + csrf_cases() + not_yours_cases() + cookie_cases())
    names = [case.name for case in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    assert not duplicates, f"case names must be unique: {duplicates}"
    return cases


CASES = all_cases()
