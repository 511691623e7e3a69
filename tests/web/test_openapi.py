"""/openapi.json and /docs: behind sign-in, every route in the schema, and every answer of the
JSON API (and every SSE event) in a shape the schema describes for its status code."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from jsonschema import Draft202012Validator
from starlette.routing import Mount

from autobuild.domain.digest import LogDigest
from autobuild.domain.failures import task_log_name
from tests.web.helpers import VALID_JOB, login, page_csrf, parse_sse, submit
from tests.web.test_api_tokens import bearer, new_token
from tests.web.test_progress_and_failure import BUILT, FAILED, LOGFILE, STARTED, TASK_LOG

pytestmark = pytest.mark.timeout(60)

# Served outside the schema on purpose: the schema itself, its page and the static files.
NOT_IN_SCHEMA = {"/openapi.json", "/docs", "/static"}
MANIFEST = "core-image-minimal-qemux86-64.rootfs.manifest"
QUEUE_LIMIT = 4


@pytest.fixture
def settings(settings):
    """A small queue, so a 429 is easy to reach."""
    return dataclasses.replace(settings, max_queued_per_user=QUEUE_LIMIT)


@pytest.fixture
def spec(alice) -> dict:
    response = alice.get("/openapi.json")
    assert response.status_code == 200, response.text
    return response.json()


# --- behind sign-in ----------------------------------------------------------------------------

def test_the_schema_needs_a_session_or_an_api_token(client, app):
    refused = client.get("/openapi.json")
    assert refused.status_code == 401
    assert refused.json() == {"detail": "Sign in first."}
    assert refused.headers["www-authenticate"] == "Bearer"
    assert client.get("/openapi.json", headers=bearer("abt_" + "x" * 43)).status_code == 401

    login(client, "alice")
    token = new_token(client)
    assert client.get("/openapi.json").json()["info"]["title"] == "Autobuild"
    client.cookies.clear()
    by_token = client.get("/openapi.json", headers=bearer(token))
    assert by_token.status_code == 200 and "/api/jobs" in by_token.json()["paths"]


def test_the_docs_page_needs_sign_in_and_loads_nothing_from_elsewhere(client):
    refused = client.get("/docs")
    assert refused.status_code == 303
    assert refused.headers["location"] == "/login?next=/docs"

    login(client, "alice")
    page = client.get("/docs")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<code>GET /api/jobs/{job_id}</code>" in page.text
    assert "<code>POST /api/jobs</code>" in page.text
    for event, model in [("status", "StatusEvent"), ("log", "LogEvent"),
                         ("progress", "Progress"), ("end", "EndEvent")]:
        assert f'<code>{event}</code> (data: <a href="#schema-{model}">' in page.text
        assert f'id="schema-{model}"' in page.text
    assert not re.search(r'(src|href)="(https?:)?//', page.text)  # no CDN, no other site
    assert client.get("/redoc").status_code == 404


# --- every route is documented -----------------------------------------------------------------

def test_every_route_of_the_app_is_in_the_schema(app, spec):
    documented = {(path, method.upper()) for path, item in spec["paths"].items()
                  for method in item}
    missing, api = [], 0
    for route in iter_route_contexts(app.routes):  # the routes of every included router
        if isinstance(route.original_route, Mount):
            assert route.path in NOT_IN_SCHEMA, route.path
            continue
        assert isinstance(route.original_route, APIRoute), route.original_route
        if route.path_format in NOT_IN_SCHEMA:
            continue
        api += route.path_format.startswith("/api/")
        missing += [(route.path_format, method) for method in route.methods
                    if method != "HEAD" and (route.path_format, method) not in documented]
    assert not missing, f"routes missing from /openapi.json: {missing}"
    assert api >= 10


def test_the_sse_events_and_the_ways_to_sign_in_are_documented(spec):
    stream = spec["paths"]["/api/jobs/{job_id}/log/stream"]["get"]["responses"]["200"]
    assert "text/event-stream" in stream["content"]
    schemas = spec["components"]["schemas"]
    for event, model in [("status", "StatusEvent"), ("log", "LogEvent"),
                         ("progress", "Progress"), ("end", "EndEvent")]:
        assert f"`{event}` (data: {model})" in stream["description"]
        assert model in schemas
    assert set(spec["components"]["securitySchemes"]) == {"apiToken", "session"}
    assert "HTTPValidationError" not in json.dumps(spec)  # bad input is a 400 here, not 422


def test_every_api_route_and_schema_reads_well_in_the_docs(spec, alice):
    """Each model has its own name (two classes of one name became
    autobuild__web__schemas__ImageSize__1 and __2), each /api operation says what it does,
    and code is Markdown's `x` (the reStructuredText ``x`` showed as it is)."""
    assert not [name for name in spec["components"]["schemas"] if name.startswith("autobuild__")]
    undescribed = [f"{method.upper()} {path}" for path, item in spec["paths"].items()
                   for method, operation in item.items()
                   if path.startswith("/api/") and not operation.get("description")]
    assert not undescribed
    assert "``" not in json.dumps(spec)
    artifacts = spec["paths"]["/api/jobs/{job_id}/artifacts"]["get"]
    assert artifacts["summary"] == "List a build's artifacts"
    assert "X-Artifacts-Not-Listed" in artifacts["description"]
    comparison = spec["components"]["schemas"]["Comparison"]["properties"]
    assert comparison["artifacts_total"]["description"]
    assert comparison["image_size_kib"]["anyOf"][0]["$ref"].endswith("/ImageSizeChange")
    assert set(spec["components"]["schemas"]["ImageSize"]["properties"]) == {"name", "size"}

    page = alice.get("/docs").text
    assert "(<code>?after=&lt;newer&gt;</code>, <code>?before=&lt;older&gt;</code>" in page
    assert "`" not in re.sub(r"<pre.*?</pre>", "", page, flags=re.S)


