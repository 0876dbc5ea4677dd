"""The console front end: the same core over stdin/stdout, replies as plain text, buttons as numbered choices."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import logging
import sys
from collections.abc import Mapping
from typing import TextIO

from bot.core.addresses import CONSOLE, ChatAddress
from bot.core.commands import dispatch
from bot.core.document import Document, Line, LineKind, Style
from bot.core.i18n import ENGLISH, N_, Translator, known_language, language_from_code, translator
from bot.core.messages import SORRY, Button, Chat, ChatKind, Reply, User, interpret
from bot.core.numbers import whole_number
from bot.core.prompts import OpenPrompt, answering
from bot.core.services import Services
from bot.delivery import Platform

CONSOLE_CHAT = Chat(ChatAddress(CONSOLE, "1"), kind=ChatKind.PRIVATE, title="console")
# The person at the terminal runs the bot: they are its admin (content reloads, /status, broadcasts).
CONSOLE_USER = User(id=1, name="console")
PROMPT = "you> "
# A terminal has no reply button: the line after a question is its answer (one line, so `Title | Summary`).
ANSWER_HINT = N_("(Type your answer on the next line; a command instead cancels the question.)")
BULLET = "• "

log = logging.getLogger(__name__)


def render_text(document: Document) -> str:
    """A document as terminal text: no styling, a link as `label <url>`, list items bulleted."""
    return "\n\n".join("\n".join(_line(each) for each in block.lines) for block in document.blocks)


def console_parts(document: Document) -> list[str]:
    """A delivered message as the console prints it: one part, a terminal has no length limit."""
    text = render_text(document)
    return [text] if text else []


def _line(line: Line) -> str:
    text = "".join(f"{span.text} <{span.url}>" if span.style is Style.LINK and span.url else span.text
                   for span in line.spans)
    return BULLET + text if line.kind is LineKind.ITEM else text


def language_from_environment(environ: Mapping[str, str]) -> str:
    """The terminal's language, as POSIX looks it up (LC_ALL, then LC_MESSAGES, then LANG): `zh_HK.UTF-8`,
    `zh_TW`, `zh` give zh-Hant; anything else (`en_GB.UTF-8`, `C`, nothing) English."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name, "")
        if value:
            return language_from_code(value.partition(".")[0].partition("@")[0])
    return ENGLISH


def render_reply(reply: Reply, tr: Translator | None = None) -> tuple[str, list[Button]]:
    """The text a terminal shows for a reply, and its buttons in the order they are numbered."""
    tr = tr or translator(ENGLISH)
    text = render_text(reply.body)
    buttons = [button for row in reply.buttons for button in row]
    if reply.notice:
        text = f"({reply.notice})\n{text}"
    if buttons:
        choices = "\n".join(f"  [{number}] {button.label}" for number, button in enumerate(buttons, 1))
        prompt = tr.gettext("Choose a number:")
        text = f"{text}\n\n{prompt}\n{choices}"
    if reply.prompt is not None:
        text = f"{text}\n\n{tr.gettext(ANSWER_HINT)}"
    return text, buttons


