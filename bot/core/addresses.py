"""Where a chat lives, whatever the platform: `telegram:-100123`, `slack:T0123/C0456`, `console:1`.

Every chat the core, the store and the delivery engine handle is a ChatAddress: a platform name and the id that
platform gives the chat, as text. Each front end builds the addresses of its own chats; the core compares and
prints them and never looks inside the id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.core.i18n import N_, Translator
from bot.core.numbers import chat_id as telegram_chat_id

TELEGRAM = "telegram"
SLACK = "slack"
CONSOLE = "console"
PLATFORMS = (TELEGRAM, SLACK, CONSOLE)

# The stored column is TEXT, but a bounded one: no id a platform issues is anywhere near this long.
MAX_ADDRESS_LENGTH = 100
# Slack: a workspace (team) id and a conversation id, both upper-case letters and digits (`T0123ABC/C0456DEF`).
_SLACK_ID = re.compile(r"[A-Z0-9]{2,30}/[A-Z0-9]{2,30}")
_CONSOLE_ID = re.compile(r"[0-9]{1,19}")


class AddressError(ValueError):
    """Text that is not a chat address; the message says what is wrong, fit to show the user: in English as the
    exception's text, in the reader's language with `translated(tr)`."""

    def __init__(self, message: str, /, **values: object) -> None:
        super().__init__(message % values if values else message)
        self.message = message
        self.values = values

    def translated(self, tr: Translator) -> str:
        """What is wrong, in the translator's language."""
        return tr.gettext(self.message, **self.values)


@dataclass(frozen=True, order=True)
class ChatAddress:
    """One chat on one platform: ChatAddress('telegram', '-100123') prints as `telegram:-100123`."""

    platform: str
    id: str

    def __post_init__(self) -> None:
        problem = _problem(self.platform, self.id)
        if problem is not None:
            raise problem

    def __str__(self) -> str:
        return f"{self.platform}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> ChatAddress:
        """`telegram:-100123` or `slack:T0123/C0456` as an address; AddressError for anything else."""
        platform, colon, chat = text.strip().partition(":")
        if not colon:
            raise AddressError(N_("“%(text)s” is not a chat address (platform:id, e.g. telegram:-100123)"), text=text)
        return cls(platform.lower(), chat)


def telegram(chat_id: int) -> ChatAddress:
    """The address of a Telegram chat: telegram(-100123) is `telegram:-100123`."""
    return ChatAddress(TELEGRAM, str(chat_id))


def typed_address(text: str) -> ChatAddress:
    """An address an admin typed: a qualified one (`slack:T0123/C0456`), or a bare number, which is a Telegram chat
    id as it always was (`-100123` is `telegram:-100123`). AddressError when it is neither."""
    if ":" in text:
        return ChatAddress.parse(text)
    number = telegram_chat_id(text.strip())
    if number is None:
        raise AddressError(N_("a chat is a Telegram chat id (-1001234567890) or an address (slack:T0123/C0456)"))
    return telegram(number)


def _problem(platform: str, chat: str) -> AddressError | None:
    if platform not in PLATFORMS:
        return AddressError(N_("unknown platform “%(platform)s” (known: %(known)s)"), platform=platform,
                            known=", ".join(PLATFORMS))
    if len(platform) + 1 + len(chat) > MAX_ADDRESS_LENGTH:
        return AddressError(N_("a chat address is at most %(limit)s characters"), limit=MAX_ADDRESS_LENGTH)
    if platform == TELEGRAM:
        number = telegram_chat_id(chat)
        if number is None or str(number) != chat:
            return AddressError(N_("“%(chat)s” is not a Telegram chat id (a whole number such as -100123)"), chat=chat)
    elif platform == SLACK:
        if not _SLACK_ID.fullmatch(chat):
            return AddressError(N_("“%(chat)s” is not a Slack chat (workspace/channel, such as T0123/C0456)"),
                                chat=chat)
    elif not _CONSOLE_ID.fullmatch(chat):
        return AddressError(N_("“%(chat)s” is not a console chat (a number)"), chat=chat)
    return None
