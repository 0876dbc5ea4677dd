"""The composition root: builds settings, content, store, services, scheduler and a front end, and runs them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, TextIO
from urllib.parse import urlsplit

from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from bot.console import CONSOLE_USER, Console, console_platform, language_from_environment
from bot.content import ContentLibrary, InvalidContent
from bot.content.diff import ContentChange
from bot.content.manager import ContentManager, OffLoopContentAdmin
from bot.content.replicate import ContentSync, SyncedContentAdmin
from bot.core.addresses import SLACK, AddressError
from bot.core.admin import describe_outcome
from bot.core.candidates import CandidateStore
from bot.core.digest_composer import DigestRules
from bot.core.document import Document
from bot.core.i18n import ENGLISH, Translator, translator
from bot.core.messages import Chat, Reply
from bot.core.ports import NO_METRICS, ChatAdmins, ContentAdmin, Metrics, WallClock, utc_now
from bot.core.prompts import PromptStore
from bot.core.services import EveryoneIsAdmin, QuietHoursCache, Services
from bot.core.subscriptions import Delivery, DeliveryKind, SubscriptionStore
from bot.delivery import DeliveryEngine, Platform, RateLimiter, RateLimits
from bot.digest_scheduler import DigestService, digest_composer
from bot.logs import configure_logging
from bot.metrics import GaugeReading, PrometheusMetrics, metrics_route, metrics_server, seconds_since
from bot.settings import Secret, Settings
from bot.slack import connect as slack_connect
from bot.slack.http import slack_routes
from bot.slack.identity import slack_id
from bot.slack.render import message_parts
from bot.slack.sender import SlackSender, slack_platform
from bot.sources.fetch import feed_session
from bot.sources.rounds import NotifyAdmin, SourcePolling
from bot.store import SqlStore, is_postgres, open_store
from bot.store.cluster import GlobalPacer, SchedulerLeadership, process_id
from bot.store.snapshots import snapshot_store
from bot.tg.admins import TelegramChatAdmins
from bot.tg.frontend import UPDATE_TYPES, TelegramFrontEnd, send_reply
from bot.tg.ids import chat_address
from bot.tg.ordering import PerChatOrderedProcessor
from bot.tg.platform import TelegramPace, telegram_platform
from bot.tg.sender import BotApiSender
from bot.tg.webhook import derive_secret, webhook_server

log = logging.getLogger(__name__)

CONCURRENT_UPDATES = 32
TELEGRAM = "telegram"  # the platform label of this front end's deliveries


# A message for the admins, written once per language: each admin reads it in their private chat's language.
Notice = Callable[[Translator], Document]
NotifyAdmins = Callable[[Notice], Awaitable[None]]


async def admin_language(runtime: Runtime, admin_id: int) -> str:
    """An admin's language (their private chat's, whose id is their user id); English if the store cannot say."""
    try:
        return await _admin_language(runtime.services, admin_id)
    except Exception:  # a notice about broken content must not fail because the store is failing too
        log.exception("could not read the language of admin %s", admin_id)
        return ENGLISH


def rate_limits(settings: Settings) -> RateLimits:
    """Delivery pacing from settings."""
    return RateLimits(messages_per_second=settings.messages_per_second, max_in_flight=settings.max_in_flight,
                      lease_seconds=settings.lease_seconds)


@dataclass(frozen=True)
class SlackSide:
    """The Slack front end of a running bot: its bolt app (for /slack/events), Web API client and Services."""

    bolt: Any
    client: Any
    services: Services
    sender: SlackSender


def telegram_pace(settings: Settings) -> TelegramPace:
    """Telegram's per-chat limits from settings."""
    return TelegramPace(private_interval=settings.private_chat_interval,
                        group_per_minute=settings.group_messages_per_minute)


