"""Upload rules: how large a request body may grow while it streams, and how a filename is echoed."""

from __future__ import annotations

import unicodedata
from http import HTTPStatus
from pathlib import PurePosixPath

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_response, upload_too_large
from gateway.settings import Settings

MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for multipart boundaries and part headers on top of the file itself.

The body limit stops an oversized upload while it streams, before it is buffered; the exact
file size is checked once the form is parsed.
"""

MAX_FILENAME_CHARS = 128
MAX_SUFFIX_CHARS = 16
FALLBACK_FILENAME = "upload"


class UploadLimitMiddleware:
    """Pure ASGI middleware that refuses request bodies larger than an upload can be, with 413.

    A declared Content-Length over the limit is answered before a byte is read. Otherwise the bytes
    are counted as the app reads them, and reading stops with 413 once they pass the limit, so an
    oversized body (chunked, or lying about its length) is never buffered whole.

    Starlette's own body limit answers a declared oversize in plain text; this one keeps the
    gateway's JSON error shape.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.max_body_bytes = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            too_large = error_response(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, upload_too_large(self.settings))
            await too_large(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, upload_too_large(self.settings))
            return message

        await self.app(scope, counting_receive, send)


def safe_filename(name: str | None) -> str:
    """The client's filename reduced to a printable base name that is safe to echo back.

    Directory parts (POSIX or Windows), control and format characters are dropped and long
    names are shortened, keeping a short extension.
    """
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    printable = "".join(char for char in base if not unicodedata.category(char).startswith("C")).strip()
    if printable in ("", ".", ".."):
        return FALLBACK_FILENAME
    if len(printable) <= MAX_FILENAME_CHARS:
        return printable
    suffix = PurePosixPath(printable).suffix
    if len(suffix) > MAX_SUFFIX_CHARS:
        suffix = ""
    return printable[: MAX_FILENAME_CHARS - len(suffix)] + suffix
