"""How a Slack workspace's channels and users are named to the core: one place that builds (and reads) them.

`C0456` in workspace `T0123` is a channel chat, `D0789` a direct message, `U0AB12` a user. The core's ids are
numbers, so a Slack id (2-12 upper-case letters and digits) is read as a base-36 number above 2**58:
`U0AB12` -> 2**58 + 1,807,489,562 (its reverse: `slack_id(number)`). Telegram's ids have at most 52 significant
bits, so a number this large is always Slack's (`is_slack_number`), and both fit a 64-bit column. Channels are
negative, like Telegram's groups, so group rules apply.
"""

from __future__ import annotations

import re

from bot.core.messages import Chat, ChatKind, User

_SLACK_ID = re.compile(r"[A-Z0-9]{2,12}")
SLACK_BASE = 1 << 58
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class NotASlackId(ValueError):
    """A string that is not a Slack id (upper-case letters and digits)."""


def id_number(slack_id: str) -> int:
    """`U0AB12` as a number (base 36); raises NotASlackId for anything else."""
    if not _SLACK_ID.fullmatch(slack_id):
        raise NotASlackId(f"not a Slack id: {slack_id!r}")
    return SLACK_BASE + int(slack_id, 36)


def is_slack_number(number: int) -> bool:
    """Whether a chat or user number stands for a Slack id (Telegram's are below 2**53)."""
    return abs(number) >= SLACK_BASE


def slack_id(number: int) -> str:
    """The Slack id a number stands for (the reverse of id_number, sign ignored)."""
    number = abs(number) - SLACK_BASE
    digits = ""
    while number:
        number, rest = divmod(number, 36)
        digits = _DIGITS[rest] + digits
    return digits or "0"


def slack_chat(channel_id: str, *, name: str | None = None) -> Chat:
    """The core's chat for a Slack conversation: a `D...` id is a direct message (private), others a channel."""
    if channel_id.startswith("D"):
        return Chat(id=id_number(channel_id), kind=ChatKind.PRIVATE, title=name)
    return Chat(id=-id_number(channel_id), kind=ChatKind.GROUP, title=name)


def channel_of(chat: Chat) -> str:
    """The Slack conversation id of a chat made by slack_chat."""
    return slack_id(chat.id)


def slack_user(user_id: str, name: str = "") -> User:
    """The core's user for a Slack user id."""
    return User(id=id_number(user_id), name=name)
