"""Documents as Slack Block Kit: mrkdwn sections, context lines and buttons, split within Slack's limits.

`doc(heading("Sectors"), item(bold("Finance"), " — /sector finance"))` becomes one message,
`{"text": "Sectors\\n• Finance — /sector finance", "blocks": [{"type": "section", "text": {"type": "mrkdwn",
"text": "*Sectors*\\n• *Finance* — /sector finance"}}]}`; a reply's buttons follow as `actions` blocks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from bot.core.commands import COMMANDS
from bot.core.document import Block, Document, Line, LineKind, Span, Style
from bot.core.messages import Button, Reply

TEXT_LIMIT = 3000  # characters in one section's (or context element's) text
BLOCKS_LIMIT = 50  # blocks in one message
BUTTONS_PER_ACTIONS = 25  # elements in one actions block
BUTTON_TEXT_LIMIT = 75
FALLBACK_LIMIT = 3000  # the notification text: Slack truncates long ones; a summary is all it needs
ACTION_PREFIX = "hkai:"  # every button's action_id starts so; its value is the core's action (`sector finance`)
BULLET = "• "
SLASH_COMMAND = "/hkai"  # the app's one slash command: `/sector finance` in a reply reads `/hkai sector finance`
# A command named in a reply's text (`/sector finance`, not a path such as `hk/sector` or a URL).
_COMMAND_MENTION = re.compile(r"(?<![\w/@.])/(" + "|".join(sorted((re.escape(c.name) for c in COMMANDS), key=len,
                                                                   reverse=True)) + r")\b")

SlackMessage = dict[str, Any]  # {"text": fallback, "blocks": [...]}: the arguments of one chat.postMessage


def escape(text: str) -> str:
    """Text safe in mrkdwn: `&`, `<` and `>` become entities (Slack reads `<...>` as a link or mention)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _url(url: str) -> str:
    # Inside `<url|label>` a `|` or `>` would end the URL early: percent-encode them (a URL means the same).
    return url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def slack_commands(text: str) -> str:
    """Commands named in a text as Slack users type them: `send /help` -> `send /hkai help`."""
    return _COMMAND_MENTION.sub(SLASH_COMMAND + r" \1", text) if "/" in text else text


def _span(span: Span, in_bold: bool = False) -> str:
    text = escape(slack_commands(span.text))
    style = span.style
    if style is Style.PLAIN or (in_bold and style is Style.BOLD) or not text.strip():
        return text
    if style is Style.LINK:
        return f"<{_url(span.url)}|{text}>" if span.url else text
    mark = "*" if style is Style.BOLD else "_" if style is Style.ITALIC else "`"
    # mrkdwn needs the marks against the words: keep surrounding blanks outside them.
    stripped = text.strip()
    start = text.index(stripped[0])
    return f"{text[:start]}{mark}{stripped}{mark}{text[start + len(stripped):]}"


def render_line(line: Line) -> str:
    """One line as mrkdwn: a heading bold, an item with a bullet, preformatted text in a code block."""
    if line.kind is LineKind.PRE:
        return f"```{escape(''.join(span.text for span in line.spans))}```"
    if line.kind is LineKind.HEADING:
        inner = "".join(_span(span, in_bold=True) for span in line.spans)
        return f"*{inner.strip()}*" if inner.strip() else inner
    text = "".join(_span(span) for span in line.spans)
    return BULLET + text if line.kind is LineKind.ITEM else text


def _plain_line(line: Line) -> str:
    text = slack_commands("".join(span.text for span in line.spans))
    return BULLET + text if line.kind is LineKind.ITEM else text


def _is_context(block: Block) -> bool:
    """A block of one line in italics only (`Content version v7: ...`) is a footnote: a context block."""
    return len(block.lines) == 1 and block.lines[0].kind is LineKind.TEXT and all(
        span.style is Style.ITALIC or not span.text.strip() for span in block.lines[0].spans)


