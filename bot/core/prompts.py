"""Questions the bot asks and the answers that complete them: a Reply may carry a Prompt (bot.core.messages), and
the user's reply to that message runs the prompt's command with the reply's text as its answer.

Pressing Edit on candidate 42 sends a message with `Prompt("review edit 42", ...)`; the Telegram front end sends it
with a forced reply and keeps `(chat, message id) -> OpenPrompt("review edit 42", user 900, asked_at)` in the store
(so a restart or another webhook replica still knows it); the admin's reply "Sandbox opens\\nInsurers may test AI."
becomes `Request("review", ("edit", "42"), answer="Sandbox opens\\nInsurers may test AI.")`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from bot.core.addresses import ChatAddress
from bot.core.messages import Chat, Request, User, clean_text, interpret

# An unanswered prompt is forgotten after this long; a reply to it later is an ordinary message.
PROMPT_RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class OpenPrompt:
    """A prompt that was sent and may be answered: its action, who was asked (None: anyone) and when."""

    action: str
    user_id: int | None
    asked_at: datetime


class PromptStore(Protocol):
    """The prompts sent, by chat and message id, shared by every replica."""

    async def save_prompt(self, chat: ChatAddress, message_id: int, prompt: OpenPrompt) -> None:
        """Remember the prompt sent as message `message_id` in `chat` (a second save replaces it)."""
        ...

    async def find_prompt(self, chat: ChatAddress, message_id: int) -> OpenPrompt | None:
        """The prompt sent as that message, if it was one and is still remembered."""
        ...

    async def prune_prompts(self, asked_before: datetime, limit: int) -> int:
        """Forget up to `limit` prompts asked before `asked_before`; returns how many."""
        ...


def answering(prompt: OpenPrompt, text: str, chat: Chat, user: User | None, bot_username: str = "") -> Request | None:
    """The request a reply to a prompt makes, or None when it is not an answer to it: someone other than the person
    asked replied, or the reply is empty."""
    if prompt.user_id is not None and (user is None or user.id != prompt.user_id):
        return None
    answer = clean_text(text)
    request = interpret(prompt.action, chat, user, bot_username, from_button=True)
    if request is None or not answer:
        return None
    # Not a button press: the answer is a new message, and the reply to it is one too.
    return replace(request, from_button=False, answer=answer)
