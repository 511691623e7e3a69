"""Settings → API tokens → All engineers' tokens, and /api/admin/tokens: an administrator
(alice here) finds and revokes any engineer's token after a leak or when they leave; everybody
else gets 403; every revoke is logged, never the token."""

import logging

import pytest
from starlette.testclient import TestClient

from tests.web.helpers import page_csrf
from tests.web.test_api_tokens import bearer, new_token

ALL = "/settings/api-tokens/all"
API = "/api/admin/tokens"


@pytest.fixture
def admin(alice, fakes):
    fakes.admins.admins.add("alice")
    return alice


@pytest.fixture
def script(app):
    other = TestClient(app, follow_redirects=False)
    yield other
    other.close()


def post(client, path, **data):
    return client.post(path, data={**data, "csrf_token": page_csrf(client, "/settings")})


# --- the page ----------------------------------------------------------------------------------

def test_an_administrator_sees_every_engineers_live_tokens(admin, bob, fakes):
    bobs = new_token(bob, name="bob's nightly CI", expires_days="30")
    new_token(admin, name="alice's script")
    gone = new_token(bob, name="revoked one")
    bob.post("/settings/api-tokens/revoke",
             data={"id": gone[4:12], "csrf_token": page_csrf(bob, "/settings")})

    page = admin.get(ALL)

    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert '<td data-label="Name">bob&#39;s nightly CI</td>' in page.text and f"abt_{bobs[4:12]}…" in page.text
    assert '<td data-label="Name">alice&#39;s script</td>' in page.text
    assert "revoked one" not in page.text
    assert "2026-01-31 12:00 UTC" in page.text  # bob's expires in 30 days
    assert bobs not in page.text and fakes.api_token_store.rows[bobs[4:12]].digest not in page.text
    assert 'href="/settings/api-tokens/all"' in admin.get("/settings/api-tokens").text


def test_the_list_is_filtered_by_owner(admin, bob):
    new_token(bob, name="bob's CI")
    new_token(admin, name="alice's script")

    page = admin.get(ALL, params={"owner": "bob"})

    assert "bob&#39;s CI" in page.text and "alice&#39;s script" not in page.text
    assert "Revoke all of bob’s tokens (1)" in page.text
    assert "dave has no live API tokens" in admin.get(ALL, params={"owner": "dave"}).text


@pytest.mark.parametrize("path", [ALL, ALL + "?owner=alice"])
def test_an_engineer_who_is_not_an_administrator_gets_403(alice, bob, path):
    new_token(alice, name="alice's script")

    page = bob.get(path)

    assert page.status_code == 403
    assert "Only build-server administrators" in page.text and "alice" not in page.text
    assert 'href="/settings/api-tokens/all"' not in bob.get("/settings/api-tokens").text


def test_an_engineer_who_is_not_an_administrator_cannot_find_or_revoke(alice, bob, script):
    token = new_token(alice)

    for path, data in ((ALL + "/find", {"token": token}), (ALL + "/revoke", {"id": token[4:12]}),
                       (ALL + "/revoke-owner", {"owner": "alice"})):
        response = post(bob, path, **data)
        assert response.status_code == 403, path
        assert "Only build-server administrators" in response.text
    assert script.get("/api/jobs", headers=bearer(token)).status_code == 200


def test_the_pages_need_a_session(client):
    assert client.get(ALL).headers["location"].startswith("/login")


def test_an_administrator_revokes_a_colleagues_token_at_once_and_it_is_logged(
        admin, bob, script, caplog):
    token = new_token(bob, name="pasted in chat")
    kept = new_token(bob, name="kept")
    assert script.get("/api/jobs", headers=bearer(token)).status_code == 200

    with caplog.at_level(logging.INFO):
        response = post(admin, ALL + "/revoke", id=token[4:12], owner="bob")

    assert response.status_code == 303 and response.headers["location"] == ALL + "?owner=bob"
    page = admin.get(response.headers["location"])
    assert f"Revoked bob’s token abt_{token[4:12]}… (“pasted in chat”)" in page.text
    assert script.get("/api/jobs", headers=bearer(token)).status_code == 401
    assert script.get("/api/jobs", headers=bearer(kept)).status_code == 200
    assert "pasted in chat" not in bob.get("/settings/api-tokens").text
    assert f"administrator 'alice' revoked API token {token[4:12]} of 'bob'" in caplog.text
    assert token not in caplog.text and token[12:] not in caplog.text


def test_revoking_what_is_no_longer_live_says_so(admin, bob):
    token = new_token(bob)
    post(admin, ALL + "/revoke", id=token[4:12])

    response = post(admin, ALL + "/revoke", id=token[4:12])

    assert response.headers["location"] == ALL
    assert "no such live token" in admin.get(ALL).text


def test_revoke_all_of_one_engineers_tokens(admin, bob, script, caplog):
    bobs = [new_token(bob, name=f"t{n}") for n in range(3)]
    alices = new_token(admin)

    with caplog.at_level(logging.INFO):
        response = post(admin, ALL + "/revoke-owner", owner="bob")

    assert response.status_code == 303
    page = admin.get(response.headers["location"])
    assert "Revoked all 3 of bob’s tokens" in page.text
    assert all(f"abt_{t[4:12]}…" in page.text for t in bobs)  # named in the message
    assert "bob has no live API tokens" in page.text
    assert all(script.get("/api/jobs", headers=bearer(t)).status_code == 401 for t in bobs)
    assert script.get("/api/jobs", headers=bearer(alices)).status_code == 200
    assert caplog.text.count("administrator 'alice' revoked API token") == 3


