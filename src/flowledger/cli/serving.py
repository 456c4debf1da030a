"""`flowledger serve`: the HTTP API, with workers in the same process if asked."""

from __future__ import annotations

import logging
import re
import threading
from typing import Annotated

import typer

from ..errors import ConfigurationError
from ..validation import duration as parse_duration
from ..workflow import registered_names
from .app import command
from .commands import state_of
from .queueing import import_apps

REQUEST_THREADS = 40  # anyio's default limit for sync routes
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|k|mb|mib|m)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
               "mib": 1024**2}


def _size(text: str) -> int:
    """``512kb``, ``2mb``, ``1048576``."""
    match = _SIZE.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ConfigurationError(f"--max-body must be a size like 512kb or 2mb, not {text!r}")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


@command("serve")
def serve_command(
    ctx: typer.Context,
    app_module: Annotated[list[str] | None, typer.Option(
        "--app", metavar="MODULE",
        help="A module whose workflows clients may start; repeatable.")] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(
        "--workers", help="Also execute queued runs here, this many at once (0: leave "
                          "them to `flowledger worker` processes).")] = 0,
    queue: Annotated[list[str] | None, typer.Option(
        "--queue", metavar="QUEUE",
        help="Queue the in-process workers take runs from; repeatable.")] = None,
    max_body: Annotated[str, typer.Option(
        help="Largest request body accepted (larger: 413).")] = "1mb",
    redact: Annotated[list[str] | None, typer.Option(
        "--redact", metavar="FIELD",
        help="A payload field whose values answers hide; repeatable (replaces "
                         "the default: password, secret, api_key, token, …).")] = None,
    no_redact: Annotated[bool, typer.Option(
        "--no-redact", help="Show every payload field as recorded.")] = False,
    events_poll: Annotated[str, typer.Option(
        help="How often event streams read the store (e.g. 0.2s).")] = "0.2s",
    access_log: Annotated[bool, typer.Option(
        help="Log every request (off by default: it costs throughput).")] = False,
) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /api/v1/openapi.json) until Ctrl-C."""
    # FastAPI, uvicorn and the store are loaded by the one command that serves.
    import uvicorn  # noqa: PLC0415 (start-up time)

    from ..http import DEFAULT_REDACT, ServerSettings, create_app  # noqa: PLC0415 (start-up time)
    from ..worker import Worker  # noqa: PLC0415 (start-up time)

    state = state_of(ctx, creates=True)
    import_apps(app_module or [])
    if not 0 <= workers <= 256:
        raise ConfigurationError("--workers must be between 0 and 256")
    if not 0 < port < 65536:
        raise ConfigurationError("--port must be between 1 and 65535")
    poll = parse_duration(events_poll).total_seconds()
    if not 0.01 <= poll <= 60:
        raise ConfigurationError("--events-poll must be between 10ms and 60s")
    settings = ServerSettings(
        workflows=registered_names(), max_body_bytes=_size(max_body),
        redact=() if no_redact else tuple(redact or DEFAULT_REDACT),
        events_poll_interval=poll)
    ledger = state.ledger
    if ledger.owner is not None:
        raise ConfigurationError("serve acts for every owner through tokens: drop --owner")
    # Routes run on the server's thread pool (40 threads): one pooled connection each.
    ledger.store.backend.reserve_query_connections(REQUEST_THREADS)
    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The in-process workers log a line per run, as `flowledger worker` does.
    logging.getLogger("flowledger.worker").setLevel(
        logging.WARNING if state.quiet else logging.INFO)
    worker = None
    thread = None
    if workers:
        worker = Worker(ledger=ledger, queues=queue or ["default"], concurrency=workers)
        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False},
                                  name="flowledger-serve-worker", daemon=True)
        thread.start()

    def stop_workers() -> None:
        """On SIGTERM or Ctrl-C, while the server shuts down: running steps finish and
        unfinished runs go back to their queue (uvicorn then exits with the signal)."""
        if worker is not None and thread is not None:
            worker.stop()
            thread.join()
    if not settings.workflows:
        state.hint("no --app given: clients can read runs but not start any")
    state.hint(f"serving {len(settings.workflows)} workflow(s) on http://{host}:{port}/api/v1"
               + (f" with {workers} in-process worker thread(s)" if workers else ""))
    try:
        uvicorn.run(create_app(ledger, settings, on_shutdown=stop_workers), host=host,
                    port=port,
                    log_level="warning" if state.quiet else "info", access_log=access_log,
                    timeout_graceful_shutdown=5)
    finally:
        stop_workers()  # when the server never started (the port was taken)
