"""How ``flowledger worker`` and ``flowledger serve`` write their own logs: plain text, or
(``--log-format json``) one JSON object per line carrying the run id, step position and
attempt of the code that logged, for log pipelines (Loki, CloudWatch, Datadog), with the
trace and span ids the run's traces use (``traceids``), so a log line leads to its span.

Example line::

    {"time": "2026-12-02T16:22:38.319Z", "level": "INFO", "logger": "app",
     "message": "charging", "run_id": "01a2...", "step": 2, "step_name": "charge",
     "attempt": 1, "trace_id": "01a2...", "span_id": "5f0c..."}
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from .runcontext import active_call, recording_execution
from .traceids import attempt_span_id

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, the run and step
    attempt it was logged in (when any), ``exception`` when one was logged, and any
    ``run_id`` passed as ``extra``.

    Example: ``handler.setFormatter(JsonLogFormatter())``
    """

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname, "logger": record.name,
            "message": record.getMessage()}
        call = active_call()
        running = call.execution if call is not None else recording_execution()
        if call is not None and running is not None:
            span = attempt_span_id(running.run_id, call.position, call.attempt)
            entry.update(run_id=running.run_id_text, step=call.position,
                         step_name=call.name, attempt=call.attempt,
                         trace_id=f"{running.trace.trace_id:032x}", span_id=f"{span:016x}")
        elif running is not None:
            entry.update(run_id=running.run_id_text,
                         trace_id=f"{running.trace.trace_id:032x}",
                         span_id=f"{running.trace.span_id:016x}")
        elif (about := getattr(record, "run_id", None)) is not None:  # extra={"run_id": …}
            entry["run_id"] = str(about)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(log_format: str, *, quiet: bool = False,
              progress_logger: str = "flowledger") -> None:
    """Set up a server or worker process's logging: warnings from everything, and the
    progress lines of ``progress_logger`` unless ``quiet``; as text or JSON lines on
    stderr.

    Example: ``configure("json")``
    """
    if log_format not in LOG_FORMATS:
        from .errors import ConfigurationError  # noqa: PLC0415 (bad input only)

        raise ConfigurationError(f"--log-format must be one of {', '.join(LOG_FORMATS)}, "
                                 f"not {log_format!r}")
    if log_format == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLogFormatter())
        # Explicitly asked for: replaces handlers set up before (an app's basicConfig).
        logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    else:
        logging.basicConfig(level=logging.WARNING, format=TEXT_FORMAT)
    logging.getLogger(progress_logger).setLevel(logging.WARNING if quiet else logging.INFO)


__all__ = ["LOG_FORMATS", "JsonLogFormatter", "LogFormat", "configure"]
