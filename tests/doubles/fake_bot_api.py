"""A local, in-process test double of the Telegram Bot API server (aiohttp based, spec driven)."""

from __future__ import annotations

import asyncio
import copy
import functools
import json
import mimetypes
import random
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from aiohttp import web

__all__ = [
    "FILE_DOWNLOAD",
    "FakeBotApi",
    "RecordedRequest",
    "UploadedFile",
    "missing_required_fields",
    "parse_html",
    "spec_problems",
    "spec_return_type",
    "spec_version",
]

JSONDict = dict[str, Any]
ChatKey = int | str

#: ``RecordedRequest.method`` used for file downloads (``GET /file/bot<token>/<path>``).
FILE_DOWNLOAD = "file"

# The official Bot API spec, beside this file (MIT licence beside it); test data, not shipped with the bot.
SPEC_PATH = Path(__file__).with_name("telegram-bot-api-10.1.json")
_MAX_MESSAGE_LENGTH = 4096
_MAX_CAPTION_LENGTH = 1024
_MAX_INLINE_RESULTS = 50  # answerInlineQuery: "No more than 50 results per query are allowed."
_MAX_NEXT_OFFSET_BYTES = 64  # answerInlineQuery.next_offset: "Offset length can't exceed 64 bytes."
_START_PARAMETER_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BUTTON_URL_RE = re.compile(r"(?:https?|tg)://[^\s]+\Z")
_MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses bigger files (Bot API: "up to 20MB in size")
_DEFAULT_EXCLUDED_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
_BUTTON_NON_ACTION_FIELDS = frozenset({"text", "icon_custom_emoji_id", "style"})
_COMMAND_RE = re.compile(r"[a-z0-9_]{1,32}")
_LANGUAGE_CODE_RE = re.compile(r"[a-z]{2}")
_INT_RE = re.compile(r"-?\d+")
_DISCRIMINATOR_RE = re.compile(r'(?:always|must be) "?([A-Za-z_]+)"?')


# --------------------------------------------------------------------------------------------
# Spec loading (once per process, lazily)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    types: tuple[str, ...]
    required: bool
    kind: str  # str | int | int_or_str | bool | float | file | json


@dataclass(frozen=True, slots=True)
class _MethodSpec:
    name: str
    fields: dict[str, _FieldSpec]
    required: tuple[str, ...]
    returns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Spec:
    version: str
    methods: dict[str, _MethodSpec]  # keyed by lower-case method name
    types: dict[str, JSONDict]


def _field_kind(types: tuple[str, ...]) -> str:
    kinds = set(types)
    if "InputFile" in kinds:
        return "file"
    if kinds == {"String"}:
        return "str"
    if kinds == {"Integer"}:
        return "int"
    if kinds == {"Integer", "String"}:
        return "int_or_str"
    if kinds == {"Boolean"}:
        return "bool"
    if kinds <= {"Float", "Integer"}:
        return "float"
    return "json"


@functools.cache
def _spec() -> _Spec:
    raw = json.loads(SPEC_PATH.read_text("utf-8"))
    methods: dict[str, _MethodSpec] = {}
    for name, mdef in raw["methods"].items():
        fields = {
            f["name"]: _FieldSpec(f["name"], tuple(f["types"]), bool(f["required"]), _field_kind(tuple(f["types"])))
            for f in mdef.get("fields", [])
        }
        required = tuple(n for n, f in fields.items() if f.required)
        methods[name.lower()] = _MethodSpec(name, fields, required, tuple(mdef.get("returns", [])))
    return _Spec(str(raw["version"]), methods, dict(raw["types"]))


def spec_version() -> str:
    """Return the Bot API version string of the bundled spec (e.g. ``"Bot API 10.1"``)."""
    return _spec().version


def spec_return_type(method: str) -> str:
    """Return the spec return type of a method (e.g. ``"Message"``, ``"Array of Update"``)."""
    spec = _spec().methods.get(method.lower())
    if spec is None:
        raise KeyError(method)
    return " | ".join(spec.returns)


def _canonical_method(method: str) -> str:
    spec = _spec().methods.get(method.lower())
    return spec.name if spec is not None else method


@functools.cache
def _discriminators(type_name: str) -> tuple[tuple[str, str], ...]:
    tdef = _spec().types.get(type_name, {})
    out = []
    for f in tdef.get("fields", []):
        if f["required"] and f["types"] == ["String"]:
            m = _DISCRIMINATOR_RE.search(f["description"])
            if m:
                out.append((f["name"], m.group(1)))
    return tuple(out)


def _check_value(types: Iterable[str], value: Any, path: str) -> list[str]:
    best: list[str] | None = None
    for tname in types:
        if tname.startswith("Array of "):
            if not isinstance(value, list):
                continue
            inner = tname.removeprefix("Array of ")
            problems = [p for i, item in enumerate(value) for p in _check_value([inner], item, f"{path}[{i}]")]
        elif tname in _spec().types:
            problems = missing_required_fields(tname, value, path)
        else:
            return []  # primitive types are not checked further
        if not problems:
            return []
        if best is None or len(problems) < len(best):
            best = problems
    return best or []


_TG_USER = re.compile(r"tg://user\?id=(\d{1,20})")


def _check_force_reply(markup: JSONDict) -> None:
    """A ForceReply as the spec describes it: force_reply is True; the placeholder 1-64 characters; selective a
    Boolean; no field the type does not have."""
    known = {f["name"]: f for f in _spec().types["ForceReply"]["fields"]}
    unknown = sorted(set(markup) - set(known))
    if unknown:
        raise _ApiError(400, f"Bad Request: can't parse reply keyboard markup JSON object: unknown field {unknown[0]}")
    if markup.get("force_reply") is not True:
        raise _ApiError(400, 'Bad Request: field "force_reply" of the ForceReply must be True')
    for name, spec_field in known.items():
        if name in markup and spec_field["types"] == ["Boolean"] and not isinstance(markup[name], bool):
            raise _ApiError(400, f'Bad Request: field "{name}" of the ForceReply must be of type Boolean')
    if "input_field_placeholder" in markup:
        placeholder = markup["input_field_placeholder"]
        if not isinstance(placeholder, str) or not 1 <= len(placeholder) <= 64:
            raise _ApiError(400, "Bad Request: input field placeholder must be 1-64 characters long")


def missing_required_fields(type_name: str, obj: Any, path: str = "") -> list[str]:
    """List the paths of required spec fields missing in ``obj`` (recursively); empty means valid."""
    types = _spec().types
    tdef = types.get(type_name)
    if tdef is None:
        return []
    subtypes = [s for s in tdef.get("subtypes", []) if s in types]
    if subtypes:
        if isinstance(obj, dict):
            for sub in subtypes:
                disc = _discriminators(sub)
                if disc and all(obj.get(k) == v for k, v in disc):
                    return missing_required_fields(sub, obj, path)
        return _check_value(subtypes, obj, path)
    if not isinstance(obj, dict):
        return [f"{path or type_name} (expected {type_name} object)"]
    missing: list[str] = []
    for f in tdef.get("fields", []):
        name = f["name"]
        where = f"{path}.{name}" if path else name
        if name not in obj:
            if f["required"]:
                missing.append(where)
            continue
        missing.extend(_check_value(f["types"], obj[name], where))
    return missing


_LENGTH_RE = re.compile(r"\b(\d+)-(\d+) (bytes|characters)\b", re.IGNORECASE)
# Texts whose length counts after entity parsing: checked by _parse_text, not against their raw markup.
_PARSED_TEXTS = frozenset({"text", "message_text", "caption"})
_PRIMITIVES: dict[str, Callable[[Any], bool]] = {
    "String": lambda v: isinstance(v, str),
    "Integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "Float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "Boolean": lambda v: isinstance(v, bool),
    "True": lambda v: v is True,
}


def spec_problems(type_name: str, obj: Any, path: str = "") -> list[str]:
    """Everything in ``obj`` the spec of ``type_name`` refuses: missing required fields, values of the wrong type,
    strings outside the lengths the field's description states ("1-64 Bytes", "1-4096 characters"), recursively;
    empty means valid. A union type (InlineQueryResult) is checked as the subtype its ``type`` names."""
    types = _spec().types
    tdef = types.get(type_name)
    if tdef is None:
        return []
    subtypes = [s for s in tdef.get("subtypes", []) if s in types]
    if subtypes:
        named = [s for s in subtypes if isinstance(obj, dict) and _discriminators(s)
                 and all(obj.get(k) == v for k, v in _discriminators(s))]
        # Subtypes told apart by their fields alone (InputMessageContent): the closest one decides.
        named = named or [s for s in subtypes if not _discriminators(s)]
        if not named:
            named_type = obj.get("type") if isinstance(obj, dict) else obj
            return [f"{path or type_name}: not any {type_name} (type {named_type!r})"]
        return min((spec_problems(s, obj, path) for s in named), key=len)
    if not isinstance(obj, dict):
        return [f"{path or type_name}: expected a {type_name} object, got {type(obj).__name__}"]
    problems: list[str] = []
    for f in tdef.get("fields", []):
        name = f["name"]
        where = f"{path}.{name}" if path else name
        if name not in obj:
            if f["required"]:
                problems.append(f"{where}: required")
            continue
        problems += _field_problems(f, obj[name], where)
    return problems


