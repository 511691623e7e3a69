"""Provenance in the job list and actions: the built commit shown and filtered by (page and
API), and "Rebuild this exact commit" (page form with CSRF, API, errors)."""

import pytest

from tests.web.helpers import csrf_from, page_csrf, submit

SHA = "0f14567a2c1d6e0e7e1d2c3b4a5968778695a4b3"
OTHER = "f" * 40


def built(alice, fakes, supervisor, commit=SHA, **fields):
    """A build of alice's that ran and ended, its log naming ``commit``; returns its id."""
    assert submit(alice, **fields).status_code == 303
    job_id = max(fakes.jobs.rows)
    supervisor.tick()
    fakes.files.logs[job_id] = (f"==> Checking out main\n==> Commit {commit}\n".encode()
                                if commit else b"==> Cloning\nfatal: not found\n")
    fakes.runner.finish(job_id, 0 if commit else 128)
    supervisor.tick()
    return job_id


@pytest.fixture
def two_commits(alice, fakes, supervisor):
    first = built(alice, fakes, supervisor)
    second = built(alice, fakes, supervisor, commit=OTHER)
    third = built(alice, fakes, supervisor, commit=None)
    return first, second, third


def test_an_ended_job_shows_its_commit_in_the_api_and_the_list(alice, two_commits):
    first, second, third = two_commits
    items = {item["id"]: item for item in alice.get("/api/jobs").json()["items"]}
    assert (items[first]["commit"], items[first]["commit_short"]) == (SHA, SHA[:12])
    assert items[third]["commit"] is None and items[third]["commit_short"] is None
    assert alice.get(f"/api/jobs/{first}").json()["commit"] == SHA
    page = alice.get("/").text
    assert f'<a href="/?commit={SHA}" title="{SHA}: every build of this commit"><code>{SHA[:12]}</code></a>' in page


@pytest.mark.parametrize("given", [SHA, SHA[:7], SHA.upper()[:10], f" {SHA[:8]} "])
def test_the_lists_filter_by_a_full_or_abbreviated_commit(alice, two_commits, given):
    first, _, _ = two_commits
    api = alice.get("/api/jobs", params={"commit": given})
    assert api.status_code == 200
    assert [item["id"] for item in api.json()["items"]] == [first]
    page = alice.get("/", params={"commit": given})
    assert page.status_code == 200
    assert f'href="/jobs/{first}"' in page.text
    assert 'href="/jobs/2"' not in page.text and 'href="/jobs/3"' not in page.text
    assert f'value="{given.strip().lower()}"' in page.text  # the field keeps the filter


def test_a_commit_nobody_built_lists_nothing(alice, two_commits):
    assert alice.get("/api/jobs", params={"commit": "0123456"}).json()["items"] == []
    assert "No builds match these filters" in alice.get("/", params={"commit": "0123456"}).text


@pytest.mark.parametrize("bad", ["abc", "0f1456", "xyz1234", "0f14567;--", "a" * 65, "0f145 67"])
def test_a_bad_commit_filter_is_a_clear_400_on_the_page_and_in_the_api(alice, bad):
    api = alice.get("/api/jobs", params={"commit": bad})
    assert api.status_code == 400
    assert api.json()["detail"] == ("The request was not understood: commit: a commit is 7 to "
                                    "64 hex digits (0-9, a-f)")
    page = alice.get("/", params={"commit": bad})
    assert page.status_code == 400 and "7 to 64 hex digits" in page.text
    assert "Traceback" not in page.text


def test_the_filter_stays_in_the_next_page_links(alice, fakes, supervisor):
    for _ in range(27):
        built(alice, fakes, supervisor)
    page = alice.get("/", params={"commit": SHA[:7]}).text
    assert f"commit={SHA[:7]}" in page and "before=" in page


# --- rebuild this exact commit -------------------------------------------------------------------

