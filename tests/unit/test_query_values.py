"""The values people type into the address bar: read with a message fit to show."""

import pytest

from autobuild.domain.jobs import JobStatus
from autobuild.web.query_values import build_number, job_status, not_a_build_number


@pytest.mark.parametrize("value, number", [
    ("1", 1), ("42", 42), (" 7 ", None), ("999999999999", 999999999999),
    ("0", None), ("-1", None), ("abc", None), ("1e3", None), ("١٢", None), ("", None),
    ("1000000000000", None), ("9" * 25, None),
])
def test_a_build_number_is_what_a_job_id_may_be(value, number):
    assert build_number(value) == number


def test_a_cursor_has_its_own_range():
    assert build_number("0", lowest=0, highest=2**63 - 1) == 0
    assert build_number(str(2**63 - 1), 1, 2**63 - 1) == 2**63 - 1
    assert build_number(str(2**63), 1, 2**63 - 1) is None


def test_the_message_repeats_at_most_twenty_characters():
    assert not_a_build_number("x") == "'x' is not a build number."
    assert not_a_build_number("9" * 25) == f"'{'9' * 20}' is not a build number."


def test_a_status_is_one_of_the_statuses_or_empty():
    assert job_status("") is None and job_status("FAILED") is JobStatus.FAILED
    with pytest.raises(ValueError, match="status must be one of PENDING, RUNNING, SUCCESS, "
                                         "FAILED, CANCELLED"):
        job_status("failed")
