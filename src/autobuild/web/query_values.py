"""Query parameters people edit by hand in the address bar (?status=, ?before=, ?a=): each
read here with a message fit to show ("'abc' is not a build number"), instead of pydantic's
("Input should be a valid integer, unable to parse string as an integer"). A bad value is a
RequestValidationError of type CLEAR, which errors.py says as it is (400)."""

from __future__ import annotations

from fastapi.exceptions import RequestValidationError

from ..domain.jobs import JobStatus
from ..domain.layout import is_job_id

CLEAR = "clear"  # the error type whose message errors.py shows alone
_DIGITS_SHOWN = 20  # what of a bad value the message repeats


def refused(name: str, message: str) -> RequestValidationError:
    """The 400 for query parameter ``name``, saying ``message`` and nothing else."""
    return RequestValidationError([{"loc": ("query", name), "msg": message, "type": CLEAR}])


def not_a_build_number(value: str) -> str:
    return f"'{value[:_DIGITS_SHOWN]}' is not a build number."  # the page escapes it


def build_number(value: str, lowest: int = 1, highest: int | None = None) -> int | None:
    """``value`` as a build number (layout.is_job_id), or as a cursor between ``lowest`` and
    ``highest`` when ``highest`` is given; None when it is not one: digits only, no sign, no
    blank (as an id in a path is)."""
    if not (value.isascii() and value.isdigit() and len(value) <= 19):
        return None
    number = int(value)
    if highest is None:
        return number if is_job_id(number) and number >= lowest else None
    return number if lowest <= number <= highest else None


def job_status(value: str) -> JobStatus | None:
    """The status ``value`` names; None for ""; ValueError with the statuses otherwise."""
    if not value:
        return None
    try:
        return JobStatus(value)
    except ValueError:
        raise ValueError("status must be one of "
                         + ", ".join(status.value for status in JobStatus)
                         + " (or empty for any).") from None
