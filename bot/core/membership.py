"""The bot joins or leaves a chat: subscriptions end at once when it is removed or blocked; a new group is greeted."""

from __future__ import annotations

import logging

from bot.core.document import bold, doc, para
from bot.core.i18n import translator
from bot.core.messages import NO_REPLY, MembershipChange, Reply
from bot.core.services import Services

log = logging.getLogger(__name__)


async def membership_changed(change: MembershipChange, services: Services, language_code: str | None = None) -> Reply:
    """Deactivate a chat's subscriptions when the bot is gone from it; a short hello when a group or channel adds it,
    in the language of whoever added it (`language_code`), which becomes the group's."""
    chat = change.chat
    if not change.present:
        if services.subscriptions is None:
            return NO_REPLY
        reason = "removed from the chat" if chat.kind.is_group else "blocked by the user"
        ended = await services.subscriptions.deactivate_chat(chat.address, reason, services.clock())
        log.info("bot %s chat %s: %d subscription(s) deactivated", reason, chat.address, ended)
        return NO_REPLY
    if change.was_present or not chat.kind.is_group:
        return NO_REPLY  # a promotion is no arrival; a private chat's /start gets its own welcome
    about = services.content.catalogue.about
    address = f"@{services.bot_username}" if services.bot_username else ""
    tr = translator(await services.chat_language(chat.address, language_code))
    return Reply(doc(para(tr.gettext("Hello! I'm "), bold(about.name), f": {about.tagline}"),
                     para(tr.gettext("/help%(address)s lists what I can do; an administrator can start a digest here "
                                     "with /subscribe%(address)s. /language%(address)s switches to Chinese.",
                                     address=address))))
