"""Logging set-up that keeps secrets (the bot token) out of every log line, as text or one JSON object a line."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from contextvars import ContextVar
from datetime import UTC, datetime

from bot.settings import Secret

# What a log line is about, set where the work starts (a handled update, a delivery) and seen by every line logged
# in that task: asyncio copies the context into each task, so concurrent updates and deliveries keep their own.
_CHAT: ContextVar[str | None] = ContextVar("log_chat", default=None)  # the chat address, telegram:-100123
_COMMAND: ContextVar[str | None] = ContextVar("log_command", default=None)
_DELIVERY: ContextVar[int | None] = ContextVar("log_delivery", default=None)
# The JSON fields, in this order; the last four only where they apply.
JSON_FIELDS = ("time", "level", "logger", "message", "chat", "command", "delivery", "replica")


def log_context(*, chat: str | None = None, command: str | None = None, delivery: int | None = None) -> None:
    """Name the chat, command and delivery the current task's log lines are about (until it ends)."""
    _CHAT.set(chat)
    _COMMAND.set(command)
    _DELIVERY.set(delivery)


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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message; chat, command and delivery when the
    line is about one (from `log_context`, or `extra={"chat": ...}`); replica; `exception` with the traceback.

        {"time": "2026-12-04T16:00:00.123+00:00", "level": "INFO", "logger": "bot.delivery",
         "message": "delivery 7 to chat 42 failed: ...", "chat": 42, "delivery": 7, "replica": "web-1:42"}

    The secrets are taken out of the finished line as well, whatever field carried them.
    """

    def __init__(self, replica: str = "", secrets: Iterable[Secret] = ()) -> None:
        super().__init__()
        self.replica = replica
        self._values = [secret.reveal() for secret in secrets if secret]

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        for name, var in (("chat", _CHAT), ("command", _COMMAND), ("delivery", _DELIVERY)):
            value = getattr(record, name, None)
            value = var.get() if value is None else value
            if value is not None:
                entry[name] = value
        if self.replica:
            entry["replica"] = self.replica
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        for value in self._values:
            # A secret's JSON escaping differs from its text only for quotes, backslashes and control characters.
            for shown in {value, json.dumps(value, ensure_ascii=False)[1:-1]}:
                line = line.replace(shown, "[redacted]")
        return line


def configure_logging(level: str, secrets: Iterable[Secret] = (), *, log_format: str = "text",
                      replica: str = "") -> None:
    """Log to stderr at `level`, as text or (`log_format="json"`) one JSON object a line; httpx's per-request
    lines (which carry the token in the URL) stay off."""
    secrets = list(secrets)
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(replica, secrets))
    else:
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
