"""GET /cli/autobuild-cli: the command-line client, for anyone (it is code, not data)."""

from pathlib import Path

import autobuild.web

CLI = Path(autobuild.web.__file__).parent / "static" / "autobuild-cli"


def test_the_client_is_served_without_sign_in_as_an_attachment(client):
    response = client.get("/cli/autobuild-cli")

    assert response.status_code == 200
    assert response.content == CLI.read_bytes()
    assert response.headers["content-disposition"].startswith('attachment; filename="autobuild-cli"')
    assert response.headers["content-type"].startswith("text/x-python")
    assert response.content.startswith(b"#!/usr/bin/env python3\n")


def test_nothing_else_is_served_there(client):
    assert client.get("/cli/other").status_code == 404
    assert client.get("/cli/autobuild-cli/../static/app.js").status_code == 404
