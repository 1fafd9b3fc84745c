"""Secrets are redacted from stdlib log records (whoever logs them) and structlog events."""

from __future__ import annotations

import logging

import pytest

from tableforge.observability import redact

TOKEN = "Zx9_secret-TOKEN-value"


@pytest.mark.parametrize(("text", "expected"), [
    (f'127.0.0.1:5 - "WebSocket /ws?token={TOKEN}" [accepted]', '"WebSocket /ws?token=[redacted]" [accepted]'),
    (f"GET /ws?room=1&ticket={TOKEN}&x=2 HTTP/1.1", "/ws?room=1&ticket=[redacted]&x=2"),
    (f"authorization: Bearer {TOKEN}", "Bearer [redacted]"),
    (f"cookie: a=b; tableforge_session={TOKEN}; c=d", "tableforge_session=[redacted]; c=d"),
    (f'{{"password": "x", "invite_code={TOKEN}"}}', "invite_code=[redacted]"),
])
def test_redact_text(text: str, expected: str) -> None:
    clean = redact.redact_text(text)
    assert TOKEN not in clean and expected in clean


def test_plain_text_is_untouched() -> None:
    line = "room 42 joined by ann (tokens moved: 3)"
    assert redact.redact_text(line) is line


def test_stdlib_records_are_redacted(caplog: pytest.LogCaptureFixture) -> None:
    redact.install_record_factory()
    with caplog.at_level(logging.INFO, logger="uvicorn.error"):
        logging.getLogger("uvicorn.error").info('%s - "WebSocket %s" [accepted]', "127.0.0.1:1", f"/ws?token={TOKEN}")
    assert caplog.messages == ['127.0.0.1:1 - "WebSocket /ws?token=[redacted]" [accepted]']


def test_structlog_fields_are_redacted() -> None:
    event = {"event": f"failed for /ws?ticket={TOKEN}", "token": TOKEN, "headers": {"Authorization": f"Bearer {TOKEN}"},
             "code": "invalid_token", "count": 3, "exception": f"Traceback ... Bearer {TOKEN}"}
    out = redact.structlog_processor(None, "info", event)
    assert TOKEN not in repr(out)
    assert out["code"] == "invalid_token" and out["count"] == 3 and out["token"] == "[redacted]"
