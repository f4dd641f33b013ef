"""Settings come from DETECTOR_* environment variables."""

from __future__ import annotations

import os

import pytest

from gateway.settings import MIB, Settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("DETECTOR_")]:
        monkeypatch.delenv(name)

    settings = Settings()

    assert str(settings.torchserve_inference_url) == "http://127.0.0.1:8080/"
    assert str(settings.torchserve_management_url) == "http://127.0.0.1:8081/"
    assert str(settings.torchserve_metrics_url) == "http://127.0.0.1:8082/"
    assert settings.model_name == "detector"
    assert settings.admin_token is None
    assert settings.max_upload_bytes == 50 * MIB
    assert settings.request_timeout_seconds == 60
    assert settings.cors_origins == []


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETECTOR_TORCHSERVE_INFERENCE_URL", "http://127.0.0.1:9080")
    monkeypatch.setenv("DETECTOR_ADMIN_TOKEN", "s3cret")
    monkeypatch.setenv("DETECTOR_MAX_UPLOAD_BYTES", "1024")
    monkeypatch.setenv("DETECTOR_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("DETECTOR_RETRY_AFTER_SECONDS", "3")

    settings = Settings()

    assert str(settings.torchserve_inference_url) == "http://127.0.0.1:9080/"
    assert settings.admin_token is not None
    assert settings.admin_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.max_upload_bytes == 1024
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    assert settings.retry_after_seconds == 3


def test_an_empty_admin_token_disables_version_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DETECTOR_ADMIN_TOKEN", "")

    assert Settings().admin_token is None


@pytest.mark.parametrize(("name", "value"), [("DETECTOR_MAX_UPLOAD_BYTES", "0"), ("DETECTOR_MODEL_NAME", "../x")])
def test_invalid_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ValueError, match=name.removeprefix("DETECTOR_").lower()):
        Settings()
