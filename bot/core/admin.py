"""Admin commands: /reload, /rollback, /status, /preview, /broadcast, and content uploads; every action audited."""

from __future__ import annotations

import secrets
from datetime import datetime

from bot.core.addresses import AddressError, typed_address
from bot.core.candidates import SourceState
from bot.core.digest_composer import compose_digest
from bot.core.document import Block, Document, block, bold, code, doc, heading, italic, line, para, pre
from bot.core.i18n import ENGLISH, N_, Translator, translator
from bot.core.messages import Button, Reply, Request, replacing_on_button
from bot.core.ports import ContentAdmin, ContentOutcome
from bot.core.render import printable_name
from bot.core.services import Services
from bot.core.subscription_commands import describe_schedule
from bot.core.subscriptions import DigestPayload

MAX_ERRORS_SHOWN = 20
MAX_SOURCE_ERROR_CHARS = 80  # a source's last error in /status: enough to see what broke, short enough for 20 sources
# The largest content file an admin may upload; front ends refuse larger files before downloading them.
MAX_UPLOAD_BYTES = 256 * 1024


def outcome_errors(outcome: ContentOutcome, limit: int = MAX_ERRORS_SHOWN) -> list[str]:
    """A failed change's errors, one line each whatever a name holds, at most `limit`, then how many more."""
    errors = [" ".join(str(error).splitlines()) for error in outcome.errors]
    return errors[:limit] + ([f"… and {len(errors) - limit} more"] if len(errors) > limit else [])


def _summary(outcome: ContentOutcome) -> str:
    return outcome.diff.describe() if outcome.diff is not None else "no changes"


def describe_outcome(outcome: ContentOutcome, done: str, tr: Translator | None = None) -> Document:
    """An admin's view of a content change: what changed, or every error with its place.

    The summary of changes and the errors (`file:line: key: message`) stay in English, as in the content files.
    """
    tr = tr or translator(ENGLISH)
    if outcome.ok:
        where = f" ({outcome.path})" if outcome.path else ""
        return doc(block(line(bold(done), where), _summary(outcome),
                         line(tr.gettext("Content version "), code(outcome.version), tr.gettext("."))))
    return doc(block(line(bold(tr.gettext("Not applied")),
                          tr.ngettext(": %(count)s problem; still serving version ",
                                      ": %(count)s problems; still serving version ", len(outcome.errors)),
                          code(outcome.version), tr.gettext(".")), pre("\n".join(outcome_errors(outcome)))))


def outcome_text(outcome: ContentOutcome, limit: int = MAX_ERRORS_SHOWN) -> str:
    """The same change in plain text, for logs: the diff when it worked, else every error (up to `limit`)."""
    if outcome.ok:
        where = f" ({outcome.path})" if outcome.path else ""
        return f"Content updated{where}, version {outcome.version}: {_summary(outcome)}"
    return "\n".join([f"Content not changed ({len(outcome.errors)} error(s)); still serving version "
                      f"{outcome.version}:", *outcome_errors(outcome, limit)])


async def audit(services: Services, request: Request, action: str, detail: str = "") -> None:
    """Write an admin action (or a refused attempt) to the audit log."""
    if services.audit is not None:
        await services.audit.record_audit(request.user.id if request.user else None, action, detail,
                                          services.clock())


def _content_admin(services: Services) -> ContentAdmin | None:
    return services.content_admin


async def reload(request: Request, services: Services) -> Reply:
    """Re-read content/ now."""
    tr = translator(request.language)
    manager = _content_admin(services)
    if manager is None:
        return Reply(doc(tr.gettext("Content reloading is not available here.")))
    outcome = await manager.reload()
    await audit(services, request, "reload", "ok" if outcome.ok else f"{len(outcome.errors)} error(s)")
    return Reply(describe_outcome(outcome, tr.gettext("Reloaded."), tr))


class Recorder:
    """Writes a change's audit entry before the change is applied, and afterwards whatever is still untold."""

    def __init__(self, services: Services, request: Request, action: str, subject: str) -> None:
        self.services, self.request, self.action, self.subject = services, request, action, subject
        self.recorded: str | None = None  # the path the entry written before applying names
        self.failed = False

    async def before_applying(self, target: str) -> None:
        """The entry for a change about to be applied; raising here stops it."""
        try:
            await audit(self.services, self.request, self.action, f"{self.subject}{target}: applied")
        except Exception:
            self.failed = True
            raise
        self.recorded = target

    async def after(self, outcome: ContentOutcome) -> None:
        """Record a refusal, or that a change recorded as applied was undone after all."""
        if self.failed:
            return  # the audit log is what failed, and the outcome already says so
        if self.recorded is None:
            result = "applied (no change)" if outcome.ok else f"{len(outcome.errors)} error(s)"
            await audit(self.services, self.request, self.action, f"{self.subject}{outcome.path or '-'}: {result}")
        elif not outcome.ok:
            await audit(self.services, self.request, self.action,
                        f"{self.subject}{self.recorded}: undone, {len(outcome.errors)} error(s)")


