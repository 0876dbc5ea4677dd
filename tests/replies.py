"""Test helpers: a reply or a digest as the Telegram front end renders it, and as the console prints it."""

from __future__ import annotations

from bot.console import render_text
from bot.core.messages import Reply
from bot.core.subscriptions import DigestPayload
from bot.tg.render import html_parts, render_html


def html(reply: Reply) -> str:
    """The reply's whole text as Telegram HTML (before splitting), as tests asserted on it before documents."""
    return render_html(reply.body)


def text(reply: Reply) -> str:
    """The reply's text as the console prints it."""
    return render_text(reply.body)


def parts(payload: DigestPayload) -> list[str]:
    """A composed digest as the Telegram messages that carry it."""
    assert payload.message is not None
    return html_parts(payload.message)
