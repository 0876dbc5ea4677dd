"""How a Slack workspace's conversations and users are named to the core: one place that builds (and reads) them.

Channel `C0456` of workspace `T0123` is the chat `slack:T0123/C0456`, a direct message `slack:T0123/D0789`. The
core's user ids are numbers, so a Slack user id (2-12 upper-case letters and digits) is read as a base-36 number
above 2**58: `U0AB12` -> 2**58 + 1,807,489,562 (its reverse: `slack_id(number)`). Telegram's ids have at most 52
significant bits, so such a number is always Slack's, and it fits the audit log's 64-bit column.
"""

from __future__ import annotations

import re

from bot.core.addresses import SLACK, ChatAddress
from bot.core.messages import Chat, ChatKind, User

_SLACK_ID = re.compile(r"[A-Z0-9]{2,12}")
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
SLACK_BASE = 1 << 58


class NotASlackId(ValueError):
    """A string that is not a Slack id (upper-case letters and digits)."""


def id_number(slack_id: str) -> int:
    """`U0AB12` as a number (base 36, above 2**58); raises NotASlackId for anything else."""
    if not _SLACK_ID.fullmatch(slack_id):
        raise NotASlackId(f"not a Slack id: {slack_id!r}")
    return SLACK_BASE + int(slack_id, 36)


def slack_id(number: int) -> str:
    """The Slack id a number stands for (the reverse of id_number)."""
    number = abs(number) - SLACK_BASE
    digits = ""
    while number > 0:
        number, rest = divmod(number, 36)
        digits = _DIGITS[rest] + digits
    return digits or "0"


def slack_address(team_id: str, channel_id: str) -> ChatAddress:
    """`slack:T0123/C0456`; NotASlackId when either id is not one."""
    for each in (team_id, channel_id):
        if not _SLACK_ID.fullmatch(each or ""):
            raise NotASlackId(f"not a Slack id: {each!r}")
    return ChatAddress(SLACK, f"{team_id}/{channel_id}")


def slack_chat(team_id: str, channel_id: str, *, name: str | None = None) -> Chat:
    """The core's chat for a Slack conversation: a `D...` id is a direct message (private), others a channel."""
    kind = ChatKind.PRIVATE if channel_id.startswith("D") else ChatKind.GROUP
    return Chat(slack_address(team_id, channel_id), kind=kind, title=name)


def channel_of(address: ChatAddress) -> str:
    """The conversation id in `slack:T0123/C0456` (`C0456`)."""
    return address.id.partition("/")[2]


def workspace_of(address: ChatAddress) -> str:
    """The workspace id in `slack:T0123/C0456` (`T0123`)."""
    return address.id.partition("/")[0]


def slack_user(user_id: str, name: str = "") -> User:
    """The core's user for a Slack user id."""
    return User(id=id_number(user_id), name=name)