class Console:
    """A conversation with the bot in a terminal (or any pair of text streams)."""

    def __init__(self, services: Services, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
                 language: str = ENGLISH) -> None:
        self.services = services
        self.stdin = stdin
        self.stdout = stdout
        self.language = known_language(language)  # the terminal's (LANG or --lang) until /language changes it
        self.buttons: list[Button] = []  # the choices of the last message printed, empty when it had none
        self.asked: OpenPrompt | None = None  # the question the last reply asked, which the next line answers

    async def current_language(self) -> str:
        """The console chat's language: the terminal's on first contact, then whatever /language chose."""
        self.language = await self.services.chat_language(CONSOLE_CHAT.address, self.language)
        return self.language

    async def handle_line(self, line: str) -> str | None:
        """Answer one line the user typed; None means nothing to show."""
        tr = translator(await self.current_language())
        text = line.strip()
        asked, self.asked = self.asked, None
        if asked is not None and text and not text.startswith("/"):
            answer = answering(asked, text, CONSOLE_CHAT, CONSOLE_USER, self.services.bot_username)
            if answer is None:
                return None
            return await self._reply(await dispatch(dataclasses.replace(answer, language=tr.language), self.services))
        from_button = False
        if text.isdigit():
            if not self.buttons:
                return tr.gettext("No such choice: a number picks from the list printed just above, and the last "
                                  "message had none. To search for %(number)s, type /search %(number)s.", number=text)
            number = whole_number(text, 1, len(self.buttons))
            if number is None:
                return tr.gettext("Choose a number from 1 to %(count)s, or type a command.", count=len(self.buttons))
            text, from_button = self.buttons[number - 1].action, True
        request = interpret(text, CONSOLE_CHAT, CONSOLE_USER, self.services.bot_username, from_button=from_button)
        if request is None:
            return None
        return await self._reply(await dispatch(dataclasses.replace(request, language=tr.language), self.services))

    async def _reply(self, reply: Reply) -> str | None:
        if not reply.body:
            return None
        # A /language just answered in the new language; the numbered choices follow it too.
        shown, self.buttons = render_reply(reply, translator(await self.current_language()))
        if reply.prompt is not None:
            self.asked = OpenPrompt(reply.prompt.action, CONSOLE_USER.id, self.services.clock())
        return shown

    async def run(self) -> None:
        """Read lines until end of input or /quit, answering each; a line that fails gets an apology, not an exit."""
        for stream in (self.stdin, self.stdout):
            if isinstance(stream, io.TextIOWrapper):
                # Bytes that are not text in the terminal's encoding become U+FFFD instead of ending the session.
                stream.reconfigure(errors="replace")
        interactive = self.stdin.isatty()
        if self.services.subscriptions is not None:  # the terminal's language wins over one kept from last time
            try:
                await self.services.subscriptions.set_chat_language(CONSOLE_CHAT.address, self.language)
            except Exception:  # digests then follow the language kept before; the conversation goes on
                log.exception("console: could not keep the language %s", self.language)
        self.services.remember_language(CONSOLE_CHAT.address, self.language)
        tr = translator(self.language)
        self._write(tr.gettext("%(name)s — console mode (no Telegram token set).",
                               name=self.services.content.catalogue.about.name) + "\n"
                    + tr.gettext("Type /start or /help; /quit to leave.") + "\n")
        await self._answer("/start")
        while True:
            if interactive:
                self._write("\n" + PROMPT, newline=False)
            line = await asyncio.to_thread(self.stdin.readline)
            if not line or line.strip().lower() in ("/quit", "/exit", "quit", "exit"):
                break
            if not interactive:
                self._write(f"\n{PROMPT}{line.rstrip()}")
            await self._answer(line)
        self._write(translator(self.language).gettext("Bye."))

    async def _answer(self, line: str) -> None:
        try:
            answer = await self.handle_line(line)
        except Exception:
            log.exception("console: could not answer %r", line[:200])
            answer = translator(self.language).gettext(SORRY)
        if answer:
            self._write(answer + "\n")

    def show(self, message: Document | str) -> None:
        """Print a message that was not a reply (a digest part, a content-reload notice); it ends the list above."""
        # Numbers pick only from the list printed last: once other text follows it, an old number is refused.
        self.buttons = []
        self._write(f"\n{message if isinstance(message, str) else render_text(message)}\n")

    def _write(self, text: str, newline: bool = True) -> None:
        self.stdout.write(text + ("\n" if newline else ""))
        self.stdout.flush()


class ConsoleSender:
    """Delivers digests to the console conversation (the console's chat is the only chat there is)."""

    def __init__(self, console: Console) -> None:
        self.console = console

    async def send(self, chat: ChatAddress, thread_id: int | None, part: str, *, silent: bool) -> None:
        """Print a digest part (rendered by console_parts) between the user's lines."""
        self.console.show(part)


def console_platform(console: Console) -> Platform:
    """The console as a delivery platform: its one chat, no limits, plain-text parts."""
    return Platform(CONSOLE, ConsoleSender(console), render=console_parts)
