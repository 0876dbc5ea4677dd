"""The composition root: builds settings, content, services and the front end, and runs the bot."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime

from telegram import Update
from telegram.ext import Application, ApplicationBuilder

from bot.console import Console
from bot.content import ContentLibrary, InvalidContent
from bot.core.services import Clock, Services
from bot.logs import configure_logging
from bot.settings import Settings
from bot.tg.frontend import TelegramFrontEnd

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The real clock (tests pass their own)."""
    return datetime.now(UTC)


def build_services(settings: Settings, content: ContentLibrary, clock: Clock = utc_now) -> Services:
    """The services every command gets."""
    return Services(content=content, clock=clock, admin_ids=settings.admin_ids)


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
        .build()
    )
    front_end.install(application)
    return application


def run(settings: Settings, *, force_console: bool = False, clock: Clock = utc_now) -> int:
    """Run the bot until stopped: Telegram long polling with a token, else the console. Returns the exit status."""
    configure_logging(settings.log_level, [settings.telegram_token])
    try:
        content = ContentLibrary.open(settings.content_dir, now=clock())
    except InvalidContent as exc:
        print(f"Refusing to start: the content in {settings.content_dir} is not valid:", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    services = build_services(settings, content, clock)
    if force_console or settings.console_mode:
        logging.getLogger().setLevel(logging.WARNING)  # keep the conversation readable
        asyncio.run(Console(services).run())
        return 0
    log.info("starting long polling against %s", settings.telegram_api_url)
    application = build_application(settings, services)
    application.run_polling(allowed_updates=Update.ALL_TYPES)
    return 0