@dataclass
class Runtime:
    """The parts of a running bot, for the front end and for tests to reach.

    `services` is the Services of the front end attached (before one attaches: of none, for tests and benchmarks).
    A front end does not fill fields in: it gets a new, complete Services from `services_for`, built once it knows
    its own facts (the bot's username, who administers a group), sharing everything else with the runtime's.
    """

    settings: Settings
    content: ContentLibrary
    store: SubscriptionStore
    services: Services
    content_admin: ContentManager
    delivery_wake: asyncio.Event = field(default_factory=asyncio.Event)
    sync: ContentSync | None = None
    digests: DigestService | None = None
    application: Application | None = None  # type: ignore[type-arg]
    watcher: asyncio.Task[None] | None = None
    stop_watching: asyncio.Event | None = None
    candidates: CandidateStore | None = None  # the review queue (the same SqlStore as `store`)
    slack: SlackSide | None = None
    metrics: PrometheusMetrics | None = None  # this process's registry (None: METRICS_ENABLED=false)

    def services_for(self, *, bot_username: str = "", chat_admins: ChatAdmins | None = None,
                     admin_ids: frozenset[int] | None = None) -> Services:
        """The complete Services of one front end: the runtime's, with that front end's own facts."""
        return replace(self.services, bot_username=bot_username, chat_admins=chat_admins or EveryoneIsAdmin(),
                       admin_ids=self.services.admin_ids if admin_ids is None else admin_ids)

    def start_watching(self, notify: NotifyAdmins) -> None:
        """Reload content when its files change; tell the admins what changed or what is wrong."""
        if not self.settings.watch_content:
            return

        async def on_change(change: ContentChange) -> None:
            await notify(lambda tr: describe_outcome(change, tr.gettext("Content reloaded."), tr))

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
                   clock: WallClock = utc_now, *, content_admin: ContentAdmin | None = None,
                   wake_delivery: Callable[[], None], candidates: CandidateStore | None = None,
                   prompts: PromptStore | None = None, metrics: Metrics = NO_METRICS) -> Services:
    """The services every command gets, complete; a front end derives its own with Runtime.services_for."""
    rules = DigestRules(lookback_days=settings.digest_lookback_days, spotlight_when_empty=settings.digest_spotlight)
    return Services(content=content, clock=clock, admin_ids=settings.admin_ids, operator_contact=settings.contact,
                    subscriptions=store, default_timezone=settings.timezone, digest_rules=rules,
                    quiet_hours_cache=QuietHoursCache(), content_admin=content_admin, audit=store,
                    wake_delivery=wake_delivery, candidates=candidates, prompts=prompts, metrics=metrics)


def build_digests(runtime: Runtime, platforms: Sequence[Platform], clock: WallClock,
                  notify_admin: NotifyAdmin | None = None) -> DigestService:
    """The delivery engine, the scheduler tick and (on the leader) the polling of official sources."""
    settings = runtime.settings
    services = runtime.services

    async def silent(delivery: Delivery) -> bool:
        return await services.hushed(delivery.subscription.chat,
                                     scheduled_digest=delivery.kind is DeliveryKind.DIGEST)

    # Replicas on one PostgreSQL: one of them schedules, and all of them share the sending ceiling.
    replicas = is_postgres(settings.database_url)
    leadership = SchedulerLeadership(settings.database_url) if replicas else None
    limits = rate_limits(settings)
    # Each platform has its own overall ceiling (Slack's is per workspace, Telegram's per bot), shared by the
    # replicas under the platform's own name.
    ceilings = {platform.name: settings.slack_messages_per_second if platform.name == SLACK
                else settings.messages_per_second for platform in platforms}
    pacers = {name: GlobalPacer(settings.database_url, ceiling, name=name) for name, ceiling in ceilings.items()
              if replicas and settings.shared_rate_limit and ceiling > 0}
    paced = [replace(platform, limiter=platform.limiter or RateLimiter(
        replace(limits, messages_per_second=ceilings[platform.name]), pace=platform.pace,
        global_pacer=pacers.get(platform.name))) for platform in platforms]
    engine = DeliveryEngine(runtime.store, paced, limits, silent=silent, worker_id=process_id(),
                            compose=digest_composer(runtime.store, runtime.content, clock,
                                                    runtime.services.digest_rules),
                            now=clock, metrics=services.metrics)
    retention = timedelta(days=settings.delivery_retention_days) if settings.delivery_retention_days else None
    expiry = timedelta(days=settings.candidate_expiry_days) if settings.candidate_expiry_days else None
    polling = None
    if settings.watch_sources and runtime.candidates is not None:
        polling = SourcePolling(runtime.candidates, runtime.content, clock, lambda: feed_session(settings.contact),
                                admin_ids=services.admin_ids, notify=notify_admin,
                                hushed=lambda admin_id: _admin_hushed(services, admin_id),
                                language_of=lambda admin_id: _admin_language(services, admin_id))
    return DigestService(runtime.store, engine, clock, tick_seconds=settings.tick_seconds, leadership=leadership,
                         closing=[part for part in (leadership, *pacers.values()) if part is not None],
                         retention=retention,
                         wake=runtime.delivery_wake, candidates=runtime.candidates, candidate_expiry=expiry,
                         polling=polling, prompts=services.prompts, metrics=services.metrics)


