"""`GET /ui`: one self-contained HTML page to upload a file and read the verdict."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = (Path(__file__).parent.parent / "static" / "ui.html").read_text(encoding="utf-8")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
"""The page loads nothing from elsewhere and talks only to this gateway."""

router = APIRouter(tags=["ui"])


@router.get("/ui", response_class=HTMLResponse, summary="Upload page")
async def upload_page() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})
