"""GET /cli/autobuild-cli: the command-line client (one stdlib-only Python file), for anyone.

It is code, not data, so no sign-in is needed to fetch it (as Jenkins serves its CLI); what it
does needs the engineer's API token.
"""

from fastapi import APIRouter
from fastapi.responses import FileResponse

from ..downloads import attachment
from ..rendering import STATIC_DIR

router = APIRouter(tags=["client"])

CLI_NAME = "autobuild-cli"
CLI_FILE = STATIC_DIR / CLI_NAME


@router.get("/cli/" + CLI_NAME, response_class=FileResponse)
def download_cli() -> FileResponse:
    return FileResponse(CLI_FILE, media_type="text/x-python; charset=utf-8",
                        headers={"Content-Disposition": attachment(CLI_NAME),
                                 "Cache-Control": "no-cache"})
