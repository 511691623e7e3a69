"""Every case of the bad-input corpus (corpus.py) against the real app: refused with a 4xx (or
sent to /login, or answered without disclosing anything, as the case says), never a 5xx, and
nothing changed: no job row, no file, no runner launch or cancel, no token, no session ended."""

from __future__ import annotations

import base64
import json
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from unittest import mock
from urllib.parse import urlencode

import pytest
from itsdangerous import TimestampSigner

from autobuild.web.security import SESSION_COOKIE

from .corpus import (
    CASES, CROSS_ORIGIN, CROSS_REFERER, EVIL, EXPIRED, FOREIGN, FOREIGN_KEY, FORGED, GARBAGE,
    MISSING, REVOKED, RIGHT, TAMPERED, WRONG, Case,
)
from .world import OTHER, OWNER, SECRET, Answer, World

LATER = timedelta(days=9)  # past any session lifetime (8 h by default; the old cookies: 7 days)


@dataclass
class Outcome:
    case: Case
    answer: Answer
    verdict: str  # refused | to-login | undisclosed | accepted | server error
    why: str = ""


def _cookie_value(cookie_header: str) -> str:
    for part in cookie_header.split("; "):
        name, _, value = part.partition("=")
        if name == SESSION_COOKIE:
            return value
    raise AssertionError(f"no {SESSION_COOKIE} cookie in {cookie_header!r}")


def _payload(value: str) -> dict:
    data = value.split(".")[0]
    return json.loads(base64.b64decode(data + "=" * (-len(data) % 4)))


def _encode(payload: dict) -> bytes:
    return base64.b64encode(json.dumps(payload).encode())


def _bad_cookie(world: World, kind: str, stack: ExitStack) -> tuple[str, str]:
    """(Cookie header, CSRF token) of a caller whose cookie must not be honoured."""
    owner = world.session(OWNER)
    value = _cookie_value(owner.cookie)
    if kind == FORGED:
        head, _, signature = value.rpartition(".")
        flipped = ("A" if signature[:1] != "A" else "B") + signature[1:]
        return f"{SESSION_COOKIE}={head}.{flipped}", owner.csrf
    if kind == FOREIGN_KEY:
        signer = TimestampSigner("not-the-service-key-" + "k" * 32)
        resigned = signer.sign(value.split(".")[0].encode()).decode()
        return f"{SESSION_COOKIE}={resigned}", owner.csrf
    if kind == GARBAGE:
        return f"{SESSION_COOKIE}={'A' * 200}.garbage.signature", owner.csrf
    if kind == TAMPERED:
        payload = _payload(value)
        payload.update({"user": OWNER, "sid": "0" * 43, "csrf": "attacker"})
        _, _, rest = value.partition(".")
        return f"{SESSION_COOKIE}={_encode(payload).decode()}.{rest}", owner.csrf
    fresh = world.sign_in(OWNER)
    stack.callback(fresh.client.close)
    if kind == REVOKED:
        response = fresh.client.post("/logout", data={"csrf_token": fresh.csrf})
        assert response.status_code == 303, response.text
        return fresh.cookie, fresh.csrf  # the cookie as it was before signing out
    if kind == EXPIRED:
        clock = world.fakes.clock
        started, wall = clock.current, time.time()
        clock.current = started + LATER
        stack.callback(setattr, clock, "current", started)
        stack.enter_context(mock.patch("time.time", return_value=wall + LATER.total_seconds()))
        return fresh.cookie, fresh.csrf
    raise AssertionError(kind)


