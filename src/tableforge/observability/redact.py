"""Secrets never reach a log line: session tokens and socket tickets in query strings (uvicorn logs
`"WebSocket /ws?token=…" [accepted]`), bearer headers, the session cookie, and structlog fields
named like secrets. Applied to every stdlib record (a record factory, so third-party loggers and
handlers are covered whatever they format) and to every structlog event (a processor)."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

REDACTED = "[redacted]"
SECRET_KEYS = frozenset({"token", "ticket", "password", "current_password", "new_password", "authorization",
                         "cookie", "set-cookie", "invite_code", "access_token"})
# Query parameters, bearer values and the session cookie, wherever they appear in a text.
_PATTERNS = (
    (re.compile(r"((?:[?&;]|\b)(?:token|ticket|access_token|invite_code|password)=)[^&\s\"'#;]+", re.I),
     rf"\g<1>{REDACTED}"),
    (re.compile(r"(\bbearer\s+)[^\s\"',;]+", re.I), rf"\g<1>{REDACTED}"),
    (re.compile(r"(\btableforge_session=)[^;\s\"',]+", re.I), rf"\g<1>{REDACTED}"),
)
_HINTS = ("token", "ticket", "bearer", "tableforge_session", "password", "invite_code")


def redact_text(text: str) -> str:
    lowered = text.lower()
    if not any(hint in lowered for hint in _HINTS):  # the common case costs one lower() and a scan
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(key: str, value: Any) -> Any:
    if key.lower() in SECRET_KEYS and value is not None:
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_redact_value("", v) for v in value)
    return value


def structlog_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    return {key: _redact_value(key, value) for key, value in event.items()}


_installed = False


def install_record_factory() -> None:
    """Every stdlib log record is formatted once and redacted at creation (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the record as it is, logging reports it
            return record
        clean = redact_text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return record

    logging.setLogRecordFactory(factory)
