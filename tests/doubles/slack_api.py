"""A local test double of the Slack Web API (aiohttp), checked against Slack's own OpenAPI description.

Reach it with `AsyncWebClient(token=..., base_url=double.base_url)`. Every call must name a real method of
`slack-web-api-openapi-v2.json` (beside this file, MIT licence beside it) with its required arguments; messages must
keep Block Kit's limits. A call that breaks either is answered as Slack would (`unknown_method`, `invalid_arguments`,
`invalid_blocks`) and also kept in `violations`, so a test can assert there were none. Faults are injected per
method (and channel): `ratelimited` (HTTP 429 with Retry-After), `channel_not_found`, `invalid_auth`, HTTP 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl

from aiohttp import web

SPEC_PATH = Path(__file__).with_name("slack-web-api-openapi-v2.json")
# Arguments slack-sdk sends that Slack added after the 2020 spec (checked against slack-sdk's method signatures).
NEWER_ARGUMENTS = {"chat.postMessage": {"metadata", "unfurl_links", "unfurl_media"},
                   "auth.test": {"team_id"}, "chat.postEphemeral": set(), "users.info": set(),
                   "conversations.info": set()}
# Socket Mode came after the spec: slack-sdk's SocketModeClient opens its connection with this method.
NEWER_METHODS = {"apps.connections.open": (frozenset(), frozenset(), ["ok", "url"])}
# bolt's per-request client adds the workspace to every call (org-wide installations need it).
EVERY_METHOD = {"team_id"}
BLOCK_TYPES = {"section", "context", "actions", "divider", "header", "image", "input", "rich_text"}
HTTP_500 = "http_500"


@cache
def spec_methods() -> dict[str, tuple[frozenset[str], frozenset[str], list[str]]]:
    """method -> (required arguments, known arguments, required keys of its success answer)."""
    raw = json.loads(SPEC_PATH.read_text("utf-8"))
    methods = {}
    for path, verbs in raw["paths"].items():
        for operation in verbs.values():
            parameters = [p for p in operation.get("parameters", []) if p["name"] != "token"]
            answer = operation.get("responses", {}).get("200", {}).get("schema", {})
            methods[path.lstrip("/")] = (frozenset(p["name"] for p in parameters if p.get("required")),
                                         frozenset(p["name"] for p in parameters),
                                         list(answer.get("required", [])))
    return methods


def block_kit_problems(message: dict[str, Any]) -> list[str]:
    """What breaks Block Kit's limits in a message's arguments (`text`, `blocks`); empty when it is fine."""
    problems = []
    blocks = message.get("blocks")
    text = message.get("text")
    if isinstance(blocks, str):
        try:
            blocks = json.loads(blocks)
        except ValueError:
            return ["blocks is not JSON"]
    if blocks is None and not text:
        problems.append("no text and no blocks")
    if text is not None and len(str(text)) > 40000:
        problems.append("text over 40,000 characters")
    if blocks is None:
        return problems
    if not isinstance(blocks, list) or not blocks:
        return [*problems, "blocks must be a non-empty array"]
    if len(blocks) > 50:
        problems.append(f"{len(blocks)} blocks: at most 50")
    action_ids: set[str] = set()
    for number, block in enumerate(blocks):
        kind = block.get("type")
        where = f"blocks[{number}] ({kind})"
        if kind not in BLOCK_TYPES:
            problems.append(f"{where}: unknown block type")
        elif kind == "section":
            body = (block.get("text") or {}).get("text", "")
            if not 1 <= len(body) <= 3000:
                problems.append(f"{where}: text of {len(body)} characters (1-3000)")
        elif kind == "context":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 10:
                problems.append(f"{where}: {len(elements)} elements (1-10)")
            problems += [f"{where}: element text over 3000" for e in elements if len(e.get("text", "")) > 3000]
        elif kind == "actions":
            elements = block.get("elements") or []
            if not 1 <= len(elements) <= 25:
                problems.append(f"{where}: {len(elements)} elements (1-25)")
            for element in elements:
                label = (element.get("text") or {}).get("text", "")
                action_id = element.get("action_id", "")
                if element.get("type") != "button":
                    problems.append(f"{where}: element type {element.get('type')}")
                if not 1 <= len(label) <= 75:
                    problems.append(f"{where}: button text of {len(label)} characters (1-75)")
                if not 1 <= len(action_id) <= 255 or action_id in action_ids:
                    problems.append(f"{where}: action_id {action_id!r} empty, too long or repeated")
                if len(element.get("value", "")) > 2000:
                    problems.append(f"{where}: button value over 2000 characters")
                action_ids.add(action_id)
    return problems


@dataclass
class Call:
    """One request the double received: the method and its arguments (JSON-decoded where they were JSON)."""

    method: str
    args: dict[str, Any]
    at: float


@dataclass
class Fault:
    """An answer to give instead of success: an error code (or HTTP_500), for a method and optionally a channel."""

    method: str
    error: str
    channel: str | None = None
    times: int = 1
    retry_after: int = 1


@dataclass
class Channel:
    """A conversation in the workspace."""

    id: str
    name: str
    creator: str
    is_im: bool = False
    is_archived: bool = False
    bot_member: bool = True


@dataclass
class Member:
    """A user of the workspace."""

    id: str
    name: str
    is_admin: bool = False
    is_owner: bool = False
    locale: str = "en-US"  # users.info shows it only with include_locale=true


@dataclass
class SlackApiDouble:
    """The Web API of one workspace: its users and channels, the messages posted, and faults to inject."""

    token: str = "xoxb-test-token"
    app_token: str = "xapp-test-token"  # Socket Mode's app-level token
    team_id: str = "T0123"
    bot_user_id: str = "U0BOT"
    users: dict[str, Member] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    posted: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    responses: list[dict[str, Any]] = field(default_factory=list)  # what was posted to response_urls
    violations: list[str] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    revoked: bool = False
    latency: float = 0.0  # seconds before each answer (a round trip to Slack)
    # Enforce chat.postMessage's 1 message/s per channel (bursts of `channel_burst` allowed) with 429s.
    enforce_channel_rate: bool = False
    channel_burst: int = 3
    over_channel_rate: int = 0  # posts that broke the per-channel rate (counted whether enforced or not)
    _recent: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(lambda: deque(maxlen=8)))
    _ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None
    port: int = 0
    changed: asyncio.Condition | None = None
    socket_acks: list[dict[str, Any]] = field(default_factory=list)  # what the app sent back over Socket Mode
    _sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _envelopes: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def base_url(self) -> str:
        """The Web API's base URL, for AsyncWebClient(base_url=...)."""
        return f"http://127.0.0.1:{self.port}/api/"

    def response_url(self, name: str = "r") -> str:
        """A response_url, as Slack puts in a slash command or an interaction."""
        return f"http://127.0.0.1:{self.port}/respond/{name}"

    def add_user(self, user_id: str, name: str = "", *, admin: bool = False, owner: bool = False,
                 locale: str = "en-US") -> Member:
        """A workspace member (admin or owner if asked)."""
        self.users[user_id] = Member(user_id, name or user_id.lower(), is_admin=admin, is_owner=owner, locale=locale)
        return self.users[user_id]

    def add_channel(self, channel_id: str, creator: str, name: str = "", *, im: bool = False) -> Channel:
        """A channel (or, with `im`, a direct message with `creator`) the bot is in."""
        self.channels[channel_id] = Channel(channel_id, name or channel_id.lower(), creator, is_im=im)
        return self.channels[channel_id]

    def fail(self, method: str, error: str, *, channel: str | None = None, times: int = 1,
             retry_after: int = 1) -> None:
        """Answer the next `times` calls of `method` (to `channel`) with `error` instead."""
        self.faults.append(Fault(method, error, channel, times, retry_after))

    def texts(self, channel: str) -> list[str]:
        """The section and context texts of every message posted to a channel, one string per message."""
        return [_message_text(message) for message in self.posted.get(channel, [])]

    async def wait_for(self, predicate: Any, within: float = 30.0) -> None:
        """Wait until `predicate()` holds (checked whenever a call arrives)."""
        assert self.changed is not None
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(predicate), within)

    async def __aenter__(self) -> Self:
        """Start serving on a free local port."""
        self.changed = asyncio.Condition()
        app = web.Application(client_max_size=2 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/respond/{name}", self._respond)
        app.router.add_get("/socket", self._socket)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        """Stop serving."""
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _notify(self) -> None:
        assert self.changed is not None
        async with self.changed:
            self.changed.notify_all()

    async def push(self, kind: str, payload: dict[str, Any]) -> str:
        """Send an envelope (`slash_commands`, `events_api`, `interactive`) to every Socket Mode connection; returns
        its envelope_id (the app acknowledges it by that id, see socket_acks)."""
        await self.wait_for(lambda: self._sockets)
        envelope_id = f"env-{next(self._envelopes)}"
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api", "retry_attempt": 0, "retry_reason": ""}
        for socket in self._sockets:
            await socket.send_json(envelope)
        return envelope_id

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse(autoping=True)
        await socket.prepare(request)
        await socket.send_json({"type": "hello", "num_connections": 1, "debug_info": {"host": "double"},
                                "connection_info": {"app_id": "A0APP"}})
        self._sockets.append(socket)
        await self._notify()
        try:
            async for message in socket:
                if message.type == web.WSMsgType.TEXT:
                    self.socket_acks.append(json.loads(message.data))
                    await self._notify()
        finally:
            self._sockets.remove(socket)
        return socket

    async def _respond(self, request: web.Request) -> web.Response:
        body = await request.json()
        problems = block_kit_problems(body)
        if problems:
            self.violations += [f"response_url: {problem}" for problem in problems]
            return web.Response(status=400, text="invalid_blocks")
        self.responses.append(body)
        await self._notify()
        return web.Response(text="ok")

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        arrived = time.monotonic()  # before the body is read: when the request reached us
        args = await _arguments(request)
        self.calls.append(Call(method, args, arrived))
        if self.latency:
            await asyncio.sleep(self.latency)
        try:
            return await self._answer(request, method, args)
        finally:
            await self._notify()

    async def _answer(self, request: web.Request, method: str, args: dict[str, Any]) -> web.Response:
        known = {**spec_methods(), **NEWER_METHODS}
        if method not in known:
            self.violations.append(f"{method}: not a Web API method")
            return _error("unknown_method", status=404)
        required, allowed, _ = known[method]
        missing = required - set(args)
        unknown = set(args) - allowed - NEWER_ARGUMENTS.get(method, set()) - EVERY_METHOD
        if missing or unknown:
            self.violations.append(f"{method}: missing {sorted(missing)}, unknown {sorted(unknown)}")
            return _error("invalid_arguments")
        token = self.app_token if method == "apps.connections.open" else self.token
        if request.headers.get("Authorization", "") != f"Bearer {token}":
            return _error("not_authed" if "Authorization" not in request.headers else "invalid_auth")
        if self.revoked:
            return _error("token_revoked")
        fault = self._fault(method, args.get("channel"))
        if fault is not None:
            if fault.error == HTTP_500:
                return web.Response(status=500, text="Internal Server Error")
            if fault.error == "ratelimited":
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": str(fault.retry_after)})
            return _error(fault.error)
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            self.violations.append(f"{method}: a real method the double does not serve")
            return _error("unknown_method")
        answer: web.Response = await handler(args)
        return answer

    def _fault(self, method: str, channel: str | None) -> Fault | None:
        for fault in self.faults:
            if fault.method == method and fault.times > 0 and fault.channel in (None, channel):
                fault.times -= 1
                return fault
        return None

    def _ok(self, method: str, answer: dict[str, Any]) -> web.Response:
        answer = {"ok": True, **answer}
        missing = [key for key in {**spec_methods(), **NEWER_METHODS}[method][2] if key not in answer]
        assert not missing, f"the double's {method} answer lacks {missing}"
        return web.json_response(answer)

    async def _apps_connections_open(self, args: dict[str, Any]) -> web.Response:
        return self._ok("apps.connections.open", {"url": f"ws://127.0.0.1:{self.port}/socket"})

    async def _auth_test(self, args: dict[str, Any]) -> web.Response:
        return self._ok("auth.test", {"url": "https://hk-ai.slack.com/", "team": "HK AI", "user": "hkai",
                                      "team_id": self.team_id, "user_id": self.bot_user_id, "bot_id": "B0BOT",
                                      "is_enterprise_install": False})

    async def _users_info(self, args: dict[str, Any]) -> web.Response:
        member = self.users.get(str(args.get("user")))
        if member is None:
            return _error("user_not_found")
        user: dict[str, Any] = {
            "id": member.id, "team_id": self.team_id, "name": member.name, "deleted": False, "real_name": member.name,
            "is_admin": member.is_admin, "is_owner": member.is_owner, "is_primary_owner": False,
            "is_restricted": False, "is_ultra_restricted": False, "is_bot": False, "is_app_user": False,
            "updated": 1700000000, "profile": {"real_name": member.name, "display_name": member.name}}
        if str(args.get("include_locale", "")).lower() in ("1", "true"):
            user["locale"] = member.locale
        return self._ok("users.info", {"user": user})

    async def _conversations_info(self, args: dict[str, Any]) -> web.Response:
        channel = self.channels.get(str(args.get("channel")))
        if channel is None:
            return _error("channel_not_found")
        info: dict[str, Any] = {"id": channel.id, "created": 1700000000, "is_im": channel.is_im,
                                "is_org_shared": False, "is_archived": channel.is_archived,
                                "context_team_id": self.team_id}
        if channel.is_im:
            info["user"] = channel.creator
        else:
            info.update(name=channel.name, is_channel=True, is_group=False, is_private=False, is_general=False,
                        is_member=channel.bot_member, creator=channel.creator, is_shared=False,
                        is_ext_shared=False, is_pending_ext_shared=False, name_normalized=channel.name)
        return self._ok("conversations.info", {"channel": info})

    async def _chat_postMessage(self, args: dict[str, Any]) -> web.Response:
        channel = self.channels.get(str(args["channel"]))
        if channel is None:
            return _error("channel_not_found")
        if channel.is_archived:
            return _error("is_archived")
        if not channel.bot_member:
            return _error("not_in_channel")
        problems = block_kit_problems(args)
        if problems:
            self.violations += [f"chat.postMessage: {problem}" for problem in problems]
            return _error("invalid_blocks")
        now = time.monotonic()
        recent = self._recent[channel.id]
        recent.append(now)
        if len(recent) > self.channel_burst and now - recent[-1 - self.channel_burst] < self.channel_burst:
            self.over_channel_rate += 1
            if self.enforce_channel_rate:
                recent.pop()
                return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                         headers={"Retry-After": "1"})
        ts = f"1700000000.{next(self._ts):06d}"
        message = {"type": "message", "text": args.get("text", ""), "user": self.bot_user_id, "ts": ts,
                   "blocks": args.get("blocks") or [], "bot_id": "B0BOT"}
        self.posted[channel.id].append(message)
        return self._ok("chat.postMessage", {"channel": channel.id, "ts": ts, "message": message})

    async def _chat_postEphemeral(self, args: dict[str, Any]) -> web.Response:
        problems = block_kit_problems(args)
        if problems:
            self.violations += [f"chat.postEphemeral: {problem}" for problem in problems]
            return _error("invalid_blocks")
        self.responses.append({"response_type": "ephemeral", **args})
        return self._ok("chat.postEphemeral", {"message_ts": f"1700000000.{next(self._ts):06d}"})