def send(world: World, case: Case) -> Answer:
    headers = dict(case.headers)
    with ExitStack() as stack:
        cookie, csrf = "", ""
        if case.caller in (OWNER, OTHER):
            session = world.session(case.caller)
            cookie, csrf = session.cookie, session.csrf
        elif case.caller is not None:
            cookie, csrf = _bad_cookie(world, case.caller, stack)
        elif case.method == "POST":
            cookie, csrf = world.anonymous()
        if cookie:
            headers.setdefault("cookie", cookie)
        fields = list(case.fields)
        if case.method == "POST":
            token = {RIGHT: csrf, WRONG: "wrong-token", MISSING: None, CROSS_ORIGIN: None,
                     CROSS_REFERER: None, FOREIGN: world.session(OTHER).csrf}[case.csrf]
            if case.csrf == CROSS_ORIGIN:
                headers["origin"] = EVIL
            if case.csrf == CROSS_REFERER:
                headers["referer"] = f"{EVIL}/innocent-page.html"
            if token is not None:
                if case.target.startswith("/api/"):
                    headers["x-csrf-token"] = token
                else:
                    fields.append(("csrf_token", token))
        body = case.body
        if body is None and case.method == "POST":
            body = urlencode(fields).encode()
            headers.setdefault("content-type", "application/x-www-form-urlencoded")
        return world.request(case.method, case.target, headers, body or b"")


def _difference(old: object, new: object) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)
    return f"{old!r} -> {new!r}"


def judge(world: World, case: Case) -> Outcome:
    before = world.snapshot()
    answer = send(world, case)
    after = world.settled(before)
    if answer.crashed or answer.status >= 500:
        return Outcome(case, answer, "server error", answer.crashed or answer.text[:300])
    changed = [key for key in before if before[key] != after[key]]
    if changed:
        detail = "; ".join(f"{k}: {_difference(before[k], after[k])}" for k in changed)
        return Outcome(case, answer, "accepted", f"{answer.status}, changed {detail}"[:600])
    lost = [user for user in (OWNER, OTHER) if not world.still_signed_in(user)]
    if lost:
        return Outcome(case, answer, "accepted", f"{answer.status}, signed out: {lost}")
    if case.expect == "4xx":
        ok = 400 <= answer.status < 500
        return Outcome(case, answer, "refused" if ok else "accepted",
                       "" if ok else f"answered {answer.status}: {answer.text[:200]!r}")
    if case.expect == "to-login":
        location = answer.headers.get("location", "")
        ok = (answer.status == 303 and location.startswith("/login")) or answer.status == 401
        return Outcome(case, answer, "to-login" if ok else "accepted",
                       "" if ok else f"answered {answer.status} {location}: {answer.text[:200]!r}")
    assert case.expect == "undisclosed", case.expect
    leaked = [s for s in (SECRET.decode(), "root:x:0:0", *case.absent) if s in answer.text]
    return Outcome(case, answer, "accepted" if leaked else "undisclosed",
                   f"answered {answer.status} showing {leaked}" if leaked else "")


@pytest.mark.parametrize("case", CASES, ids=str)
def test_bad_input_is_refused_and_changes_nothing(world: World, case: Case) -> None:
    outcome = judge(world, case)
    assert outcome.verdict not in ("accepted", "server error"), (
        f"{case.name}: {outcome.verdict}: {outcome.why}")


def test_corpus_totals(world: World) -> None:
    """The honest count: every case tried once more, the totals printed (pytest -s shows them)."""
    outcomes = [judge(world, case) for case in CASES]
    counts = Counter(outcome.verdict for outcome in outcomes)
    tried = len(outcomes)
    accepted = counts["accepted"]
    server_errors = counts["server error"]
    print(f"\nbad-input corpus: {tried} cases tried, {counts['refused']} refused with a 4xx, "
          f"{counts['to-login']} sent to /login, {counts['undisclosed']} answered without "
          f"disclosing anything; accepted: {accepted}, server errors: {server_errors}")
    for outcome in outcomes:
        if outcome.verdict in ("accepted", "server error"):
            print(f"  {outcome.verdict}: {outcome.case.name}: {outcome.why}")
    assert tried >= 60
    assert (accepted, server_errors) == (0, 0), [
        o.case.name for o in outcomes if o.verdict in ("accepted", "server error")]