async def read_gauges(runtime: Runtime, clock: WallClock) -> GaugeReading:
    """The gauges a scrape shows: the store's open deliveries and subscriptions, the content, the review queue."""
    counts = await runtime.store.operations_counts() if isinstance(runtime.store, SqlStore) else None
    candidates = runtime.candidates
    waiting = sum((await candidates.count_open_candidates()).values()) if candidates is not None else None
    manager = runtime.content_admin
    return GaugeReading(
        open_deliveries=counts.open_deliveries if counts else 0,
        oldest_open_seconds=seconds_since(counts.oldest_open_at if counts else None, clock()),
        active_by_cadence=counts.active_by_cadence if counts else {},
        content_version=runtime.content.catalogue.version, content_loaded_at=manager.loaded_at,
        content_broken=manager.failing, open_candidates=waiting)


async def _admin_language(services: Services, admin_id: int) -> str:
    """An admin's language, kept on their private chat; a Slack admin (no such chat id) reads English here."""
    try:
        address = chat_address(admin_id)
    except AddressError:
        return ENGLISH
    return await services.chat_language(address)


async def _admin_hushed(services: Services, admin_id: int) -> bool:
    """An admin's quiet hours, kept on their private chat; a Slack admin (no such chat id) has none here."""
    try:
        address = chat_address(admin_id)
    except AddressError:
        return False
    return await services.hushed(address)


def build_application(settings: Settings) -> Application:  # type: ignore[type-arg]
    """A python-telegram-bot Application talking to settings.telegram_api_url; `attach_telegram` adds our front end."""
    return (
        ApplicationBuilder()
        .token(settings.telegram_token.reveal())
        .base_url(f"{settings.telegram_api_url}/bot")
        .base_file_url(f"{settings.telegram_api_url}/file/bot")
        # Updates from different chats are handled side by side (one slow chat does not hold up the rest);
        # one chat's updates keep their order.
        .concurrent_updates(PerChatOrderedProcessor(CONCURRENT_UPDATES))
        .build()
    )


async def attach_telegram(runtime: Runtime, application: Application) -> Services:  # type: ignore[type-arg]
    """Once the application is initialized (getMe told the bot's username): the Telegram front end's Services,
    its handlers and its command menus."""
    services = runtime.services_for(bot_username=application.bot.username,
                                    chat_admins=TelegramChatAdmins(application.bot))
    runtime.services = services
    runtime.application = application
    front_end = TelegramFrontEnd(services)
    front_end.install(application)
    await front_end.announce_commands(application)
    return services


@contextlib.asynccontextmanager
async def opened(settings: Settings, clock: WallClock = utc_now) -> AsyncIterator[Runtime]:
    """Load content (refusing invalid content) and open the store; close everything on the way out."""
    content = ContentLibrary.open(settings.content_dir, now=clock())
    store = await open_store(settings.database_url)
    try:
        # One registry per bot, owned here: several bots in one process (tests) count apart.
        metrics = PrometheusMetrics(process_id()) if settings.metrics_enabled else None
        manager = ContentManager(content, settings.content_history_dir, clock, metrics=metrics or NO_METRICS)
        # Replicas on one PostgreSQL: content changed on any of them reaches all (none on SQLite). Built here, for
        # the content admin the commands get; started by `running`.
        snapshots = snapshot_store(settings.database_url)
        sync = ContentSync(snapshots, manager) if snapshots is not None else None
        content_admin = OffLoopContentAdmin(manager) if sync is None else SyncedContentAdmin(manager, sync)
        # The delivery loop's wake-up exists before the loop, so the commands' Services is complete from the start.
        delivery_wake = asyncio.Event()
        services = build_services(settings, content, store, clock, content_admin=content_admin,
                                  wake_delivery=delivery_wake.set, candidates=store, prompts=store,
                                  metrics=metrics or NO_METRICS)
        yield Runtime(settings, content, store, services, manager, delivery_wake, sync, candidates=store,
                      metrics=metrics)
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def running(runtime: Runtime, platforms: Sequence[Platform], notify: NotifyAdmins,
                  clock: WallClock, notify_admin: NotifyAdmin | None = None) -> AsyncIterator[DigestService]:
    """The one lifecycle of every front end (polling, webhook, console): start the content sync between replicas,
    the digests (scheduler tick, delivery loop, sources polling) and the content watcher; stop them in reverse.

    `notify` tells every admin, each in their own language (content changes); `notify_admin` one admin (new review
    candidates, sent to each admin outside their own quiet hours)."""
    if runtime.sync is not None:
        await runtime.sync.start()  # takes the published content before anything is answered
    try:
        digests = runtime.digests = build_digests(runtime, platforms, clock, notify_admin)
        digests.start()
        try:
            runtime.start_watching(notify)
            try:
                yield digests
            finally:
                await runtime.stop_watcher()
        finally:
            await digests.stop()
    finally:
        if runtime.sync is not None:
            await runtime.sync.close()


