"""Logging for services: a refused request is routine, not a crash.

nameko logs every exception a worker raises with its stack trace. A `DomainError` is the
caller's mistake, already answered with a clear error: log it as one line at INFO instead;
an outage (`Unavailable`, answered 503) as one line at WARNING.
"""

from __future__ import annotations

import logging

from shared.kernel.errors import DomainError, Unavailable


class QuietExpected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, DomainError):
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
            record.msg, record.args = "refused %s: %s", (type(exc).__name__, exc)
        elif isinstance(exc, Unavailable):
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.msg, record.args = "answered 503: %s", (exc,)
        return True
