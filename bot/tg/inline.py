"""The core's inline cards as Telegram inline results: an article per card, posted as an HTML card with a button
that opens the card's sector in the bot (`https://t.me/<bot>?start=finance`)."""

from __future__ import annotations

import re

from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InlineQueryResultArticle,
    InlineQueryResultsButton,
    InputTextMessageContent,
)
from telegram.constants import ParseMode

from bot.core.inline import Card, InlinePage
from bot.tg.render import MESSAGE_LIMIT, render_html, split_message, text_length
from bot.tg.sender import NO_PREVIEW

# Results may be cached by Telegram this long: short enough that a content reload shows within minutes.
CACHE_SECONDS = 120
# What /start accepts as a deep-link payload (Bot API: 1-64 characters of A-Z, a-z, 0-9, _ and -).
_START_PAYLOAD = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Above an empty list: a way into the bot. /start with a payload that names no sector is the plain welcome.
BROWSE_PAYLOAD = "browse"


def deep_link(bot_username: str, section_id: str) -> str | None:
    """`https://t.me/OurBot?start=finance`: opens the sector in a private chat with the bot (None when either part
    cannot make a link)."""
    if not bot_username or not _START_PAYLOAD.fullmatch(section_id):
        return None
    return f"https://t.me/{bot_username}?start={section_id}"


def article(card: Card, bot_username: str, open_label: str = "Open in HK AI Pulse") -> InlineQueryResultArticle:
    """One card as an article: its title and description in the list; when chosen, the card as HTML."""
    html = render_html(card.body)
    if text_length(html) > MESSAGE_LIMIT:  # the core keeps cards short; this only guards the Bot API's limit
        html = split_message(html)[0]
    url = deep_link(bot_username, card.section_id)
    markup = InlineKeyboardMarkup([[InlineKeyboardButton(open_label, url=url)]]) if url else None
    return InlineQueryResultArticle(
        id=card.id, title=card.title or "HK AI Pulse", description=card.description or None,
        input_message_content=InputTextMessageContent(html, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW),
        reply_markup=markup)


def articles(page: InlinePage, bot_username: str) -> list[InlineQueryResultArticle]:
    """Every card of a page, as articles."""
    return [article(card, bot_username, page.open_label) for card in page.cards]


def results_button(page: InlinePage, offset: str) -> InlineQueryResultsButton | None:
    """The button above the results: only when a first page found nothing, so the user still has somewhere to go."""
    if page.cards or offset:
        return None
    return InlineQueryResultsButton(page.nothing_found, start_parameter=BROWSE_PAYLOAD)
