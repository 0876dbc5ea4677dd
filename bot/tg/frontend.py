"""Turns Telegram updates into core Requests and core Replies into Bot API calls."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    CallbackQuery,
    ChatMember,
    ForceReply,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    Update,
)
from telegram import Chat as TgChat
from telegram.constants import ParseMode
from telegram.error import BadRequest, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    ChatMemberHandler,
    CommandHandler,
    ContextTypes,
    InlineQueryHandler,
    MessageHandler,
    filters,
)

from bot.core.admin import MAX_UPLOAD_BYTES
from bot.core.commands import COMMANDS, find_command
from bot.core.document import Document, doc, line, link
from bot.core.i18n import CHINESE, ENGLISH, language_from_code, translator
from bot.core.inline import InlinePage, inline_page
from bot.core.membership import membership_changed
from bot.core.messages import SORRY, Chat, ChatKind, MembershipChange, Reply, Request, User, interpret
from bot.core.prompts import OpenPrompt, answering
from bot.core.services import Services
from bot.handling import dispatch_counted
from bot.logs import log_context
from bot.tg.downloads import download_capped
from bot.tg.ids import chat_address, telegram_id
from bot.tg.inline import CACHE_SECONDS, articles, results_button
from bot.tg.render import html_parts
from bot.tg.sender import NO_PREVIEW

log = logging.getLogger(__name__)

NEW_COMMANDS = filters.UpdateType.MESSAGE | filters.UpdateType.CHANNEL_POST

# What the handlers below take; polling and setWebhook ask Telegram for exactly these.
UPDATE_TYPES = (Update.MESSAGE, Update.CHANNEL_POST, Update.CALLBACK_QUERY, Update.MY_CHAT_MEMBER,
                Update.INLINE_QUERY)
_PRESENT = frozenset({ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER})

_KINDS = {
    TgChat.PRIVATE: ChatKind.PRIVATE,
    TgChat.GROUP: ChatKind.GROUP,
    TgChat.SUPERGROUP: ChatKind.SUPERGROUP,
    TgChat.CHANNEL: ChatKind.CHANNEL,
}


def core_chat(message: Message) -> Chat:
    """The core's view of the chat a message is in (a forum topic keeps its thread id)."""
    chat = message.chat
    thread = message.message_thread_id if message.is_topic_message else None
    return Chat(chat_address(chat.id), kind=_KINDS.get(chat.type, ChatKind.GROUP), title=chat.title, thread_id=thread)


def is_present(member: ChatMember) -> bool:
    """Whether a chat member's status keeps them in the chat (a restricted member may still be in it)."""
    return member.status in _PRESENT or (member.status == ChatMember.RESTRICTED and bool(getattr(member, "is_member",
                                                                                                  False)))


def core_user(update: Update) -> User | None:
    """The core's view of who sent an update; a post signed by the chat itself (a channel post, an anonymous
    group admin) counts as sent by the chat."""
    message = update.effective_message
    if message is not None and message.sender_chat is not None and message.sender_chat.id == message.chat.id:
        return User(id=message.chat.id, name=message.chat.title or "")
    user = update.effective_user
    return User(id=user.id, name=user.full_name) if user else None


def language_code(update: Update) -> str | None:
    """The sender's Telegram language_code (`zh-hk`, `en`), None when there is no user (a channel post)."""
    user = update.effective_user
    return user.language_code if user is not None else None


# The Telegram menus: the default one in English, and one for users whose Telegram speaks Chinese. Telegram's
# language_code for a menu is a two-letter ISO 639-1 code, so `zh` covers zh-hk, zh-tw and zh-hans users alike.
MENU_LANGUAGES = ((None, ENGLISH), ("zh", CHINESE))


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """A reply's buttons as an inline keyboard (each button's action is its callback data)."""
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(b.label, callback_data=b.action) for b in row] for row in reply.buttons])


def reply_markup(reply: Reply) -> InlineKeyboardMarkup | ForceReply | None:
    """What goes under a reply's last message: its buttons or, when it asks for an answer, a forced reply (the
    user's app opens the reply field on this message)."""
    if reply.prompt is not None:
        # selective: in a group only the person asked (mentioned in the text) gets the reply field.
        return ForceReply(selective=True, input_field_placeholder=reply.prompt.placeholder or None)
    return keyboard(reply)


def mention(user: User) -> Document:
    """A line naming a user so that Telegram notifies them and a selective forced reply reaches them."""
    return doc(line(link(user.name or "you", f"tg://user?id={user.id}"), ":"))


async def send_reply(application: Application, chat: Chat, reply: Reply,  # type: ignore[type-arg]
                     asked: User | None = None) -> list[Message]:
    """Send a reply as one or more messages, split at paragraph boundaries; buttons (or the forced reply of a
    prompt, addressed to `asked` in a group) go on the last one."""
    if reply.prompt is not None and chat.kind is ChatKind.CHANNEL:
        reply = Reply(reply.body, silent=reply.silent)  # a channel has no reply field to open
    body = reply.body
    if reply.prompt is not None and chat.kind.is_group and asked is not None:
        body = Document(mention(asked).blocks + body.blocks)
    parts = html_parts(body)
    sent = []
    for number, part in enumerate(parts, 1):
        sent.append(await application.bot.send_message(
            chat_id=telegram_id(chat.address), text=part, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW,
            message_thread_id=chat.thread_id, disable_notification=reply.silent or None,
            reply_markup=reply_markup(reply) if number == len(parts) else None,
        ))
    return sent