@contextlib.asynccontextmanager
async def telegram_running(runtime: Runtime, clock: WallClock = utc_now) -> AsyncIterator[Runtime]:
    """Updates (long polling, or the webhook when WEBHOOK_URL is set), the command menu, the scheduler tick, the
    delivery loop and the content watcher; all stopped gracefully on exit. Slack's HTTP mode, when attached
    (attach_slack), is served by the same web server."""
    settings = runtime.settings
    application = build_application(settings)
    async with application:
        await attach_telegram(runtime, application)

        async def notify_admin(admin_id: int, message: Document) -> None:
            try:
                await send_reply(application, Chat(chat_address(admin_id)), Reply(message))
            except TelegramError as exc:
                log.warning("could not notify admin %s: %s", admin_id, exc)

        async def notify_admins(notice: Notice) -> None:
            for admin_id in sorted(settings.admin_ids):
                await notify_admin(admin_id, notice(translator(await admin_language(runtime, admin_id))))

        # Replies go through python-telegram-bot; the digest fan-out through a lean aiohttp client to the same
        # Bot API server, which keeps up with 1,000 messages/s where PTB's httpx pool does not (bench/README.md).
        sender = BotApiSender.for_bot(application.bot, connections=max(settings.max_in_flight, 1))
        platforms = [telegram_platform(sender, telegram_pace(settings))]
        if runtime.slack is not None:  # Slack too: one engine, each chat through its own platform
            platforms.append(slack_platform(runtime.slack.sender))
        async with sender, running(runtime, platforms, notify_admins, clock, notify_admin), \
                _serving_metrics(runtime, clock), _receiving_updates(runtime, application, clock):
            await application.start()
            try:
                yield runtime
            finally:
                await application.stop()


@contextlib.asynccontextmanager
async def _receiving_updates(runtime: Runtime, application: Application,  # type: ignore[type-arg]
                             clock: WallClock) -> AsyncIterator[None]:
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
                            worker=process_id(), clock=clock, health=health,
                            extra_routes=[*_metrics_routes(runtime, clock), *_slack_routes(runtime)])
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


def _metrics_routes(runtime: Runtime, clock: WallClock) -> list[Any]:
    """/metrics on the web server (PORT), when metrics are on."""
    if runtime.metrics is None:
        return []
    token = runtime.settings.metrics_token.reveal()
    return [metrics_route(runtime.metrics, lambda: read_gauges(runtime, clock), token)]


def _slack_routes(runtime: Runtime) -> list[Any]:
    slack = runtime.slack
    return slack_routes(slack.bolt) if slack is not None and runtime.settings.slack_http_mode else []


def _health(runtime: Runtime) -> Callable[[], Awaitable[dict[str, Any]]]:
    async def health() -> dict[str, Any]:
        await runtime.store.next_due_at()  # a cheap, indexed query: the database answers
        return {"content_version": runtime.content.catalogue.version}
    return health


def attach_slack(runtime: Runtime) -> SlackSide:
    """The Slack front end's Services (SLACK_ADMIN_IDS are its bot admins; channel admins asked of Slack), its bolt
    app and its sender."""
    settings = runtime.settings
    client = slack_connect.web_client(settings.slack_bot_token.reveal(), settings.slack_api_url,
                                      connections=max(settings.max_in_flight, 1))
    services = runtime.services_for(chat_admins=slack_connect.chat_admins(client, settings.slack_admin_ids),
                                    admin_ids=slack_connect.admin_numbers(settings.slack_admin_ids))
    signing = settings.slack_signing_secret.reveal() if settings.slack_http_mode else ""
    bolt = slack_connect.bolt_app(client, signing, services)
    runtime.slack = SlackSide(bolt, client, services, SlackSender(client))
    return runtime.slack


