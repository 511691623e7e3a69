"""Settings (and /profile, the seed-000 name): the GitLab token is stored, never shown."""

import pytest

from autobuild.domain.ports import RunnerError
from tests.web.helpers import page_csrf

SECRET = "glpat-Zx9s8d7f6g5h4j3k2l1"


def save(client, token, path="/settings"):
    return client.post(path, data={"token": token, "csrf_token": page_csrf(client, path)})


@pytest.mark.parametrize("path", ["/settings", "/profile"])
def test_settings_say_when_no_token_is_on_file(alice, path):
    page = alice.get(path)

    assert page.status_code == 200
    assert "No token on file yet" in page.text
    assert 'type="password"' in page.text
    assert 'autocomplete="off"' in page.text
    assert f'action="{path}"' in page.text


@pytest.mark.parametrize("path", ["/settings", "/profile"])
def test_saving_a_token_stores_it_for_the_user_and_never_shows_it(alice, fakes, path):
    response = save(alice, f"  {SECRET}\n", path)

    assert response.status_code == 303
    assert response.headers["location"] == path
    assert fakes.tokens.tokens == {"alice": SECRET}  # surrounding whitespace stripped
    page = alice.get(path).text
    assert "A GitLab token is on file" in page
    assert "token is saved" in page
    assert SECRET not in page
    assert SECRET[-6:] not in page


def test_each_user_has_their_own_token(alice, bob, fakes):
    save(alice, SECRET)

    assert "No token on file yet" in bob.get("/settings").text
    assert "A GitLab token is on file" in alice.get("/settings").text


@pytest.mark.parametrize(
    ("token", "message"),
    [("", "Paste your GitLab personal access token first."),
     ("   ", "Paste your GitLab personal access token first."),
     ("glpat abc", "no spaces or line breaks"),
     ("glpat\x07abc", "no spaces or line breaks"),
     ("x" * 513, "longer than any GitLab token")],
    ids=["empty", "blank", "space", "control", "too-long"],
)
def test_unusable_tokens_are_refused_with_a_message(alice, fakes, token, message):
    response = save(alice, token)

    assert response.status_code == 400
    assert message in response.text
    assert fakes.tokens.tokens == {}


class BrokenTokenStore:
    def store(self, username: str, token: str) -> None:
        raise RunnerError("the token was not saved: sudo: a password is required")

    def has_token(self, username: str) -> bool:
        raise RunnerError(f"cannot tell whether {username} has a token: sudo: a password is required")


@pytest.fixture
def broken_tokens(app):
    app.state.container.tokens.override(BrokenTokenStore())


def test_a_runner_failure_is_shown_not_crashed(alice, broken_tokens):
    page = alice.get("/settings")
    assert page.status_code == 200
    assert "Could not check whether a token is on file" in page.text

    response = save(alice, SECRET)

    assert response.status_code == 503
    assert "The token was not saved: sudo: a password is required" in response.text
    assert SECRET not in response.text
