"""Building the Slack side of the bot: the Web API client, the bolt app with our listeners, Socket Mode."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import aiohttp
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.core.services import Services
from bot.slack.admins import SlackChatAdmins
from bot.slack.frontend import SlackFrontEnd
from bot.slack.identity import id_number

log = logging.getLogger(__name__)


def web_client(token: str, base_url: str, *, connections: int = 64) -> AsyncWebClient:
    """A Web API client for the bot token (base_url: Slack's, or a local double's) over one HTTP session, so a
    fan-out reuses its connections (slack-sdk opens a session per call otherwise). Close it with close_client.
    Call it with the event loop running."""
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections))
    return AsyncWebClient(token=token, base_url=base_url, timeout=10, session=session)


async def close_client(client: AsyncWebClient) -> None:
    """Close the client's HTTP session."""
    if client.session is not None and not client.session.closed:
        await client.session.close()


def admin_numbers(slack_admin_ids: frozenset[str]) -> frozenset[int]:
    """SLACK_ADMIN_IDS as the core's user numbers (bot.slack.identity)."""
    return frozenset(id_number(user_id) for user_id in slack_admin_ids)


def chat_admins(client: AsyncWebClient, slack_admin_ids: frozenset[str]) -> SlackChatAdmins:
    """The ChatAdmins port for Slack channels."""
    return SlackChatAdmins(client, admin_numbers(slack_admin_ids))


def bolt_app(client: AsyncWebClient, signing_secret: str, services: Services) -> AsyncApp:
    """A bolt app with our listeners. With a signing secret (HTTP mode) every request's signature is checked;
    Socket Mode needs none (its connection is opened with the app token)."""
    app = AsyncApp(client=client, signing_secret=signing_secret, request_verification_enabled=bool(signing_secret),
                   name="hk-ai-pulse")
    SlackFrontEnd(services, client).install(app)
    return app


@contextlib.asynccontextmanager
async def socket_mode(app: AsyncApp, app_token: str) -> AsyncIterator[None]:
    """Receive Slack's events over Socket Mode until exit."""
    handler = AsyncSocketModeHandler(app, app_token)
    await handler.connect_async()  # type: ignore[no-untyped-call]
    log.info("connected to Slack over Socket Mode")
    try:
        yield
    finally:
        await handler.close_async()  # type: ignore[no-untyped-call]