async def rollback(request: Request, services: Services) -> Reply:
    """Restore the content file the latest upload replaced."""
    tr = translator(request.language)
    manager = _content_admin(services)
    if manager is None:
        return Reply(doc(tr.gettext("Content rollback is not available here.")))
    recorder = Recorder(services, request, "rollback", "")
    outcome = await manager.rollback(recorder.before_applying)
    await recorder.after(outcome)
    return Reply(describe_outcome(outcome, tr.gettext("Rolled back."), tr))


async def upload(request: Request, services: Services) -> Reply:
    """A .yaml file an admin sent: validated against the rest, audited, and written only if valid."""
    tr = translator(request.language)
    manager = _content_admin(services)
    if manager is None or request.attachment is None:
        return Reply(doc(tr.gettext("Send a .yaml content file as a document in a private chat with the bot.")))
    if request.chat.kind.is_group:
        return Reply(doc(tr.gettext("Send content files to the bot in a private chat.")))
    name, data = request.attachment
    # The name is the sender's: no newline or NUL of it may reach the reply or the audit log.
    recorder = Recorder(services, request, "upload", f"{printable_name(name)} -> ")
    outcome = await manager.upload(name, data, recorder.before_applying)
    await recorder.after(outcome)
    return Reply(describe_outcome(outcome, tr.gettext("Applied."), tr))


async def status(request: Request, services: Services) -> Reply:
    """Content version and counts, subscriptions, the next digest run, the last broadcast's outcome."""
    tr = translator(request.language)
    catalogue = services.content.catalogue
    loaded = catalogue.loaded_at.astimezone(services.zone)
    lines = [heading(tr.gettext("Status")),
             line(tr.gettext("Content "), code(catalogue.version),
                  tr.gettext(", loaded %(when)s: %(sectors)s sectors, %(initiatives)s initiatives, %(updates)s "
                             "updates.", when=f"{loaded:%Y-%m-%d %H:%M %Z}", sectors=len(catalogue.sections),
                             initiatives=len(catalogue.initiatives), updates=len(catalogue.updates)))]
    manager = _content_admin(services)
    if manager is not None and manager.last_error is not None:
        lines.append(line(tr.gettext("⚠️ The content on disk is broken (%(count)s problem(s)); the last good version "
                                     "is still served. /reload shows the errors.",
                                     count=len(manager.last_error.errors))))
    store = services.subscriptions
    if store is not None:
        by_platform = await store.active_by_platform()
        next_due = await store.next_due_at()
        stats = await store.delivery_stats()
        when = (f"{next_due.astimezone(services.zone):%Y-%m-%d %H:%M %Z}" if next_due
                else tr.gettext("none scheduled"))
        active = sum(by_platform.values())
        if by_platform:
            platforms = ", ".join(f"{name} {tr.number(count)}" for name, count in by_platform.items())
            lines.append(line(tr.gettext("Active subscriptions: %(active)s (%(platforms)s). Next digest run: "
                                         "%(when)s.", active=tr.number(active), platforms=platforms, when=when)))
        else:
            lines.append(line(tr.gettext("Active subscriptions: %(active)s. Next digest run: %(when)s.",
                                         active=tr.number(active), when=when)))
        lines.append(line(tr.gettext("Deliveries: %(pending)s pending, %(sending)s sending, %(sent)s sent, "
                                     "%(failed)s failed, %(duplicates)s possible duplicate(s).",
                                     pending=tr.number(stats.pending), sending=tr.number(stats.sending),
                                     sent=tr.number(stats.sent), failed=tr.number(stats.failed),
                                     duplicates=tr.number(stats.possible_duplicates))))
        if stats.last_period is not None:
            lines.append(line(tr.gettext("Last digest round (%(when)s): %(sent)s delivered, %(failed)s failed.",
                                         when=f"{stats.last_period.astimezone(services.zone):%Y-%m-%d %H:%M}",
                                         sent=stats.last_period_sent, failed=stats.last_period_failed)))
        if stats.last_broadcast_at is not None:
            sent_at = stats.last_broadcast_at.astimezone(services.zone)
            lines.append(line(tr.gettext("Last broadcast (%(when)s): %(sent)s delivered, %(failed)s failed.",
                                         when=f"{sent_at:%Y-%m-%d %H:%M}", sent=stats.last_broadcast_sent,
                                         failed=stats.last_broadcast_failed)))
    await audit(services, request, "status")
    sources = await _sources_status(services, tr)
    return Reply(doc(block(*lines), *([sources] if sources is not None else [])))


