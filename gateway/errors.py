"""Every failure becomes `{"detail": "<clear message>"}` with the status a client can act on.

TorchServe's failures are translated here and nowhere else. Answers never carry tracebacks,
TorchServe URLs or file system paths; the details go to the server log instead.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from gateway.settings import MIB, Settings
from gateway.torchserve_client import (
    TorchServeError,
    TorchServeRejected,
    TorchServeTimeout,
    TorchServeUnreachable,
)

logger = logging.getLogger(__name__)

REFUSALS = {
    HTTPStatus.BAD_REQUEST: HTTPStatus.BAD_REQUEST,
    HTTPStatus.FORBIDDEN: HTTPStatus.CONFLICT,
    HTTPStatus.CONFLICT: HTTPStatus.CONFLICT,
}
"""Management refusals whose TorchServe message tells the operator what to fix, and the status the
gateway answers them with. TorchServe's 403 means "not in this state" (e.g. removing the default
version), so it becomes 409: the gateway's own 403 is about the admin token."""
HANDLER_VERDICTS = {
    HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "The audio is too long for the model.",
    HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "The file is not audio the model server can decode.",
    HTTPStatus.UNPROCESSABLE_ENTITY: "The audio cannot be scored.",
}
"""The handler's per-request refusals, answered with the same status and the handler's message."""
RETRY_LATER = frozenset({HTTPStatus.SERVICE_UNAVAILABLE, HTTPStatus.INSUFFICIENT_STORAGE})
"""TorchServe has no ready worker (503), or the worker died and is being restarted (507)."""

_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s)\]}'\"<>]+")
_PATH = re.compile(r"(?<![\w.])(?:/[\w.@+-]+){2,}/?")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(TorchServeError, _torchserve_error)
    app.add_exception_handler(Exception, _unexpected_error)


def error_response(status_code: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def retry_after(settings: Settings) -> dict[str, str]:
    return {"Retry-After": str(settings.retry_after_seconds)}


def upload_too_large(settings: Settings) -> str:
    return (
        f"The upload exceeds the limit of {settings.max_upload_bytes} bytes ({settings.max_upload_bytes / MIB:g} MiB)."
    )


def scrub(message: str) -> str:
    """Remove URLs and file system paths that a TorchServe message may carry."""
    return _PATH.sub("<path>", _URL.sub("<url>", message)).strip()


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = exc.headers
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return error_response(exc.status_code, str(exc.detail), headers)


def _allowed_methods(request: Request) -> str:
    """Every method some route offers for this path.

    Starlette's own Allow header names only the first matching route's methods, but FastAPI makes
    one route per method, so `/models` would claim to allow GET alone. `app.state.api_routes`
    holds the routes of every router the app includes (see `gateway.app`).
    """
    routes: list[APIRoute] = request.app.state.api_routes
    methods = {method for route in routes if route.matches(request.scope)[0] != Match.NONE for method in route.methods}
    return ", ".join(sorted(methods))


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(_describe_problem(error) for error in exc.errors())
    return error_response(HTTPStatus.UNPROCESSABLE_ENTITY, f"Invalid request: {problems}")


def _describe_problem(error: dict) -> str:
    where, *path = error["loc"]
    name = ".".join(str(part) for part in path)
    field = f"{where} field '{name}'" if name else where
    return f"{field}: {error['msg']}"


async def _torchserve_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TorchServeError)
    settings: Settings = request.app.state.settings
    match exc:
        case TorchServeUnreachable():
            return error_response(
                HTTPStatus.SERVICE_UNAVAILABLE, "The model server is unreachable; retry later.", retry_after(settings)
            )
        case TorchServeTimeout():
            return error_response(
                HTTPStatus.GATEWAY_TIMEOUT,
                f"The model server did not answer within {settings.request_timeout_seconds:g} seconds.",
            )
        case TorchServeRejected(status_code=HTTPStatus.NOT_FOUND):
            return error_response(HTTPStatus.NOT_FOUND, f"{exc.subject} was not found.")
        case TorchServeRejected(status_code=status) if status in RETRY_LATER:
            return error_response(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"{exc.subject} has no worker ready to answer; retry later.",
                retry_after(settings),
            )
        case TorchServeRejected(status_code=status) if status in HANDLER_VERDICTS:
            return error_response(status, scrub(exc.message) or HANDLER_VERDICTS[HTTPStatus(status)])
        case TorchServeRejected(status_code=status) if status in REFUSALS:
            return error_response(REFUSALS[HTTPStatus(status)], f"The model server refused: {scrub(exc.message)}")
        case _:
            logger.error("Model server failure: %r", exc)
            return error_response(HTTPStatus.BAD_GATEWAY, "The model server failed to answer the request.")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("Unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error.")
