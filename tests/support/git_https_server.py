"""A real HTTPS git server on 127.0.0.1 for tests: `git http-backend` behind HTTP Basic auth.

It accepts only user ``oauth2`` with the given token (like GitLab with a personal access
token), answers 401 with a WWW-Authenticate challenge otherwise, and records every request
line and its headers so tests can check what a client sent (e.g. that no URL held the token).
TLS uses a throwaway CA made with ``openssl``; clients trust it through ``ca_file``
(GIT_SSL_CAINFO), or a system test adds it to the system trust store.

    with GitHttpsServer(repos_dir, token="glpat-...") as server:
        url = server.url("poky.git")   # https://127.0.0.1:<port>/poky.git
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hmac
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

USERNAME = "oauth2"
REALM = "autobuild test git"
_COPY_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server received it."""

    request_line: str
    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    authorized: bool
    status: int = 0


@dataclass
class _State:
    token: str
    requests: list[RecordedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def make_tls_files(directory: Path, names: str = "IP:127.0.0.1,DNS:localhost"
                   ) -> tuple[Path, Path, Path]:
    """Create a CA and a server certificate for ``names`` (a subjectAltName, by default
    127.0.0.1 and localhost); returns (ca, cert, key)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ext.write_text(f"subjectAltName={names}\n"
                   "basicConstraints=critical,CA:FALSE\n"
                   "keyUsage=critical,digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(ca_key), "-out", str(ca_pem), "-days", "7",
            "-subj", "/CN=Autobuild test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(cert), "-days", "7", "-extfile", str(ext))
    return ca_pem, cert, key


class _GitHandler(BaseHTTPRequestHandler):
    server_version = "autobuild-test-git/1.0"
    protocol_version = "HTTP/1.1"  # backend output is sent chunked, as it streams

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # the recorded requests are the log

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self._handle()

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        self._handle()

    def _authorized(self) -> bool:
        state: _State = self.server.state  # type: ignore[attr-defined]
        header = self.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, USERNAME) and hmac.compare_digest(password, state.token)

    def _record(self, authorized: bool, status: int) -> None:
        state: _State = self.server.state  # type: ignore[attr-defined]
        with state.lock:
            state.requests.append(RecordedRequest(
                request_line=self.requestline, method=self.command, target=self.path,
                headers=tuple(self.headers.items()), authorized=authorized, status=status))

    def _handle(self) -> None:
        if not self._authorized():
            self._record(False, 401)
            body = b"HTTP Basic: Access denied\n"
            self.send_response(401)
            self.send_header("Connection", "close")  # an unread request body must not linger
            self.send_header("WWW-Authenticate", f'Basic realm="{REALM}"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        status = self._run_backend()
        self._record(True, status)

    def _cgi_env(self) -> dict[str, str]:
        parts = urlsplit(self.path)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.server.home,  # type: ignore[attr-defined]
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            # The repositories may belong to another user than the server (system tests).
            "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "safe.directory",
            "GIT_CONFIG_VALUE_0": "*",
            "GIT_PROJECT_ROOT": str(self.server.root),  # type: ignore[attr-defined]
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": unquote(parts.path),
            "QUERY_STRING": parts.query,
            "REMOTE_USER": USERNAME,
            "REMOTE_ADDR": self.client_address[0],
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
        }
        for header, variable in (("Content-Length", "CONTENT_LENGTH"),
                                 ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                                 ("Git-Protocol", "HTTP_GIT_PROTOCOL")):
            value = self.headers.get(header)
            if value is not None:
                env[variable] = value
        return env

    def _feed_body(self, stdin) -> None:
        """Stream the request body into the backend (Content-Length or chunked)."""
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        break
                    stdin.write(self.rfile.read(size))
                    self.rfile.readline()
            else:
                remaining = int(self.headers.get("Content-Length") or 0)
                while remaining > 0:
                    chunk = self.rfile.read(min(_COPY_CHUNK, remaining))
                    if not chunk:
                        break
                    stdin.write(chunk)
                    remaining -= len(chunk)
        except (BrokenPipeError, ConnectionError, ValueError):
            pass
        finally:
            with contextlib.suppress(BrokenPipeError):
                stdin.close()

    def _run_backend(self) -> int:
        env = self._cgi_env()
        chunked = self.headers.get("Transfer-Encoding", "").lower() == "chunked"
        if chunked:
            env.pop("CONTENT_LENGTH", None)  # http-backend then reads the body until EOF
        backend = subprocess.Popen(["git", "http-backend"], env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        feeder = threading.Thread(target=self._feed_body, args=(backend.stdin,), daemon=True)
        feeder.start()
        assert backend.stdout is not None
        status, headers = 200, []
        while True:
            line = backend.stdout.readline()
            if not line or line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").rstrip("\r\n").partition(":")
            if name.lower() == "status":
                status = int(value.strip().split()[0])
            elif name.lower() not in ("content-length", "transfer-encoding"):
                headers.append((name.strip(), value.strip()))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while chunk := backend.stdout.read1(_COPY_CHUNK):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")
        feeder.join(timeout=30)
        backend.wait(timeout=30)
        return status


class GitHttpsServer:
    """Serves the bare repositories under ``root`` at https://127.0.0.1:<port>/<name>."""

    def __init__(self, root: Path, token: str, tls_dir: Path | None = None) -> None:
        self.root = Path(root)
        self._state = _State(token=token)
        self._tmp = tempfile.TemporaryDirectory(prefix="git-https-")
        tls = Path(tls_dir) if tls_dir else Path(self._tmp.name) / "tls"
        self.ca_file, self._cert, self._key = make_tls_files(tls)
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def token(self) -> str:
        return self._state.token

    @token.setter
    def token(self, value: str) -> None:
        self._state.token = value

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._state.lock:
            return list(self._state.requests)

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.port}/{name}"

    def start(self) -> GitHttpsServer:
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), _GitHandler)
        httpd.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self._cert, self._key)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        httpd.state = self._state  # type: ignore[attr-defined]
        httpd.root = self.root  # type: ignore[attr-defined]
        httpd.home = self._tmp.name  # type: ignore[attr-defined]
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(target=httpd.serve_forever, name="git-https",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        self._tmp.cleanup()

    def __enter__(self) -> GitHttpsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def installed_user_token(token: str | None, lock_timeout: float = 600.0):
    """Put ``token`` in the current user's ~/.autobuild/gitlab_token (None: no token file).

    The runner reads the token of the user it runs as (home from the passwd database, not
    $HOME), so tests that run it as themselves must use the real file. Whatever was there
    is restored afterwards; a lock file keeps concurrent test sessions from mixing tokens.
    Yields a setter to change the token (or remove it with None) inside the block.
    """
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    directory = home / ".autobuild"
    path = directory / "gitlab_token"
    lock_path = Path(tempfile.gettempdir()) / f"autobuild-test-token-{os.getuid()}.lock"
    with open(lock_path, "a") as lock:
        _lock_with_timeout(lock, lock_timeout)
        dir_existed = directory.exists()
        saved = path.read_bytes() if path.exists() else None
        saved_mode = path.stat().st_mode & 0o777 if path.exists() else 0o600

        def set_token(value: str | None) -> None:
            if value is None:
                path.unlink(missing_ok=True)
                return
            directory.mkdir(mode=0o700, exist_ok=True)
            tmp = directory / ".gitlab_token.test"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(value + "\n")
            os.replace(tmp, path)

        try:
            set_token(token)
            yield set_token
        finally:
            if saved is None:
                path.unlink(missing_ok=True)
                if not dir_existed:
                    shutil.rmtree(directory, ignore_errors=True)
            else:
                directory.mkdir(mode=0o700, exist_ok=True)
                path.write_bytes(saved)
                path.chmod(saved_mode)


def _lock_with_timeout(handle, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"another test session holds {handle.name}") from None
            time.sleep(0.2)
