"""Property-based fuzz of every form and API endpoint, from the app's own OpenAPI schema.

The schema is built here from the route table create_app includes, with FastAPI's
``get_openapi`` (at import, before any app exists); a test checks that it has the very
operations the app serves, signed in, at /openapi.json. Schemathesis generates valid and invalid path, query, header and form values
for every operation; each example is sent signed in (the session cookie, and the CSRF token
in the form field or header the route expects, so examples get past the CSRF check and reach
the handler) to a fresh app per operation with the real SQLite and build tree (world.py).
Nothing may answer 5xx, hang or escape as an exception.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from fastapi.openapi.utils import get_openapi
from hypothesis import HealthCheck, settings

from autobuild import __version__
from autobuild.web.app import ROUTE_MODULES

from .world import OWNER, World, make_world

EXAMPLES_PER_OPERATION = 30
KNOWN_IDS = 5  # ids 0..4: jobs 1-3 exist (see world.py), 0 and 4 do not


def route_table() -> list:
    """The routes create_app includes (the same objects end up in ``app.routes``)."""
    return [route for module in ROUTE_MODULES for route in module.router.routes]


def openapi_schema() -> dict:
    return get_openapi(title="Autobuild", version=__version__, routes=route_table())


schema = schemathesis.openapi.from_dict(openapi_schema())
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])


@pytest.fixture
def fuzzed(tmp_path, request) -> Iterator[World]:
    """A fresh world per operation: one operation's examples (a logout, a flood of failed
    logins, queued rebuilds) cannot change what another operation's examples meet."""
    with make_world(tmp_path) as world:
        if "stream" in request.node.name:
            # A stream of a running build lasts until the build ends: end them all.
            world.fakes.runner.finish(world.running_id, 0)
        yield world


def _operations(document: dict) -> set[tuple[str, str]]:
    return {(path, method.upper()) for path, item in document["paths"].items()
            for method in item}


def test_the_schema_is_the_apps_own_and_covers_every_route(fuzzed: World) -> None:
    from_app = get_openapi(title="Autobuild", version=__version__, routes=fuzzed.app.routes)
    assert openapi_schema() == from_app
    # Every route but the schema and its page (which are not in it) is fuzzed.
    routes = {(route.path_format, method) for route in route_table() if route.include_in_schema
              for method in route.methods if method != "HEAD"}
    assert _operations(from_app) == routes
    assert {route.path_format for route in route_table()
            if not route.include_in_schema} == {"/openapi.json", "/docs"}
    served = fuzzed.request("GET", "/openapi.json", {"cookie": fuzzed.session(OWNER).cookie})
    assert served.status == 200, served.text
    assert _operations(json.loads(served.text)) == routes


def _aim_at_known_jobs(case) -> None:
    """Half the generated ids land on jobs that exist, so examples reach past the lookup."""
    job_id = (case.path_parameters or {}).get("job_id")
    if isinstance(job_id, int) and not isinstance(job_id, bool) and job_id % 2 == 0:
        case.path_parameters["job_id"] = (job_id // 2) % KNOWN_IDS


def _sign(case, world: World) -> dict[str, str]:
    """Extra headers: the session cookie; and the CSRF token where the route takes it."""
    session = world.session(OWNER)
    if isinstance(case.body, dict) and case.operation.method.upper() == "POST":
        case.body["csrf_token"] = session.csrf
    headers = {"cookie": session.cookie}
    if case.operation.path.startswith("/api/") and case.operation.method.upper() == "POST":
        headers["x-csrf-token"] = session.csrf
    return headers


@schema.parametrize()
@settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case, fuzzed: World) -> None:
    _aim_at_known_jobs(case)
    extra = _sign(case, fuzzed)
    kwargs = case.as_transport_kwargs(base_url="http://testserver", headers=extra)
    prepared = requests.Request(
        method=kwargs["method"], url=kwargs["url"], headers=kwargs.get("headers"),
        params=kwargs.get("params"), data=kwargs.get("data"), json=kwargs.get("json"),
        files=kwargs.get("files"),
    ).prepare()
    body = prepared.body or b""
    headers = {k: v for k, v in prepared.headers.items() if k.lower() != "cookie"}
    headers["cookie"] = extra["cookie"]
    answer = fuzzed.request(prepared.method, prepared.path_url,
                            headers, body.encode() if isinstance(body, str) else body)
    assert answer.crashed is None, f"{prepared.method} {prepared.path_url}: {answer.crashed}"
    assert answer.status < 500, (
        f"{prepared.method} {prepared.path_url} -> {answer.status}: {answer.text[:300]}")

