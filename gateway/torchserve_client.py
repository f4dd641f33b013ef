"""The one place that talks to TorchServe.

It wraps the application's pooled `httpx.AsyncClient`, exposes TorchServe's inference, management
and metrics APIs as methods, and turns every way a call can fail into one of a few exceptions that
`gateway.errors` maps to HTTP answers. It never decides HTTP statuses for the gateway itself.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from gateway.schemas import ModelVersion, ModelVersions, ServedPrediction
from gateway.settings import Settings

logger = logging.getLogger(__name__)

READY = "READY"
AUDIO_CONTENT_TYPE = "application/octet-stream"
MESSAGE_KEYS = ("error", "message", "detail", "status")
"""Where a message sits in an error body: the handler's `error`, TorchServe's own `message`."""
MAX_MESSAGE_CHARS = 500

T = TypeVar("T")


class ErrorKind(StrEnum):
    """How a TorchServe call failed: the label of the gateway's `gateway_torchserve_errors_total`."""

    CONNECTION = "connection"
    TIMEOUT = "timeout"
    CLIENT_ERROR = "4xx"
    SERVER_ERROR = "5xx"
    BAD_ANSWER = "bad_answer"


class TorchServeError(Exception):
    """A TorchServe call did not produce the answer asked for."""


class TorchServeUnreachable(TorchServeError):
    """No connection to TorchServe, or it dropped the connection before answering."""


class TorchServeTimeout(TorchServeError):
    """TorchServe accepted the request but did not answer in time."""


class TorchServeBadAnswer(TorchServeError):
    """TorchServe answered successfully with something that is not what its contract promises."""


class TorchServeRejected(TorchServeError):
    """TorchServe answered with an error status.

    `subject` names what was asked for (e.g. "Model 'detector' version '2.0'") so a 404 can say what
    is missing without exposing TorchServe's URLs.
    """

    def __init__(self, status_code: int, message: str, subject: str) -> None:
        super().__init__(f"TorchServe answered {status_code} for {subject}: {message}")
        self.status_code = status_code
        self.message = message
        self.subject = subject


class _Worker(BaseModel):
    status: str


class _Description(BaseModel):
    """The fields of TorchServe's describe-model answer that the gateway reports."""

    model_config = ConfigDict(extra="ignore")

    version: str = Field(alias="modelVersion")
    archive: str = Field(alias="modelUrl")
    min_workers: int = Field(alias="minWorkers")
    max_workers: int = Field(alias="maxWorkers")
    batch_size: int = Field(alias="batchSize")
    max_batch_delay_ms: int = Field(alias="maxBatchDelay")
    workers: list[_Worker] = []

    def to_version(self, default_version: str | None) -> ModelVersion:
        return ModelVersion(
            version=self.version,
            default=self.version == default_version,
            archive=self.archive,
            min_workers=self.min_workers,
            max_workers=self.max_workers,
            workers=len(self.workers),
            ready_workers=sum(worker.status == READY for worker in self.workers),
            batch_size=self.batch_size,
            max_batch_delay_ms=self.max_batch_delay_ms,
        )


_DESCRIPTIONS = TypeAdapter(list[_Description])
_PREDICTION = TypeAdapter(ServedPrediction)


