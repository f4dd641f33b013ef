"""`GET /`: can a prediction be answered right now?"""

from __future__ import annotations

from http import HTTPStatus
from typing import Literal

from fastapi import APIRouter, Response

from gateway.dependencies import SettingsDep, TorchServeDep
from gateway.errors import retry_after
from gateway.schemas import Health
from gateway.torchserve_client import TorchServeClient, TorchServeError

router = APIRouter(tags=["health"])


@router.get(
    "/",
    response_model=Health,
    summary="Health of the gateway, TorchServe and the served model",
    responses={HTTPStatus.SERVICE_UNAVAILABLE: {"model": Health, "description": "Not ready to predict."}},
)
async def health(response: Response, torchserve: TorchServeDep, settings: SettingsDep) -> Health:
    """200 when the default model version has a ready worker, 503 (with Retry-After) otherwise."""
    report = await _check(torchserve)
    if not report.model_ready:
        response.status_code = HTTPStatus.SERVICE_UNAVAILABLE
        response.headers.update(retry_after(settings))
    return report


async def _check(torchserve: TorchServeClient) -> Health:
    try:
        await torchserve.ping()
    except TorchServeError:
        return _unavailable(torchserve, "unreachable", "TorchServe is unreachable.")
    try:
        versions = await torchserve.versions()
    except TorchServeError:
        return _unavailable(torchserve, "reachable", "TorchServe could not describe the model.")
    default = next((version for version in versions.versions if version.default), None)
    if default is None:
        return _unavailable(torchserve, "reachable", f"Model '{torchserve.model}' is not registered.")
    ready = default.ready_workers > 0
    return Health(
        status="ok" if ready else "unavailable",
        torchserve="reachable",
        model=torchserve.model,
        model_ready=ready,
        default_version=default.version,
        ready_workers=default.ready_workers,
        detail=f"Version '{default.version}' has {default.ready_workers} ready worker(s).",
    )


def _unavailable(torchserve: TorchServeClient, state: Literal["reachable", "unreachable"], detail: str) -> Health:
    return Health(
        status="unavailable",
        torchserve=state,
        model=torchserve.model,
        model_ready=False,
        default_version=None,
        ready_workers=0,
        detail=detail,
    )
