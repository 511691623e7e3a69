"""Helpers for web tests: sign in, submit a build, read CSRF tokens, sessions and SSE."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

from starlette.testclient import TestClient

VALID_JOB = {
    "repo_url": "https://gitlab.example.com/bsp/yocto-image.git",
    "ref": "main",
    "machine": "qemux86-64",
    "target": "core-image-minimal",
}
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}


_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF_INPUT.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


def page_csrf(client: TestClient, path: str = "/login") -> str:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return csrf_from(response.text)


def login(client: TestClient, user: str, password: str | None = None):
    token = page_csrf(client, "/login")
    response = client.post("/login", data={
        "username": user, "password": PASSWORDS[user] if password is None else password,
        "csrf_token": token,
    })
    assert response.status_code == 303, response.text
    return response


def submit(client: TestClient, **fields: str):
    token = page_csrf(client, "/new")
    return client.post("/new", data={**VALID_JOB, **fields, "csrf_token": token})


def session_of(client: TestClient) -> dict:
    """The decoded session cookie (its payload is signed, not encrypted)."""
    raw = client.cookies.get("autobuild_session")
    assert raw, "no session cookie"
    payload = raw.split(".")[0]
    return json.loads(base64.b64decode(payload + "=" * (-len(payload) % 4)))


def parse_sse(lines: Iterator[str]) -> Iterator[dict]:
    """Events from an SSE body: dicts with event/data/id/comment/retry, one per blank line."""
    current: dict = {}
    for line in lines:
        if line == "":
            if current:
                yield current
            current = {}
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "":
            current["comment"] = value
        elif name == "data":
            current["data"] = current["data"] + "\n" + value if "data" in current else value
        else:
            current[name] = value
    if current:
        yield current


def event_data(event: dict) -> dict:
    return json.loads(event["data"])