class TorchServeClient:
    """TorchServe's APIs for one model name, over one pooled HTTP client.

    Every failure it raises is counted in `errors` (labelled by `ErrorKind`), including those a
    caller then handles, such as a 404 for an unregistered model or a failed metrics scrape.
    """

    def __init__(self, http: httpx.AsyncClient, settings: Settings, errors: Counter) -> None:
        self._http = http
        self._errors = errors
        self.model = settings.model_name
        self._inference = str(settings.torchserve_inference_url).rstrip("/")
        self._management = str(settings.torchserve_management_url).rstrip("/")
        self._metrics = str(settings.torchserve_metrics_url).rstrip("/")

    # Inference API

    async def predict(self, audio: bytes, version: str | None = None) -> ServedPrediction:
        """Score one clip with the given version, or with the default version when None."""
        response = await self._request(
            "POST",
            f"{self._inference}/predictions/{self._model_path(version)}",
            subject=self._subject(version),
            content=audio,
            headers={"Content-Type": AUDIO_CONTENT_TYPE},
        )
        return self._parse(response, _PREDICTION)

    async def ping(self) -> None:
        """Raise TorchServeUnreachable/Timeout unless TorchServe's inference API answers at all."""
        with suppress(TorchServeRejected):  # it answered: reachable, though a model may be unhealthy
            await self._request("GET", f"{self._inference}/ping", subject="TorchServe health")

    # Management API

    async def versions(self) -> ModelVersions:
        """All registered versions, with the default marked; none when the model is not registered."""
        try:
            described = await self._describe(f"{self.model}/all", self._subject(None))
            default_version = await self.default_version()
        except TorchServeRejected as exc:
            if exc.status_code != httpx.codes.NOT_FOUND:
                raise
            return ModelVersions(model=self.model, default_version=None, versions=[])
        return ModelVersions(
            model=self.model,
            default_version=default_version,
            versions=[description.to_version(default_version) for description in described],
        )

    async def default_version(self) -> str | None:
        """The version that requests without a version go to."""
        described = await self._describe(self.model, self._subject(None))
        return described[0].version if described else None

    async def describe(self, version: str) -> ModelVersion:
        """One version, with its workers."""
        described = await self._describe(self._model_path(version), self._subject(version))
        if not described:
            raise self._counted(TorchServeBadAnswer(f"TorchServe described no model for version {version!r}"))
        return described[0].to_version(await self.default_version())

    async def register(self, archive: str, initial_workers: int) -> ModelVersion:
        """Register an archive from the model store under this model name; answer the new version.

        TorchServe's answer is a free-text status, so the new version is found by comparing the
        versions registered before and after.
        """
        before = {version.version for version in (await self.versions()).versions}
        await self._request(
            "POST",
            f"{self._management}/models",
            subject=f"Archive '{archive}' in the model store",
            params={
                "url": archive,
                "model_name": self.model,
                "initial_workers": initial_workers,
                "synchronous": "true",
            },
        )
        added = [version for version in (await self.versions()).versions if version.version not in before]
        if len(added) != 1:
            raise self._counted(TorchServeBadAnswer(f"registering {archive!r} added {len(added)} versions"))
        return added[0]

    async def set_default(self, version: str) -> ModelVersions:
        await self._request(
            "PUT",
            f"{self._management}/models/{self._model_path(version)}/set-default",
            subject=self._subject(version),
        )
        return await self.versions()

    async def scale(self, version: str, min_workers: int, max_workers: int) -> ModelVersion:
        await self._request(
            "PUT",
            f"{self._management}/models/{self._model_path(version)}",
            subject=self._subject(version),
            params={"min_worker": min_workers, "max_worker": max_workers, "synchronous": "true"},
        )
        return await self.describe(version)

    async def unregister(self, version: str) -> ModelVersions:
        await self._request(
            "DELETE", f"{self._management}/models/{self._model_path(version)}", subject=self._subject(version)
        )
        return await self.versions()

    # Metrics API

    async def metrics(self) -> str:
        """TorchServe's metrics in Prometheus text format."""
        response = await self._request("GET", f"{self._metrics}/metrics", subject="TorchServe metrics")
        return response.text

    # Plumbing

    def _model_path(self, version: str | None) -> str:
        return self.model if version is None else f"{self.model}/{quote(version, safe='')}"

    def _subject(self, version: str | None) -> str:
        return f"Model '{self.model}'" + ("" if version is None else f" version '{version}'")

    async def _describe(self, model_path: str, subject: str) -> list[_Description]:
        response = await self._request("GET", f"{self._management}/models/{model_path}", subject=subject)
        return self._parse(response, _DESCRIPTIONS)

    async def _request(self, method: str, url: str, *, subject: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, url, **kwargs)
        except (httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            logger.warning("TorchServe %s %s: no connection (%r)", method, url, exc)
            raise self._counted(TorchServeUnreachable(subject)) from exc
        except httpx.TimeoutException as exc:
            logger.warning("TorchServe %s %s: timed out (%r)", method, url, exc)
            raise self._counted(TorchServeTimeout(subject)) from exc
        except httpx.TransportError as exc:
            logger.warning("TorchServe %s %s: connection failed (%r)", method, url, exc)
            raise self._counted(TorchServeUnreachable(subject)) from exc
        if response.is_success:
            return response
        message = _error_message(response)
        logger.info("TorchServe %s %s answered %d: %s", method, url, response.status_code, message)
        raise self._counted(TorchServeRejected(response.status_code, message, subject))

    def _parse(self, response: httpx.Response, contract: TypeAdapter[T]) -> T:
        """Validate a successful answer against its contract."""
        try:
            return contract.validate_json(response.content)
        except ValidationError as exc:
            logger.error("TorchServe answered %s with an unexpected body: %s", response.url, exc)
            raise self._counted(TorchServeBadAnswer(str(response.url))) from exc

    def _counted(self, error: TorchServeError) -> TorchServeError:
        """Count the failure by kind, and hand it back to be raised."""
        self._errors.labels(error_kind(error).value).inc()
        return error


def error_kind(error: TorchServeError) -> ErrorKind:
    """The kind a failure is counted under."""
    if isinstance(error, TorchServeUnreachable):
        return ErrorKind.CONNECTION
    if isinstance(error, TorchServeTimeout):
        return ErrorKind.TIMEOUT
    if isinstance(error, TorchServeRejected):
        return (
            ErrorKind.SERVER_ERROR if error.status_code >= httpx.codes.INTERNAL_SERVER_ERROR else ErrorKind.CLIENT_ERROR
        )
    return ErrorKind.BAD_ANSWER


def _error_message(response: httpx.Response) -> str:
    """The human message in a TorchServe or handler error body, whatever its shape; empty if none."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:MAX_MESSAGE_CHARS]
    if isinstance(body, dict):
        body = next((body[key] for key in MESSAGE_KEYS if isinstance(body.get(key), str)), "")
    return body[:MAX_MESSAGE_CHARS] if isinstance(body, str) else ""
