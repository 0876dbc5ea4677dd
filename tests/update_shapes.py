"""Hypothesis strategies for Telegram updates, shaped as the Bot API spec's Update and its parts.

Each strategy draws an `Incoming`: a description of one update (who, where, what) that becomes Update JSON with
`to_json(fake)`. Updates that need the Bot API double's state go through its builders: a button press names a
message the bot really sent when there is one (and registers the query id), a document registers a file the bot can
download. Every update built here has every field the spec requires (test_fuzz_updates.py checks that).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from doubles import FakeBotApi
from doubles.fake_bot_api import SPEC_PATH
from hypothesis import strategies as st
from odd_text import callback_data, typed_text

JSONDict = dict[str, Any]
FIXTURES = Path(__file__).parent / "fixtures"
ADMIN = 900
USERS = {5: "Ada", 6: "Grace", ADMIN: "Admin", 777: "Linus"}
CHATS: dict[str, JSONDict] = {
    "group": {"id": -1001, "type": "group", "title": "HK AI fans"},
    "supergroup": {"id": -1001234, "type": "supergroup", "title": "Fintech HK"},
    "forum": {"id": -1005, "type": "supergroup", "title": "Forum", "is_forum": True},
    "channel": {"id": -1007, "type": "channel", "title": "Pulse channel"},
}
GROUP_ADMINS = {-1001: [ADMIN], -1001234: [6], -1005: [ADMIN, 6], -1007: [ADMIN]}
ANONYMOUS_ADMIN = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
BOT_ID, BOT_USERNAME = 123456, "hk_ai_pulse_bot"
# Telegram marks `/name` and `/name@bot` at the start of a message as a bot_command entity.
_COMMAND = re.compile(r"/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{1,32})?")


def chat_json(where: str | int) -> JSONDict:
    """A chat by key (`group`, `channel`…) or a private chat by user id."""
    if isinstance(where, int):
        return {"id": where, "type": "private", "first_name": USERS[where]}
    return dict(CHATS[where])


def user_json(user_id: int) -> JSONDict:
    """A person."""
    return {"id": user_id, "is_bot": False, "first_name": USERS[user_id], "language_code": "en"}


def utf16_len(text: str) -> int:
    """Telegram's offsets and lengths count UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def text_entities(text: str, extra: list[tuple[str, int, int]]) -> list[JSONDict]:
    """The entities Telegram would attach: a leading bot_command, plus formatting anywhere inside the text."""
    entities: list[JSONDict] = []
    match = _COMMAND.match(text)
    if match:
        entities.append({"type": "bot_command", "offset": 0, "length": utf16_len(match.group())})
    size = utf16_len(text)
    for kind, start, length in extra:
        if size and start < size:
            entities.append({"type": kind, "offset": start, "length": max(1, min(length, size - start))})
    return sorted(entities, key=lambda entity: (entity["offset"], entity["type"] != "bot_command"))


@cache
def _member_fields() -> dict[str, list[tuple[str, str]]]:
    spec = json.loads(SPEC_PATH.read_text())
    out: dict[str, list[tuple[str, str]]] = {}
    for name in spec["types"]["ChatMember"]["subtypes"]:
        fields = spec["types"][name]["fields"]
        status = re.search(r'always "(\w+)"', fields[0]["description"])
        assert status is not None
        out[status.group(1)] = [(f["name"], f["types"][0]) for f in fields if f["required"]]
    return out


def member_json(status: str, user: JSONDict) -> JSONDict:
    """A ChatMember of that status with every field the spec requires (permissions all false, no end date)."""
    member: JSONDict = {"status": status, "user": user}
    for name, kind in _member_fields()[status]:
        member.setdefault(name, {"Boolean": False, "Integer": 0}.get(kind))
    return member


# ------------------------------------------------------------------------------------------------ what arrives


@dataclass(frozen=True)
class Post:
    """A message, edited_message, channel_post or edited_channel_post: text (with entities) or other content."""

    kind: str
    where: str | int
    sender: int | None  # None: sent as the chat (a channel post, an anonymous group admin)
    content: JSONDict
    thread_id: int | None = None
    formatting: list[tuple[str, int, int]] = field(default_factory=list)

    def to_json(self, fake: FakeBotApi, message_id: int) -> JSONDict:
        """The Update (without update_id)."""
        chat = chat_json(self.where)
        message: JSONDict = {"message_id": message_id, "date": int(time.time()), "chat": chat}
        if self.sender is not None:
            message["from"] = user_json(self.sender)
        elif chat["type"] != "channel":
            message["from"] = dict(ANONYMOUS_ADMIN)
            message["sender_chat"] = dict(chat)
        else:
            message["sender_chat"] = dict(chat)
        if self.thread_id is not None and chat.get("is_forum"):
            message["message_thread_id"] = self.thread_id
            message["is_topic_message"] = True
        message.update(self.content)
        if "text" in self.content:
            entities = text_entities(self.content["text"], self.formatting)
            if entities:
                message["entities"] = entities
        if self.kind.startswith("edited_"):
            message["edit_date"] = message["date"]
        return {self.kind: message}