def _field_problems(fdef: JSONDict, value: Any, where: str) -> list[str]:
    options = [_value_problems(t, value, where) for t in fdef["types"]]
    problems = min(options, key=len) if options else []
    if problems or not isinstance(value, str) or fdef["name"] in _PARSED_TEXTS:
        return problems
    length = _LENGTH_RE.search(fdef["description"])
    if length:
        low, high, unit = int(length.group(1)), int(length.group(2)), length.group(3).lower()
        size = len(value.encode("utf-8")) if unit == "bytes" else _utf16_len(value)
        if not low <= size <= high:
            problems.append(f"{where}: {size} {unit}, must be {low}-{high}")
    return problems


def _value_problems(type_name: str, value: Any, where: str) -> list[str]:
    if type_name.startswith("Array of "):
        if not isinstance(value, list):
            return [f"{where}: expected an array"]
        inner = type_name.removeprefix("Array of ")
        return [p for i, item in enumerate(value) for p in _value_problems(inner, item, f"{where}[{i}]")]
    check = _PRIMITIVES.get(type_name)
    if check is not None:
        return [] if check(value) else [f"{where}: expected {type_name}, got {type(value).__name__}"]
    if type_name in _spec().types:
        return spec_problems(type_name, value, where)
    return []  # InputFile and the like: not checked here


def _default_value(type_name: str, depth: int = 0) -> Any:
    if type_name.startswith("Array of "):
        return []
    primitive = {"Boolean": False, "Integer": 0, "String": "", "Float": 0.0}
    if type_name in primitive:
        return primitive[type_name]
    tdef = _spec().types.get(type_name)
    if tdef is None or depth > 4 or tdef.get("subtypes"):
        return {}
    return {f["name"]: _default_value(f["types"][0], depth + 1) for f in tdef.get("fields", []) if f["required"]}


def _complete(type_name: str, obj: JSONDict) -> JSONDict:
    """Add neutral defaults for required fields of ``type_name`` that ``obj`` lacks."""
    for f in _spec().types[type_name].get("fields", []):
        if f["required"] and f["name"] not in obj:
            obj[f["name"]] = _default_value(f["types"][0])
    return obj


@functools.cache
def _admin_template() -> tuple[tuple[str, Any], ...]:
    obj: JSONDict = {"status": "administrator", "can_be_edited": False, "is_anonymous": False}
    for f in _spec().types["ChatMemberAdministrator"]["fields"]:
        if f["required"] and f["types"] == ["Boolean"] and f["name"] not in obj:
            obj[f["name"]] = f["name"].startswith("can_") and f["name"] != "can_promote_members"
    return tuple(obj.items())


@functools.cache
def _button_actions() -> frozenset[str]:
    fields = _spec().types["InlineKeyboardButton"]["fields"]
    return frozenset(f["name"] for f in fields if f["name"] not in _BUTTON_NON_ACTION_FIELDS)


@functools.cache
def _getme_only_flags() -> tuple[str, ...]:
    return tuple(
        f["name"]
        for f in _spec().types["User"]["fields"]
        if f["types"] == ["Boolean"] and "Returned only in getMe" in f["description"]
    )


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --------------------------------------------------------------------------------------------
# Telegram-flavoured HTML parsing
# --------------------------------------------------------------------------------------------

_ALLOWED_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_AMP_RE = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,7})|([a-zA-Z]+));?")


class _EntityParseError(Exception):
    """Raised by the HTML parser with a Telegram-style description."""


@dataclass
class _OpenTag:
    tag: str
    offset: int
    attrs: dict[str, str]
    language: str | None = None


class _TelegramHTMLParser(HTMLParser):
    """Parse Telegram's HTML subset into plain text plus MessageEntity dicts."""

    def __init__(self, source: str, *, strict_ampersand: bool) -> None:
        super().__init__(convert_charrefs=False)
        self._source = source
        self._strict = strict_ampersand
        self._line_starts = [0]
        for i, ch in enumerate(source):
            if ch == "\n":
                self._line_starts.append(i + 1)
        self._out: list[str] = []
        self._utf16 = 0
        self._stack: list[_OpenTag] = []
        self.entities: list[JSONDict] = []

    @property
    def text(self) -> str:
        return "".join(self._out)

    def _char_index(self) -> int:
        line, col = self.getpos()
        return self._line_starts[line - 1] + col

    def _byte_offset(self, extra_chars: int = 0) -> int:
        return len(self._source[: self._char_index() + extra_chars].encode("utf-8"))

    def _append(self, text: str) -> None:
        self._out.append(text)
        self._utf16 += _utf16_len(text)

    def _bare_ampersand(self, extra_chars: int) -> None:
        if self._strict:
            raise _EntityParseError(
                f"Character '&' at byte offset {self._byte_offset(extra_chars)} must be escaped as &amp; "
                "(FakeBotApi strict mode; the real server keeps it literally)"
            )
        self._append("&")

    def handle_data(self, data: str) -> None:
        """Append text, decoding entities the tokenizer left in the data."""
        lt = data.find("<")
        if lt >= 0:
            raise _EntityParseError(f'Unsupported start tag "" at byte offset {self._byte_offset(lt)}')
        pos = 0
        while True:
            amp = data.find("&", pos)
            if amp < 0:
                self._append(data[pos:])
                return
            self._append(data[pos:amp])
            m = _AMP_RE.match(data, amp)
            decoded = _decode_entity(m) if m else None
            if m is None or decoded is None:
                self._bare_ampersand(amp)
                pos = amp + 1
            else:
                self._append(decoded)
                pos = m.end()

    def handle_entityref(self, name: str) -> None:
        """Decode one of the four supported named entities."""
        if name in _NAMED_ENTITIES:
            self._append(_NAMED_ENTITIES[name])
            return
        self._bare_ampersand(0)
        idx = self._char_index() + 1 + len(name)
        self._append(name + (";" if self._source[idx : idx + 1] == ";" else ""))

    def handle_charref(self, name: str) -> None:
        """Decode a numeric character reference."""
        try:
            code = int(name[1:], 16) if name[:1] in ("x", "X") else int(name)
        except ValueError:
            code = -1
        if 0 < code < 0x110000 and not 0xD800 <= code <= 0xDFFF:
            self._append(chr(code))
        else:
            self._bare_ampersand(0)
            self._append(f"#{name};")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Open a supported formatting tag."""
        if tag not in _ALLOWED_TAGS:
            raise _EntityParseError(f'Unsupported start tag "{tag}" at byte offset {self._byte_offset()}')
        values = {k: (v or "") for k, v in attrs}
        problem = None
        if tag == "span" and values.get("class") != "tg-spoiler":
            problem = 'Tag "span" must have class "tg-spoiler"'
        elif tag == "a" and not values.get("href"):
            problem = 'Tag "a" must have a non-empty attribute "href"'
        elif tag == "tg-emoji" and not values.get("emoji-id"):
            problem = 'Tag "tg-emoji" must have attribute "emoji-id"'
        if problem:
            raise _EntityParseError(f"{problem} at byte offset {self._byte_offset()}")
        self._stack.append(_OpenTag(tag, self._utf16, values))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Reject self-closing tags such as ``<br/>``."""
        raise _EntityParseError(f'Unsupported start tag "{tag}/" at byte offset {self._byte_offset()}')

    def handle_endtag(self, tag: str) -> None:
        """Close the innermost open tag, emitting its entity."""
        if not self._stack:
            raise _EntityParseError(f"Unexpected end tag at byte offset {self._byte_offset()}")
        top = self._stack[-1]
        if top.tag != tag:
            raise _EntityParseError(
                f'Unmatched end tag at byte offset {self._byte_offset()}, expected "</{top.tag}>", found "</{tag}>"'
            )
        self._stack.pop()
        length = self._utf16 - top.offset
        klass = top.attrs.get("class", "")
        if tag == "code" and self._stack and self._stack[-1].tag == "pre" and klass.startswith("language-"):
            self._stack[-1].language = klass.removeprefix("language-")
            return
        if length <= 0:
            return
        entity: JSONDict = {"type": _ALLOWED_TAGS[tag], "offset": top.offset, "length": length}
        if tag == "a" and (mentioned := _TG_USER.fullmatch(top.attrs["href"])):
            # As Telegram does: a link to tg://user?id=N mentions that user (how a bot names someone without a
            # username, e.g. the person a selective ForceReply is meant for).
            entity["type"] = "text_mention"
            entity["user"] = {"id": int(mentioned.group(1)), "is_bot": False, "first_name": "User"}
        elif tag == "a":
            entity["url"] = top.attrs["href"]
        elif tag == "pre" and top.language:
            entity["language"] = top.language
        elif tag == "blockquote" and "expandable" in top.attrs:
            entity["type"] = "expandable_blockquote"
        elif tag == "tg-emoji":
            entity["custom_emoji_id"] = top.attrs["emoji-id"]
        self.entities.append(entity)

    def _reject_markup(self, kind: str) -> None:
        raise _EntityParseError(f'Unsupported start tag "{kind}" at byte offset {self._byte_offset()}')

    def handle_comment(self, data: str) -> None:
        """Reject HTML comments."""
        self._reject_markup("!--")

    def handle_decl(self, decl: str) -> None:
        """Reject declarations."""
        self._reject_markup("!")

    def handle_pi(self, data: str) -> None:
        """Reject processing instructions."""
        self._reject_markup("?")

    def unknown_decl(self, data: str) -> None:
        """Reject CDATA and other declarations."""
        self._reject_markup("![")

    def finish(self) -> tuple[str, list[JSONDict]]:
        """Flush the tokenizer and check that every tag was closed."""
        rest = self.rawdata  # incomplete trailing constructs ("&T", "<b"); close() would mangle them
        if rest:
            if rest.startswith("<"):
                raise _EntityParseError(f"Unclosed start tag at byte offset {self._byte_offset()}")
            self.rawdata = ""
            self.handle_data(rest)
        self.close()
        if self._stack:
            raise _EntityParseError(f'Can\'t find end tag corresponding to start tag "{self._stack[-1].tag}"')
        self.entities.sort(key=lambda e: (e["offset"], -e["length"]))
        return self.text, self.entities


