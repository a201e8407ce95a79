"""One logging set-up for every service: short text lines or JSON, with the request and job ids.

The ids live in context variables, so every line written while a request or a
job is being handled carries them without being passed around.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from contextvars import ContextVar
from typing import IO

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)

# Attributes every LogRecord has; anything else was passed through `extra=` and is logged too.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "service"}
)


class _ContextFilter(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self._service
        record.request_id = request_id_var.get()
        record.job_id = job_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": getattr(record, "service", ""),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``12:00:01.123 INFO  storage.index [req=ab12 job=cd34] committed story 0193...``"""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created)) + f".{int(record.msecs):03d}"
        ids = []
        request_id = getattr(record, "request_id", None)
        job_id = getattr(record, "job_id", None)
        if request_id:
            ids.append(f"req={request_id}")
        if job_id:
            ids.append(f"job={job_id}")
        context = f" [{' '.join(ids)}]" if ids else ""
        line = f"{stamp} {record.levelname:<5} {record.name}{context} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(service: str, *, fmt: str = "text", level: str = "INFO", stream: IO[str] | None = None) -> None:
    """Route every logger to one handler on stderr (or ``stream``) in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_ContextFilter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries that log every request at INFO would drown ours and could leak payloads.
    for noisy in ("httpx", "httpcore", "httpx2", "httpcore2", "openai", "grpc", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def preview(text: str, limit: int = 40) -> str:
    """A short, single-line excerpt of user text, safe for INFO-level logs."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
