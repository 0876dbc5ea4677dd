"""Webhook mode: serve Telegram's webhook over plain HTTP (behind a TLS proxy) with a health check."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from telegram import Update
from telegram.ext import Application
from tornado.httpserver import HTTPServer
from tornado.web import Application as WebApplication
from tornado.web import RequestHandler, stream_request_body

from bot.core.ports import WallClock
from bot.core.subscriptions import IncomingClaim, SubscriptionStore
from bot.web import MAX_BODY_BYTES, CappedBodyHandler

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Why 1 MiB (bot.web): an update is one message or event (text at most 4,096 characters, a caption 1,024) with its
# entities, the message it replies to, a quote and a keyboard: a few KB, tens of KB at the extreme. A request without
# the secret holds none of its body (see prepare).
MAX_UPDATE_BYTES = MAX_BODY_BYTES
# How long a replica may take to handle an update before another may take it over. Handling is a command (a few
# database calls and a reply, seconds at worst); a replica that died mid-way holds its updates this long.
HANDLING_LEASE_SECONDS = 60.0
BUSY_POLL_SECONDS = 0.2
_LARGEST_UPDATE_ID = 2**63 - 1  # stored as a 64-bit integer


def derive_secret(token: str) -> str:
    """A webhook secret every replica derives alike from the bot token (1-256 chars of [A-Za-z0-9_-])."""
    return hashlib.sha256(b"hk-ai-pulse-webhook:" + token.encode()).hexdigest()


class MalformedUpdate(ValueError):
    """A webhook body that is not one Telegram update; its message is the answer's short description."""


def parse_update(body: bytes) -> tuple[int, dict[str, Any]]:
    """The update_id and JSON object of a webhook body: `{"update_id": 1, "message": {...}}` -> (1, {...})."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # invalid UTF-8 is a ValueError; deep nesting a RecursionError
        raise MalformedUpdate(f"not JSON: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise MalformedUpdate("not a JSON object")
    update_id = data.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool) or not 0 <= update_id <= _LARGEST_UPDATE_ID:
        raise MalformedUpdate("no integer update_id")
    return update_id, data


@stream_request_body
class UpdateHandler(CappedBodyHandler):
    """Telegram's POST of one Update: checked, processed once, and only then acknowledged.

    Answering after processing means an update whose replica dies mid-way is not acknowledged, and Telegram
    delivers it again (to whichever replica the router picks).
    """

    what = "an update"

    def initialize(self, telegram_app: Application, secret: str,  # type: ignore[type-arg,override]
                   store: SubscriptionStore, worker: str, clock: WallClock) -> None:
        super().initialize()
        self.telegram_app = telegram_app  # not `application`: RequestHandler uses that name for tornado's app
        self.secret = secret
        self.store = store
        self.worker = worker
        self.clock = clock

    def prepare(self) -> None:
        """Refuse on the headers alone, before a byte of the body is read: no secret (403), too large (413)."""
        given = self.request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            log.warning("rejected a webhook request without the right secret token from %s", self.request.remote_ip)
            self.refuse(403, "wrong or missing secret token")
            return
        self.check_length()

    async def post(self) -> None:
        """Parse the update; process it unless it was processed before; answer 200."""
        try:
            update_id, data = parse_update(bytes(self.body))
            update = Update.de_json(data, self.telegram_app.bot)
        except MalformedUpdate as exc:
            log.warning("rejected a malformed webhook update from %s: %s", self.request.remote_ip, exc)
            self.refuse(400, f"malformed update: {exc}")
            return
        except Exception as exc:  # PTB raises whatever a malformed field provokes (TypeError, AttributeError, ...)
            log.warning("rejected a malformed webhook update from %s: %s: %s", self.request.remote_ip,
                        type(exc).__name__, exc)
            self.refuse(400, "malformed update")
            return
        # Why a claim under a lease, and "done" only after processing: Telegram posts an update again when its
        # request timed out, typically while the first request is still processing it. Recording the id only
        # after processing would let that second request process it too; recording it as done before processing
        # would lose it when the process dies mid-way (Telegram then posts it again, and it must be processed).
        # So the first request claims it; a second one waits for the outcome: done (200, not processed again),
        # or the claim's lease running out because its holder died (then the second one processes it). On
        # PostgreSQL the claim is one atomic upsert, so this holds across replicas. Long polling needs none of
        # this: getUpdates' offset confirms updates, so PTB never receives one twice.
        claimant = f"{self.worker}#{secrets.token_hex(4)}"  # this request: a release ends no other's claim
        claim = await self.claim(update_id, claimant)
        if claim is IncomingClaim.DONE:
            log.info("update %s was posted again; it was processed before", update_id)
            self.finish({"ok": True})
            return
        if claim is IncomingClaim.BUSY:
            # Still being processed elsewhere: not acknowledged, so Telegram posts it again later.
            self.refuse(503, "this update is being processed")
            return
        try:
            # Through the application's update processor, as long polling does: at most CONCURRENT_UPDATES at
            # once, and one chat's updates in the order they arrived.
            app = self.telegram_app
            await app.update_processor.process_update(update, app.process_update(update))
        except BaseException:
            if claim is not None:
                with contextlib.suppress(Exception):
                    await self.store.release_incoming(update_id, claimant)
            raise
        if claim is not None:
            try:
                await self.store.finish_incoming(update_id, self.clock())
            except Exception as exc:
                log.warning("could not record update %s as processed: %s", update_id, exc)
        self.finish({"ok": True})

    async def claim(self, update_id: int, claimant: str) -> IncomingClaim | None:
        """Claim the update in the store, waiting while another request holds it; None if the store is down."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HANDLING_LEASE_SECONDS + 1.0  # by then the holder finished or its lease ran out
        while True:
            try:
                claim = await self.store.claim_incoming(update_id, claimant, self.clock(), HANDLING_LEASE_SECONDS)
            except Exception as exc:
                # Why process anyway: answering commands matters more than the rare duplicate while the
                # database is away; refusing would stall every command until it is back.
                log.warning("cannot tell whether update %s was processed before (%s); processing it", update_id, exc)
                return None
            if claim is IncomingClaim.RETAKEN:
                log.warning("processing update %s again: the process handling it did not finish in %g s",
                            update_id, HANDLING_LEASE_SECONDS)
            if claim is not IncomingClaim.BUSY or loop.time() >= deadline:
                return claim
            await asyncio.sleep(BUSY_POLL_SECONDS)


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


def webhook_server(application: Application | None, *, path: str, secret: str,  # type: ignore[type-arg]
                   store: SubscriptionStore, worker: str, clock: WallClock,
                   health: Callable[[], Awaitable[dict[str, Any]]],
                   extra_routes: Sequence[tuple[str, type[RequestHandler], dict[str, Any]]] = ()) -> HTTPServer:
    """An HTTP server with the webhook at `path` (when there is a Telegram application), the health check at
    /healthz and `extra_routes` (/metrics, Slack's events), not yet listening."""
    routes: list[tuple[str, type[RequestHandler], dict[str, Any]]] = [("/healthz", HealthHandler, {"check": health}),
                                                                       *extra_routes]
    if application is not None:
        routes.insert(0, (path, UpdateHandler, {"telegram_app": application, "secret": secret, "store": store,
                                                "worker": worker, "clock": clock}))
    # No route reads a larger body: tornado refuses one (any path) before buffering it.
    return HTTPServer(WebApplication(routes), xheaders=True, max_body_size=MAX_UPDATE_BYTES)