def test_the_job_page_offers_an_exact_rebuild_only_when_the_commit_is_known(alice, two_commits):
    first, _, third = two_commits
    page = alice.get(f"/jobs/{first}").text
    assert 'id="rebuild-exact-form"' in page and 'name="exact" value="1"' in page
    assert 'name="csrf_token"' in page.split('id="rebuild-exact-form"')[1].split("</form>")[0]
    assert 'id="rebuild-exact-form"' not in alice.get(f"/jobs/{third}").text


def test_the_exact_rebuild_form_queues_the_commit_as_the_ref(alice, fakes, supervisor):
    first = built(alice, fakes, supervisor, kas_file="kas/q.yml")
    token = csrf_from(alice.get(f"/jobs/{first}").text)
    response = alice.post(f"/jobs/{first}/rebuild", data={"csrf_token": token, "exact": "1"})
    assert response.status_code == 303
    new = fakes.jobs.get(int(response.headers["location"].rsplit("/", 1)[1]))
    assert (new.ref, new.kas_file, new.owner, new.commit) == (SHA, "kas/q.yml", "alice", None)
    assert f"a rebuild of commit {SHA[:12]} of #{first}" in alice.get(f"/jobs/{new.id}").text


def test_the_exact_rebuild_form_needs_the_csrf_token(alice, fakes, supervisor):
    first = built(alice, fakes, supervisor)
    response = alice.post(f"/jobs/{first}/rebuild", data={"exact": "1"})
    assert response.status_code == 403
    assert len(fakes.jobs.rows) == 1


def test_an_exact_rebuild_of_a_job_without_a_commit_is_a_clear_422(alice, two_commits, fakes):
    _, _, third = two_commits
    token = page_csrf(alice, f"/jobs/{third}")
    page = alice.post(f"/jobs/{third}/rebuild", data={"csrf_token": token, "exact": "1"})
    assert page.status_code == 422 and "recorded no commit" in page.text
    api = alice.post(f"/api/jobs/{third}/rebuild", json={"exact": True},
                     headers={"X-CSRF-Token": token})
    assert api.status_code == 422 and "recorded no commit" in api.json()["errors"]["ref"]
    assert len(fakes.jobs.rows) == 3


def test_the_api_rebuilds_the_exact_commit_or_the_ref(alice, bob, two_commits, fakes):
    first, _, _ = two_commits
    token = page_csrf(alice, "/")
    exact = alice.post(f"/api/jobs/{first}/rebuild", json={"exact": True},
                     headers={"X-CSRF-Token": token})
    assert exact.status_code == 201
    assert (exact.json()["ref"], exact.json()["owner"]) == (SHA, "alice")
    same = alice.post(f"/api/jobs/{first}/rebuild", json={"exact": False},
                    headers={"X-CSRF-Token": token})
    assert same.status_code == 201 and same.json()["ref"] == "main"
    bad = alice.post(f"/api/jobs/{first}/rebuild", json={"exact": "yes please"},
                   headers={"X-CSRF-Token": token})
    assert bad.status_code == 400 and "detail" in bad.json()
    extra = alice.post(f"/api/jobs/{first}/rebuild", json={"exact": True, "ref": "evil"},
                     headers={"X-CSRF-Token": token})
    assert extra.status_code == 400
    theirs = bob.post(f"/api/jobs/{first}/rebuild", json={"exact": True},
                      headers={"X-CSRF-Token": page_csrf(bob, "/")})
    assert theirs.status_code == 403 and f"/new?from={first}" in theirs.json()["detail"]


def test_a_colleague_builds_the_exact_commit_through_the_filled_in_form(alice, bob, fakes,
                                                                       supervisor):
    first = built(alice, fakes, supervisor)
    page = bob.get(f"/jobs/{first}").text
    assert 'id="rebuild-exact-form"' not in page  # no one-click clone with bob's token
    assert f'href="/new?from={first}&amp;exact=1"' in page
    form = bob.get(f"/new?from={first}&exact=1").text
    assert f'value="{SHA}"' in form and "alice's build" in form
    assert 'value="main"' not in form
    assert f'value="{SHA}"' not in bob.get(f"/new?from={first}").text
