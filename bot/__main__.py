"""Command line: `python -m bot` runs the bot; `content check [DIR]` validates content; `sources check [DIR]` the
sources file; `sources poll [--source ID]` fetches the sources once and prints what would become candidates."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bot.content.check import checked_catalogue
from bot.core.catalogue import LANGUAGES
from bot.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run what it asks for; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bot", description="HK AI Pulse Telegram bot")
    parser.add_argument("--config", type=Path, default=None, help="settings file (default config/settings.yaml)")
    parser.add_argument("--lang", choices=LANGUAGES, default=None,
                        help="the console's language (default: from LANG, e.g. zh_HK.UTF-8 gives zh-Hant)")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="run the bot: Telegram when TELEGRAM_BOT_TOKEN is set, else the console")
    commands.add_parser("console", help="run the bot in this terminal, whatever the settings")
    content = commands.add_parser("content", help="content tools")
    content_commands = content.add_subparsers(dest="content_command", required=True)
    check = content_commands.add_parser("check", help="validate content files and print every problem")
    check.add_argument("directory", nargs="?", type=Path, default=None)
    check.add_argument("--lang", choices=LANGUAGES, default=None,
                       help="also list every missing translation into this language (and fail on any)")
    sources = commands.add_parser("sources", help="the official sources the bot watches (content/sources.yaml)")
    sources_commands = sources.add_subparsers(dest="sources_command", required=True)
    sources_check = sources_commands.add_parser("check", help="validate the sources file with the rest of content")
    sources_check.add_argument("directory", nargs="?", type=Path, default=None)
    sources_poll = sources_commands.add_parser("poll", help="fetch once and print what would become candidates "
                                                            "(stores nothing)")
    sources_poll.add_argument("--source", default=None, help="only this source id")
    args = parser.parse_args(argv)
    # python-telegram-bot 22 deprecates integer retry_after; opt into timedeltas (our sender reads both).
    os.environ.setdefault("PTB_TIMEDELTA", "true")

    try:
        settings = load_settings(args.config, os.environ)
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2

    if args.command == "content":
        return check_content(args.directory or settings.content_dir, args.lang)
    if args.command == "sources":
        from bot.sources.cli import check_sources, poll_once

        if args.sources_command == "check":
            return check_sources(args.directory or settings.content_dir)
        return poll_once(settings.content_dir, settings.contact, args.source)

    from bot.app import run

    return run(settings, force_console=args.command == "console", language=args.lang)


def check_content(directory: Path, language: str | None = None) -> int:
    """Validate a content directory; print every error as file:line: key: message (also: updates after tomorrow,
    and with `language` every missing translation into it)."""
    catalogue = checked_catalogue(directory, require_language=language)
    if catalogue is None:
        return 1
    translated = f", every item translated into {language}" if language else ""
    print(f"{directory}: OK — {len(catalogue.sections)} sections, {len(catalogue.initiatives)} initiatives, "
          f"{len(catalogue.updates)} updates{translated} (version {catalogue.version})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
