"""Serving the HTTP API: one process, or several sharing one port (``--processes``).

Every server process opens its own Ledger, imports the ``--app`` modules and may run
worker threads; the processes share nothing but the database. With several, a
supervisor (uvicorn's) binds the port, starts them, replaces one that dies, and on
SIGTERM or Ctrl-C stops them all (each finishes its requests and hands its runs back).

Example::

    from flowledger.http.server import ServeOptions, serve
    serve(ServeOptions(database="postgresql://db/app", apps=("myapp",), processes=4))
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from uvicorn.supervisors import Multiprocess

from ..ledger import Ledger
from ..logformat import configure as configure_logging
from ..ui import Access, LocalAccess, TokenAccess, create_ui
from ..webhook_dispatch import WebhookDispatcher
from ..worker import Worker
from ..workflow import import_apps, registered_names
from .app import create_app
from .protocol import ServerConfig
from .settings import ServerSettings

#: How a supervisor hands its options to the server processes it starts.
OPTIONS_VARIABLE = "FLOWLEDGER_SERVE_OPTIONS"
#: Routes run on the server's thread pool (anyio's default: 40 threads), one pooled
#: database connection each.
REQUEST_THREADS = 40


@dataclass(frozen=True)
class ServeOptions:
    """What ``flowledger serve`` runs: where, how many processes, with which workflows.

    ``workers`` worker threads per process also execute queued runs (from ``queues``);
    ``request_timeout`` bounds the seconds a client has to send a whole request, and
    ``max_connections`` the connections one process holds open (over it: 503).
    ``settings.workflows`` is filled in by each process from what ``apps`` register.
    """

    database: str | None = None
    apps: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    processes: int = 1
    workers: int = 0
    queues: tuple[str, ...] = ("default",)
    settings: ServerSettings = field(default_factory=ServerSettings)
    request_timeout: float = 10.0
    max_connections: int = 1000
    access_log: bool = False
    quiet: bool = False
    #: The web UI under /ui: "tokens" (log in with API tokens), "local" (the one-time
    #: ``login_token`` of ``flowledger ui``; one process only) or "off".
    ui: str = "tokens"
    login_token: str | None = None
    #: "text" or "json" (one object per line, with run id, step and attempt).
    log_format: str = "text"

    def to_json(self) -> str:
        # The workflows are not passed on: each process registers its own from ``apps``.
        return json.dumps(dataclasses.asdict(
            self, dict_factory=lambda items: {k: v for k, v in items if k != "workflows"}))

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        values: dict[str, Any] = json.loads(text)
        settings = values.pop("settings")
        settings["redact"] = tuple(settings["redact"])
        settings["spec_kinds"] = tuple(settings["spec_kinds"])
        return cls(**{**values, "apps": tuple(values["apps"]),
                      "queues": tuple(values["queues"]),
                      "settings": ServerSettings(**settings)})


def application(options: ServeOptions, ledger: Ledger | None = None) -> FastAPI:
    """The app one server process runs, over ``ledger`` (else one opened from
    ``options.database``): the ``apps`` imported, worker threads and the webhook
    dispatcher started, and stopped when the server shuts down."""
    # Worker threads log a line per run, as `flowledger worker` does.
    configure_logging(options.log_format, quiet=options.quiet,
                      progress_logger="flowledger.worker")
    import_apps(options.apps)
    ledger = ledger or Ledger(options.database)
    ledger.store.backend.reserve_query_connections(REQUEST_THREADS)
    settings = dataclasses.replace(options.settings, workflows=registered_names())
    worker = None
    thread = None
    # Webhook deliveries are sent by every server process (and every worker): claims
    # keep them from sending one delivery twice at once. Not by `flowledger ui`.
    dispatcher = WebhookDispatcher(ledger).start() if options.ui != "local" else None
    if options.workers:
        worker = Worker(ledger=ledger, queues=list(options.queues),
                        concurrency=options.workers, webhooks=False)
        thread = threading.Thread(target=worker.run, kwargs={"install_signal_handlers": False},
                                  name="flowledger-serve-worker", daemon=True)
        thread.start()

    def stop_workers() -> None:
        """On SIGTERM or Ctrl-C, while the server shuts down: running steps finish and
        unfinished runs go back to their queue (uvicorn then exits with the signal)."""
        if worker is not None and thread is not None:
            worker.stop()
            thread.join()
        if dispatcher is not None:
            dispatcher.stop()

    app = create_app(ledger, settings, on_shutdown=stop_workers)
    app.state.stop_workers = stop_workers
    if options.ui != "off":
        access: Access = (LocalAccess(ledger, options.login_token) if options.ui == "local"
                          else TokenAccess(ledger))
        app.mount("/ui", create_ui(ledger, access, settings))

        @app.get("/", include_in_schema=False)
        def home() -> RedirectResponse:
            return RedirectResponse("/ui/", 307)
    return app


def application_from_environment() -> FastAPI:
    """The app of a server process a supervisor started (its options are in
    ``FLOWLEDGER_SERVE_OPTIONS``)."""
    return application(ServeOptions.from_json(os.environ[OPTIONS_VARIABLE]))


def serve(options: ServeOptions, ledger: Ledger | None = None) -> None:
    """Serve until SIGTERM or Ctrl-C: in this process, or in ``options.processes``
    server processes (each opens its own Ledger; ``ledger`` is then not used)."""
    common: dict[str, Any] = {
        "host": options.host, "port": options.port, "loop": "auto",
        "log_level": "warning" if options.quiet else "info",
        "access_log": options.access_log, "timeout_graceful_shutdown": 5,
        "limit_concurrency": options.max_connections,
        "request_timeout": options.request_timeout,
    }
    if options.log_format == "json":  # uvicorn's records go through the JSON handler too
        common["log_config"] = None
    if options.processes == 1:
        app = application(options, ledger)
        try:
            uvicorn.Server(ServerConfig(app, **common)).run()
        finally:
            app.state.stop_workers()  # when the server never started (the port was taken)
        return
    os.environ[OPTIONS_VARIABLE] = options.to_json()
    config = ServerConfig(f"{__name__}:application_from_environment", factory=True,
                          workers=options.processes, **common)
    Multiprocess(config, sockets=[config.bind_socket()]).run()