# --- every answer matches the schema -----------------------------------------------------------

@pytest.fixture
def world(alice, fakes, supervisor):
    """Job 1 failed (log with provenance, task log, artifacts with checksums and a manifest),
    job 2 is running, job 3 is queued."""
    for _ in range(3):
        assert submit(alice).status_code == 303
    supervisor.tick()
    fakes.files.append_log(1, BUILT + FAILED)
    digest = LogDigest()
    digest.feed(BUILT + FAILED)
    fakes.files.digests[1] = digest.to_json()
    fakes.files.task_logs[1] = {task_log_name(LOGFILE): TASK_LOG}
    fakes.files.artifacts[1] = {MANIFEST: b"busybox core2-64 1.36.1-r0\n", "image.wic": b"w" * 64}
    fakes.files.checksums[1] = {"image.wic": "ab" * 32}
    fakes.runner.finish(1, 1)
    supervisor.tick()
    supervisor.tick()
    fakes.files.append_log(2, STARTED)
    statuses = [fakes.jobs.get(i).status.value for i in (1, 2, 3)]
    assert statuses == ["FAILED", "RUNNING", "PENDING"], statuses
    return fakes


class Checker:
    """Validates answers against the served schema, and remembers which operations (and
    which of their documented JSON answers) were seen."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.seen: set[tuple[str, str]] = set()
        self.answers: set[tuple[str, str, int]] = set()

    def schema_for(self, template: str, method: str, status: int, media: str) -> dict:
        operation = self.spec["paths"][template][method.lower()]
        answer = operation["responses"].get(str(status))
        assert answer is not None, f"{method} {template} answered {status}: not documented"
        content = answer.get("content") or {}
        if not content:
            return {}
        assert media in content, (
            f"{method} {template} {status} answered {media}, documented {list(content)}")
        return content[media].get("schema") or {}

    def validate(self, schema: dict, value, where: str) -> None:
        validator = Draft202012Validator({**schema, "components": self.spec["components"]})
        problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                    for e in validator.iter_errors(value)]
        assert not problems, f"{where}: the answer is not what the schema says: {problems}"

    def check(self, template: str, response) -> None:
        method = response.request.method
        media = response.headers.get("content-type", "").split(";")[0].strip()
        self.seen.add((template, method))
        self.answers.add((template, method, response.status_code))
        schema = self.schema_for(template, method, response.status_code, media)
        where = f"{method} {response.request.url.path} -> {response.status_code}"
        if media == "application/json":
            self.validate(schema, response.json(), where)
        elif media == "text/event-stream":
            self.check_events(response.text, where)

    def check_events(self, body: str, where: str) -> None:
        names = {"status": "StatusEvent", "log": "LogEvent", "progress": "Progress",
                 "end": "EndEvent"}
        sent = [event for event in parse_sse(body.splitlines()) if "event" in event]
        assert [e["event"] for e in sent][0] == "status" and sent[-1]["event"] == "end"
        for event in sent:
            assert event["event"] in names, f"{where}: undocumented event {event['event']}"
            self.validate({"$ref": f"#/components/schemas/{names[event['event']]}"},
                          json.loads(event["data"]), f"{where} ({event['event']} event)")


def test_every_json_answer_has_the_shape_the_schema_gives_its_status(
        app, alice, bob, client, world, spec):
    from starlette.testclient import TestClient

    checker = Checker(spec)
    csrf = {"X-CSRF-Token": page_csrf(alice, "/")}
    stranger = TestClient(app, follow_redirects=False)
    J, JOB = "/api/jobs", "/api/jobs/{job_id}"

    def get(template, url, who=alice, **kwargs):
        checker.check(template, who.get(url, **kwargs))

    def post(template, url, who=alice, headers=None, **kwargs):
        checker.check(template, who.post(url, headers=csrf if headers is None else headers,
                                         **kwargs))

    get(J, J)
    get(J, J, params={"per_page": 1})
    get(J, J, params={"status": "FAILED", "per_page": 200})
    get(J, J, params={"per_page": 0})  # 400
    get(J, J, who=stranger)  # 401
    for job_id in (1, 2, 3, 99):
        get(JOB, f"{J}/{job_id}")
    get(JOB, f"{J}/1", who=stranger)
    detail = alice.get(f"{J}/1").json()  # every part of a job's detail is there to check
    assert None not in (detail["failure"], detail["packages"], detail["provenance"],
                         detail["cache"])
    arts = JOB + "/artifacts"
    get(arts, f"{J}/1/artifacts")
    get(arts, f"{J}/3/artifacts")
    get(arts, f"{J}/99/artifacts")
    one = arts + "/{name}"
    get(one, f"{J}/1/artifacts/image.wic")
    get(one, f"{J}/1/artifacts/image.wic", headers={"Range": "bytes=0-9"})  # 206
    get(one, f"{J}/1/artifacts/image.wic", headers={"Range": "bytes=999-"})  # 416
    get(one, f"{J}/1/artifacts/nothing.bin")  # 404
    raw = JOB + "/log/raw"
    get(raw, f"{J}/1/log/raw")
    get(raw, f"{J}/1/log/raw", headers={"Range": "bytes=5-20"})
    get(raw, f"{J}/3/log/raw")
    chunk = JOB + "/log"
    get(chunk, f"{J}/1/log", params={"offset": 0, "limit": 100})
    get(chunk, f"{J}/1/log", params={"offset": 10 ** 6})
    get(chunk, f"{J}/1/log", params={"limit": 0})  # 400
    get(chunk, f"{J}/99/log")
    stream = JOB + "/log/stream"
    get(stream, f"{J}/1/log/stream")  # a finished job: status, log..., progress, end
    get(stream, f"{J}/99/log/stream")
    get(stream, f"{J}/1/log/stream", who=stranger)
    insight = "/api/insights/"  # the team's sstate reuse and one target's trends
    for name in ("reuse", "targets", "trends"):
        get(insight + name, insight + name, who=stranger)  # 401
    get(insight + "reuse", insight + "reuse")
    get(insight + "targets", insight + "targets")
    get(insight + "trends", insight + "trends", params={"machine": "qemux86-64"})  # 400
    get(insight + "trends", insight + "trends", params={
        "repo": VALID_JOB["repo_url"], "machine": VALID_JOB["machine"],
        "target": VALID_JOB["target"]})
    timing = JOB + "/timing"
    world.files.timings[1] = (b"autobuild-buildstats 1\nbuild\t20.00\ntask\tzlib\t1.3-r0\t"
                              b"do_compile\t1700000000.00\t1700000012.50\t12.50\t30.00\tF\n")
    get(timing, f"{J}/1/timing")
    get(timing, f"{J}/2/timing")  # none yet
    get(timing, f"{J}/1/timing", params={"top": 0})  # 400
    get(timing, f"{J}/99/timing")
    get(timing, f"{J}/1/timing", who=stranger)

    post(J, J, json=VALID_JOB)  # 201
    post(J, J, json={**VALID_JOB, "repo_url": "ftp://nowhere"})  # 422 with errors
    post(J, J, json={"repo_url": 3})  # 400
    post(J, J, json=VALID_JOB, headers={})  # 403: a cookie without the CSRF header
    post(J, J, who=stranger, json=VALID_JOB)  # 401
    post(J, J, content=b"x" * (2 * 1024 * 1024),
         headers={**csrf, "content-type": "application/json"})  # 413
    while (answer := alice.post(J, json=VALID_JOB, headers=csrf)).status_code == 201:
        checker.check(J, answer)
    assert answer.status_code == 429
    checker.check(J, answer)
    cancel = JOB + "/cancel"
    post(cancel, f"{J}/2/cancel", who=bob, headers={"X-CSRF-Token": page_csrf(bob, "/")})  # 403
    post(cancel, f"{J}/2/cancel")
    post(cancel, f"{J}/1/cancel")  # already over
    post(cancel, f"{J}/99/cancel")
    rebuild = JOB + "/rebuild"
    post(rebuild, f"{J}/1/rebuild")  # the queue is full: 429
    post(rebuild, f"{J}/99/rebuild")
    post(rebuild, f"{J}/1/rebuild", headers={})  # 403

    compare = J + "/compare"
    get(compare, compare, params={"a": 1, "b": 3})
    get(compare, compare, params={"a": 1, "b": 99})  # 404
    get(compare, compare, params={"a": "x", "b": 1})  # 400
    get(compare, compare, params={"a": "1" * 30, "b": 1})  # 400 (too long)
    get(compare, compare, who=stranger)  # 401

    admin = "/api/admin/tokens"  # every engineer's API tokens, administrators only
    bobs = new_token(bob)
    bob_csrf = {"X-CSRF-Token": page_csrf(bob, "/")}
    get(admin, admin, who=bob)  # 403
    get(admin, admin, who=stranger)  # 401
    world.admins.admins.add("alice")
    get(admin, admin)
    get(admin, admin, params={"owner": "x" * 65})  # 400
    find = admin + "/find"
    post(find, find, json={"token": bobs})
    post(find, find, json={"token": "abt_ZZZZZZZZ"})  # 404
    post(find, find, json={"token": "not a token"})  # 400
    post(find, find, who=bob, headers=bob_csrf, json={"token": bobs})  # 403
    post(find, find, who=stranger, json={"token": bobs})  # 401
    revoke = admin + "/{token_id}/revoke"
    post(revoke, f"{admin}/{bobs[4:12]}/revoke", who=bob, headers=bob_csrf)  # 403
    post(revoke, f"{admin}/{bobs[4:12]}/revoke")
    post(revoke, f"{admin}/{bobs[4:12]}/revoke")  # 404: already revoked
    post(revoke, f"{admin}/x/revoke", who=stranger)  # 401
    everyone = admin + "/revoke-owner"
    new_token(bob)
    post(everyone, everyone, json={"owner": "bob"})
    post(everyone, everyone, json={"owner": ""})  # 400
    post(everyone, everyone, who=bob, headers=bob_csrf, json={"owner": "alice"})  # 403
    post(everyone, everyone, who=stranger, json={"owner": "bob"})  # 401

    documented = {(path, method.upper()) for path, item in spec["paths"].items()
                  if path.startswith("/api/") for method in item}
    assert documented - checker.seen == set(), "documented API operations never called"
    expected = {(J, "POST", code) for code in (201, 400, 401, 403, 413, 422, 429)} | {
        (one, "GET", code) for code in (200, 206, 404, 416)} | {
        (cancel, "POST", code) for code in (200, 403, 404)} | {
        (stream, "GET", code) for code in (200, 401, 404)} | {(chunk, "GET", 400)} | {
        (find, "POST", code) for code in (200, 400, 401, 403, 404)} | {
        (revoke, "POST", code) for code in (200, 401, 403, 404)} | {
        (everyone, "POST", code) for code in (200, 400, 401, 403)} | {
        (admin, "GET", code) for code in (200, 400, 401, 403)}
    assert expected - checker.answers == set()
    stranger.close()


def test_a_rebuild_answer_matches_the_schema(alice, world, spec):
    checker = Checker(spec)
    csrf = {"X-CSRF-Token": page_csrf(alice, "/")}
    answer = alice.post("/api/jobs/1/rebuild", headers=csrf)
    assert answer.status_code == 201
    checker.check("/api/jobs/{job_id}/rebuild", answer)


def test_an_answer_the_schema_does_not_describe_fails_the_check(alice, world, spec):
    checker = Checker(spec)
    answer = alice.get("/api/jobs/1")
    answer._content = json.dumps({**answer.json(), "surprise": 1}).encode()
    with pytest.raises(AssertionError, match="surprise"):
        checker.check("/api/jobs/{job_id}", answer)
    with pytest.raises(AssertionError, match="not documented"):
        checker.schema_for("/api/jobs/{job_id}", "GET", 418, "application/json")


def test_a_code_span_in_a_description_is_code_and_everything_else_is_escaped():
    from autobuild.web.rendering import code_spans
    assert str(code_spans("<b>`x<y>` and `z`")) == (
        "&lt;b&gt;<code>x&lt;y&gt;</code> and <code>z</code>")
    assert str(code_spans("a ` alone")) == "a ` alone"
