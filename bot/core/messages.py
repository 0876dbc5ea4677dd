"""The values that cross the boundary between the core and a front end (Telegram, console, tests)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, replace
from enum import Enum

from bot.core.addresses import CONSOLE, ChatAddress
from bot.core.document import Document
from bot.core.i18n import N_

CALLBACK_DATA_LIMIT = 64
PLACEHOLDER_LIMIT = 64  # Telegram's limit on a reply field's placeholder, in characters
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class ChatKind(Enum):
    """Where a request came from; groups and channels get group rules (admins, no chatter)."""

    PRIVATE = "private"
    GROUP = "group"
    SUPERGROUP = "supergroup"
    CHANNEL = "channel"

    @property
    def is_group(self) -> bool:
        """True for chats with several members (groups, supergroups, channels)."""
        return self is not ChatKind.PRIVATE


@dataclass(frozen=True)
class Chat:
    """The chat a request came from: Chat(telegram(-100123), SUPERGROUP, "HK fintech", thread_id=7) is topic 7 of
    a Telegram supergroup."""

    address: ChatAddress
    kind: ChatKind = ChatKind.PRIVATE
    title: str | None = None
    thread_id: int | None = None


@dataclass(frozen=True)
class User:
    """The person behind a request (absent for channel posts)."""

    id: int
    name: str = ""


@dataclass(frozen=True)
class Request:
    """A command as the core sees it: `/sector finance` becomes command='sector', args=('finance',)."""

    command: str
    args: tuple[str, ...] = ()
    chat: Chat = field(default_factory=lambda: Chat(ChatAddress(CONSOLE, "0")))
    user: User | None = None
    from_button: bool = False
    attachment: tuple[str, bytes] | None = None  # (file name, bytes) of a document sent with the request
    addressed: bool = False  # the command named its bot (`/sector@OurBot`): in a group, meant for us
    answer: str | None = None  # the text of a reply to a prompt this command asked (line breaks kept)
    language: str = "en"  # the chat's language, "en" or "zh-Hant": content is shown in it where translated

    @property
    def text(self) -> str:
        """The arguments as one string."""
        return " ".join(self.args)


@dataclass(frozen=True)
class Button:
    """An inline button; pressing it runs `action` as if it were typed as a command (`sector finance`)."""

    label: str
    action: str

    def __post_init__(self) -> None:
        if not 1 <= len(self.action.encode()) <= CALLBACK_DATA_LIMIT:
            raise ValueError(f"button action must be 1-{CALLBACK_DATA_LIMIT} bytes: {self.action!r}")


@dataclass(frozen=True)
class Prompt:
    """What a reply asks for: `action` is the command the answer completes (`review edit 42`), `placeholder` a
    short hint for the empty reply field. bot.core.prompts says how an answer comes back."""

    action: str
    placeholder: str = ""

    def __post_init__(self) -> None:
        if len(self.placeholder) > PLACEHOLDER_LIMIT:
            raise ValueError(f"a placeholder is at most {PLACEHOLDER_LIMIT} characters: {self.placeholder!r}")


@dataclass(frozen=True)
class Reply:
    """What a command answers: a document (no markup of any platform) and optional rows of buttons.

    `replace` asks the front end to edit the message whose button was pressed instead of sending a new one;
    `notice` is a short toast for a pressed button; `silent` sends without a notification sound; `prompt` asks
    for an answer: the user's reply to this message completes its command. A reply
    with a prompt is always a new message and has no buttons.
    """

    body: Document
    buttons: tuple[tuple[Button, ...], ...] = ()
    replace: bool = False
    notice: str | None = None
    silent: bool = False
    prompt: Prompt | None = None

    def __post_init__(self) -> None:
        if self.prompt is not None and (self.buttons or self.replace):
            raise ValueError("a reply that asks for an answer is a new message without buttons")


NO_REPLY = Reply(Document())
# What every front end says (translated) when answering failed on our side (the failure itself goes to the log).
SORRY = N_("Sorry, something went wrong on my side. Please try again in a moment.")


@dataclass(frozen=True)
class MembershipChange:
    """The bot's own place in a chat changed: added to a group (`present`), removed or blocked (not `present`).

    A group admin removing the bot arrives as Chat(telegram(-100123), SUPERGROUP), was_present=True, present=False;
    a user blocking it in a private chat as Chat(telegram(42)), was_present=True, present=False.
    """

    chat: Chat
    present: bool
    was_present: bool


def replacing_on_button(reply: Reply, request: Request) -> Reply:
    """A reply to a pressed button replaces the message that carried the button."""
    return replace(reply, replace=True) if request.from_button and reply.prompt is None else reply


def shorten_at_word(text: str, limit: int, trailing: str = " ,.;:") -> str:
    """At most `limit` characters on one line, cut at a word where there is one (in its second half), with an
    ellipsis; `trailing` are the marks dropped before it."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(trailing) + "…"


def clean_text(text: str) -> str:
    r"""Text as the core reads it: `"\u200f/sector a\x00b\ud800 "` becomes `"/sector ab\ufffd"` (lone surrogates
    replaced, control characters other than line breaks and tabs dropped, blanks and invisible marks trimmed)."""
    text = _LONE_SURROGATE.sub("\ufffd", text)
    text = "".join(char for char in text if char in "\n\t" or unicodedata.category(char) != "Cc")
    start, end = 0, len(text)
    while start < end and _blank(text[start]):
        start += 1
    while end > start and _blank(text[end - 1]):
        end -= 1
    return text[start:end]


def _blank(char: str) -> bool:
    # An RTL mark, zero-width space or BOM (category Cf) shows nothing, so it counts as blank like a space.
    return char.isspace() or unicodedata.category(char) == "Cf"


def _visible(word: str) -> str:
    return "".join(char for char in word if unicodedata.category(char) != "Cf")


def interpret(text: str, chat: Chat, user: User | None, bot_username: str = "",
              from_button: bool = False) -> Request | None:
    """Turn typed text (or a button's action) into a Request, or None when the bot should stay quiet.

    `/sector@OurBot finance` is ours; `/sector@OtherBot` is not; `/`, `/ ` and `/@OurBot` name no command and
    are ignored. A button's action is a command without its slash. In a private chat plain text is a search;
    in a group, plain chatter is ignored. Any text at all gives a Request or None, never an exception.
    """
    text = clean_text(text)
    if not text:
        return None
    if from_button or text.startswith("/"):
        body = text.lstrip("/")
        if not body or body[0].isspace():
            return None  # no name right after the slash (`/`, `/ sector`): not a command
        head, *words = body.split()
        command, _, addressee = _visible(head).partition("@")
        if addressee and bot_username and addressee.lower() != bot_username.lower():
            return None
        if not command:
            return None  # `/@OurBot`
        args = tuple(word for word in words if _visible(word))
        return Request(command.lower(), args, chat, user, from_button=from_button, addressed=bool(addressee))
    if chat.kind is ChatKind.PRIVATE:
        return Request("search", tuple(word for word in text.split() if _visible(word)), chat, user)
    return None
