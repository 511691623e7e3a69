"""A build handed to a cluster: the page and the API say why it waits in the cluster's queue,
then which node runs it, live over the stream too."""

import pytest

from tests.web.helpers import csrf_from, event_data, parse_sse, submit

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def queued(alice, fakes, supervisor):
    fakes.runner.queues = True
    assert submit(alice).status_code == 303
    supervisor.tick()
    fakes.runner.wait(1, "Resources")
    supervisor.tick()
    return 1


def test_a_build_waiting_in_the_cluster_says_why(alice, queued):
    page = alice.get("/jobs/1").text
    job = alice.get("/api/jobs/1").json()

    assert (job["status"], job["waiting_reason"], job["node"]) == ("PENDING", "Resources", None)
    assert '<p class="waiting-reason" id="waiting-reason">Resources</p>' in page
    assert 'id="job-node-row" hidden' in page
    assert job["can_cancel"]


def test_the_node_shows_once_the_cluster_runs_it_and_the_stream_tells_it(alice, queued, fakes,
                                                                         supervisor):
    with alice.stream("GET", "/api/jobs/1/log/stream") as response:
        events = parse_sse(response.iter_lines())
        first = next(e for e in events if e.get("event") == "status")
        assert event_data(first)["waiting_reason"] == "Resources"
        fakes.runner.run(1, "node7")
        supervisor.tick()
        running = next(e for e in events if e.get("event") == "status")
        fakes.runner.finish(1, 0)
        supervisor.tick()
        rest = list(events)

    assert event_data(running)["status"] == "RUNNING"
    assert event_data(running)["node"] == "node7" and event_data(running)["waiting_reason"] is None
    assert rest[-1]["event"] == "end"
    page = alice.get("/jobs/1").text
    assert '<dd id="job-node">node7</dd>' in page
    assert alice.get("/api/jobs/1").json()["node"] == "node7"


def test_cancelling_a_build_in_the_clusters_queue_goes_through_the_cluster(alice, queued, fakes,
                                                                          supervisor):
    page = alice.get("/jobs/1").text
    assert 'id="cancel-form"' in page
    response = alice.post("/jobs/1/cancel", data={"csrf_token": csrf_from(page)},
                          follow_redirects=False)
    assert response.status_code == 303
    assert fakes.runner.cancelled == [1]
    fakes.runner.finish(1, 130, "CANCELLED")
    supervisor.tick()
    job = alice.get("/api/jobs/1").json()
    assert job["status"] == "CANCELLED" and job["reason"] == "cancelled by alice before it started"