@contextlib.asynccontextmanager
async def slack_running(runtime: Runtime, clock: WallClock = utc_now) -> AsyncIterator[SlackSide]:
    """Slack alone (no Telegram): Socket Mode, or /slack/events on PORT; the digests and broadcasts go to Slack."""
    settings = runtime.settings
    slack = runtime.slack or attach_slack(runtime)
    runtime.services = slack.services

    async def notify_admin(admin_id: int, message: Document) -> None:
        for part in message_parts(message):
            try:
                await slack.sender.post(slack_id(admin_id), part)
            except Exception as exc:
                log.warning("could not notify Slack admin %s: %s", admin_id, exc)

    async def notify_admins(notice: Notice) -> None:
        for admin_id in sorted(slack.services.admin_ids):
            await notify_admin(admin_id, notice(translator(await admin_language(runtime, admin_id))))

    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(slack_connect.close_client, slack.client)
        await stack.enter_async_context(running(runtime, [slack_platform(slack.sender)], notify_admins, clock,
                                                notify_admin))
        await stack.enter_async_context(_serving_metrics(runtime, clock))
        if settings.slack_socket_mode:
            async with slack_connect.socket_mode(slack.bolt, settings.slack_app_token.reveal()):
                yield slack
            return
        server = webhook_server(None, path="/", secret="", store=runtime.store, worker=process_id(), clock=clock,
                                health=_health(runtime),
                                extra_routes=[*_metrics_routes(runtime, clock), *_slack_routes(runtime)])
        server.listen(settings.port, settings.webhook_listen)
        log.info("serving Slack's events on %s:%s/slack/events", settings.webhook_listen, settings.port)
        try:
            yield slack
        finally:
            server.stop()
            await server.close_all_connections()


@contextlib.asynccontextmanager
async def _serving_metrics(runtime: Runtime, clock: WallClock) -> AsyncIterator[None]:
    """/metrics on METRICS_PORT, when set (and metrics are on); the webhook server serves it on PORT as well."""
    settings = runtime.settings
    if runtime.metrics is None or not settings.metrics_port:
        yield
        return
    server = metrics_server(runtime.metrics, lambda: read_gauges(runtime, clock), settings.metrics_token.reveal())
    server.listen(settings.metrics_port, settings.metrics_listen)
    log.info("serving /metrics on %s:%s", settings.metrics_listen, settings.metrics_port)
    try:
        yield
    finally:
        server.stop()
        await server.close_all_connections()


async def serve(settings: Settings, *, clock: WallClock = utc_now, force_console: bool = False,
                stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, language: str | None = None) -> int:
    """Run the bot until SIGTERM/SIGINT (Telegram) or end of input (console). Returns the exit status."""
    try:
        async with opened(settings, clock) as runtime:
            if force_console or settings.console_mode:
                # The person at the terminal is the admin.
                runtime.services = runtime.services_for(admin_ids=settings.admin_ids | {CONSOLE_USER.id})
                console = Console(runtime.services, stdin, stdout,
                                  language or language_from_environment(os.environ))

                async def notify_console(notice: Notice) -> None:
                    console.show(notice(translator(console.language)))

                async def notify_console_admin(admin_id: int, message: Document) -> None:
                    if admin_id == CONSOLE_USER.id:  # the other admins are not at this terminal
                        console.show(message)

                async with running(runtime, [console_platform(console)], notify_console, clock,
                                   notify_console_admin):
                    freeze_startup_objects()
                    await console.run()
                return 0
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, stop.set)
            if settings.telegram_token:
                log.info("starting Telegram (%s) against %s", "webhook" if settings.webhook_mode else "long polling",
                         settings.telegram_api_url)
            if settings.slack:
                log.info("starting Slack (%s)", "Socket Mode" if settings.slack_socket_mode else "HTTP mode")
            async with contextlib.AsyncExitStack() as stack:
                if settings.slack:
                    stack.push_async_callback(slack_connect.close_client, attach_slack(runtime).client)
                if settings.telegram_token:
                    await stack.enter_async_context(telegram_running(runtime, clock))
                    if settings.slack_socket_mode:
                        assert runtime.slack is not None
                        await stack.enter_async_context(
                            slack_connect.socket_mode(runtime.slack.bolt, settings.slack_app_token.reveal()))
                else:
                    await stack.enter_async_context(slack_running(runtime, clock))
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


def run(settings: Settings, *, force_console: bool = False, language: str | None = None) -> int:
    """Configure logging and serve; the process's exit status. `language` is the console's (else from LANG)."""
    secrets = [settings.telegram_token, webhook_secret(settings)] if settings.telegram_token else []
    secrets += [secret for secret in (settings.slack_bot_token, settings.slack_app_token,
                                      settings.slack_signing_secret) if secret]
    configure_logging(settings.log_level, [*secrets, settings.metrics_token], log_format=settings.log_format,
                      replica=process_id())
    if force_console or settings.console_mode:
        logging.getLogger().setLevel(logging.WARNING)  # keep the conversation readable
    return asyncio.run(serve(settings, force_console=force_console, language=language))
