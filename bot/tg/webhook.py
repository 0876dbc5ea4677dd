"""Webhook mode: serve Telegram's webhook over plain HTTP (behind a TLS proxy) with a health check."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from telegram import Update
from telegram.ext import Application
from tornado.httpserver import HTTPServer
from tornado.web import Application as WebApplication
from tornado.web import RequestHandler

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_UPDATE_BYTES = 1024 * 1024


def derive_secret(token: str) -> str:
    """A webhook secret every replica derives alike from the bot token (1-256 chars of [A-Za-z0-9_-])."""
    return hashlib.sha256(b"hk-ai-pulse-webhook:" + token.encode()).hexdigest()


class UpdateHandler(RequestHandler):
    """Telegram's POST of one Update: checked, processed, and only then acknowledged.

    Answering after processing means an update whose replica dies mid-way is not acknowledged, and Telegram
    delivers it again (to whichever replica the router picks).
    """

    def initialize(self, telegram_app: Application, secret: str) -> None:  # type: ignore[type-arg]
        self.telegram_app = telegram_app  # not `application`: RequestHandler uses that name for tornado's app
        self.secret = secret

    async def post(self) -> None:
        """Check the secret header, parse the update, process it, answer 200."""
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("rejected a webhook request without the right secret token from %s", self.request.remote_ip)
            self.set_status(403)
            self.finish({"ok": False, "description": "wrong or missing secret token"})
            return
        if len(self.request.body) > MAX_UPDATE_BYTES:
            self.set_status(413)
            self.finish({"ok": False})
            return
        try:
            data = json.loads(self.request.body)
            update = Update.de_json(data, self.telegram_app.bot)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("rejected a malformed webhook update: %s", exc)
            self.set_status(400)
            self.finish({"ok": False, "description": "malformed update"})
            return
        await self.telegram_app.process_update(update)
        self.finish({"ok": True})


class HealthHandler(RequestHandler):
    """GET /healthz: 200 while the process can reach its database, 503 otherwise."""

    def initialize(self, check: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self.check = check

    async def get(self) -> None:
        """Run the health check."""
        try:
            details = await self.check()
        except Exception as exc:
            log.warning("health check failed: %s", exc)
            self.set_status(503)
            self.finish({"ok": False, "error": type(exc).__name__})
            return
        self.finish({"ok": True, **details})


def webhook_server(application: Application, *, path: str, secret: str,  # type: ignore[type-arg]
                   health: Callable[[], Awaitable[dict[str, Any]]]) -> HTTPServer:
    """An HTTP server with the webhook at `path` and the health check at /healthz (not yet listening)."""
    routes: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [
        (path, UpdateHandler, {"telegram_app": application, "secret": secret}),
        ("/healthz", HealthHandler, {"check": health}),
    ]
    return HTTPServer(WebApplication(routes), xheaders=True)
