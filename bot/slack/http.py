"""HTTP mode: Slack's events and interactivity at /slack/events on the same web server as Telegram's webhook."""

from __future__ import annotations

import logging
import sys
from typing import Any

from slack_bolt.adapter.tornado.handler import set_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from tornado.http1connection import HTTP1Connection
from tornado.web import RequestHandler, stream_request_body

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# The same cap as Telegram's webhook (bot.tg.webhook.MAX_UPDATE_BYTES): an event, a slash command or a button press
# is a few KB; a large view submission tens of KB.
MAX_EVENT_BYTES = 1024 * 1024
_SIGNED = ("X-Slack-Signature", "X-Slack-Request-Timestamp")


@stream_request_body
class SlackEventsHandler(RequestHandler):
    """Slack's POST of one event, slash command or interaction: refused unsigned or too large before its body is
    read, then checked (signature and age) and handled by bolt, which answers within Slack's 3 s by its ack."""

    def initialize(self, bolt: AsyncApp) -> None:
        self.bolt = bolt
        self.body = bytearray()

    def prepare(self) -> None:
        """Refuse on the headers alone: unsigned (401), too large (413)."""
        if not all(self.request.headers.get(name) for name in _SIGNED):
            log.warning("rejected an unsigned Slack request from %s", self.request.remote_ip)
            self.refuse(401, "unsigned request")
            return
        declared = self.request.headers.get("Content-Length")
        if declared is None:
            if isinstance(self.request.connection, HTTP1Connection):
                self.request.connection.set_max_body_size(sys.maxsize)  # counted in data_received instead
            return
        lengths = {piece.strip() for piece in declared.split(",")}
        if len(lengths) != 1 or not (length := lengths.pop()).isdigit():
            self.refuse(400, "bad Content-Length")
        elif int(length) > MAX_EVENT_BYTES:
            self.refuse(413, f"a Slack request is at most {MAX_EVENT_BYTES} bytes")

    def data_received(self, chunk: bytes) -> None:
        """Keep the body, up to the cap."""
        if self._finished:
            return
        if len(self.body) + len(chunk) > MAX_EVENT_BYTES:
            self.refuse(413, f"a Slack request is at most {MAX_EVENT_BYTES} bytes")
            return
        self.body += chunk

    def refuse(self, status: int, description: str) -> None:
        """Answer an error and close the connection."""
        self.set_status(status)
        self.set_header("Connection", "close")
        self.finish({"ok": False, "error": description})

    async def post(self) -> None:
        """Hand the request to bolt (which checks the signature: 401 when wrong or stale)."""
        try:
            text = bytes(self.body).decode("utf-8")
        except UnicodeDecodeError:
            self.refuse(400, "body is not UTF-8")
            return
        request = AsyncBoltRequest(body=text, query=self.request.query,
                                   headers={k: v for k, v in self.request.headers.get_all()})
        set_response(self, await self.bolt.async_dispatch(request))


def slack_routes(bolt: AsyncApp) -> list[tuple[str, type[RequestHandler], dict[str, Any]]]:
    """The route to add to the webhook server for Slack's HTTP mode."""
    return [(EVENTS_PATH, SlackEventsHandler, {"bolt": bolt})]