def _message_text(message: dict[str, Any]) -> str:
    blocks = message.get("blocks") or []
    texts = []
    for block in blocks:
        if block.get("type") == "section":
            texts.append(block["text"]["text"])
        elif block.get("type") == "context":
            texts += [element.get("text", "") for element in block["elements"]]
        elif block.get("type") == "actions":
            texts += [f"[{element['text']['text']}]" for element in block["elements"]]
    return "\n".join(texts) if texts else str(message.get("text", ""))


def message_text(message: dict[str, Any]) -> str:
    """The visible text of a message or response (sections, context, button labels in brackets)."""
    return _message_text(message)


async def _arguments(request: web.Request) -> dict[str, Any]:
    """The call's arguments from the query, a form or a JSON body (slack-sdk uses all three)."""
    args: dict[str, Any] = dict(request.query)
    raw = await request.read()
    if raw:
        if request.content_type == "application/json":
            args.update(json.loads(raw))
        else:
            args.update(parse_qsl(raw.decode(), keep_blank_values=True))
    for name in ("blocks", "attachments"):
        if isinstance(args.get(name), str):
            with contextlib.suppress(ValueError):
                args[name] = json.loads(args[name])
    return args


def _error(code: str, status: int = 200) -> web.Response:
    return web.json_response({"ok": False, "error": code}, status=status)