def _decode_entity(m: re.Match[str]) -> str | None:
    dec, hexa, name = m.groups()
    if name is not None:
        return _NAMED_ENTITIES.get(name)
    code = int(dec) if dec is not None else int(hexa, 16)
    if 0 < code < 0x110000 and not 0xD800 <= code <= 0xDFFF:
        return chr(code)
    return None


def parse_html(text: str, *, strict_ampersand: bool = True) -> tuple[str, list[JSONDict]]:
    """Parse Telegram HTML; return (plain text, entities) or raise ValueError with the API description."""
    parser = _TelegramHTMLParser(text, strict_ampersand=strict_ampersand)
    try:
        parser.feed(text)
        return parser.finish()
    except _EntityParseError as exc:
        raise ValueError(f"Bad Request: can't parse entities: {exc}") from None


# --------------------------------------------------------------------------------------------
# Records and rules
# --------------------------------------------------------------------------------------------


@dataclass
class UploadedFile:
    """A multipart file part received by the fake server."""

    filename: str | None
    content_type: str | None
    content: bytes


@dataclass
class RecordedRequest:
    """One HTTP request received by the fake server (status 0 while still being answered)."""

    method: str
    params: dict[str, Any]
    at: float
    status: int = 0
    unknown_params: list[str] = field(default_factory=list)
    result: Any = None
    error: str | None = None
    uploads: dict[str, UploadedFile] = field(default_factory=dict)
    http_method: str = "POST"

    @property
    def ok(self) -> bool:
        """Whether the request was answered with ``ok: true``."""
        return self.status == 200


@dataclass
class _Fault:
    method: str | None
    chat_id: ChatKey | None
    error_code: int
    description: str
    parameters: JSONDict | None
    times: int | None
    delay: float


@dataclass
class _Waiter:
    method: str
    chat_id: ChatKey | None
    count: int
    event: asyncio.Event


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    content: bytes
    file_name: str | None
    mime_type: str | None
    size_known: bool = True  # False: neither the Document nor getFile report file_size, and the download is chunked


class _ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def _chat_key(value: Any) -> ChatKey | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value) if _INT_RE.fullmatch(value) else value
    return None


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1"):
        return True
    if text in ("false", "0", ""):
        return False
    raise _ApiError(400, f'Bad Request: field "{name}" must be of type Boolean')


@dataclass
class _Call:
    rec: RecordedRequest
    request: web.Request


