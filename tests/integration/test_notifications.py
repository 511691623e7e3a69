"""The webhook and e-mail plugins against real servers on 127.0.0.1."""

from __future__ import annotations

import json
import socketserver
import threading
import time
from datetime import UTC, datetime
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autobuild.adapters.plugins import PluginHooks
from autobuild.domain.jobs import Job, JobStatus
from autobuild_plugins._worker import BackgroundSender
from autobuild_plugins.email_notify import EmailNotifier, SmtpConfig
from autobuild_plugins.webhook import WebhookConfig, WebhookNotifier
from tests.plugin_fixtures import plugin_manager, register_plugin  # noqa: F401  (fixtures)


SHA = "0f14567a2c1d6e0e7e1d2c3b4a5968778695a4b3"


def ended_job(status=JobStatus.FAILED, commit: str | None = SHA) -> Job:
    moment = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    return Job(owner="alice", repo_url="https://git.example.com/bsp/poky.git", ref="main",
               machine="qemux86-64", target="core-image-minimal", created_at=moment, id=42,
               status=status, started_at=moment, finished_at=moment, exit_code=1,
               reason="the build ended with exit code 1", commit=commit,
               kas_file="kas/qemu.yml" if status.is_terminal else None)


# --- a webhook receiver ---------------------------------------------------------------------

class Receiver(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.posts: list[dict] = []
        self.fail_first = 0  # answer 500 to this many requests first
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.release.set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.arrived.set()
        self.server.release.wait(10)
        if self.server.fail_first > 0:
            self.server.fail_first -= 1
            self.send_response(500)
        else:
            self.server.posts.append({"body": json.loads(body),
                                      "type": self.headers["Content-Type"]})
            self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def webhook(urls, all_events=False, base_url=None, timeout=2.0):
    sender = BackgroundSender("test-webhook", attempts=3, backoff=0.01)
    return WebhookNotifier(WebhookConfig(urls=tuple(urls), all_events=all_events,
                                         base_url=base_url, timeout=timeout), sender)


def test_webhook_posts_the_job_as_json_and_retries_a_500(receiver, plugin_manager,
                                                         register_plugin):
    receiver.fail_first = 1
    notifier = register_plugin(webhook([receiver.url], base_url="https://ab.example.com/"))
    hooks = PluginHooks(plugin_manager)

    hooks.job_status_changed(ended_job(JobStatus.RUNNING), JobStatus.PENDING, JobStatus.RUNNING)
    hooks.job_status_changed(ended_job(), JobStatus.RUNNING, JobStatus.FAILED)

    assert notifier.sender.wait_idle(10)
    assert len(receiver.posts) == 1  # the start is not sent by default; the 500 was retried
    post = receiver.posts[0]
    assert post["type"] == "application/json"
    assert post["body"]["old"] == "RUNNING" and post["body"]["new"] == "FAILED"
    assert post["body"]["url"] == "https://ab.example.com/jobs/42"
    assert post["body"]["job"]["id"] == 42 and post["body"]["job"]["owner"] == "alice"
    assert post["body"]["job"]["reason"] == "the build ended with exit code 1"
    assert post["body"]["job"]["finished_at"] == "2026-01-01T12:00:00Z"
    # Provenance: what the ref resolved to, and the kas file.
    assert post["body"]["job"]["commit"] == SHA
    assert post["body"]["job"]["kas_file"] == "kas/qemu.yml"


def test_webhook_events_all_sends_every_change(receiver):
    notifier = webhook([receiver.url], all_events=True)
    notifier.autobuild_job_status_changed(ended_job(JobStatus.RUNNING), JobStatus.PENDING,
                                          JobStatus.RUNNING)
    assert notifier.sender.wait_idle(10)
    assert [p["body"]["new"] for p in receiver.posts] == ["RUNNING"]
    assert receiver.posts[0]["body"]["url"] is None  # no AUTO_BUILD_BASE_URL


def test_a_slow_webhook_never_holds_up_the_status_change(receiver, plugin_manager,
                                                         register_plugin):
    receiver.release.clear()  # the server takes the request and does not answer yet
    notifier = register_plugin(webhook([receiver.url], timeout=5))
    hooks = PluginHooks(plugin_manager)

    started = time.monotonic()
    hooks.job_status_changed(ended_job(), JobStatus.RUNNING, JobStatus.FAILED)
    elapsed = time.monotonic() - started

    # Sent inline, the call could not return before the server answers or the 5 s timeout.
    assert elapsed < 1.0
    assert not receiver.release.is_set() and receiver.posts == []
    assert receiver.arrived.wait(10)  # the POST does go out, from the background thread
    receiver.release.set()
    assert notifier.sender.wait_idle(10)
    assert len(receiver.posts) == 1


def test_an_unreachable_webhook_is_retried_then_given_up_without_raising(caplog):
    with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as closed:
        port = closed.server_address[1]
    notifier = webhook([f"http://127.0.0.1:{port}/gone"])
    notifier.autobuild_job_status_changed(ended_job(), JobStatus.RUNNING, JobStatus.FAILED)
    assert notifier.sender.wait_idle(10)
    assert "giving up" in caplog.text and "after 3 attempts" in caplog.text


def test_a_full_queue_drops_instead_of_blocking(caplog):
    gate = threading.Event()
    sender = BackgroundSender("test-full", attempts=1, maxsize=2)
    results = [sender.submit(f"delivery {i}", gate.wait) for i in range(5)]
    # One is being delivered (blocked on the gate), two wait, the rest are dropped at once.
    assert results[:2] == [True, True] and results[-1] is False
    assert "dropped delivery 4" in caplog.text
    gate.set()
    assert sender.wait_idle(10)


def test_webhook_config_from_the_environment():
    config = WebhookConfig.from_env({
        "AUTO_BUILD_WEBHOOK_URLS": "https://hooks.example.com/a, ftp://x/y,,http://10.0.0.1:8080/b",
        "AUTO_BUILD_WEBHOOK_EVENTS": "all", "AUTO_BUILD_BASE_URL": "https://ab.example.com"})
    assert config.urls == ("https://hooks.example.com/a", "http://10.0.0.1:8080/b")
    assert config.all_events and config.base_url == "https://ab.example.com"
    assert WebhookConfig.from_env({}).urls == () and not WebhookConfig.from_env({}).all_events


# --- a tiny SMTP server (smtpd left the standard library in 3.12) -----------------------------

class SmtpHandler(socketserver.StreamRequestHandler):
    server: SmtpServer

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        self.reply("220 127.0.0.1 test SMTP")
        envelope: dict = {"rcpt": []}
        while line := self.rfile.readline():
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 127.0.0.1")
            elif verb == "MAIL":
                envelope = {"from": command.split(":", 1)[1].strip(), "rcpt": []}
                self.reply("250 OK")
            elif verb == "RCPT":
                envelope["rcpt"].append(command.split(":", 1)[1].strip())
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk[1:] if chunk.startswith(b"..") else chunk
                envelope["data"] = data
                self.server.mails.append(envelope)
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SmtpHandler)
        self.mails: list[dict] = []