@dataclass(frozen=True)
class Press:
    """A button pressed: on a message the bot sent in that chat (when there is one), or on an older or an inline
    message; the data is ours or anything up to 64 bytes; a game button has no data at all."""

    where: str | int
    presser: int
    data: str | None
    pick: int
    inline: bool = False
    on_a_button: bool = True  # the data of one of the pressed message's own buttons, when it has any

    def to_json(self, fake: FakeBotApi, message_id: int) -> JSONDict:
        """The Update (without update_id)."""
        chat = chat_json(self.where)
        ours = [mid for (chat_id, mid) in bot_messages(fake) if chat_id == chat["id"]]
        pressed = ours[-1 - self.pick % len(ours)] if ours and self.pick % 5 else 10_000_000 + self.pick
        data = self.data
        keyboard = (fake.stored_message(chat["id"], pressed) or {}).get("reply_markup", {}).get("inline_keyboard", [])
        buttons = [button["callback_data"] for row in keyboard for button in row if "callback_data" in button]
        if self.on_a_button and buttons:
            data = buttons[self.pick % len(buttons)]
        update = fake.callback_update(data or "-", chat_id=chat["id"], user_id=self.presser,
                                      message_id=pressed, chat_type=chat["type"], first_name=USERS[self.presser])
        query = update["callback_query"]
        query["message"]["chat"] = chat
        if data is None:
            del query["data"]
            query["game_short_name"] = "pulse"
        if self.inline:
            del query["message"]
            query["inline_message_id"] = f"AgAAA{self.pick}"
        return update


@dataclass(frozen=True)
class Upload:
    """A document: a content file (valid, broken or junk) from an admin or anyone, in a private chat or a group."""

    where: str | int
    sender: int
    file_name: str
    data: bytes
    declared_size: int | None = None  # what Telegram says the file weighs, when it is not its real size
    caption: str | None = None

    def to_json(self, fake: FakeBotApi, message_id: int) -> JSONDict:
        """The Update (without update_id); the double keeps the file for getFile and the download."""
        chat = chat_json(self.where)
        update = fake.document_update(self.file_name, self.data, chat_id=chat["id"], user_id=self.sender,
                                      chat_type=chat["type"], caption=self.caption, first_name=USERS[self.sender])
        message = update["message"]
        message["chat"] = chat
        if self.declared_size is not None:
            message["document"]["file_size"] = self.declared_size
        return update


@dataclass(frozen=True)
class Membership:
    """my_chat_member (the bot added, promoted, removed, blocked) or chat_member (someone else's status)."""

    where: str | int
    actor: int
    old: str
    new: str
    about_the_bot: bool = True

    def to_json(self, fake: FakeBotApi, message_id: int) -> JSONDict:
        """The Update (without update_id)."""
        subject = ({"id": BOT_ID, "is_bot": True, "first_name": "HK AI Pulse", "username": BOT_USERNAME}
                   if self.about_the_bot else user_json(self.actor))
        change = {"chat": chat_json(self.where), "from": user_json(self.actor), "date": int(time.time()),
                  "old_chat_member": member_json(self.old, subject),
                  "new_chat_member": member_json(self.new, subject)}
        return {"my_chat_member" if self.about_the_bot else "chat_member": change}


@dataclass(frozen=True)
class Other:
    """An inline query (answered, within the Bot API's limits) or a reaction (not handled: it passes by quietly)."""

    kind: str
    sender: int
    text: str

    def to_json(self, fake: FakeBotApi, message_id: int) -> JSONDict:
        """The Update (without update_id)."""
        if self.kind == "inline_query":
            update = fake.inline_query_update(self.text[:256])  # registers the id, so the double takes its answer
            update["inline_query"]["from"] = user_json(self.sender)
            return update
        return {"message_reaction": {"chat": chat_json(self.sender), "message_id": message_id,
                                     "user": user_json(self.sender), "date": int(time.time()), "old_reaction": [],
                                     "new_reaction": [{"type": "emoji", "emoji": "👍"}]}}


Incoming = Post | Press | Upload | Membership | Other


def bot_messages(fake: FakeBotApi) -> list[tuple[int, int]]:
    """(chat id, message id) of every message the bot sent so far."""
    return [(int(r.result["chat"]["id"]), int(r.result["message_id"])) for r in fake.requests
            if r.method == "sendMessage" and r.ok and isinstance(r.result, dict)]


