"""`flowledger serve`: the HTTP API, with workers in the same process if asked."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Annotated

import typer

from ..errors import ConfigurationError
from ..logformat import LOG_FORMATS
from ..logformat import configure as configure_logging
from ..validation import duration as parse_duration
from ..workflow import import_apps, registered_names
from .app import command
from .commands import state_of

_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|k|mb|mib|m)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2,
               "mib": 1024**2}


def _size(text: str, option: str = "--max-body") -> int:
    """``512kb``, ``2mb``, ``1048576``."""
    match = _SIZE.match(text)
    if not match or int(match.group(1)) <= 0:
        raise ConfigurationError(f"{option} must be a size like 512kb or 2mb, not {text!r}")
    return int(match.group(1)) * _SIZE_UNITS[(match.group(2) or "b").lower()]


def _spec_kinds(chosen: list[str] | None) -> tuple[str, ...]:
    from ..http.settings import SPEC_KINDS  # noqa: PLC0415 (start-up time)

    if not chosen:
        return SPEC_KINDS
    unknown = sorted(set(chosen) - set(SPEC_KINDS))
    if unknown:
        raise ConfigurationError(f"--spec-kind {unknown[0]!r} is not a step kind "
                                 f"({', '.join(SPEC_KINDS)})")
    return tuple(kind for kind in SPEC_KINDS if kind in chosen)


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
    processes: Annotated[int, typer.Option(
        help="Server processes sharing the port (each opens its own connections and "
             "runs its own --workers).")] = 1,
    request_timeout: Annotated[str, typer.Option(
        help="Time a client has to send a whole request (headers and body); slower "
             "clients get 408 and are disconnected.")] = "10s",
    preview_size: Annotated[str, typer.Option(
        help="How much of each step's input and output a run answer shows (the step "
             "route shows all): characters, e.g. 16kb.")] = "16kb",
    max_connections: Annotated[int, typer.Option(
        help="Connections one process holds open, event streams included (more: 503).")]
        = 1000,
    ui: Annotated[bool, typer.Option(
        "--ui/--no-ui", help="Serve the web UI under /ui/ (log in with an API token).")]
        = True,
    spec_kind: Annotated[list[str] | None, typer.Option(
        "--spec-kind", metavar="KIND",
        help="A step kind specs registered over HTTP may use; repeatable (default: "
             "all). Token holders who register specs with shell or python steps (or "
             "stdio MCP servers) run commands on your workers.")] = None,
    log_format: Annotated[str, typer.Option(
        help="The server's log lines: text, or json (one object per line, with the run "
             "id, step position and attempt of the code that logged).")] = "text",
) -> None:
    """Serve the HTTP API (/api/v1, OpenAPI at /api/v1/openapi.json) and the web UI
    (/ui/, logins with API tokens) until Ctrl-C."""
    # FastAPI, uvicorn and the store are loaded by the one command that serves.
    from ..http import DEFAULT_REDACT, ServerSettings  # noqa: PLC0415 (start-up time)
    from ..http.server import ServeOptions, serve  # noqa: PLC0415 (start-up time)

    state = state_of(ctx, creates=True)
    if not 0 <= workers <= 256:
        raise ConfigurationError("--workers must be between 0 and 256")
    if not 1 <= processes <= 64:
        raise ConfigurationError("--processes must be between 1 and 64")
    if not 0 < port < 65536:
        raise ConfigurationError("--port must be between 1 and 65535")
    if not 1 <= max_connections <= 100_000:
        raise ConfigurationError("--max-connections must be between 1 and 100000")
    poll = parse_duration(events_poll).total_seconds()
    if not 0.01 <= poll <= 60:
        raise ConfigurationError("--events-poll must be between 10ms and 60s")
    timeout = parse_duration(request_timeout).total_seconds()
    if not 0.1 <= timeout <= 3600:
        raise ConfigurationError("--request-timeout must be between 100ms and 1h")
    if log_format not in LOG_FORMATS:
        raise ConfigurationError(f"--log-format must be one of {', '.join(LOG_FORMATS)}")
    import_apps(app_module or [])  # here too: a wrong --app is reported before serving
    options = ServeOptions(
        database=state.db, apps=tuple(app_module or ()), host=host, port=port,
        processes=processes, workers=workers, queues=tuple(queue or ["default"]),
        settings=ServerSettings(max_body_bytes=_size(max_body),
                                redact=() if no_redact else tuple(redact or DEFAULT_REDACT),
                                events_poll_interval=poll,
                                preview_chars=_size(preview_size, "--preview-size"),
                                spec_kinds=_spec_kinds(spec_kind)),
        request_timeout=timeout, max_connections=max_connections,
        access_log=access_log, quiet=state.quiet, ui="tokens" if ui else "off",
        log_format=log_format)
    ledger = state.ledger  # opened (and created or migrated) once, here
    if ledger.owner is not None:
        raise ConfigurationError("serve acts for every owner through tokens: drop --owner")
    served = registered_names()
    hint: Callable[[str], None] = state.hint
    if log_format == "json":  # every line on stderr stays one JSON object
        configure_logging("json", quiet=state.quiet, progress_logger="flowledger.serve")
        hint = logging.getLogger("flowledger.serve").info
    if not served:
        hint("no --app given: clients can start the specs their owner registered, "
                   "and read runs")
    hint(f"serving {len(served)} workflow(s) on http://{host}:{port}/api/v1"
               + (f" with {processes} processes" if processes > 1 else "")
               + (f" and {workers} worker thread(s) each" if workers and processes > 1
                  else f" with {workers} in-process worker thread(s)" if workers else ""))
    if ui:
        hint(f"web UI on http://{host}:{port}/ui/ (log in with a token from "
                   "`flowledger tokens create`)")
    if processes > 1:
        ledger.close()  # each server process opens its own
    serve(options, ledger)


def _refuse_taken_port(host: str, port: int) -> None:
    import socket  # noqa: PLC0415 (start-up time: only serving needs it)

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            raise ConfigurationError(
                f"{host}:{port} is already in use (another flowledger ui or server?); "
                "choose a free port with --port") from None


def _open_when_listening(url: str, host: str, port: int) -> None:
    """Open ``url`` in the browser once the server accepts connections."""
    import socket  # noqa: PLC0415 (start-up time: only --open needs it)
    import webbrowser  # noqa: PLC0415 (start-up time: only --open needs it)

    for _ in range(600):
        try:
            with socket.create_connection((host, port), timeout=0.1):
                break
        except OSError:
            threading.Event().wait(0.05)  # the server is still starting
    webbrowser.open(url)


@command("ui")
def ui_command(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on (on 127.0.0.1 only).")] = 8765,
    open_browser: Annotated[bool, typer.Option(
        "--open", help="Open the UI in the default browser.")] = False,
    app_module: Annotated[list[str] | None, typer.Option(
        "--app", metavar="MODULE",
        help="A module whose workflows resumed, forked and re-run runs execute with; "
             "repeatable.")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", help="Execute queued runs (resumes, forks, re-runs) here, this many "
                          "at once (0: leave them to `flowledger worker`).")] = 0,
) -> None:
    """Open the web UI for yourself: binds 127.0.0.1 only and prints a one-time login
    URL, so nobody else on this machine can read the ledger. Ctrl-C stops it."""
    import secrets  # noqa: PLC0415 (start-up time)

    from ..http import ServerSettings  # noqa: PLC0415 (start-up time)
    from ..http.server import ServeOptions, serve  # noqa: PLC0415 (start-up time)

    state = state_of(ctx, creates=True)
    if not 0 < port < 65536:
        raise ConfigurationError("--port must be between 1 and 65535")
    if not 0 <= workers <= 256:
        raise ConfigurationError("--workers must be between 0 and 256")
    import_apps(app_module or [])
    token = secrets.token_urlsafe(24)
    host = "127.0.0.1"
    _refuse_taken_port(host, port)  # before printing a login link that would not work
    options = ServeOptions(database=state.db, apps=tuple(app_module or ()), host=host,
                           port=port, workers=workers, settings=ServerSettings(),
                           quiet=True, ui="local", login_token=token)
    url = f"http://{host}:{port}/ui/login?token={token}"
    typer.echo(f"flowledger UI for {state.ledger.store.backend.describe()}\n"
               f"  open {url}\n"
               "  (the link works once; restart `flowledger ui` for a new one). "
               "Ctrl-C stops it.", err=False)
    if open_browser:
        threading.Thread(target=_open_when_listening, args=(url, host, port),
                         daemon=True).start()
    serve(options, state.ledger)
