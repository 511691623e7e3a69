"""What a build asks of a Slurm cluster travels in the order and is checked again by the
runner: nothing in it can become an sbatch option or a shell word."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autobuild.domain.orders import BuildOrder, ClusterRequest, InvalidOrder, JobAddress
from autobuild.domain.requests import BuildRequest

REQUEST = BuildRequest.parse("https://git.example.com/poky.git", "main", "qemux86-64",
                             "core-image-minimal")
ADDRESS = JobAddress(7, "alice", "/srv/autobuild/jobs")


def test_an_order_carries_its_cluster_request_both_ways():
    order = BuildOrder(ADDRESS, REQUEST, cluster=ClusterRequest("yocto", 16, 65536, 120, "bsp"))
    assert BuildOrder.from_json(order.to_json()) == order
    local = BuildOrder(ADDRESS, REQUEST)
    assert "cluster" not in local.to_json() and BuildOrder.from_json(local.to_json()) == local


@pytest.mark.parametrize("fields", [
    {"partition": "-p"}, {"partition": "a b"}, {"partition": "x;id"}, {"account": "--wrap"},
    {"partition": ""}, {"cpus": 0}, {"cpus": True}, {"cpus": "8"}, {"memory_mb": 0},
    {"time_limit_minutes": 0}, {"time_limit_minutes": 10**9}, {"nodes": 2},
])
def test_anything_but_plain_names_and_sane_numbers_is_refused(fields):
    data = {**ClusterRequest().as_dict(), **fields}
    with pytest.raises(InvalidOrder):
        ClusterRequest.from_dict(data)


@given(st.text(max_size=40))
def test_no_accepted_partition_looks_like_an_option_or_holds_a_separator(text):
    try:
        request = ClusterRequest(partition=text)
    except InvalidOrder:
        return
    assert not text.startswith("-") and not any(c in text for c in " \t\n;|&$`'\"=,/")
    assert request.partition == text
