"""Structured JSON logs, one object per line, with the complaint id as correlation id.

Use it from a service's config.yaml LOGGING section (`()`: shared.logging.JsonFormatter).
The correlation id of a record is, in order: `extra={"correlation_id": ...}`; the value set with
`correlation(...)` (commands, scripts); or the id of the nameko worker that logs it: nameko keeps
no context variable for the current worker, but every worker runs inside
`ServiceContainer._run_worker(worker_ctx, ...)` on its own greenthread, and the event consumer
puts the event's correlation id (the complaint id) in `worker_ctx.data`. No nameko import here.
"""

import contextlib
import contextvars
import json
import logging
import sys
from datetime import UTC, datetime

_CORRELATION = contextvars.ContextVar("dumas_correlation_id", default=None)
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@contextlib.contextmanager
def correlation(correlation_id: str | None):
    token = _CORRELATION.set(correlation_id)
    try:
        yield
    finally:
        _CORRELATION.reset(token)


def _worker_context():
    frame = sys._getframe(2)
    depth = 0
    while frame is not None and depth < 60:
        if frame.f_code.co_name == "_run_worker" and "worker_ctx" in frame.f_locals:
            return frame.f_locals["worker_ctx"]
        frame = frame.f_back
        depth += 1
    return None


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "", **kwargs):
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        correlation_id = getattr(record, "correlation_id", None) or _CORRELATION.get()
        if correlation_id is None:
            ctx = _worker_context()
            if ctx is not None:
                correlation_id = (ctx.data or {}).get("correlation_id")
                entry["entrypoint"] = getattr(ctx.entrypoint, "method_name", None)
        if correlation_id is not None:
            entry["correlation_id"] = str(correlation_id)
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) \
                    else str(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
