"""Gateway-only fixtures: a gateway in front of the in-memory TorchServe of `fakes`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from gateway.app import create_app
from gateway.settings import Settings
from tests.gateway.fakes import FakeTorchServe, gateway_client, make_settings


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake_torchserve() -> FakeTorchServe:
    return FakeTorchServe()


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings, fake_torchserve: FakeTorchServe) -> FastAPI:
    return create_app(settings, transport=httpx.MockTransport(fake_torchserve))


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_client(app) as client:
        yield client