@pytest.mark.parametrize("path, data", [(ALL + "/revoke", {"id": "x"}),
                                        (ALL + "/revoke-owner", {"owner": "bob"}),
                                        (ALL + "/find", {"token": "abt_12345678"})])
def test_every_form_needs_the_csrf_token(admin, bob, script, path, data):
    token = new_token(bob)
    data = {key: (token[4:12] if value == "x" else value) for key, value in data.items()}

    response = admin.post(path, data=data)
    assert response.status_code == 403 and "Form expired" in response.text
    assert f'href="{ALL}"' in response.text  # "Go back" to the page the form was on
    response = admin.post(path, data={**data, "csrf_token": "forged"})
    assert response.status_code == 403
    assert script.get("/api/jobs", headers=bearer(token)).status_code == 200


def test_a_leaked_token_is_found_and_revoked_from_the_answer(admin, bob, script):
    token = new_token(bob, name="nightly CI")

    found = post(admin, ALL + "/find", token=f"  {token}\n")

    assert found.status_code == 200 and found.headers["cache-control"] == "no-store"
    assert f"<code>abt_{token[4:12]}…</code> is <strong>bob</strong>’s token" in found.text
    assert "“nightly CI”" in found.text and "live" in found.text
    assert token not in found.text  # not shown back
    assert f'<input type="hidden" name="id" value="{token[4:12]}">' in found.text
    post(admin, ALL + "/revoke", id=token[4:12])
    assert script.get("/api/jobs", headers=bearer(token)).status_code == 401
    again = post(admin, ALL + "/find", token=f"abt_{token[4:12]}…")
    assert again.status_code == 200 and "revoked" in again.text


def test_a_token_that_only_shares_an_id_is_not_found(admin, bob):
    token = new_token(bob)
    other = token[:-1] + ("A" if token[-1] != "A" else "B")

    found = post(admin, ALL + "/find", token=other)

    assert found.status_code == 404 and "No token matches" in found.text
    assert "bob" not in found.text.split("<h2 id=\"live\">")[0]


def test_what_is_not_a_token_gets_a_clear_400(admin):
    response = post(admin, ALL + "/find", token="glpat-abcdefghijklmnopqrst")
    assert response.status_code == 400 and "Paste a token" in response.text
    assert post(admin, ALL + "/find", token="x" * 2000).status_code == 400


# --- the JSON API ------------------------------------------------------------------------------

def test_an_administrators_token_lists_finds_and_revokes_through_the_api(admin, bob, script):
    bobs = new_token(bob, name="ci")
    mine = new_token(admin, name="offboarding script")

    listed = script.get(API, headers=bearer(mine), params={"owner": "bob"})
    assert listed.status_code == 200
    [item] = listed.json()["items"]
    assert item["owner"] == "bob" and item["id"] == bobs[4:12] and item["state"] == "live"
    assert "digest" not in item
    found = script.post(API + "/find", headers=bearer(mine), json={"token": bobs})
    assert found.status_code == 200 and found.json()["owner"] == "bob"
    revoked = script.post(f"{API}/{bobs[4:12]}/revoke", headers=bearer(mine))
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"
    assert script.get("/api/jobs", headers=bearer(bobs)).status_code == 401
    assert script.post(f"{API}/{bobs[4:12]}/revoke", headers=bearer(mine)).status_code == 404


def test_the_api_revokes_all_of_one_engineers_tokens(admin, bob, script):
    bobs = [new_token(bob, name=f"t{n}") for n in range(2)]
    csrf = {"X-CSRF-Token": page_csrf(admin, "/settings")}

    response = admin.post(API + "/revoke-owner", headers=csrf, json={"owner": "bob"})

    assert response.status_code == 200
    assert sorted(t["id"] for t in response.json()["revoked"]) == sorted(t[4:12] for t in bobs)
    assert all(script.get("/api/jobs", headers=bearer(t)).status_code == 401 for t in bobs)
    assert admin.post(API + "/revoke-owner", json={"owner": "bob"}).status_code == 403  # CSRF


def test_the_api_refuses_engineers_who_are_not_administrators(alice, bob, script):
    alices = new_token(alice)
    bobs = new_token(bob)

    assert script.get(API, headers=bearer(bobs)).status_code == 403
    assert script.get(API, headers=bearer(bobs)).json() == {
        "detail": "Only build-server administrators may see or revoke other engineers' "
                  "API tokens."}
    assert script.post(API + "/find", headers=bearer(bobs),
                       json={"token": alices}).status_code == 403
    assert script.post(f"{API}/{alices[4:12]}/revoke", headers=bearer(bobs)).status_code == 403
    assert script.post(API + "/revoke-owner", headers=bearer(bobs),
                       json={"owner": "alice"}).status_code == 403
    assert script.get("/api/jobs", headers=bearer(alices)).status_code == 200
    assert script.get(API).status_code == 401
