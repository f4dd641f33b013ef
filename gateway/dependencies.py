"""What routes receive by injection: the settings and the TorchServe client of the running app.

Both live on `app.state` (set by `gateway.app.create_app` and its lifespan); tests swap them by
building the app with other settings or transport, or through `app.dependency_overrides`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gateway.settings import Settings, get_settings
from gateway.torchserve_client import TorchServeClient


def get_torchserve(request: Request) -> TorchServeClient:
    return request.app.state.torchserve


SettingsDep = Annotated[Settings, Depends(get_settings)]
TorchServeDep = Annotated[TorchServeClient, Depends(get_torchserve)]
