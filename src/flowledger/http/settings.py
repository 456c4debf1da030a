"""What ``flowledger serve`` is configured with."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

# The step kinds of a spec (its stdio MCP servers count as shell: they start commands).
SPEC_KINDS = ("python", "shell", "http", "llm", "mcp", "workflow", "set")
DEFAULT_REDACT = ("password", "secret", "api_key", "apikey", "token", "access_token",
                  "authorization")


@dataclass(frozen=True)
class ServerSettings:
    """Options of the HTTP API.

    ``workflows`` are the names clients may start (those the ``--app`` modules
    registered); ``max_body_bytes`` bounds request bodies (413 above it); ``redact``
    names payload fields whose values answers replace with ``"[redacted]"``;
    ``events_poll_interval`` is how often an event stream reads the store;
    ``preview_chars`` is how much of a step's input and output a run answer shows (the
    step route shows all of it); ``spec_kinds`` are the step kinds a spec registered
    over HTTP may use.
    """

    workflows: frozenset[str] = frozenset()
    max_body_bytes: int = 1024 * 1024
    redact: tuple[str, ...] = DEFAULT_REDACT
    events_poll_interval: float = 0.2
    events_ping_seconds: float = 15.0
    preview_chars: int = 16 * 1024
    spec_kinds: tuple[str, ...] = SPEC_KINDS

    def tag(self) -> str:
        """A short digest of what shapes answers (for ETags): redaction and previews."""
        text = f"{self.preview_chars}|{','.join(sorted(self.redact))}"
        return hashlib.blake2b(text.encode(), digest_size=4).hexdigest()