async def _sources_status(services: Services, tr: Translator) -> Block | None:
    """One line per watched source: last poll, last success, items seen, open candidates, errors, last error."""
    watchlist = services.content.catalogue.watchlist
    store = services.candidates
    if watchlist is None or store is None:
        return None
    states = await store.source_states()
    open_counts = await store.count_open_candidates()

    def when(moment: datetime | None) -> str:
        return f"{moment.astimezone(services.zone):%m-%d %H:%M}" if moment is not None else tr.gettext("never")

    lines = [heading(tr.gettext("Sources (%(count)s candidate(s) to /review)", count=sum(open_counts.values())))]
    for source in watchlist.sources:
        state = states.get(source.id) or SourceState(source.id)
        text = tr.gettext("polled %(polled)s, ok %(ok)s, %(items)s items, %(open)s open, %(errors)s error(s)",
                          polled=when(state.last_poll_at), ok=when(state.last_success_at), items=state.items_seen,
                          open=open_counts.get(source.id, 0), errors=state.errors)
        if state.last_error:
            error = " ".join(state.last_error.split())
            if len(error) > MAX_SOURCE_ERROR_CHARS:
                error = error[:MAX_SOURCE_ERROR_CHARS - 1] + "…"
            text += tr.gettext("; last: %(error)s", error=error)
        lines.append(line(code(source.id), ": ", text))
    return block(*lines)


async def preview(request: Request, services: Services) -> Reply:
    """The digest a chat (default: this one) would get now."""
    tr = translator(request.language)
    store = services.subscriptions
    if store is None:
        return Reply(doc(tr.gettext("Digests are not available here.")))
    chat = request.chat.address
    if request.args:
        try:
            if len(request.args) > 1:
                raise AddressError(N_("give one chat only"))
            chat = typed_address(request.args[0])
        except AddressError as exc:
            return Reply(doc(tr.gettext("“%(typed)s” is not a chat id: %(problem)s. Usage: /preview [chat], e.g. "
                                        "/preview -1001234567890 or /preview slack:T0123/C0456.",
                                        typed=request.text, problem=exc.translated(tr))))
    subscription = await store.get_subscription(chat, None)
    await audit(services, request, "preview", str(chat))
    if subscription is None:
        return Reply(doc(tr.gettext("Chat %(chat)s has no subscription.", chat=str(chat))))
    history = await store.history(subscription.id)
    # The digest as that chat would read it, in its own language.
    digest = compose_digest(subscription, services.content.catalogue, services.clock(), history,
                            services.digest_rules)
    state = tr.gettext("active") if subscription.active else tr.gettext("inactive")
    head = line(italic(tr.gettext("Chat %(chat)s (%(state)s, %(schedule)s) would get now:", chat=str(chat),
                                  state=state, schedule=describe_schedule(subscription.schedule, tr))))
    if digest is None:
        return Reply(doc(block(head, tr.gettext("nothing (no new updates and no spotlight left)."))))
    return Reply(doc(head, digest.message or doc()))


async def broadcast(request: Request, services: Services) -> Reply:
    """`/broadcast <text>` previews a message to every subscribed chat; `broadcast send|cancel <id>` decides."""
    tr = translator(request.language)
    store = services.subscriptions
    if store is None:
        return Reply(doc(tr.gettext("Broadcasts are not available here.")))
    if request.from_button and len(request.args) == 2 and request.args[0] in ("send", "cancel"):
        decision, draft_id = request.args
        text = await store.take_broadcast_draft(draft_id)
        if text is None:
            return replacing_on_button(Reply(doc(tr.gettext("This broadcast was already sent or cancelled."))),
                                       request)
        if decision == "cancel":
            await audit(services, request, "broadcast-cancel", text[:200])
            return replacing_on_button(Reply(doc(tr.gettext("Broadcast cancelled; nothing was sent."))), request)
        count = await store.enqueue_broadcast(DigestPayload(message=broadcast_message(text)), services.clock())
        await audit(services, request, "broadcast-send", f"{count} chat(s): {text[:200]}")
        services.wake_delivery()
        return replacing_on_button(Reply(doc(tr.ngettext(
            "Broadcast queued for %(count)s subscribed chat; it goes out at the same pace as digests. /status shows "
            "the outcome.",
            "Broadcast queued for %(count)s subscribed chats; it goes out at the same pace as digests. /status shows "
            "the outcome.", count))), request)
    text = request.text.strip()
    if not text:
        return Reply(doc(tr.gettext("Usage: /broadcast <text> — you will see a preview to confirm before anything is "
                                    "sent.")))
    draft_id = secrets.token_hex(8)
    await store.save_broadcast_draft(draft_id, text, request.user.id if request.user else None, services.clock())
    active = await store.count_active()
    await audit(services, request, "broadcast-draft", text[:200])
    buttons = ((Button(tr.ngettext("Send to %(count)s chat", "Send to %(count)s chats", active),
                       f"broadcast send {draft_id}"),
                Button(tr.gettext("Cancel"), f"broadcast cancel {draft_id}")),)
    return Reply(doc(para(italic(tr.gettext("Preview — nothing is sent until you confirm:"))),
                     broadcast_message(text)),
                 buttons=buttons)


def broadcast_message(text: str) -> Document:
    """What a broadcast's text becomes: the admin's words, as plain text."""
    return doc(text)