class TelegramFrontEnd:
    """Registers one handler per command of the table, plus buttons, unknown commands and private chatter."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def install(self, application: Application) -> None:  # type: ignore[type-arg]
        """Add this front end's handlers and error handler to a PTB application."""
        for command in COMMANDS:
            application.add_handler(CommandHandler(command.name, self.on_message, filters=NEW_COMMANDS))
        application.add_handler(MessageHandler(filters.COMMAND & NEW_COMMANDS, self.on_message))
        # Before private chatter: a reply may answer a prompt, in any chat (groups under privacy mode still send
        # the bot replies to its own messages).
        application.add_handler(MessageHandler(
            filters.REPLY & filters.TEXT & ~filters.COMMAND & filters.UpdateType.MESSAGE, self.on_reply))
        application.add_handler(MessageHandler(
            filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE, self.on_message))
        application.add_handler(MessageHandler(
            filters.Document.ALL & filters.ChatType.PRIVATE & filters.UpdateType.MESSAGE, self.on_document))
        application.add_handler(CallbackQueryHandler(self.on_button))
        application.add_handler(InlineQueryHandler(self.on_inline_query))
        application.add_handler(ChatMemberHandler(self.on_my_membership, ChatMemberHandler.MY_CHAT_MEMBER))
        application.add_error_handler(self.on_error)

    async def announce_commands(self, application: Application) -> None:  # type: ignore[type-arg]
        """Publish the command menus from the command table: the default one and the Chinese one."""
        for code, language in MENU_LANGUAGES:
            tr = translator(language)
            await application.bot.set_my_commands(
                [BotCommand(c.name, c.describe(tr)) for c in COMMANDS if c.in_menu and not c.admin_only],
                language_code=code)
        for admin_id in sorted(self.services.admin_ids):
            for code, language in MENU_LANGUAGES:
                tr = translator(language)
                admin_menu = [BotCommand(c.name, c.describe(tr)) for c in COMMANDS if c.in_menu]
                try:
                    await application.bot.set_my_commands(admin_menu, scope=BotCommandScopeChat(admin_id),
                                                          language_code=code)
                except TelegramError as exc:  # the admin has not started a chat with the bot yet
                    log.info("no admin command menu for user %s: %s", admin_id, exc)
                    break

    async def _in_language(self, request: Request, update: Update) -> Request:
        """The request with its chat's language (set from the sender's language_code on first contact)."""
        language = await self.services.chat_language(request.chat.address, language_code(update))
        return dataclasses.replace(request, language=language)

    async def on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A command or, in a private chat, plain text (a search)."""
        message = update.effective_message
        if message is None or not message.text:
            return
        chat = core_chat(message)
        request = interpret(message.text, chat, core_user(update), context.bot.username)
        if request is None:
            return
        if chat.kind.is_group and not request.addressed and find_command(request.command) is None:
            return  # a bare command in a group may be meant for another bot: answer only the ones we know
        reply = await dispatch_counted("message", await self._in_language(request, update), self.services)
        if reply.body:
            await self._send(context, chat, reply, request.user)

    async def on_reply(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A reply to one of the bot's messages: the answer to a prompt it sent (kept in the store, so any replica
        knows it after a restart), else ordinary text."""
        message = update.effective_message
        if message is None or not message.text:
            return
        replied = message.reply_to_message
        prompts = self.services.prompts
        chat = core_chat(message)
        if replied is not None and prompts is not None:
            asked = await prompts.find_prompt(chat.address, replied.message_id)
            request = None if asked is None else answering(asked, message.text, chat, core_user(update),
                                                           context.bot.username)
            if request is not None:
                reply = await dispatch_counted("message", await self._in_language(request, update), self.services)
                if reply.body:
                    await self._send(context, chat, reply, request.user)
                return
        if chat.kind is ChatKind.PRIVATE:
            await self.on_message(update, context)  # a reply to anything else is a search, as any text is

    async def _send(self, context: ContextTypes.DEFAULT_TYPE, chat: Chat, reply: Reply, user: User | None) -> None:
        """Send a reply; when it asks for an answer, remember which message asked and whom."""
        sent = await send_reply(context.application, chat, reply, user)
        self.services.metrics.reply_sent()
        prompts = self.services.prompts
        if reply.prompt is not None and prompts is not None and sent and chat.kind is not ChatKind.CHANNEL:
            await prompts.save_prompt(chat.address, sent[-1].message_id, OpenPrompt(
                reply.prompt.action, user.id if user is not None else None, self.services.clock()))

    async def on_document(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A document in a private chat: an admin's content upload (others are refused before any download)."""
        message = update.effective_message
        if message is None or message.document is None:
            return
        chat, user = core_chat(message), core_user(update)
        document = message.document
        attachment = None
        is_admin = user is not None and user.id in self.services.admin_ids
        request = await self._in_language(Request("upload", (), chat, user), update)
        if is_admin:
            too_big = Reply(doc(translator(request.language).gettext(
                "That file is over %(size)s KiB; content files are small.", size=MAX_UPLOAD_BYTES // 1024)))
            if document.file_size is not None and document.file_size > MAX_UPLOAD_BYTES:
                await send_reply(context.application, chat, too_big)
                return
            try:
                telegram_file = await document.get_file()
            except BadRequest as exc:
                if "too big" not in exc.message.lower():
                    raise
                telegram_file = None  # over the Bot API's 20 MB download limit
            data = None if telegram_file is None else await download_capped(telegram_file, MAX_UPLOAD_BYTES)
            if data is None:  # Telegram did not say how big it was: found out while downloading
                await send_reply(context.application, chat, too_big)
                return
            attachment = (document.file_name or "upload.yaml", data)
        reply = await dispatch_counted("document", dataclasses.replace(request, attachment=attachment), self.services)
        if reply.body:
            await self._send(context, chat, reply, request.user)

    async def on_my_membership(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The bot was added to, removed from or blocked in a chat (Telegram's my_chat_member update)."""
        changed = update.my_chat_member
        if changed is None:
            return
        tg_chat = changed.chat
        chat = Chat(chat_address(tg_chat.id), kind=_KINDS.get(tg_chat.type, ChatKind.GROUP), title=tg_chat.title)
        change = MembershipChange(chat, present=is_present(changed.new_chat_member),
                                  was_present=is_present(changed.old_chat_member))
        log_context(chat=str(chat.address))
        self.services.metrics.update_handled("my_chat_member", "")
        reply = await membership_changed(change, self.services, language_code(update) if change.present else None)
        if not reply.body:
            return
        try:
            await self._send(context, chat, reply, None)
        except TelegramError as exc:  # e.g. a group where members (the bot too) may not write
            log.info("could not greet chat %s: %s", chat.address, exc)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A pressed inline button: run its action, then edit the message or send a new one."""
        query = update.callback_query
        if query is None or not query.data:
            return
        message = query.message if isinstance(query.message, Message) else None
        chat = core_chat(message) if message else Chat(chat_address(query.from_user.id))
        request = interpret(query.data, chat, core_user(update), context.bot.username, from_button=True)
        if request is None:
            await query.answer()
            return
        reply = await dispatch_counted("callback_query", await self._in_language(request, update), self.services)
        await query.answer(text=reply.notice)
        if not reply.body:
            return
        if reply.replace and message is not None and await self._edit(query, reply):
            self.services.metrics.reply_sent()
            return
        await self._send(context, chat, reply, request.user)

    async def on_inline_query(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`@OurBot finance` typed in any chat: a page of cards, in the user's language, with the next offset."""
        query = update.inline_query
        if query is None:
            return
        self.services.metrics.update_handled("inline_query", "")
        language = language_from_code(query.from_user.language_code)
        try:
            page = inline_page(self.services.content.catalogue, query.query, query.offset, language)
            results = articles(page, context.bot.username or "")
            cache_time = CACHE_SECONDS
        except Exception:
            log.exception("inline query %r failed", query.query[:64])
            page, results, cache_time = InlinePage((), None), [], 0  # an empty answer, not cached: try again soon
        try:
            # Personal: the cards follow the user's language, so one user's cached answer must not reach another.
            await query.answer(results, cache_time=cache_time, is_personal=True, next_offset=page.next_offset or "",
                               button=results_button(page, query.offset))
        except TelegramError as exc:  # e.g. the query expired (Telegram waits about ten seconds for an answer)
            log.info("could not answer inline query: %s", exc)

    async def _edit(self, query: CallbackQuery, reply: Reply) -> bool:
        parts = html_parts(reply.body)
        if len(parts) != 1:
            return False
        try:
            await query.edit_message_text(parts[0], parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW,
                                          reply_markup=keyboard(reply))
        except BadRequest as exc:
            if "not modified" in exc.message.lower():
                return True
            log.info("could not edit message, sending a new one: %s", exc.message)
            return False
        return True

    async def on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Log the failure and, where there is a chat, apologise to the user."""
        log.error("error while handling an update", exc_info=context.error)
        if not isinstance(update, Update):
            return
        # Only the cached language: asking the store might fail again the way that just failed.
        chat = update.effective_chat
        cached = self.services.language_cache.fresh(chat_address(chat.id)) if chat is not None else None
        sorry = translator(cached or ENGLISH).gettext(SORRY)
        if update.callback_query is not None:
            with contextlib.suppress(TelegramError):
                await update.callback_query.answer(sorry[:200])
            return
        message = update.effective_message
        if update.effective_chat is not None:
            # In a forum topic the apology goes where the user wrote, or they would never see it.
            thread = message.message_thread_id if message is not None and message.is_topic_message else None
            try:
                await context.bot.send_message(update.effective_chat.id, sorry, message_thread_id=thread)
            except TelegramError as exc:
                log.warning("could not apologise to chat %s: %s", update.effective_chat.id, exc)