@pytest.fixture
def smtp_server():
    server = SmtpServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def mailer(port, **extra):
    config = SmtpConfig(host="127.0.0.1", port=port, sender="autobuild@example.com",
                        mail_domain="example.com", timeout=2, **extra)
    return EmailNotifier(config, BackgroundSender("test-mail", attempts=2, backoff=0.01))


def test_email_goes_to_the_owner_when_the_build_ends(smtp_server, plugin_manager,
                                                     register_plugin):
    notifier = register_plugin(mailer(smtp_server.server_address[1],
                                      base_url="https://ab.example.com"))
    hooks = PluginHooks(plugin_manager)

    hooks.job_status_changed(ended_job(JobStatus.RUNNING), JobStatus.PENDING, JobStatus.RUNNING)
    hooks.job_status_changed(ended_job(), JobStatus.RUNNING, JobStatus.FAILED)

    assert notifier.sender.wait_idle(10)
    assert len(smtp_server.mails) == 1  # the start is no news worth a mail
    mail = smtp_server.mails[0]
    assert mail["rcpt"] == ["<alice@example.com>"] and mail["from"] == "<autobuild@example.com>"
    message = message_from_bytes(mail["data"])
    assert message["Subject"] == "[Autobuild] #42 core-image-minimal (qemux86-64): FAILED"
    body = message.get_payload(decode=True).decode()
    assert "Reason: the build ended with exit code 1" in body
    assert "https://ab.example.com/jobs/42" in body
    assert f"Ref: main\nCommit: {SHA}\nkas file: kas/qemu.yml\n" in body.replace("\r\n", "\n")


def test_a_build_that_ended_before_its_checkout_says_no_commit(receiver, smtp_server):
    hook = webhook([receiver.url])
    mail = mailer(smtp_server.server_address[1])
    for notifier in (hook, mail):
        notifier.autobuild_job_status_changed(ended_job(commit=None), JobStatus.RUNNING,
                                              JobStatus.FAILED)
        assert notifier.sender.wait_idle(10)
    assert receiver.posts[0]["body"]["job"]["commit"] is None
    assert "Commit:" not in message_from_bytes(smtp_server.mails[0]["data"]).get_payload(
        decode=True).decode()


def test_email_is_off_without_an_smtp_host():
    config = SmtpConfig.from_env({"AUTO_BUILD_MAIL_DOMAIN": "example.com"})
    assert not config.enabled
    notifier = EmailNotifier(config, BackgroundSender("unused"))
    notifier.autobuild_job_status_changed(ended_job(), JobStatus.RUNNING, JobStatus.FAILED)
    assert notifier.sender.wait_idle(0.1)


def test_smtp_config_from_the_environment():
    config = SmtpConfig.from_env({"AUTO_BUILD_SMTP_HOST": "mail.example.com",
                                  "AUTO_BUILD_SMTP_STARTTLS": "1",
                                  "AUTO_BUILD_MAIL_DOMAIN": "example.com",
                                  "AUTO_BUILD_SMTP_USER": "ab", "AUTO_BUILD_SMTP_PASSWORD": "pw"})
    assert config.enabled and config.port == 587 and config.starttls
    assert config.sender == "autobuild@example.com" and config.user == "ab"
    assert not SmtpConfig.from_env({"AUTO_BUILD_SMTP_HOST": "mail.example.com"}).enabled
