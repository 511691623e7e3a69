"""The whole product, for progress and failures: the real runner and stand-in bitbake behind
the web app; the progress a browser sees, and the "Why it failed" box of a failed build."""

from __future__ import annotations

import re

from tests.integration.test_end_to_end import (  # noqa: F401 (client is a fixture)
    USER,
    client,
    sign_in_and_save_token,
    stream_until_end,
    submit,
    wait_for_status,
)
from tests.web.helpers import event_data


def test_progress_events_follow_the_build_to_the_end(client, git):
    client.git_url = git.url
    sign_in_and_save_token(client)
    job_id = submit(client, "core-image-minimal")

    events = stream_until_end(client, job_id)

    progress = [event_data(e) for e in events if e.get("event") == "progress"]
    # One event per log chunk that changed it: quick phases may share a chunk.
    order = ["starting", "cloning", "checkout", "parsing", "setscene", "tasks", "collecting",
             "finished"]
    ranks = [order.index(p["phase"]) for p in progress]
    assert ranks == sorted(ranks)
    assert progress[-1]["phase"] == "finished"
    tasks = [p for p in progress if p["phase"] == "tasks"]
    assert tasks, "no progress event while bitbake ran its tasks"
    assert progress[-1]["tasks_done"] == progress[-1]["tasks_total"] == 28  # 16 sstate + 12
    assert progress[-1]["percent"] == 100
    done = [p["tasks_done"] for p in progress]
    assert done == sorted(done)
    assert client.get(f"/api/jobs/{job_id}").json()["progress"]["phase"] == "finished"


def test_a_failed_build_says_why_even_after_its_workspace_is_gone(client, git):
    client.git_url = git.url
    sign_in_and_save_token(client)
    job_id = submit(client, "fail-image")
    assert wait_for_status(client, job_id)["status"] == "FAILED"
    assert not (client.jobs_root / USER / str(job_id) / "work").exists()  # the runner cleaned it up

    page = client.get(f"/jobs/{job_id}").text

    box = page[page.index('<section class="failure-box"'):]
    box = box[:box.index("</section>")]
    text = re.sub(r"\s*\n\s*", "\n", re.sub(r"<[^>]+>", "", box)).strip()
    assert text.splitlines()[:4] == ["Why it failed", "1 bitbake task failed:",
                                     "fail-image-1.0-r0 do_compile", "oe_runmake failed"]
    assert "make: *** [Makefile:12: all] Error 1" in text.replace("&#34;", '"')
    assert "End of the task's log" in text
