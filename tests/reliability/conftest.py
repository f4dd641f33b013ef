"""One real gateway per test module, in front of the session's TorchServe (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import TorchServeFixture
from tests.reliability.stack import HTTP_TIMEOUT_SECONDS, Gateway, running_gateway

ADMIN_TOKEN = "reliability-admin-token"


@pytest.fixture(scope="module")
def gateway(torchserve: TorchServeFixture, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """The gateway with its production defaults, plus an admin token so version routes are live."""
    log = tmp_path_factory.mktemp("gateway") / "gateway.log"
    with running_gateway(
        torchserve.inference_url, torchserve.management_url, torchserve.metrics_url, log, admin_token=ADMIN_TOKEN
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(gateway: Gateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=HTTP_TIMEOUT_SECONDS) as http:
        yield http
