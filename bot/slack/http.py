"""HTTP mode: Slack's events and interactivity at /slack/events on the same web server as Telegram's webhook."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.adapter.tornado.handler import set_response
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from tornado.web import RequestHandler, stream_request_body

from bot.web import MAX_BODY_BYTES, CappedBodyHandler

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
# The web server's cap (bot.web), as for Telegram's webhook: an event, a slash command or a button press is a few
# KB; a large view submission tens of KB.
MAX_EVENT_BYTES = MAX_BODY_BYTES
_SIGNED = ("X-Slack-Signature", "X-Slack-Request-Timestamp")


@stream_request_body
class SlackEventsHandler(CappedBodyHandler):
    """Slack's POST of one event, slash command or interaction: refused unsigned or too large before its body is
    read, then checked (signature and age) and handled by bolt, which answers within Slack's 3 s by its ack."""

    what = "a Slack request"
    error_key = "error"

    def initialize(self, bolt: AsyncApp) -> None:  # type: ignore[override]
        super().initialize()
        self.bolt = bolt

    def prepare(self) -> None:
        """Refuse on the headers alone: unsigned (401), too large (413)."""
        if not all(self.request.headers.get(name) for name in _SIGNED):
            log.warning("rejected an unsigned Slack request from %s", self.request.remote_ip)
            self.refuse(401, "unsigned request")
            return
        self.check_length()

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
