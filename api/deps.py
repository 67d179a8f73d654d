"""Dependency aliases that keep route signatures short."""

from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.errors import ApiError
from shared.config import Settings, get_settings
from shared.db import get_session
from shared.keys import Caller, authenticate

SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def current_caller(request: Request, session: SessionDep, settings: SettingsDep) -> Caller:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "Send an API key as 'Authorization: Bearer <key>'.")
    caller = authenticate(session, settings, token.strip())
    if caller is None:
        raise ApiError(401, "unauthorized", "The API key is unknown or revoked.")
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
