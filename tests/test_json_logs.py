"""LOG_FORMAT=json: one JSON object per line with stable fields, and the token never in any of them."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot.logs import JSON_FIELDS, configure_logging, log_context
from bot.settings import Secret

TOKEN = "123456:AAE-secret_token-value"


@contextlib.contextmanager
def configured(log_format: str) -> Iterator[io.StringIO]:
    """The root logger configured as `python -m bot` does (its stderr handler writing here); restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO", [Secret(TOKEN)], log_format=log_format, replica="host:42")
    output = io.StringIO()
    [handler] = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(output)
    try:
        yield output
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def json_logging() -> Iterator[io.StringIO]:
    """LOG_FORMAT=json."""
    with configured("json") as output:
        yield output


def lines(output: io.StringIO) -> list[dict[str, object]]:
    """Each line written, parsed as JSON (a line that is not JSON fails the test)."""
    return [json.loads(line) for line in output.getvalue().splitlines()]


def test_a_line_has_the_stable_fields_and_the_replica(json_logging: io.StringIO) -> None:
    logging.getLogger("bot.delivery").warning("delivery %s failed", 7, extra={"chat": 42, "delivery": 7})
    [entry] = lines(json_logging)
    assert list(entry) == ["time", "level", "logger", "message", "chat", "delivery", "replica"]
    assert set(entry) <= set(JSON_FIELDS)
    assert (entry["level"], entry["logger"], entry["message"]) == ("WARNING", "bot.delivery", "delivery 7 failed")
    assert (entry["chat"], entry["delivery"], entry["replica"]) == (42, 7, "host:42")
    assert str(entry["time"]).endswith("+00:00")


def test_the_token_never_appears_in_a_message_nor_in_a_traceback(json_logging: io.StringIO) -> None:
    log = logging.getLogger("bot.tg")
    log.info("calling https://api.telegram.org/bot%s/sendMessage", TOKEN)
    try:
        raise RuntimeError(f"connection to /bot{TOKEN}/getUpdates refused")
    except RuntimeError:
        log.exception("polling failed")
    log.info("extra fields too", extra={"command": f"start {TOKEN}"})
    output = json_logging.getvalue()
    assert TOKEN not in output and "AAE-secret" not in output
    entries = [json.loads(line) for line in output.splitlines()]
    assert len(entries) == 3
    assert entries[0]["message"] == "calling https://api.telegram.org/bot[redacted]/sendMessage"
    assert "Traceback" in str(entries[1]["exception"]) and "[redacted]" in str(entries[1]["exception"])
    assert entries[2]["command"] == "start [redacted]"


def test_a_tasks_context_names_its_chat_and_command_without_leaking_into_others(
        json_logging: io.StringIO) -> None:
    log = logging.getLogger("bot.tg.frontend")

    async def handle(chat: int, command: str) -> None:
        log_context(chat=chat, command=command)
        await asyncio.sleep(0)  # the other task runs in between
        log.info("handled")

    async def both() -> None:
        await asyncio.gather(handle(1, "sector"), handle(2, "latest"))
        log.info("outside")

    asyncio.run(both())
    entries = lines(json_logging)
    assert sorted((e["chat"], e["command"]) for e in entries[:2]) == [(1, "sector"), (2, "latest")]
    assert "chat" not in entries[2] and "command" not in entries[2]


def test_text_is_still_the_default() -> None:
    with configured("text") as output:
        logging.getLogger("bot").info("token %s", TOKEN)
    err = output.getvalue()
    assert "INFO bot: token [redacted]" in err and not err.lstrip().startswith("{")
