"""The API's documentation, for signed-in engineers: GET /openapi.json (a session cookie or
an API token; 401 JSON otherwise) and GET /docs, a page rendered here from that schema (no
Swagger UI: it would load from a CDN, and the service works offline).

The schema is FastAPI's, from the routes and web/schemas.py, with what FastAPI cannot say by
itself: the SSE events' data schemas and how to sign in.
"""

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..rendering import render
from ..schemas import SSE_EVENTS, sse_components
from ..security import SESSION_COOKIE, User

router = APIRouter(include_in_schema=False)

OPENAPI_PATH = "/openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (built once, then cached on the app by FastAPI)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    document = app.openapi()
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    _bad_input_is_400(document)
    for name, schema in sse_components().items():
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
    components["securitySchemes"] = {
        "apiToken": {"type": "http", "scheme": "bearer",
                     "description": "A personal API token (abt_...) from Settings → API tokens; "
                     "/api routes and /openapi.json only; no CSRF header needed"},
        "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                    "description": "The browser's session; API POSTs also need X-CSRF-Token"},
    }
    document["security"] = [{"apiToken": []}, {"session": []}]
    return document


def _bad_input_is_400(document: dict[str, Any]) -> None:
    """FastAPI documents a 422 HTTPValidationError for every route with parameters; this app
    answers malformed input with 400 (errors.py): an ApiError on /api, an error page else."""
    for path, item in document.get("paths", {}).items():
        for operation in item.values():
            responses = operation.get("responses", {})
            answer = responses.get("422", {})
            schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
            if schema.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
                if path.startswith("/api/"):
                    responses.setdefault("400", {
                        "description": "The request was not understood",
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/ApiError"}}}})
                else:
                    responses.setdefault("400", {
                        "description": "The request was not understood (an error page)",
                        "content": {"text/html": {"schema": {"type": "string"}}}})
    for name in ("HTTPValidationError", "ValidationError"):
        document.get("components", {}).get("schemas", {}).pop(name, None)


@router.get(OPENAPI_PATH)
def openapi_json(request: Request, user: User) -> Response:
    return JSONResponse(openapi_document(request.app))


def _operations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The document's operations in path order, flattened for the docs page."""
    found = []
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = []
            for code, answer in operation.get("responses", {}).items():
                kinds = []
                for media, content in (answer.get("content") or {}).items():
                    kinds.append((media, _schema_name(content.get("schema") or {})))
                responses.append({"code": code, "description": answer.get("description", ""),
                                  "content": kinds})
            found.append({
                "method": method.upper(), "path": path,
                "tag": (operation.get("tags") or ["other"])[0],
                "summary": operation.get("summary", ""),
                "description": operation.get("description", ""),
                "parameters": [{"name": p["name"], "in": p["in"],
                                "required": p.get("required", False),
                                "type": _schema_name(p.get("schema") or {})}
                               for p in operation.get("parameters", [])],
                "body": _body_name(operation.get("requestBody")),
                "responses": responses,
            })
    return found


def _body_name(body: dict[str, Any] | None) -> str | None:
    if not body:
        return None
    return ", ".join(f"{media}: {_schema_name(content.get('schema') or {})}"
                     for media, content in body.get("content", {}).items())


def _schema_name(schema: dict[str, Any]) -> str:
    """A short name for a schema: its component's name, else its type."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " | ".join(_schema_name(part) for part in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_schema_name(schema.get('items') or {})}"
    return str(schema.get("type", "any"))


def _components(document: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        required = set(schema.get("required", []))
        found.append({
            "name": name, "description": schema.get("description", ""),
            "fields": [{"name": field, "type": _schema_name(sub), "required": field in required,
                        "description": sub.get("description", "")}
                       for field, sub in schema.get("properties", {}).items()],
        })
    return found


@router.get("/docs", response_class=HTMLResponse)
def docs_page(request: Request, user: User) -> Response:
    document = openapi_document(request.app)
    return render(request, "docs.html", {
        "info": document["info"], "operations": _operations(document),
        "components": _components(document),
        "events": [(name, model.__name__) for name, model in SSE_EVENTS.items()],
    })
