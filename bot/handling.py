"""What every front end does with a request it received: run it through the command table, counted and timed for
the metrics, with the chat and command named in the log lines of the task that handles it."""

from __future__ import annotations

import time

from bot.core.commands import dispatch, find_command
from bot.core.messages import Reply, Request
from bot.core.services import Services
from bot.logs import log_context


async def dispatch_counted(kind: str, request: Request, services: Services) -> Reply:
    """The request's reply; `kind` labels the update in the metrics (`message`, `callback_query`, `slack_command`)."""
    found = find_command(request.command)
    command = found.name if found is not None else "unknown"  # a label from the table, never a user's word
    log_context(chat=str(request.chat.address), command=command)
    started = time.perf_counter()
    reply = await dispatch(request, services)
    services.metrics.reply_built(time.perf_counter() - started)
    services.metrics.update_handled(kind, command)
    return reply
