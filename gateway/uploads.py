"""Upload rules: how large a request body may grow while it streams, and how a filename is echoed."""

from __future__ import annotations

import unicodedata
from http import HTTPStatus
from pathlib import PurePosixPath

from fastapi import HTTPException, Request
from starlette.datastructures import Headers, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_response, upload_too_large
from gateway.settings import Settings

MULTIPART_OVERHEAD_BYTES = 64 * 1024
"""Room for multipart boundaries and part headers on top of the file itself.

The body limit stops an oversized upload while it streams, before it is buffered; the exact
file size is checked once the form is parsed.
"""

UPLOAD_FIELD = "file"
MULTIPART = "multipart/form-data"
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


async def one_file_upload(request: Request) -> None:
    """Dependency: refuse a body that cannot be one audio upload, with an answer that says why.

    Without it, a JSON, form-urlencoded or raw body only gets "field 'file' required", a text value
    gets a Python type name, and of two files the last is scored while the first is silently dropped.
    It runs after FastAPI has parsed (and cached) the form, before the `file` field is validated.
    """
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != MULTIPART:
        raise HTTPException(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            f"Send the audio as {MULTIPART}, with the file in the field '{UPLOAD_FIELD}'.",
        )
    values = (await request.form()).getlist(UPLOAD_FIELD)
    if len(values) > 1:
        raise HTTPException(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            f"Send one file per request; this one has {len(values)} in '{UPLOAD_FIELD}'.",
        )
    if values and not isinstance(values[0], UploadFile):
        raise HTTPException(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            f"The field '{UPLOAD_FIELD}' must be a file (a part with a filename), not text.",
        )


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
