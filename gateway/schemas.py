"""The JSON shapes the gateway answers with and accepts, which also make the OpenAPI schema precise."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

VERSION_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""Model versions as TorchServe archives carry them ("1.0", "2.0-rc1"); also keeps paths out of URLs."""

ARCHIVE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\.mar$"
"""A bare archive file name in TorchServe's model store: no directories, no URLs."""

MAX_WORKERS = 64

Version = Annotated[str, Field(pattern=VERSION_PATTERN, examples=["1.0"])]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class ErrorResponse(BaseModel):
    """Every error the gateway answers with."""

    detail: str = Field(examples=["The model server is unreachable; retry later."])


def error_responses(descriptions: dict[HTTPStatus, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for error statuses, all answered with `ErrorResponse`."""
    return {status: {"model": ErrorResponse, "description": text} for status, text in descriptions.items()}


class Segment(BaseModel):
    """The score of one analysis window of a long clip."""

    start_seconds: float
    end_seconds: float
    prediction: Probability


class ServedPrediction(BaseModel):
    """What the TorchServe handler answers for one clip (the handler's contract)."""

    prediction: Probability = Field(description="Probability that the audio is REAL speech.")
    label: Literal["real", "fake"]
    threshold: Probability = Field(description="Decision threshold: `real` when prediction >= threshold.")
    duration_seconds: float = Field(ge=0.0)
    segments: list[Segment]
    model: str
    version: str


class Prediction(ServedPrediction):
    """The verdict on one uploaded file."""

    filename: str = Field(description="The uploaded file's base name, sanitised.", examples=["clip.wav"])


class Health(BaseModel):
    """Whether the gateway, TorchServe and the served model can answer predictions."""

    status: Literal["ok", "unavailable"]
    gateway: Literal["up"] = "up"
    torchserve: Literal["reachable", "unreachable"]
    model: str
    model_ready: bool
    default_version: str | None
    ready_workers: int = Field(ge=0)
    detail: str


class ModelVersion(BaseModel):
    """One registered version of the model, as TorchServe describes it."""

    version: str
    default: bool
    archive: str = Field(description="The archive (.mar) this version was registered from.")
    min_workers: int
    max_workers: int
    workers: int = Field(description="Workers TorchServe runs for this version.")
    ready_workers: int = Field(description="Workers that are ready to answer.")
    batch_size: int
    max_batch_delay_ms: int


class ModelVersions(BaseModel):
    """All registered versions of the model; requests without a version go to the default one."""

    model: str
    default_version: str | None
    versions: list[ModelVersion]


class RegisterVersion(BaseModel):
    """Register an archive that is already in TorchServe's model store as a new version."""

    model_config = ConfigDict(extra="forbid")

    archive: str = Field(pattern=ARCHIVE_PATTERN, examples=["detector-v2.mar"])
    initial_workers: int = Field(1, ge=0, le=MAX_WORKERS)


class ScaleWorkers(BaseModel):
    """How many workers TorchServe should keep for a version."""

    model_config = ConfigDict(extra="forbid")

    min_workers: int = Field(ge=0, le=MAX_WORKERS)
    max_workers: int | None = Field(None, ge=0, le=MAX_WORKERS, description="Defaults to min_workers.")

    @model_validator(mode="after")
    def _max_not_below_min(self) -> Self:
        if self.max_workers is not None and self.max_workers < self.min_workers:
            raise ValueError("max_workers must not be below min_workers")
        return self
