"""The seed's prediction routes: `GET /predict` (built-in test signal) and `POST /predict-file/`."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Query, UploadFile

from gateway.builtin_signal import FILENAME as TEST_SIGNAL_FILENAME
from gateway.builtin_signal import builtin_signal_wav
from gateway.dependencies import SettingsDep, TorchServeDep
from gateway.errors import upload_too_large
from gateway.metrics import MetricsDep
from gateway.schemas import VERSION_PATTERN, Prediction, error_responses
from gateway.uploads import one_file_upload, safe_filename

VersionQuery = Annotated[
    str | None,
    Query(pattern=VERSION_PATTERN, description="Model version to score with; the default version when omitted."),
]

MODEL_SERVER_ERRORS = error_responses(
    {
        HTTPStatus.NOT_FOUND: "The model or the requested version is not registered.",
        HTTPStatus.UNPROCESSABLE_ENTITY: "Invalid request, or unusable audio.",
        HTTPStatus.BAD_GATEWAY: "The model server failed.",
        HTTPStatus.SERVICE_UNAVAILABLE: "The model server is down or has no ready worker.",
        HTTPStatus.GATEWAY_TIMEOUT: "The model server did not answer in time.",
    }
)
UPLOAD_ERRORS = error_responses(
    {
        HTTPStatus.BAD_REQUEST: "The body is not valid multipart form data.",
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE: "The file is over the upload limit, or its audio is too long.",
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE: "The file is not decodable audio, or the body is not multipart form data.",
    }
)

TEST_SIGNAL_ROUTE = "/predict"
UPLOAD_ROUTE = "/predict-file/"

router = APIRouter(tags=["prediction"], responses=MODEL_SERVER_ERRORS)


@router.get(TEST_SIGNAL_ROUTE, response_model=Prediction, summary="Score the built-in test signal")
async def predict_test_signal(
    torchserve: TorchServeDep, metrics: MetricsDep, version: VersionQuery = None
) -> Prediction:
    """Send a synthetic tone sweep through the served model: proves the whole path works end to end."""
    served = await torchserve.predict(builtin_signal_wav(), version)
    metrics.audio_seconds.labels(TEST_SIGNAL_ROUTE).inc(served.duration_seconds)
    return Prediction(filename=TEST_SIGNAL_FILENAME, **served.model_dump())


@router.post(
    UPLOAD_ROUTE,
    response_model=Prediction,
    summary="Score an uploaded audio file",
    responses=UPLOAD_ERRORS,
    dependencies=[Depends(one_file_upload)],
)
async def predict_file(
    file: Annotated[
        UploadFile, File(description="The audio file (WAV, FLAC, OGG, MP3, ...).", json_schema_extra={"minLength": 1})
    ],
    torchserve: TorchServeDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    version: VersionQuery = None,
) -> Prediction:
    """P(real) for the uploaded audio, with its label and per-segment scores.

    The request body is limited while it streams (see `gateway.uploads`); the exact file size is
    checked here, before anything is sent to TorchServe.
    """
    audio = await file.read()
    metrics.upload_bytes.observe(len(audio))
    if len(audio) > settings.max_upload_bytes:
        raise HTTPException(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, upload_too_large(settings))
    if not audio:
        raise HTTPException(HTTPStatus.UNPROCESSABLE_ENTITY, "The uploaded file is empty.")
    served = await torchserve.predict(audio, version)
    metrics.audio_seconds.labels(UPLOAD_ROUTE).inc(served.duration_seconds)
    return Prediction(filename=safe_filename(file.filename), **served.model_dump())
