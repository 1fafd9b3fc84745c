"""Structured logs (structlog): JSON lines carrying the instance id, or console lines for humans."""

from __future__ import annotations

import logging
import sys

import structlog

from tableforge.observability import redact


def configure_logging(instance_id: str, level: str = "INFO", json: bool = True) -> None:
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_instance(instance_id),
        structlog.processors.format_exc_info,
        redact.structlog_processor,  # last before rendering: tracebacks and every field included
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    redact.install_record_factory()
    logging.basicConfig(level=level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    # Access logs are replaced by our metrics; they would dominate the log volume under load.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    server_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ClientInputIsNotOurError) for f in server_log.filters):
        server_log.addFilter(_ClientInputIsNotOurError())


class _ClientInputIsNotOurError(logging.Filter):
    """uvicorn logs a client's text frame that is not UTF-8 as an exception, traceback included.
    It is bad input, answered by closing that socket with 1007, not a failure of ours: one warning
    line, so that anyone cannot fill the log with tracebacks and no alert fires for it."""

    MESSAGES = frozenset({"Invalid UTF-8 sequence received from client."})

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg in self.MESSAGES:
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def _add_instance(instance_id: str) -> structlog.types.Processor:
    def processor(_logger: object, _name: str, event: structlog.types.EventDict) -> structlog.types.EventDict:
        event["instance"] = instance_id
        return event

    return processor


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)  # type: ignore[no-any-return,unused-ignore]
