"""Logging set-up that keeps secrets (the bot token) out of every log line, and exceptions told in one line."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from bot.settings import Secret


class RedactSecrets(logging.Filter):
    """Replaces any secret's text in a record's final message with a placeholder."""

    def __init__(self, secrets: Iterable[Secret]) -> None:
        super().__init__()
        self._values = [secret.reveal() for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._values:
            return True
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        redacted = message
        for value in self._values:
            redacted = redacted.replace(value, "[redacted]")
            if record.exc_text:
                record.exc_text = record.exc_text.replace(value, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def configure_logging(level: str, secrets: Iterable[Secret] = ()) -> None:
    """Log to stderr at `level`; httpx's per-request lines (which carry the token in the URL) stay off."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO, and a Bot API URL contains the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


def brief_error(exc: BaseException) -> str:
    """An exception's type and first line, for a warning that should not carry a whole traceback."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
