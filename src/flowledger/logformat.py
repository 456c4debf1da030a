"""How ``flowledger worker`` and ``flowledger serve`` write their own logs: plain text, or
(``--log-format json``) one JSON object per line carrying the run id, step position and
attempt of the code that logged, for log pipelines (Loki, CloudWatch, Datadog).

Example line::

    {"time": "2026-12-02T16:22:38.319Z", "level": "INFO", "logger": "app",
     "message": "charging", "run_id": "01a2...", "step": 2, "step_name": "charge",
     "attempt": 1}
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, Literal

from .runcontext import active_call, recording_execution

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
        if call is not None:
            entry.update(run_id=call.execution.run_id_text, step=call.position,
                         step_name=call.name, attempt=call.attempt)
        else:
            execution = recording_execution()
            run_id = getattr(record, "run_id", None)
            if execution is not None:
                entry["run_id"] = execution.run_id_text
            elif run_id is not None:
                entry["run_id"] = str(run_id)
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