def _chunks(text: str, limit: int) -> list[str]:
    """`text` cut into pieces of at most `limit` characters, at line breaks, else spaces, else anywhere."""
    pieces: list[str] = []
    while len(text) > limit:
        cut = text.rfind("\n", 0, limit + 1)
        if cut <= 0:
            cut = text.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
            # Never cut an entity (`&amp;`) in two: Slack would show its halves.
            amp = text.rfind("&", max(0, cut - 5), cut)
            if amp > 0 and ";" not in text[amp:cut]:
                cut = amp
        pieces.append(text[:cut])
        text = text[cut:].lstrip("\n ") if text[cut:cut + 1] in ("\n", " ") else text[cut:]
    if text:
        pieces.append(text)
    return [piece for piece in pieces if piece.strip()]


def document_blocks(document: Document) -> list[dict[str, Any]]:
    """The document's blocks: one section per block (cut at line breaks beyond 3,000 characters), footnotes as
    context."""
    blocks: list[dict[str, Any]] = []
    for each in document.blocks:
        text = "\n".join(render_line(line) for line in each.lines)
        if not text.strip():
            continue
        if _is_context(each) and len(text) <= TEXT_LIMIT:
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": text}]})
            continue
        blocks.extend({"type": "section", "text": {"type": "mrkdwn", "text": piece}}
                      for piece in _chunks(text, TEXT_LIMIT))
    return blocks


def button_blocks(rows: Sequence[Sequence[Button]]) -> list[dict[str, Any]]:
    """Each row of buttons as an actions block (a row over 25 buttons continues in the next); each button's value
    is its action, and its action_id unique within the message."""
    blocks: list[dict[str, Any]] = []
    number = 0
    for row in rows:
        for start in range(0, len(row), BUTTONS_PER_ACTIONS):
            elements = []
            for button in row[start:start + BUTTONS_PER_ACTIONS]:
                number += 1
                label = button.label if len(button.label) <= BUTTON_TEXT_LIMIT else button.label[:74] + "…"
                elements.append({"type": "button", "text": {"type": "plain_text", "text": label, "emoji": True},
                                 "action_id": f"{ACTION_PREFIX}{number}", "value": button.action})
            if elements:
                blocks.append({"type": "actions", "elements": elements})
    return blocks


def _fallback(blocks: list[dict[str, Any]], text: str) -> str:
    """The message's top-level `text` (escaped mrkdwn, as Slack reads it): shown in notifications."""
    text = text.strip() or " ".join(escape(element["text"]["text"]) for block in blocks
                                    if block["type"] == "actions" for element in block["elements"])
    return text if len(text) <= FALLBACK_LIMIT else _chunks(text, FALLBACK_LIMIT - 1)[0] + "…"


def reply_messages(reply: Reply) -> list[SlackMessage]:
    """A reply as the Slack messages that carry it (at most 50 blocks each); the buttons go on the last one."""
    content = document_blocks(reply.body)
    buttons = button_blocks(reply.buttons)
    plain = escape("\n\n".join("\n".join(_plain_line(line) for line in each.lines) for each in reply.body.blocks))
    if not content and not buttons:
        return []
    messages: list[list[dict[str, Any]]] = []
    for start in range(0, len(content), BLOCKS_LIMIT):
        messages.append(content[start:start + BLOCKS_LIMIT])
    if buttons:
        if not messages or len(messages[-1]) + len(buttons) > BLOCKS_LIMIT:
            messages.append([])
        messages[-1].extend(buttons[:BLOCKS_LIMIT])
    # The fallback text (notifications, screen readers) is the plain text; only the first message needs all of it.
    return [{"text": _fallback(blocks, plain if number == 0 else _plain_of(blocks)), "blocks": blocks}
            for number, blocks in enumerate(messages)]


def _plain_of(blocks: list[dict[str, Any]]) -> str:
    texts = [block["text"]["text"] for block in blocks if block["type"] == "section"]
    return "\n\n".join(texts)


def message_parts(document: Document) -> list[str]:
    """The document as the delivery engine stores and sends it: each Slack message as its JSON text."""
    return [json.dumps(message, ensure_ascii=False) for message in reply_messages(Reply(document))]
