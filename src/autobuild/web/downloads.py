"""Answering a download of a build's file (an artifact, the raw log) the service has opened.

Behind nginx (which says so in ``X-Autobuild-Accel: 1``, a header it sets on every request it
passes on, whatever the client sent) the answer is an ``X-Accel-Redirect`` to nginx's internal
location for the same file: nginx serves it, Range included, refusing links; what it cannot
open comes back to the app without the header. Otherwise the app streams the descriptor it
opened, with one byte range (RFC 9110) or 416.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import BinaryIO
from urllib.parse import quote

from fastapi.responses import Response, StreamingResponse

ACCEL_HEADER = "X-Autobuild-Accel"
# nginx's internal location for the jobs root (deploy/nginx/autobuild.conf).
ACCEL_PREFIX = "/_autobuild/jobs/"
DOWNLOAD_CHUNK = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass(frozen=True)
class Download:
    """A file the service opened and checked, to be sent as ``disposition``/``media_type``.

    ``jobs_path`` is where the same file lies relative to the jobs root (domain/layout.py)."""

    fileobj: BinaryIO
    size: int
    disposition: str
    media_type: str
    jobs_path: PurePosixPath


def attachment(name: str) -> str:
    """``attachment`` with an ASCII fallback name and the exact name in RFC 5987 form."""
    return _disposition("attachment", name)


def inline(name: str) -> str:
    return _disposition("inline", name)


def _disposition(kind: str, name: str) -> str:
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\' else "_" for ch in name)
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range asked for as (first, last), None for the whole file.

    Raises ValueError when the range lies outside the file (answered 416). Malformed or
    multi-part ranges are ignored, as RFC 9110 allows, and the whole file is sent.
    """
    match = _RANGE.match((header or "").strip())
    if not match or match.group(1) == match.group(2) == "":
        return None
    first_text, last_text = match.groups()
    if first_text == "":
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise ValueError("empty range")
        return max(0, size - suffix), size - 1
    first = int(first_text)
    last = min(int(last_text), size - 1) if last_text else size - 1
    if first >= size or last < first:
        raise ValueError("range outside the file")
    return first, last


def accel_uri(jobs_path: PurePosixPath) -> str:
    """The URI of ``jobs_path`` in nginx's internal location, percent-encoded."""
    return ACCEL_PREFIX + quote(str(jobs_path), safe="/")


def respond(download: Download, range_header: str | None, accel: str | None) -> Response:
    """The answer for ``download``; closes its file (at once, or when streaming ends)."""
    headers = {
        "Content-Disposition": download.disposition,
        "Cache-Control": "private, no-cache",
    }
    if accel == "1":
        # Checked on the descriptor; nginx opens the same name again and refuses links itself.
        download.fileobj.close()
        headers["X-Accel-Redirect"] = accel_uri(download.jobs_path)
        return Response(status_code=200, headers=headers, media_type=download.media_type)
    headers["Accept-Ranges"] = "bytes"
    try:
        span = parse_range(range_header, download.size)
    except ValueError:
        download.fileobj.close()
        headers["Content-Range"] = f"bytes */{download.size}"
        return Response(status_code=416, headers=headers)
    first, last = span if span else (0, download.size - 1)
    length = max(0, last - first + 1)
    headers["Content-Length"] = str(length)
    if span:
        headers["Content-Range"] = f"bytes {first}-{last}/{download.size}"
    return StreamingResponse(
        _read(download.fileobj, first, length),
        status_code=206 if span else 200,
        headers=headers,
        media_type=download.media_type,
    )


def _read(fileobj: BinaryIO, first: int, length: int) -> Iterator[bytes]:
    try:
        if first:
            fileobj.seek(first)
        left = length
        while left > 0:
            data = fileobj.read(min(DOWNLOAD_CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data
    finally:
        fileobj.close()
