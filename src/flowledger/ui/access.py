"""Who is looking at the UI: logins, session cookies and CSRF tokens.

Two ways in, one interface (``Access``):

- ``TokenAccess`` (``flowledger serve``): a person logs in at ``/ui/login`` with an API
  token (``flowledger tokens create``). The session cookie holds that token and every
  request checks it against the database, exactly as the API does: revoking the token
  logs the browser out, and the token's owner scopes every page and action.
- ``LocalAccess`` (``flowledger ui``): the process prints a URL carrying a one-time
  login token (as Jupyter does). Opening it exchanges the token for a random session id
  held in the process's memory; the token cannot be used twice, so another user of the
  machine who reads the URL later gets nothing.

State-changing requests carry a CSRF token derived from the session (an HMAC of the
cookie's value), which a page on another site can neither read nor compute; the cookie
itself is HttpOnly and SameSite=Strict.

Example::

    access = LocalAccess()
    print(f"http://127.0.0.1:8765/ui/login?token={access.login_token}")
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from typing import Protocol

from ..ledger import Ledger

COOKIE = "flowledger_session"


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: what they may see and how to name them."""

    label: str          # shown in the page header
    admin: bool         # sees every owner's runs (and an owner column)
    session: str        # the session cookie's value
    ledger: Ledger      # scoped to what this viewer may see

    @property
    def csrf(self) -> str:
        """The token state-changing requests must carry (header or form field)."""
        return hmac.new(self.session.encode(), b"flowledger-ui-csrf",
                        hashlib.sha256).hexdigest()

    def csrf_ok(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent, self.csrf)


class Access(Protocol):
    """How the UI logs people in and recognises their sessions."""

    #: What the login page asks for.
    asks_for: str

    def login(self, credential: str) -> str | None:
        """The session cookie's value for a valid ``credential``, else None."""

    def viewer(self, session: str) -> Viewer | None:
        """Who holds ``session``, or None when it is not (or no longer) valid."""

    def logout(self, session: str) -> None:
        """Forget ``session`` (what the process can forget of it)."""


class TokenAccess:
    """Logins with API tokens, checked on every request (``flowledger serve``)."""

    asks_for = "an API token (flowledger tokens create --owner NAME)"

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def login(self, credential: str) -> str | None:
        credential = credential.strip()
        return credential if self.ledger.authenticate(credential) is not None else None

    def viewer(self, session: str) -> Viewer | None:
        token = self.ledger.authenticate(session)
        if token is None:
            return None
        return Viewer(f"{token.owner}{' (admin)' if token.admin else ''}", token.admin,
                      session, self.ledger.for_owner(None if token.admin else token.owner))

    def logout(self, session: str) -> None:
        """Nothing is held server-side: the browser drops the cookie (revoke the token
        to end every session that used it)."""


class LocalAccess:
    """A one-time login token for one person on their own machine (``flowledger ui``).

    The viewer sees what ``ledger`` sees (every owner, unless it was opened with one).
    """

    asks_for = "the login token printed by `flowledger ui`"

    def __init__(self, ledger: Ledger, login_token: str | None = None) -> None:
        self.ledger = ledger
        self.login_token = login_token or secrets.token_urlsafe(24)
        self._used = False
        self._sessions: set[str] = set()
        self._lock = threading.Lock()

    def login(self, credential: str) -> str | None:
        with self._lock:
            if self._used or not hmac.compare_digest(credential.strip().encode(),
                                                     self.login_token.encode()):
                return None
            self._used = True
            session = secrets.token_urlsafe(32)
            self._sessions.add(session)
            return session

    def viewer(self, session: str) -> Viewer | None:
        if session not in self._sessions:
            return None
        owner = self.ledger.owner
        return Viewer(owner or "local", owner is None, session, self.ledger)

    def logout(self, session: str) -> None:
        with self._lock:
            self._sessions.discard(session)
