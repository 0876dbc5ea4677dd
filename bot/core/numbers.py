"""Whole numbers typed by users: read strictly (ASCII digits, bounded length) and checked against a range."""

from __future__ import annotations

import re

_WHOLE = re.compile(r"[+-]?[0-9]{1,19}")
# Telegram: a chat id has at most 52 significant bits (a signed 64-bit integer or a double holds it).
CHAT_ID_LIMIT = 2**52


def whole_number(text: str, low: int, high: int) -> int | None:
    """`text` as an int within [low, high]; None for anything else ('²', '1_000', '99999999999999999999')."""
    if not _WHOLE.fullmatch(text):
        return None
    number = int(text)
    return number if low <= number <= high else None


def chat_id(text: str) -> int | None:
    """A chat id as Telegram issues them (`-1001234567890`, `123456789`); None when it cannot be one."""
    number = whole_number(text, -CHAT_ID_LIMIT + 1, CHAT_ID_LIMIT - 1)
    return number if number else None
