"""Who may change model versions: holders of the admin bearer token.

Without a configured token the gateway refuses every version change with 403, so a fresh
deployment is read-only until an operator opts in. A missing or wrong token gets 401.
"""

from __future__ import annotations

import secrets
from http import HTTPStatus
from typing import Annotated

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.dependencies import SettingsDep

bearer = HTTPBearer(auto_error=False, description="The gateway's DETECTOR_ADMIN_TOKEN.")


async def require_admin(
    settings: SettingsDep, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    if settings.admin_token is None:
        raise HTTPException(
            HTTPStatus.FORBIDDEN, "Version management is disabled: the gateway has no admin token configured."
        )
    expected = settings.admin_token.get_secret_value().encode()
    if credentials is None or not secrets.compare_digest(credentials.credentials.encode(), expected):
        raise HTTPException(
            HTTPStatus.UNAUTHORIZED,
            "A valid admin bearer token is required to change model versions.",
            headers={"WWW-Authenticate": "Bearer"},
        )
