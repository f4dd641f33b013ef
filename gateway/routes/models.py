"""`/models`: list and describe versions (open); register, promote, scale and remove them (admin)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from gateway.auth import require_admin
from gateway.dependencies import TorchServeDep
from gateway.schemas import (
    VERSION_PATTERN,
    ModelVersion,
    ModelVersions,
    RegisterVersion,
    ScaleWorkers,
    error_responses,
)

VersionPath = Annotated[str, Path(pattern=VERSION_PATTERN, description="A registered model version, e.g. 1.0.")]

READ_ERRORS = error_responses(
    {
        HTTPStatus.NOT_FOUND: "No such model version (or archive, when registering).",
        HTTPStatus.UNPROCESSABLE_ENTITY: "Invalid request.",
        HTTPStatus.BAD_GATEWAY: "The model server failed.",
        HTTPStatus.SERVICE_UNAVAILABLE: "The model server is unreachable.",
        HTTPStatus.GATEWAY_TIMEOUT: "The model server did not answer in time.",
    }
)
ADMIN_ERRORS = error_responses(
    {
        HTTPStatus.BAD_REQUEST: "TorchServe refused the change.",
        HTTPStatus.UNAUTHORIZED: "Missing or wrong admin bearer token.",
        HTTPStatus.FORBIDDEN: "No admin token is configured: version changes are off.",
        HTTPStatus.CONFLICT: "The change conflicts with what is registered (e.g. removing the default version).",
    }
)

router = APIRouter(prefix="/models", tags=["model versions"], responses=READ_ERRORS)
admin = APIRouter(
    prefix="/models",
    tags=["model versions"],
    responses={**READ_ERRORS, **ADMIN_ERRORS},
    dependencies=[Depends(require_admin)],
)


@router.get("", response_model=ModelVersions, summary="List the registered versions")
async def list_versions(torchserve: TorchServeDep) -> ModelVersions:
    return await torchserve.versions()


@router.get("/{version}", response_model=ModelVersion, summary="Describe one version")
async def describe_version(version: VersionPath, torchserve: TorchServeDep) -> ModelVersion:
    return await torchserve.describe(version)


@admin.post("", response_model=ModelVersion, status_code=HTTPStatus.CREATED, summary="Register a new version")
async def register_version(request: RegisterVersion, torchserve: TorchServeDep) -> ModelVersion:
    """Register an archive that is already in TorchServe's model store; its manifest names the version."""
    return await torchserve.register(request.archive, request.initial_workers)


@admin.put("/{version}/default", response_model=ModelVersions, summary="Make a version the default")
async def set_default_version(version: VersionPath, torchserve: TorchServeDep) -> ModelVersions:
    """Requests without a version go to the default version: this is how traffic moves and rolls back."""
    return await torchserve.set_default(version)


@admin.put("/{version}/workers", response_model=ModelVersion, summary="Scale a version's workers")
async def scale_workers(version: VersionPath, request: ScaleWorkers, torchserve: TorchServeDep) -> ModelVersion:
    max_workers = request.min_workers if request.max_workers is None else request.max_workers
    return await torchserve.scale(version, request.min_workers, max_workers)


@admin.delete("/{version}", response_model=ModelVersions, summary="Unregister a version")
async def unregister_version(version: VersionPath, torchserve: TorchServeDep) -> ModelVersions:
    return await torchserve.unregister(version)