_Handler = Callable[[JSONDict, _Call], Awaitable[Any]]


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class FakeBotApi:
    """In-process fake Telegram Bot API server for tests and benchmarks."""

    def __init__(
        self,
        *,
        token: str = "123456:TEST-TOKEN",
        bot_id: int = 123456,
        bot_username: str = "hk_ai_pulse_bot",
        latency: float = 0.0,
        seed: int = 0,
    ) -> None:
        """Configure the fake; call :meth:`start` (or use ``async with``) to serve."""
        self.token = token
        self.bot_id = bot_id
        self.bot_username = bot_username
        self.bot_first_name = "HK AI Pulse"
        self.latency = latency
        self.seed = seed
        #: When True (default) a bare ``&`` in HTML text is rejected (the real server keeps it).
        self.strict_html_ampersand = True
        self.requests: list[RecordedRequest] = []
        self._rng = random.Random(seed)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._closing = False
        # recorded successes
        self._ok_calls: dict[str, list[JSONDict]] = {}
        self._ok_counts: dict[tuple[str, ChatKey | None], int] = {}
        self._waiters: list[_Waiter] = []
        self._send_times: list[float] = []
        # faults
        self._faults: list[_Fault] = []
        self._rate_429 = 0.0
        self._rate_500 = 0.0
        self._retry_after = 1
        # state
        self._chats: dict[ChatKey, JSONDict] = {}
        self._users: dict[int, JSONDict] = {}
        self._messages: dict[tuple[ChatKey, int], JSONDict] = {}
        self._last_message_id: dict[ChatKey, int] = {}
        self._admins: dict[ChatKey, list[tuple[int, str]]] = {}
        self._files: dict[str, _StoredFile] = {}
        self._files_by_path: dict[str, _StoredFile] = {}
        self._commands: dict[tuple[str, str], list[JSONDict]] = {}
        self._menu_buttons: dict[ChatKey | None, JSONDict] = {}
        self._callback_ids: set[str] = set()
        #: inline query id -> the answer's params, None while unanswered (an id is answerable once)
        self._inline_answers: dict[str, JSONDict | None] = {}
        self._counter = 0
        # updates
        self._updates: deque[JSONDict] = deque()
        self._next_update_id = 10_001
        self._updates_event = asyncio.Event()
        self._poll_generation = 0
        self._allowed_updates: list[str] | None = None
        self._webhook: JSONDict | None = None
        self._handlers: dict[str, _Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "sendDocument": self._send_document,
            "getFile": self._get_file,
            "answerCallbackQuery": self._answer_callback_query,
            "answerInlineQuery": self._answer_inline_query,
            "sendChatAction": self._send_chat_action,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "setChatMenuButton": self._set_chat_menu_button,
            "getChatMenuButton": self._get_chat_menu_button,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "getChat": self._get_chat,
            "getChatAdministrators": self._get_chat_administrators,
            "getChatMember": self._get_chat_member,
        }

    # ----------------------------------------------------------------- lifecycle / URLs

    async def start(self) -> None:
        """Bind to 127.0.0.1 on a random free port and start serving."""
        _spec()  # load the spec before the first request
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle_api)
        app.router.add_get("/file/bot{token}/{file_path:.+}", self._handle_file)
        app.router.add_route("*", "/{tail:.*}", self._handle_not_found)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        self._runner = runner
        self._closing = False
        address = runner.addresses[0]
        self._port = int(address[1])

    async def stop(self) -> None:
        """Stop serving (wakes pending long polls) and release the socket."""
        self._closing = True
        self._wake_pollers()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        """Start the server."""
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop the server."""
        await self.stop()

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        if self._port is None:
            raise RuntimeError("FakeBotApi is not started")
        return self._port

    @property
    def api_url(self) -> str:
        """Root URL of the server, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Value for ``base_url`` of PTB (it appends the token)."""
        return f"{self.api_url}/bot"

    @property
    def base_file_url(self) -> str:
        """Value for ``base_file_url`` of PTB (it appends the token)."""
        return f"{self.api_url}/file/bot"

    # ----------------------------------------------------------------- inspection

    def calls(self, method: str) -> list[dict[str, Any]]:
        """Params of successful calls of ``method`` (case-insensitive), in completion order."""
        return list(self._ok_calls.get(_canonical_method(method), []))

    def sent_messages(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        """Params of successful sendMessage calls, optionally only those for ``chat_id``."""
        return self._filter_chat(self._ok_calls.get("sendMessage", []), chat_id)

    @staticmethod
    def _filter_chat(calls: list[JSONDict], chat_id: ChatKey | None) -> list[JSONDict]:
        if chat_id is None:
            return list(calls)
        return [c for c in calls if _chat_key(c.get("chat_id")) == chat_id]

    async def wait_for(
        self,
        method: str,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - part of the requested public API
        chat_id: int | None = None,
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` successful calls of ``method`` happened; return their params."""
        canonical = _canonical_method(method)
        if self._ok_counts.get((canonical, chat_id), 0) < count:
            waiter = _Waiter(canonical, chat_id, count, asyncio.Event())
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(timeout):
                    await waiter.event.wait()
            except TimeoutError:
                raise AssertionError(self._wait_failure(canonical, count, timeout, chat_id)) from None
            finally:
                self._waiters.remove(waiter)
        return self._filter_chat(self._ok_calls.get(canonical, []), chat_id)

    def _wait_failure(self, method: str, count: int, timeout: float, chat_id: ChatKey | None) -> str:
        got = self._ok_counts.get((method, chat_id), 0)
        where = f" for chat_id={chat_id}" if chat_id is not None else ""
        failed = [r for r in self.requests if r.method == method and not r.ok][-5:]
        summary: dict[str, int] = {}
        for r in self.requests:
            summary[f"{r.method}:{r.status}"] = summary.get(f"{r.method}:{r.status}", 0) + 1
        lines = [f"timed out after {timeout}s waiting for {count} ok {method} call(s){where}; got {got}."]
        if failed:
            lines.append("recent failed attempts: " + "; ".join(f"{r.status} {r.error}" for r in failed))
        lines.append(f"requests seen (method:status -> n): {summary or 'none'}")
        return "\n".join(lines)

    def send_timestamps(self) -> list[float]:
        """Monotonic times at which successful sendMessage answers were produced."""
        return list(self._send_times)

    def max_rate(self, window: float = 1.0) -> int:
        """Maximum number of successful sendMessage answers within any sliding window of ``window`` s."""
        return _busiest_window(self._send_times, window)

    def max_arrival_rate(self, window: float = 1.0) -> int:
        """Maximum number of sendMessage requests that arrived (and succeeded) within any ``window`` s: what
        Telegram's own rate limit counts, before this server's latency and scheduling shift the answers."""
        return _busiest_window([r.at for r in self.requests if r.method == "sendMessage" and r.ok], window)


    def stored_message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """The current state of a message known to the fake (sent by the bot or pushed), if any."""
        msg = self._messages.get((chat_id, message_id))
        return copy.deepcopy(msg) if msg is not None else None

    @property
    def implemented_methods(self) -> list[str]:
        """Bot API methods with a dedicated implementation (other Boolean methods just answer true)."""
        return sorted(self._handlers)

    @property
    def pending_updates(self) -> list[dict[str, Any]]:
        """Updates queued and not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    # ----------------------------------------------------------------- fault injection

    def add_fault(
        self,
        *,
        method: str | None = "sendMessage",
        chat_id: int | None = None,
        error_code: int,
        description: str,
        parameters: dict[str, Any] | None = None,
        times: int | None = None,
        delay: float = 0.0,
    ) -> None:
        """Make matching requests fail with the given error (``times=None``: forever); error_code 0 = delay only."""
        if times is not None and times < 1:
            raise ValueError("times must be >= 1 (or None for forever)")
        canonical = None if method is None else _canonical_method(method)
        if canonical is not None and canonical.lower() not in _spec().methods:
            raise ValueError(f"unknown Bot API method {method!r}")
        self._faults.append(_Fault(canonical, chat_id, error_code, description, parameters, times, delay))

    def add_delay(
        self, *, method: str | None = "sendMessage", chat_id: int | None = None, delay: float, times: int | None = None
    ) -> None:
        """Delay matching requests by ``delay`` seconds, then answer normally."""
        self.add_fault(method=method, chat_id=chat_id, error_code=0, description="", times=times, delay=delay)

    def clear_faults(self) -> None:
        """Remove all fault rules and random faults."""
        self._faults.clear()
        self._rate_429 = self._rate_500 = 0.0

    def migrate_chat(self, chat_id: int, new_chat_id: int) -> None:
        """Simulate a group upgraded to a supergroup: calls for ``chat_id`` answer migrate_to_chat_id."""
        old = self._chats.get(chat_id, {})
        self.register_chat(new_chat_id, "supergroup", title=old.get("title"))
        self.add_fault(
            method=None,
            chat_id=chat_id,
            error_code=400,
            description="Bad Request: group chat was upgraded to a supergroup chat",
            parameters={"migrate_to_chat_id": new_chat_id},
        )

    def block_chat(self, chat_id: int) -> None:
        """Simulate a user who blocked the bot: sends to ``chat_id`` answer 403."""
        self.add_fault(
            method=None, chat_id=chat_id, error_code=403, description="Forbidden: bot was blocked by the user"
        )

    def set_random_faults(self, *, rate_429: float = 0.0, retry_after: int = 1, rate_500: float = 0.0) -> None:
        """Randomly fail sendMessage with 429/500 at the given rates (deterministic RNG from ``seed``)."""
        self._rate_429 = rate_429
        self._rate_500 = rate_500
        self._retry_after = retry_after

    async def _apply_faults(self, method: str, params: JSONDict) -> None:
        chat = _chat_key(params.get("chat_id"))
        for fault in self._faults:
            if fault.method is not None and fault.method != method:
                continue
            if fault.chat_id is not None and fault.chat_id != chat:
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.error_code:
                raise _ApiError(fault.error_code, fault.description, copy.deepcopy(fault.parameters))
            break
        if method == "sendMessage" and (self._rate_429 > 0 or self._rate_500 > 0):
            roll = self._rng.random()
            if roll < self._rate_429:
                raise _ApiError(
                    429,
                    f"Too Many Requests: retry after {self._retry_after}",
                    {"retry_after": self._retry_after},
                )
            if roll < self._rate_429 + self._rate_500:
                raise _ApiError(500, "Internal Server Error")

    # ----------------------------------------------------------------- world setup

    def register_chat(self, chat_id: int, chat_type: str, title: str | None = None, is_forum: bool = False) -> None:
        """Declare a chat (``private``, ``group``, ``supergroup`` or ``channel``)."""
        if chat_type not in ("private", "group", "supergroup", "channel"):
            raise ValueError(f"bad chat type {chat_type!r}")
        chat: JSONDict = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            user = self._users.get(chat_id)
            chat["first_name"] = user["first_name"] if user else (title or f"User{chat_id}")
        else:
            chat["title"] = title or f"Chat {chat_id}"
        if is_forum:
            chat["is_forum"] = True
        self._chats[chat_id] = chat

    def set_chat_administrators(self, chat_id: int, user_ids: list[int], *, owner_id: int | None = None) -> None:
        """Set the administrators (and optionally the owner) returned by getChatAdministrators."""
        members: list[tuple[int, str]] = []
        if owner_id is not None:
            members.append((owner_id, "creator"))
        members.extend((uid, "administrator") for uid in user_ids if uid != owner_id)
        self._admins[chat_id] = members

    def _chat(self, chat_id: ChatKey) -> JSONDict:
        chat = self._chats.get(chat_id)
        if chat is None:
            if not isinstance(chat_id, int) or chat_id == 0:
                raise _ApiError(400, "Bad Request: chat not found")
            self.register_chat(chat_id, "private" if chat_id > 0 else "supergroup")
            chat = self._chats[chat_id]
        return chat

    def _chat_param(self, params: JSONDict) -> JSONDict:
        key = _chat_key(params.get("chat_id"))
        if key is None:
            raise _ApiError(400, "Bad Request: chat not found")
        return self._chat(key)

    def _bot_user(self) -> JSONDict:
        return {"id": self.bot_id, "is_bot": True, "first_name": self.bot_first_name, "username": self.bot_username}

    def _user(self, user_id: int) -> JSONDict:
        if user_id == self.bot_id:
            return self._bot_user()
        known = self._users.get(user_id)
        return dict(known) if known else {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}

    def _next_id(self) -> int:
        self._counter += 1
        return self._counter

    def _next_message_id(self, chat_id: ChatKey) -> int:
        mid = self._last_message_id.get(chat_id, 0) + 1
        self._last_message_id[chat_id] = mid
        return mid

    # ----------------------------------------------------------------- update builders

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue an Update for getUpdates (assigning update_id if absent) and wake long polls."""
        stored = copy.deepcopy(update)
        if "update_id" in stored:
            update_id = int(stored["update_id"])
            self._next_update_id = max(self._next_update_id, update_id + 1)
        else:
            update_id = self._next_update_id
            self._next_update_id += 1
            stored = {"update_id": update_id, **stored}
        self._remember(stored)
        if self._updates and self._updates[-1]["update_id"] > update_id:
            items = sorted([*self._updates, stored], key=lambda u: int(u["update_id"]))
            self._updates = deque(items)
        else:
            self._updates.append(stored)
        self._wake_pollers()
        return update_id

    def _wake_pollers(self) -> None:
        self._updates_event.set()
        self._updates_event = asyncio.Event()

    def _remember(self, update: JSONDict) -> None:
        for key, value in update.items():
            if not isinstance(value, dict):
                continue
            if key == "callback_query":
                self._callback_ids.add(str(value.get("id")))
                self._remember_user(value.get("from"))
                continue
            if key == "inline_query":
                self._inline_answers.setdefault(str(value.get("id")), None)
                self._remember_user(value.get("from"))
                continue
            if "message_id" in value and isinstance(value.get("chat"), dict):
                self._remember_message(value, store=not key.startswith("edited_"))

    def _remember_user(self, user: Any) -> None:
        if isinstance(user, dict) and isinstance(user.get("id"), int) and not user.get("is_bot"):
            self._users[user["id"]] = dict(user)

    def _remember_message(self, msg: JSONDict, *, store: bool) -> None:
        chat = msg["chat"]
        chat_id = chat.get("id")
        if not isinstance(chat_id, int):
            return
        self._chats[chat_id] = {**self._chats.get(chat_id, {}), **chat}
        self._remember_user(msg.get("from"))
        mid = msg.get("message_id")
        if isinstance(mid, int):
            self._last_message_id[chat_id] = max(self._last_message_id.get(chat_id, 0), mid)
            if store:
                self._messages[(chat_id, mid)] = copy.deepcopy(msg)

    def _incoming_chat(
        self, chat_id: int, chat_type: str | None, title: str | None, first_name: str, *, forum: bool = False
    ) -> JSONDict:
        known = self._chats.get(chat_id) or {}
        ctype = chat_type or known.get("type") or ("private" if chat_id > 0 else "supergroup")
        chat: JSONDict = {"id": chat_id, "type": ctype}
        if ctype == "private":
            chat["first_name"] = first_name
        else:
            chat["title"] = title or known.get("title") or f"Chat {chat_id}"
            if known.get("is_forum") or (forum and ctype == "supergroup"):
                chat["is_forum"] = True
        return chat

    def _incoming_message(
        self,
        *,
        chat_id: int,
        user_id: int,
        chat_type: str | None,
        title: str | None,
        thread_id: int | None,
        first_name: str,
        language_code: str = "en",
    ) -> JSONDict:
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code}
        chat = self._incoming_chat(chat_id, chat_type, title, first_name, forum=thread_id is not None)
        msg: JSONDict = {
            "message_id": self._next_message_id(chat_id),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
        }
        if thread_id is not None:
            msg["message_thread_id"] = thread_id
            msg["is_topic_message"] = True
        return msg

    def command_update(
        self,
        text: str,
        *,
        chat_id: int = 1001,
        user_id: int = 1001,
        chat_type: str | None = None,
        title: str | None = None,
        thread_id: int | None = None,
        first_name: str = "Ada",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Build a message Update with a bot_command entity covering the leading ``/command[@bot]``."""
        if not text.startswith("/"):
            raise ValueError("a command must start with '/'")
        command = text.split(maxsplit=1)[0]
        update = self.text_update(text, chat_id=chat_id, user_id=user_id, chat_type=chat_type, title=title,
                                  thread_id=thread_id, first_name=first_name, language_code=language_code)
        update["message"]["entities"] = [{"type": "bot_command", "offset": 0, "length": _utf16_len(command)}]
        return update

    def text_update(
        self,
        text: str,
        *,
        chat_id: int = 1001,
        user_id: int = 1001,
        chat_type: str | None = None,
        title: str | None = None,
        thread_id: int | None = None,
        first_name: str = "Ada",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Build a plain text message Update (no entities); ``language_code`` is the sender's (``zh-hk``)."""
        msg = self._incoming_message(
            chat_id=chat_id,
            user_id=user_id,
            chat_type=chat_type,
            title=title,
            thread_id=thread_id,
            first_name=first_name,
            language_code=language_code,
        )
        msg["text"] = text
        return {"message": msg}

    def reply_update(
        self,
        text: str,
        *,
        reply_to_message_id: int,
        chat_id: int = 1001,
        user_id: int = 1001,
        chat_type: str | None = None,
        title: str | None = None,
        first_name: str = "Ada",
    ) -> dict[str, Any]:
        """Build a text message Update that replies to message ``reply_to_message_id`` of the chat (as sent)."""
        update = self.text_update(text, chat_id=chat_id, user_id=user_id, chat_type=chat_type, title=title,
                                  first_name=first_name)
        replied = self._messages.get((chat_id, reply_to_message_id))
        if replied is None:
            raise ValueError(f"no message {reply_to_message_id} in chat {chat_id} to reply to")
        update["message"]["reply_to_message"] = copy.deepcopy(replied)
        return update

    def callback_update(
        self,
        data: str,
        *,
        chat_id: int = 1001,
        user_id: int = 1001,
        message_id: int,
        chat_type: str | None = None,
        first_name: str = "Ada",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Build a callback_query Update pressed on the bot's message ``message_id``."""
        message = self._messages.get((chat_id, message_id))
        if message is None or message.get("from", {}).get("id") != self.bot_id:
            message = {
                "message_id": message_id,
                "from": self._bot_user(),
                "chat": self._incoming_chat(chat_id, chat_type, None, first_name),
                "date": int(time.time()),
                "text": "(message)",
            }
        query_id = f"{self.bot_id}{self._next_id():010d}"
        self._callback_ids.add(query_id)  # answerable even if fed to PTB directly instead of pushed
        return {
            "callback_query": {
                "id": query_id,
                "from": {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code},
                "message": copy.deepcopy(message),
                "chat_instance": str(-((abs(chat_id) * 7919 + self.bot_id) % 10**18)),
                "data": data,
            }
        }

    def inline_query_update(
        self,
        query: str,
        *,
        offset: str = "",
        user_id: int = 1001,
        language_code: str | None = "en",
        chat_type: str | None = "sender",
        first_name: str = "Ada",
    ) -> dict[str, Any]:
        """Build an inline_query Update (`@bot <query>` typed in some chat); its id is answerable once."""
        user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if language_code is not None:
            user["language_code"] = language_code
        query_id = f"{self.bot_id}{self._next_id():010d}"
        self._inline_answers[query_id] = None  # answerable even if fed to PTB directly instead of pushed
        inline: JSONDict = {"id": query_id, "from": user, "query": query, "offset": offset}
        if chat_type is not None:
            inline["chat_type"] = chat_type
        return {"inline_query": inline}

    def inline_answer(self, query_id: str) -> dict[str, Any] | None:
        """The accepted answerInlineQuery params for one query id (None while unanswered)."""
        return self._inline_answers.get(query_id)

    def my_chat_member_update(
        self,
        new_status: str,
        *,
        chat_id: int,
        old_status: str | None = None,
        chat_type: str | None = None,
        title: str | None = None,
        user_id: int = 1001,
        first_name: str = "Ada",
        language_code: str = "en",
    ) -> dict[str, Any]:
        """Build the my_chat_member Update Telegram sends when the bot's own status in a chat changes.

        ``new_status``: ``member``/``administrator`` (added or promoted), ``left`` (removed from a group),
        ``kicked`` (banned from a group or channel, or blocked by the user of a private chat), ``restricted``.
        ``old_status`` defaults to the opposite: ``left`` when added, ``member`` (``administrator`` in a channel)
        when removed. ``user_id`` is who made the change.
        """
        statuses = ("member", "administrator", "left", "kicked", "restricted")
        if new_status not in statuses or (old_status is not None and old_status not in statuses):
            raise ValueError(f"bad status {new_status!r} / {old_status!r}")
        chat = self._incoming_chat(chat_id, chat_type, title, first_name)
        if old_status is None:
            present = new_status in ("member", "administrator", "restricted")
            old_status = "left" if present else ("administrator" if chat["type"] == "channel" else "member")
        self._chats[chat_id] = {**self._chats.get(chat_id, {}), **chat}
        return {
            "my_chat_member": {
                "chat": chat,
                "from": {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": language_code},
                "date": int(time.time()),
                "old_chat_member": self._member(chat, self.bot_id, old_status),
                "new_chat_member": self._member(chat, self.bot_id, new_status),
            }
        }

    def document_update(
        self,
        file_name: str,
        content: bytes,
        *,
        chat_id: int = 1001,
        user_id: int = 1001,
        mime_type: str = "application/x-yaml",
        caption: str | None = None,
        chat_type: str | None = None,
        first_name: str = "Ada",
        size_known: bool = True,
    ) -> dict[str, Any]:
        """Register a downloadable file and build a message Update carrying it as ``document``.

        ``size_known=False``: the document and getFile carry no ``file_size`` (optional in the Bot API) and the
        download comes chunked, without Content-Length.
        """
        stored = self._store_file(content, file_name, mime_type, "documents")
        stored.size_known = size_known
        msg = self._incoming_message(
            chat_id=chat_id,
            user_id=user_id,
            chat_type=chat_type,
            title=None,
            thread_id=None,
            first_name=first_name,
        )
        msg["document"] = self._document_obj(stored)
        if caption is not None:
            msg["caption"] = caption
        return {"message": msg}

    def _store_file(self, content: bytes, file_name: str | None, mime_type: str | None, folder: str) -> _StoredFile:
        n = self._next_id()
        ext = file_name.rsplit(".", 1)[-1] if file_name and "." in file_name else "bin"
        stored = _StoredFile(
            file_id=f"BQACAgUAAxkBAAI{n:08X}{self.seed:04X}",
            file_unique_id=f"AgAD{n:08X}",
            file_path=f"{folder}/file_{n}.{ext}",
            content=content,
            file_name=file_name,
            mime_type=mime_type,
        )
        self._files[stored.file_id] = stored
        self._files_by_path[stored.file_path] = stored
        return stored

    @staticmethod
    def _document_obj(stored: _StoredFile) -> JSONDict:
        doc: JSONDict = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        if stored.file_name:
            doc["file_name"] = stored.file_name
        if stored.mime_type:
            doc["mime_type"] = stored.mime_type
        if stored.size_known:
            doc["file_size"] = len(stored.content)
        return doc

    # ----------------------------------------------------------------- HTTP plumbing

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        rec = RecordedRequest(
            method=request.match_info["method"], params={}, at=time.monotonic(), http_method=request.method
        )
        self.requests.append(rec)
        try:
            result = await self._process(request, rec)
        except _ApiError as exc:
            return self._error_response(rec, exc)
        except asyncio.CancelledError:
            rec.status, rec.error = 499, "client disconnected / server stopped"
            raise
        except Exception as exc:  # a bug in the fake: answer like Telegram's 500 but say why
            return self._error_response(rec, _ApiError(500, f"Internal Server Error: FakeBotApi bug: {exc!r}"))
        return self._ok_response(rec, result)

    async def _process(self, request: web.Request, rec: RecordedRequest) -> Any:
        if request.match_info["token"] != self.token:
            raise _ApiError(401, "Unauthorized")
        spec = _spec().methods.get(rec.method.lower())
        if spec is None:
            raise _ApiError(404, "Not Found")
        rec.method = spec.name
        rec.params, rec.unknown_params, rec.uploads = await self._read_params(request, spec)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        await self._apply_faults(spec.name, rec.params)
        for name in spec.required:
            if rec.params.get(name) in (None, ""):
                if name == "text":
                    raise _ApiError(400, "Bad Request: message text is empty")
                raise _ApiError(400, f'Bad Request: parameter "{name}" is required')
        handler = self._handlers.get(spec.name)
        if handler is not None:
            return await handler(rec.params, _Call(rec, request))
        if spec.returns == ("Boolean",):
            return True
        raise _ApiError(400, "Bad Request: method not implemented in FakeBotApi")

    def _ok_response(self, rec: RecordedRequest, result: Any) -> web.Response:
        rec.status = 200
        rec.result = result
        method = rec.method
        self._ok_calls.setdefault(method, []).append(rec.params)
        chat = _chat_key(rec.params.get("chat_id"))
        keys = [(method, None)] if chat is None else [(method, None), (method, chat)]
        for key in keys:
            self._ok_counts[key] = self._ok_counts.get(key, 0) + 1
        if method == "sendMessage":
            self._send_times.append(time.monotonic())
        for waiter in self._waiters:
            if waiter.method == method and self._ok_counts.get((method, waiter.chat_id), 0) >= waiter.count:
                waiter.event.set()
        body = json.dumps({"ok": True, "result": result}, ensure_ascii=False)
        return web.Response(body=body.encode("utf-8"), content_type="application/json")

    @staticmethod
    def _error_response(rec: RecordedRequest, exc: _ApiError) -> web.Response:
        rec.status = exc.code
        rec.error = exc.description
        payload: JSONDict = {"ok": False, "error_code": exc.code, "description": exc.description}
        if exc.parameters:
            payload["parameters"] = exc.parameters
        return web.Response(status=exc.code, body=json.dumps(payload).encode(), content_type="application/json")

    async def _handle_file(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["file_path"]
        rec = RecordedRequest(FILE_DOWNLOAD, {"file_path": path}, time.monotonic(), http_method=request.method)
        self.requests.append(rec)
        if request.match_info["token"] != self.token:
            return self._error_response(rec, _ApiError(401, "Unauthorized"))
        stored = self._files_by_path.get(path)
        if stored is None:
            return self._error_response(rec, _ApiError(404, "Not Found"))
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        rec.status = 200
        content_type = stored.mime_type or "application/octet-stream"
        if stored.size_known:
            return web.Response(body=stored.content, content_type=content_type)
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = 64 * 1024
        try:
            for start in range(0, len(stored.content), chunk):
                await response.write(stored.content[start:start + chunk])
                rec.result = min(start + chunk, len(stored.content))  # bytes handed to the connection so far
            await response.write_eof()
        except ConnectionError:  # the client stopped reading (a capped download gave up)
            rec.error = "client stopped reading"
        return response

    async def _handle_not_found(self, request: web.Request) -> web.StreamResponse:
        rec = RecordedRequest(request.path, {}, time.monotonic(), http_method=request.method)
        self.requests.append(rec)
        return self._error_response(rec, _ApiError(404, "Not Found"))

    @staticmethod
    async def _read_params(
        request: web.Request, spec: _MethodSpec
    ) -> tuple[JSONDict, list[str], dict[str, UploadedFile]]:
        raw: JSONDict = dict(request.query)
        uploads: dict[str, UploadedFile] = {}
        if request.body_exists:
            ctype = request.content_type
            if ctype == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise _ApiError(400, "Bad Request: can't parse JSON object") from None
                if not isinstance(body, dict):
                    raise _ApiError(400, "Bad Request: JSON object expected")
                raw.update(body)
            elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        with value.file as fh:
                            uploads[key] = UploadedFile(value.filename, value.content_type, fh.read())
                    else:
                        raw[key] = value if isinstance(value, str) else value.decode("utf-8", "replace")
        params: JSONDict = {}
        unknown: list[str] = []
        for name, value in raw.items():
            fspec = spec.fields.get(name)
            if fspec is None:
                unknown.append(name)
                params[name] = value
            else:
                params[name] = _convert(fspec, value, uploads)
        for name, upload in uploads.items():
            if name in spec.fields and name not in raw:
                params[name] = upload.content
            elif not any(f"attach://{name}" in str(v) for v in raw.values()):
                unknown.append(name)
        return params, unknown, uploads

    # ----------------------------------------------------------------- text & markup validation

    def _parse_text(
        self, text: Any, parse_mode: Any, entities: Any, *, caption: bool = False
    ) -> tuple[str, list[JSONDict] | None]:
        text = "" if text is None else str(text)
        parsed: list[JSONDict] | None = None
        mode = str(parse_mode).lower() if parse_mode else ""
        if mode == "html":
            try:
                text, parsed = parse_html(text, strict_ampersand=self.strict_html_ampersand)
            except ValueError as exc:
                raise _ApiError(400, str(exc)) from None
        elif mode not in ("", "markdown", "markdownv2"):
            raise _ApiError(400, "Bad Request: unsupported parse_mode")
        elif isinstance(entities, list):
            parsed = [dict(e) for e in entities if isinstance(e, dict)]
        if caption:
            if len(text) > _MAX_CAPTION_LENGTH:
                raise _ApiError(400, "Bad Request: message caption is too long")
        else:
            if not text.strip():
                raise _ApiError(400, "Bad Request: message text is empty")
            if len(text) > _MAX_MESSAGE_LENGTH:
                raise _ApiError(400, "Bad Request: message is too long")
        return text, (parsed or None)

    @staticmethod
    def _inline_markup(markup: Any, *, inline_only: bool = False) -> JSONDict | None:
        """Validate reply_markup; return it if it is an inline keyboard (echoed in Message). Edits (`inline_only`)
        take only an inline keyboard, as the spec types their reply_markup."""
        if markup is None:
            return None
        if not isinstance(markup, dict):
            raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            if inline_only:
                raise _ApiError(400, "Bad Request: can't parse inline keyboard markup JSON object")
            if "force_reply" in markup:
                _check_force_reply(markup)
                return None
            if any(k in markup for k in ("keyboard", "remove_keyboard")):
                return None
            raise _ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise _ApiError(
                400, 'Bad Request: field "inline_keyboard" of the InlineKeyboardMarkup should be an Array of Arrays'
            )
        prefix = "Bad Request: can't parse inline keyboard button: "
        actions = _button_actions()
        for row in rows:
            for button in row:
                if not isinstance(button, dict):
                    raise _ApiError(400, prefix + "InlineKeyboardButton must be an Object")
                if not isinstance(button.get("text"), str):
                    raise _ApiError(400, prefix + 'Field "text" must be of type String')
                used = [k for k in button if k in actions]
                if not used:
                    raise _ApiError(400, prefix + "Text buttons are unallowed in the inline keyboard")
                if len(used) > 1:
                    raise _ApiError(400, prefix + f"exactly one optional field must be used, got {sorted(used)}")
                if "callback_data" in button:
                    data = button["callback_data"]
                    if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                        raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
                if "url" in button and (not isinstance(button["url"], str) or not button["url"]):
                    raise _ApiError(400, "Bad Request: inline keyboard button URL '' is invalid: URL must be non-empty")
        return markup

    # ----------------------------------------------------------------- message helpers

    def _new_bot_message(self, chat: JSONDict, params: JSONDict) -> JSONDict:
        chat_id = chat["id"]
        msg: JSONDict = {"message_id": self._next_message_id(chat_id)}
        thread_id = params.get("message_thread_id")
        if isinstance(thread_id, int):
            msg["message_thread_id"] = thread_id
        if chat["type"] == "channel":
            msg["sender_chat"] = dict(chat)
        else:
            msg["from"] = self._bot_user()
        msg["chat"] = dict(chat)
        msg["date"] = int(time.time())
        if isinstance(thread_id, int) and chat.get("is_forum"):
            msg["is_topic_message"] = True
        return msg

    def _bot_message(self, params: JSONDict, action: str) -> JSONDict:
        chat = self._chat_param(params)
        mid = params.get("message_id")
        msg = self._messages.get((chat["id"], mid)) if isinstance(mid, int) else None
        if msg is None:
            raise _ApiError(400, f"Bad Request: message to {action} not found")
        if action == "edit" and msg.get("from", {}).get("id") != self.bot_id and "sender_chat" not in msg:
            raise _ApiError(400, "Bad Request: message can't be edited")
        return msg

    # ----------------------------------------------------------------- method handlers

    async def _get_me(self, p: JSONDict, call: _Call) -> Any:
        user = self._bot_user()
        for flag in _getme_only_flags():
            user[flag] = False
        user["can_join_groups"] = True
        return _complete("User", user)

    async def _send_message(self, p: JSONDict, call: _Call) -> Any:
        chat = self._chat_param(p)
        text, entities = self._parse_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
        markup = self._inline_markup(p.get("reply_markup"))
        msg = self._new_bot_message(chat, p)
        msg["text"] = text
        if entities:
            msg["entities"] = entities
        if markup is not None:
            msg["reply_markup"] = markup
        self._messages[(chat["id"], msg["message_id"])] = msg
        return copy.deepcopy(msg)

    async def _edit_message_text(self, p: JSONDict, call: _Call) -> Any:
        if p.get("inline_message_id"):
            self._parse_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
            self._inline_markup(p.get("reply_markup"), inline_only=True)
            return True
        if p.get("chat_id") in (None, "") or p.get("message_id") is None:
            raise _ApiError(400, "Bad Request: message identifier is not specified")
        text, entities = self._parse_text(p.get("text"), p.get("parse_mode"), p.get("entities"))
        markup = self._inline_markup(p.get("reply_markup"), inline_only=True)
        msg = self._bot_message(p, "edit")
        if msg.get("text") == text and msg.get("entities") == entities and msg.get("reply_markup") == markup:
            raise _ApiError(400, _NOT_MODIFIED)
        msg["text"] = text
        msg.pop("entities", None)
        msg.pop("reply_markup", None)
        if entities:
            msg["entities"] = entities
        if markup is not None:
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        return copy.deepcopy(msg)

    async def _edit_message_reply_markup(self, p: JSONDict, call: _Call) -> Any:
        markup = self._inline_markup(p.get("reply_markup"), inline_only=True)
        if p.get("inline_message_id"):
            return True
        msg = self._bot_message(p, "edit")
        if msg.get("reply_markup") == markup:
            raise _ApiError(400, _NOT_MODIFIED)
        msg.pop("reply_markup", None)
        if markup is not None:
            msg["reply_markup"] = markup
        msg["edit_date"] = int(time.time())
        return copy.deepcopy(msg)

    async def _delete_message(self, p: JSONDict, call: _Call) -> Any:
        msg = self._bot_message(p, "delete")
        del self._messages[(msg["chat"]["id"], msg["message_id"])]
        return True

    async def _send_document(self, p: JSONDict, call: _Call) -> Any:
        chat = self._chat_param(p)
        caption, entities = self._parse_text(
            p.get("caption"), p.get("parse_mode"), p.get("caption_entities"), caption=True
        )
        markup = self._inline_markup(p.get("reply_markup"))
        doc = p["document"]
        if isinstance(doc, bytes):
            upload = next((u for u in call.rec.uploads.values() if u.content is doc), None)
            name = upload.filename if upload else "document"
            mime = (upload.content_type if upload else None) or mimetypes.guess_type(name or "")[0]
            stored = self._store_file(doc, name, mime, "documents")
        elif isinstance(doc, str) and doc in self._files:
            stored = self._files[doc]
        elif isinstance(doc, str) and doc.startswith(("http://", "https://")):
            name = doc.rstrip("/").rsplit("/", 1)[-1] or "document"
            stored = self._store_file(b"", name, mimetypes.guess_type(name)[0], "documents")
        else:
            raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
        msg = self._new_bot_message(chat, p)
        msg["document"] = self._document_obj(stored)
        if caption:
            msg["caption"] = caption
            if entities:
                msg["caption_entities"] = entities
        if markup is not None:
            msg["reply_markup"] = markup
        self._messages[(chat["id"], msg["message_id"])] = msg
        return copy.deepcopy(msg)

    async def _get_file(self, p: JSONDict, call: _Call) -> Any:
        stored = self._files.get(str(p["file_id"]))
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        if len(stored.content) > _MAX_DOWNLOAD_BYTES:
            raise _ApiError(400, "Bad Request: file is too big")
        file: JSONDict = {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id}
        if stored.size_known:
            file["file_size"] = len(stored.content)
        file["file_path"] = stored.file_path
        return file

    async def _answer_callback_query(self, p: JSONDict, call: _Call) -> Any:
        if str(p["callback_query_id"]) not in self._callback_ids:
            raise _ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        return True

    async def _answer_inline_query(self, p: JSONDict, call: _Call) -> Any:
        query_id = str(p["inline_query_id"])
        if query_id not in self._inline_answers or self._inline_answers[query_id] is not None:
            raise _ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        results = p["results"]
        if not isinstance(results, list):
            raise _ApiError(400, "Bad Request: can't parse inline query results JSON object")
        if len(results) > _MAX_INLINE_RESULTS:
            raise _ApiError(400, "Bad Request: RESULTS_TOO_MUCH")
        problems = [problem for i, result in enumerate(results)
                    for problem in spec_problems("InlineQueryResult", result, f"results[{i}]")]
        if "button" in p:
            problems += spec_problems("InlineQueryResultsButton", p["button"], "button")
            start = p["button"].get("start_parameter") if isinstance(p["button"], dict) else None
            if start is not None and not _START_PARAMETER_RE.fullmatch(str(start)):
                problems.append(f"button.start_parameter: {start!r} has characters other than A-Z, a-z, 0-9, _, -")
        for name, kind in (("cache_time", int), ("is_personal", bool), ("next_offset", str)):
            if name in p and not isinstance(p[name], kind):
                problems.append(f"{name}: expected {kind.__name__}")
        if problems:
            raise _ApiError(400, "Bad Request: " + "; ".join(problems))
        if isinstance(p.get("cache_time"), int) and p["cache_time"] < 0:
            raise _ApiError(400, "Bad Request: cache_time must be non-negative")
        if len(str(p.get("next_offset", "")).encode("utf-8")) > _MAX_NEXT_OFFSET_BYTES:
            raise _ApiError(400, "Bad Request: NEXT_OFFSET_INVALID")
        ids = [str(result["id"]) for result in results]
        if len(set(ids)) != len(ids):
            raise _ApiError(400, "Bad Request: RESULT_ID_DUPLICATE")
        for result in results:
            content = result.get("input_message_content", {})
            if "message_text" in content:
                self._parse_text(content["message_text"], content.get("parse_mode"), content.get("entities"))
            if result.get("type") == "article" and not str(result.get("title", "")).strip():
                raise _ApiError(400, "Bad Request: RESULT_TITLE_EMPTY")
            markup = self._inline_markup(result.get("reply_markup"))
            for row in (markup or {}).get("inline_keyboard", []):
                for button in row:
                    if "url" in button and not _BUTTON_URL_RE.match(button["url"]):
                        raise _ApiError(400, f"Bad Request: inline keyboard button URL '{button['url']}' is invalid")
        self._inline_answers[query_id] = p
        return True

    async def _send_chat_action(self, p: JSONDict, call: _Call) -> Any:
        self._chat_param(p)
        if p.get("action") not in _CHAT_ACTIONS:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    @staticmethod
    def _commands_key(p: JSONDict) -> tuple[str, str]:
        scope = p.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(p.get("language_code") or "")

    async def _set_my_commands(self, p: JSONDict, call: _Call) -> Any:
        # The spec: "A two-letter ISO 639-1 language code. If empty, commands will be applied to all users from
        # the given scope, for whose language there are no dedicated commands".
        if p.get("language_code") and not _LANGUAGE_CODE_RE.fullmatch(str(p["language_code"])):
            raise _ApiError(400, "Bad Request: invalid language code specified")
        commands = p["commands"]
        if not isinstance(commands, list) or len(commands) > 100:
            raise _ApiError(400, "Bad Request: can't parse commands JSON object")
        stored: list[JSONDict] = []
        for cmd in commands:
            if not isinstance(cmd, dict) or not _COMMAND_RE.fullmatch(str(cmd.get("command", ""))):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            description = cmd.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 256:
                raise _ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
            stored.append({"command": cmd["command"], "description": description})
        self._commands[self._commands_key(p)] = stored
        return True

    async def _get_my_commands(self, p: JSONDict, call: _Call) -> Any:
        return copy.deepcopy(self._commands.get(self._commands_key(p), []))

    async def _delete_my_commands(self, p: JSONDict, call: _Call) -> Any:
        self._commands.pop(self._commands_key(p), None)
        return True

    async def _set_chat_menu_button(self, p: JSONDict, call: _Call) -> Any:
        button = p.get("menu_button") or {"type": "default"}
        if not isinstance(button, dict) or button.get("type") not in ("default", "commands", "web_app"):
            raise _ApiError(400, "Bad Request: can't parse menu button JSON object")
        self._menu_buttons[_chat_key(p.get("chat_id"))] = button
        return True

    async def _get_chat_menu_button(self, p: JSONDict, call: _Call) -> Any:
        return copy.deepcopy(self._menu_buttons.get(_chat_key(p.get("chat_id")), {"type": "default"}))

    async def _set_webhook(self, p: JSONDict, call: _Call) -> Any:
        if p.get("drop_pending_updates"):
            self._updates.clear()
        url = str(p.get("url") or "")
        if not url:
            self._webhook = None
            return True
        if not url.startswith("https://"):
            raise _ApiError(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        self._webhook = {
            "url": url,
            "has_custom_certificate": p.get("certificate") is not None,
            "max_connections": int(p.get("max_connections") or 40),
        }
        if p.get("allowed_updates") is not None:
            self._allowed_updates = list(p["allowed_updates"])
        self._wake_pollers()
        return True

    async def _delete_webhook(self, p: JSONDict, call: _Call) -> Any:
        self._webhook = None
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, p: JSONDict, call: _Call) -> Any:
        info: JSONDict = {"url": "", "has_custom_certificate": False}
        if self._webhook is not None:
            info.update(self._webhook)
            info["ip_address"] = "127.0.0.1"
        info["pending_update_count"] = len(self._updates)
        if self._allowed_updates:
            info["allowed_updates"] = list(self._allowed_updates)
        return _complete("WebhookInfo", info)

    async def _get_chat(self, p: JSONDict, call: _Call) -> Any:
        info = dict(self._chat_param(p))
        info["accent_color_id"] = 0
        info["max_reaction_count"] = 11
        info["accepted_gift_types"] = _default_value("AcceptedGiftTypes")
        if info["type"] == "private":
            info["accepted_gift_types"] = {k: True for k in info["accepted_gift_types"]}
        return _complete("ChatFullInfo", info)

    def _member(self, chat: JSONDict, user_id: int, status: str) -> JSONDict:
        user = self._user(user_id)
        if status in ("left", "kicked", "restricted"):
            member: JSONDict = {"status": status, "user": user}
            if status == "kicked":
                member["until_date"] = 0  # banned forever
            if status == "restricted":
                member["is_member"] = True
                member["until_date"] = 0
                return _complete("ChatMemberRestricted", member)
            return member
        if status == "creator":
            return {"status": "creator", "user": user, "is_anonymous": False}
        if status == "administrator":
            member = dict(_admin_template())
            member["user"] = user
            if chat["type"] in ("group", "supergroup"):
                member["can_pin_messages"] = True
                if chat.get("is_forum"):
                    member["can_manage_topics"] = True
            elif chat["type"] == "channel":
                member["can_post_messages"] = True
                member["can_edit_messages"] = True
            return member
        return {"status": "member", "user": user}

    async def _get_chat_administrators(self, p: JSONDict, call: _Call) -> Any:
        chat = self._chat_param(p)
        if chat["type"] == "private":
            raise _ApiError(400, "Bad Request: there are no administrators in the private chat")
        return [self._member(chat, uid, status) for uid, status in self._admins.get(chat["id"], [])]

    async def _get_chat_member(self, p: JSONDict, call: _Call) -> Any:
        chat = self._chat_param(p)
        user_id = p["user_id"]
        if not isinstance(user_id, int):
            raise _ApiError(400, "Bad Request: invalid user_id specified")
        status = dict(self._admins.get(chat["id"], [])).get(user_id, "member")
        return self._member(chat, user_id, status)

    # ----------------------------------------------------------------- getUpdates

    def _allowed(self, update: JSONDict) -> bool:
        kind = next((k for k in update if k != "update_id"), "")
        if self._allowed_updates:
            return kind in self._allowed_updates
        return kind not in _DEFAULT_EXCLUDED_UPDATES

    def _confirm(self, offset: Any) -> None:
        if not isinstance(offset, int) or offset == 0:
            return
        if offset < 0:
            self._updates = deque(list(self._updates)[offset:])
            return
        while self._updates and int(self._updates[0]["update_id"]) < offset:
            self._updates.popleft()

    async def _get_updates(self, p: JSONDict, call: _Call) -> Any:
        if self._webhook is not None:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        limit = max(1, min(100, int(p.get("limit") or 100)))
        timeout = max(0.0, float(p.get("timeout") or 0))
        if p.get("allowed_updates") is not None:
            self._allowed_updates = list(p["allowed_updates"])
        self._poll_generation += 1
        generation = self._poll_generation
        self._wake_pollers()  # a newer getUpdates terminates older long polls
        self._confirm(p.get("offset"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if generation != self._poll_generation:
                transport = call.request.transport
                if transport is None or transport.is_closing():
                    raise _ApiError(499, "client disconnected before the long poll ended")
                raise _ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
            if any(not self._allowed(u) for u in self._updates):
                self._updates = deque(u for u in self._updates if self._allowed(u))
            if self._updates or self._closing:
                return [copy.deepcopy(u) for u in list(self._updates)[:limit]]
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            event = self._updates_event
            try:
                async with asyncio.timeout(remaining):
                    await event.wait()
            except TimeoutError:
                return []


def _convert(fspec: _FieldSpec, value: Any, uploads: dict[str, UploadedFile]) -> Any:
    kind = fspec.kind
    name = fspec.name
    if kind == "file":
        if isinstance(value, str) and value.startswith("attach://"):
            upload = uploads.get(value.removeprefix("attach://"))
            return upload.content if upload is not None else value
        return value
    if not isinstance(value, str):
        return value
    if kind == "str":
        return value
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            raise _ApiError(400, f'Bad Request: field "{name}" must be of type Integer') from None
    if kind == "int_or_str":
        return int(value) if _INT_RE.fullmatch(value) else value
    if kind == "bool":
        return _to_bool(name, value)
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            raise _ApiError(400, f'Bad Request: field "{name}" must be of type Float') from None
    try:
        return json.loads(value)
    except ValueError:
        raise _ApiError(400, f"Bad Request: can't parse {name} JSON object") from None


def _busiest_window(moments: list[float], window: float) -> int:
    """The most moments within any sliding window of `window` seconds."""
    times = sorted(moments)
    best = 0
    start = 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best
