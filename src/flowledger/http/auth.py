"""Bearer-token authentication: every /api/v1 route but /healthz needs a live token; the
Ledger a request acts through is scoped to the token's owner (admin tokens: every owner).
Every request asks the database (one precompiled lookup), so a revoked token stops
working at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..api_tokens import TokenInfo
from ..ledger import Ledger

bearer = HTTPBearer(auto_error=False, description="An API token from "
                                                  "`flowledger tokens create`.")


@dataclass(frozen=True)
class Caller:
    token: TokenInfo
    ledger: Ledger  # scoped: another owner's runs do not exist for it


class Unauthorized(HTTPException):
    def __init__(self, message: str) -> None:
        super().__init__(401, message, headers={"WWW-Authenticate": "Bearer"})


def caller(request: Request,
           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
           ) -> Caller:
    if credentials is None:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    ledger: Ledger = request.app.state.ledger
    token = ledger.authenticate(credentials.credentials)
    if token is None:
        raise Unauthorized("invalid or revoked token")
    return Caller(token, ledger.for_owner(None if token.admin else token.owner))


CallerDep = Annotated[Caller, Depends(caller)]