# ------------------------------------------------------------------------------------------------ strategies

private = st.sampled_from(sorted(USERS))
anywhere: st.SearchStrategy[str | int] = st.one_of(private, st.sampled_from(sorted(CHATS)))
people = st.sampled_from(sorted(USERS))
formatting = st.lists(st.tuples(st.sampled_from(["bold", "italic", "url", "mention", "bot_command", "spoiler"]),
                                st.integers(0, 40), st.integers(1, 20)), max_size=2)
_photo = {"photo": [{"file_id": "AgACAgUAAxkBAAIB", "file_unique_id": "AQADAgAT", "width": 90, "height": 90}]}
_sticker = {"sticker": {"file_id": "CAACAgIAAxkBAAIC", "file_unique_id": "AgADAgAD", "type": "regular",
                        "width": 512, "height": 512, "is_animated": False, "is_video": False, "emoji": "🤖"}}
content = st.one_of(
    typed_text.filter(bool).map(lambda text: {"text": text}),
    typed_text.filter(bool).map(lambda text: {**_photo, "caption": text}),
    st.just(_sticker),
    st.sampled_from(sorted(USERS)).map(lambda uid: {"new_chat_members": [user_json(uid)]}),
    st.just({"group_chat_created": True}),
)


@st.composite
def posts(draw: st.DrawFn) -> Post:
    """Messages and channel posts, new or edited, from people or sent as the chat."""
    where = draw(anywhere)
    channel = where == "channel"
    kind = draw(st.sampled_from(["channel_post", "edited_channel_post"] if channel
                                else ["message", "message", "message", "edited_message"]))
    if isinstance(where, int):
        sender: int | None = where
    else:
        sender = None if channel else draw(st.one_of(people, st.none()))
    thread = draw(st.one_of(st.none(), st.integers(1, 50))) if where == "forum" else None
    return Post(kind, where, sender, draw(content), thread, draw(formatting))


@st.composite
def presses(draw: st.DrawFn) -> Press:
    """Button presses with any data, by the chat's person or anyone in a group."""
    where = draw(anywhere)
    presser = where if isinstance(where, int) else draw(people)
    data = draw(st.one_of(callback_data, st.none()))
    inline = draw(st.integers(0, 9)) == 0
    return Press(where, presser, data, draw(st.integers(0, 1000)), inline, draw(st.booleans()))


def _fixture(path: str) -> bytes:
    return (FIXTURES / path).read_bytes()


content_files = st.sampled_from(sorted([
    ("robotics.yaml", "robotics.yaml"), ("updates.yaml", "content/updates.yaml"),
    ("about.yaml", "content/about.yaml"), *((p.name, f"broken/{p.name}") for p in (FIXTURES / "broken").iterdir()),
]))


@st.composite
def uploads(draw: st.DrawFn) -> Upload:
    """Content files, junk and oversize files, with odd names; from admins and others, in private and groups."""
    where = draw(st.one_of(private, private, st.sampled_from(sorted(CHATS))))
    sender = where if isinstance(where, int) else draw(people)
    name, data = draw(st.one_of(
        content_files.map(lambda pair: (pair[0], _fixture(pair[1]))),
        st.tuples(st.sampled_from(["x.yaml", "notes.txt", "", ".yaml", "../../evil.yaml", "ä" * 200 + ".yml"]),
                  st.binary(max_size=300)),
    ))
    size = draw(st.one_of(st.none(), st.sampled_from([0, 300 * 1024, 20 * 1024 * 1024])))
    caption = draw(st.one_of(st.none(), typed_text.filter(lambda t: 0 < len(t) <= 1024)))
    return Upload(where, sender, name, data, size, caption)


@st.composite
def memberships(draw: st.DrawFn) -> Membership:
    """The bot (or someone) joining, promoted, restricted, leaving or blocked, anywhere."""
    where = draw(anywhere)
    actor = where if isinstance(where, int) else draw(people)
    statuses = ["member", "kicked"] if isinstance(where, int) else ["creator", "administrator", "member",
                                                                     "restricted", "left", "kicked"]
    old, new = draw(st.sampled_from(statuses)), draw(st.sampled_from(statuses))
    return Membership(where, actor, old, new, draw(st.booleans()) or isinstance(where, int))


others = st.builds(Other, st.sampled_from(["inline_query", "message_reaction"]), people, st.text(max_size=30))

incoming: st.SearchStrategy[Incoming] = st.one_of(posts(), posts(), posts(), presses(), presses(), uploads(),
                                                  memberships(), others)
