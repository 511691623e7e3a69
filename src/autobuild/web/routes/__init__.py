"""Route modules: auth (sign-in), pages (HTML), api (JSON), stream (SSE and chunked log).

Job ids in paths use the ``jobid`` convertor: 1-12 digits, the same rule as the runner's, so
``/jobs/abc`` or an id too large for SQLite is simply not a route (404), never a 422 or a 500.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor


class JobIdConvertor(Convertor[int]):
    regex = "[0-9]{1,12}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(int(value))


# Registered before the route modules below are imported: their paths are compiled then.
register_url_convertor("jobid", JobIdConvertor())
