"""The composition root: builds settings, content, store, services, scheduler and a front end, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO
from urllib.parse import urlsplit

from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from bot.console import CONSOLE_USER, Console, ConsoleSender
from bot.content import ContentLibrary, InvalidContent
from bot.content.diff import ContentChange
from bot.content.manager import ContentManager, OffLoopContentAdmin
from bot.content.replicate import ContentSync, SyncedContentAdmin, start_content_sync
from bot.core.admin import describe_outcome
from bot.core.digest import DigestRules
from bot.core.messages import Chat, Reply
from bot.core.services import Clock, Services
from bot.core.subscriptions import Delivery, DeliveryKind, SubscriptionStore
from bot.delivery import DeliveryEngine, RateLimiter, RateLimits, Sender
from bot.digests import DigestService, digest_composer
from bot.logs import configure_logging
from bot.settings import Secret, Settings
from bot.store import is_postgres, open_store
from bot.store.cluster import GlobalPacer, SchedulerLeadership, process_id
from bot.store.snapshots import snapshot_store
from bot.tg.admins import TelegramChatAdmins
from bot.tg.frontend import UPDATE_TYPES, TelegramFrontEnd, send_reply
from bot.tg.ordering import PerChatOrderedProcessor
from bot.tg.sender import BotApiSender
from bot.tg.webhook import derive_secret, webhook_server

log = logging.getLogger(__name__)

CONCURRENT_UPDATES = 32


def utc_now() -> datetime:
    """The real clock (tests pass their own)."""
    return datetime.now(UTC)


def rate_limits(settings: Settings) -> RateLimits:
    """Delivery pacing from settings."""
    return RateLimits(messages_per_second=settings.messages_per_second,
                      private_interval=settings.private_chat_interval,
                      group_per_minute=settings.group_messages_per_minute, max_in_flight=settings.max_in_flight,
                      lease_seconds=settings.lease_seconds)


@dataclass
class Runtime:
    """The parts of a running bot, for the front end and for tests to reach."""

    settings: Settings
    content: ContentLibrary
    store: SubscriptionStore
    services: Services
    content_admin: ContentManager
    digests: DigestService | None = None
    application: Application | None = None  # type: ignore[type-arg]
    watcher: asyncio.Task[None] | None = None
    stop_watching: asyncio.Event | None = None

    def start_watching(self, notify: Callable[[str], Awaitable[None]]) -> None:
        """Reload content when its files change; tell the admins what changed or what is wrong."""
        if not self.settings.watch_content:
            return

        async def on_change(change: ContentChange) -> None:
            await notify(describe_outcome(change, "Content reloaded."))

        self.stop_watching = asyncio.Event()
        watching = self.content_admin.watch(self.stop_watching, on_change)
        self.watcher = asyncio.create_task(watching, name="content-watch")

    async def stop_watcher(self) -> None:
        """Stop the content watcher, if running."""
        if self.watcher is not None and self.stop_watching is not None:
            self.stop_watching.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watcher
            self.watcher = None


def build_services(settings: Settings, content: ContentLibrary, store: SubscriptionStore | None,
                   clock: Clock = utc_now) -> Services:
    """The services every command gets."""
    rules = DigestRules(lookback_days=settings.digest_lookback_days, spotlight_when_empty=settings.digest_spotlight)
    return Services(content=content, clock=clock, admin_ids=settings.admin_ids, operator_contact=settings.contact,
                    subscriptions=store, default_timezone=settings.timezone, digest_rules=rules)


def build_digests(runtime: Runtime, sender: Sender, clock: Clock) -> DigestService:
    """The delivery engine and the scheduler tick for this process."""
    settings = runtime.settings
    services = runtime.services

    async def silent(delivery: Delivery) -> bool:
        # Quiet hours silence everything but the scheduled digest.
        if delivery.kind is DeliveryKind.DIGEST:
            return False
        hours = await services.quiet_hours(delivery.subscription.chat_id)
        return hours is not None and hours.contains(clock())

    # Replicas on one PostgreSQL: one of them schedules, and all of them share the sending ceiling.
    replicas = is_postgres(settings.database_url)
    leadership = SchedulerLeadership(settings.database_url) if replicas else None
    pacer = (GlobalPacer(settings.database_url, settings.messages_per_second)
             if replicas and settings.shared_rate_limit and settings.messages_per_second > 0 else None)
    limits = rate_limits(settings)
    engine = DeliveryEngine(runtime.store, sender, limits, silent=silent,
                            worker_id=process_id(),
                            compose=digest_composer(runtime.store, runtime.content, clock,
                                                    runtime.services.digest_rules),
                            now=clock, limiter=RateLimiter(limits, global_pacer=pacer))
    retention = timedelta(days=settings.delivery_retention_days) if settings.delivery_retention_days else None
    return DigestService(runtime.store, engine, clock, tick_seconds=settings.tick_seconds, leadership=leadership,
                         closing=[part for part in (leadership, pacer) if part is not None], retention=retention)


def build_application(settings: Settings, services: Services) -> Application:  # type: ignore[type-arg]
    """A python-telegram-bot Application wired to our front end, talking to settings.telegram_api_url."""
    front_end = TelegramFrontEnd(services)

    async def post_init(application: Application) -> None:  # type: ignore[type-arg]
        await front_end.announce_commands(application)

    application = (
        ApplicationBuilder()
        .token(settings.telegram_token.reveal())
        .base_url(f"{settings.telegram_api_url}/bot")
        .base_file_url(f"{settings.telegram_api_url}/file/bot")
        .post_init(post_init)
        # Updates from different chats are handled side by side (one slow chat does not hold up the rest);
        # one chat's updates keep their order.
        .concurrent_updates(PerChatOrderedProcessor(CONCURRENT_UPDATES))
        .build()
    )
    front_end.install(application)
    return application


@contextlib.asynccontextmanager
async def opened(settings: Settings, clock: Clock = utc_now) -> AsyncIterator[Runtime]:
    """Load content (refusing invalid content) and open the store; close everything on the way out."""
    content = ContentLibrary.open(settings.content_dir, now=clock())
    store = await open_store(settings.database_url)
    sync: ContentSync | None = None
    try:
        services = build_services(settings, content, store, clock)
        manager = ContentManager(content, settings.content_history_dir, clock)
        services.content_admin = OffLoopContentAdmin(manager)
        services.audit = store
        # Replicas on one PostgreSQL: content changed on any of them reaches all (no-op on SQLite).
        sync = await start_content_sync(snapshot_store(settings.database_url), manager)
        if sync is not None:
            services.content_admin = SyncedContentAdmin(manager, sync)
        yield Runtime(settings, content, store, services, manager)
    finally:
        if sync is not None:
            await sync.close()
        await store.close()


@contextlib.asynccontextmanager
async def telegram_running(runtime: Runtime, clock: Clock = utc_now) -> AsyncIterator[Runtime]:
    """Updates (long polling, or the webhook when WEBHOOK_URL is set), the command menu, the scheduler tick, the
    delivery loop and the content watcher; all stopped gracefully on exit."""
    settings = runtime.settings
    application = build_application(settings, runtime.services)
    runtime.application = application
    async with application:
        runtime.services.chat_admins = TelegramChatAdmins(application.bot)
        if application.post_init is not None:
            await application.post_init(application)
        # Replies go through python-telegram-bot; the digest fan-out through a lean aiohttp client to the same
        # Bot API server, which keeps up with 1,000 messages/s where PTB's httpx pool does not (bench/README.md).
        sender = BotApiSender.for_bot(application.bot, connections=max(settings.max_in_flight, 1))
        runtime.digests = build_digests(runtime, sender, clock)
        runtime.services.wake_delivery = runtime.digests.wake
        async with sender, _receiving_updates(runtime, application, clock):
            await application.start()
            runtime.digests.start()

            async def notify_admins(html: str) -> None:
                for admin_id in sorted(settings.admin_ids):
                    try:
                        await send_reply(application, Chat(admin_id), Reply(html))
                    except TelegramError as exc:
                        log.warning("could not notify admin %s: %s", admin_id, exc)

            runtime.start_watching(notify_admins)
            try:
                yield runtime
            finally:
                await runtime.stop_watcher()
                await runtime.digests.stop()
                await application.stop()


@contextlib.asynccontextmanager
async def _receiving_updates(runtime: Runtime, application: Application,  # type: ignore[type-arg]
                             clock: Clock) -> AsyncIterator[None]:
    """Long polling, or a webhook server on PORT registered with setWebhook; stops taking updates on exit."""
    settings = runtime.settings
    if not settings.webhook_mode:
        assert application.updater is not None
        await application.updater.start_polling(allowed_updates=list(UPDATE_TYPES))
        try:
            yield
        finally:
            await application.updater.stop()
        return
    secret = webhook_secret(settings).reveal()
    path = urlsplit(settings.webhook_url).path or "/"

    async def health() -> dict[str, Any]:
        await runtime.store.next_due_at()  # a cheap, indexed query: the database answers
        return {"content_version": runtime.content.catalogue.version}

    server = webhook_server(application, path=path, secret=secret, store=runtime.store,
                            worker=process_id(), clock=clock, health=health)
    server.listen(settings.port, settings.webhook_listen)
    log.info("serving the webhook on %s:%s%s", settings.webhook_listen, settings.port, path)
    try:
        # Every replica registers the same URL and secret: idempotent. Pending updates are kept.
        await application.bot.set_webhook(settings.webhook_url, secret_token=secret,
                                          allowed_updates=list(UPDATE_TYPES))
        yield
    finally:
        server.stop()  # no new connections; requests in progress finish
        await server.close_all_connections()


async def serve(settings: Settings, *, clock: Clock = utc_now, force_console: bool = False,
                stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout) -> int:
    """Run the bot until SIGTERM/SIGINT (Telegram) or end of input (console). Returns the exit status."""
    try:
        async with opened(settings, clock) as runtime:
            if force_console or settings.console_mode:
                console = Console(runtime.services, stdin, stdout)
                runtime.services.admin_ids = runtime.services.admin_ids | {CONSOLE_USER.id}
                runtime.digests = build_digests(runtime, ConsoleSender(console), clock)
                runtime.services.wake_delivery = runtime.digests.wake
                runtime.digests.start()

                async def notify_console(html: str) -> None:
                    console.show(html)

                runtime.start_watching(notify_console)
                freeze_startup_objects()
                try:
                    await console.run()
                finally:
                    await runtime.stop_watcher()
                    await runtime.digests.stop()
                return 0
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            log.info("starting (%s) against %s", "webhook" if settings.webhook_mode else "long polling",
                     settings.telegram_api_url)
            async with telegram_running(runtime, clock):
                freeze_startup_objects()
                await stop.wait()
                log.info("stopping: finishing in-flight sends")
            return 0
    except InvalidContent as exc:
        print(f"Refusing to start: the content in {settings.content_dir} is not valid:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1


def freeze_startup_objects() -> None:
    """Keep what start-up built (modules, clients, the content) out of the garbage collector's full passes.

    They live as long as the process, yet every full collection walked them again: at 1,000 messages/s that was
    a 50-75 ms stall every 5 s. Reference counting still frees them if they go (a replaced catalogue does).
    """
    gc.freeze()


def webhook_secret(settings: Settings) -> Secret:
    """WEBHOOK_SECRET, or one every replica derives alike from the token."""
    return settings.webhook_secret or Secret(derive_secret(settings.telegram_token.reveal()))


def run(settings: Settings, *, force_console: bool = False) -> int:
    """Configure logging and serve; the process's exit status."""
    secrets = [settings.telegram_token, webhook_secret(settings)] if settings.telegram_token else []
    configure_logging(settings.log_level, secrets)
    if force_console or settings.console_mode:
        logging.getLogger().setLevel(logging.WARNING)  # keep the conversation readable
    return asyncio.run(serve(settings, force_console=force_console))
