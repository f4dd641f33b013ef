"""Gateway configuration, read from `DETECTOR_*` environment variables once per process.

Routes receive the settings through the `get_settings` dependency, which reads them from the
application that `gateway.app.create_app` built, so tests can build an app with their own
`Settings` (or override the dependency) without touching the environment.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated

from fastapi import Request
from pydantic import AnyHttpUrl, Field, PositiveFloat, PositiveInt, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "DETECTOR_"
MIB = 1024 * 1024


class Settings(BaseSettings):
    """Where TorchServe listens, which model to serve, and the limits the gateway enforces."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    torchserve_inference_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8080")
    torchserve_management_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8081")
    torchserve_metrics_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8082")
    model_name: str = Field("detector", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    admin_token: SecretStr | None = None
    max_upload_bytes: PositiveInt = 50 * MIB
    request_timeout_seconds: PositiveFloat = 60.0
    connect_timeout_seconds: PositiveFloat = 5.0
    cors_origins: Annotated[list[str], NoDecode] = []
    retry_after_seconds: PositiveInt = 5

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """Accept the operator-friendly `a,b` form as well as a list."""
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("admin_token", mode="before")
    @classmethod
    def _empty_token_is_unset(cls, value: object) -> object:
        """`DETECTOR_ADMIN_TOKEN=` must disable version changes, not enable an empty password."""
        return None if value == "" else value


@cache
def load_settings() -> Settings:
    """The process-wide settings, read from the environment the first time they are needed."""
    return Settings()


def get_settings(request: Request) -> Settings:
    """Dependency: the settings the running application was built with."""
    return request.app.state.settings
