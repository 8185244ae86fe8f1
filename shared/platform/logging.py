"""structlog JSON logs. Context (correlation_id, case_ref, event_type) is bound per message with
``bind``; a personnummer must never be logged (use the case reference)."""

from __future__ import annotations

import contextlib
import logging
import sys
import traceback
from collections.abc import Iterator

import structlog
from opentelemetry import trace
from structlog.contextvars import bind_contextvars, bound_contextvars, clear_contextvars
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["configure", "bind_contextvars", "bound_contextvars", "clear_contextvars", "kept_contextvars"]


@contextlib.contextmanager
def kept_contextvars() -> Iterator[None]:
    """What is bound to the log context inside (a case_ref emitted, say) is gone afterwards:
    a background loop's next lines do not carry the last case it touched."""
    saved = structlog.contextvars.get_contextvars()
    try:
        yield
    finally:
        clear_contextvars()
        bind_contextvars(**saved)


def configure(service: str, level: str = "INFO") -> None:
    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        numeric = logging.INFO
    logging.basicConfig(stream=sys.stdout, level=max(numeric, logging.WARNING), format="%(message)s")
    for handler in logging.getLogger().handlers:  # uvicorn's, aiormq's, asyncpg's own logging
        handler.addFilter(WithholdExceptionText())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            add_trace_id,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _add_service(service),
            redact_exception,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


def _add_service(service: str) -> Processor:
    def processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return processor


def add_trace_id(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The trace a line belongs to (shared/platform/tracing.py), when there is one: a log line
    leads to the referral's whole trace, and back."""
    span = trace.get_current_span().get_span_context()
    if span.is_valid:
        event_dict.setdefault("trace_id", format(span.trace_id, "032x"))
    return event_dict


def redact_exception(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Exceptions as type, SQLSTATE, constraint and frames, never their message: asyncpg and
    pydantic put row values and inputs (possibly a personnummer) into their messages."""
    exc_info = event_dict.pop("exc_info", None)
    if not exc_info:
        return event_dict
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    etype, exc, tb = exc_info
    if etype is not None:
        event_dict["exception"] = {
            "type": etype.__name__,
            "sqlstate": getattr(exc, "sqlstate", None),
            "constraint": getattr(exc, "constraint_name", None),
            "frames": [f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in traceback.extract_tb(tb)[-8:]],
        }
    return event_dict


class WithholdExceptionText(logging.Filter):
    """Standard-library log records (uvicorn, aiormq) lose their traceback text: exception
    messages may quote request values or rows. The exception's type stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = f"{record.getMessage()} [{record.exc_info[0].__name__}; details withheld]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True
