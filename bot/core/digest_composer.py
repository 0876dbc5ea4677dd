"""Digest composition: a pure function of (subscription, content, now, what the chat already received)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.catalogue import Catalogue, Initiative, Update
from bot.core.document import Block, Document, Line, bold, doc, heading, italic, line, para
from bot.core.i18n import translator
from bot.core.render import render_initiative, render_update
from bot.core.subscriptions import DigestHistory, DigestPayload, Subscription


@dataclass(frozen=True)
class DigestRules:
    """Operator-chosen rules: how far back a new subscription's first digest reaches, and what an empty one does."""

    lookback_days: int = 7
    max_updates: int = 10
    spotlight_when_empty: bool = True


def _wanted(update: Update, subscription: Subscription) -> bool:
    return not subscription.sections or any(section in subscription.sections for section in update.sections)


def new_updates(subscription: Subscription, catalogue: Catalogue, now: datetime, history: DigestHistory,
                rules: DigestRules) -> list[Update]:
    """Updates in the chat's sections not yet sent to it, dated from its start (less the look-back) up to today.

    Tracking sent keys rather than a date cut-off means an update an admin adds with an earlier date still
    reaches every chat in its next digest.
    """
    today = now.astimezone(subscription.schedule.zone).date()
    since = (subscription.created_at - timedelta(days=rules.lookback_days)).astimezone(subscription.schedule.zone)
    return [update for update in catalogue.updates
            if since.date() <= update.date <= today and _wanted(update, subscription)
            and update.key not in history.sent_update_keys]


def pick_spotlight(subscription: Subscription, catalogue: Catalogue, history: DigestHistory) -> Initiative | None:
    """An initiative from the chat's sections that it has not been shown; chats start at different places."""
    candidates = [item for item in catalogue.initiatives
                  if (not subscription.sections or item.section_id in subscription.sections)
                  and item.key not in history.shown_initiative_keys]
    if not candidates:
        return None
    return candidates[subscription.id % len(candidates)]


# Digests built lately, by what they show and in which language: chats with the same sections and language get the
# same digest on the same day, and the fan-out composes one per chat. Sharing one Document also lets the renderers'
# caches find it at once. The language is part of every key: a Chinese chat must never get an English digest
# built a moment earlier for the same sections.
_BUILT: dict[tuple[object, ...], Document] = {}
_BUILT_LIMIT = 512


def _built(key: tuple[object, ...], build: Callable[[], Document]) -> Document:
    message = _BUILT.get(key)
    if message is None:
        if len(_BUILT) >= _BUILT_LIMIT:
            _BUILT.clear()
        message = _BUILT[key] = build()
    return message


def compose_digest(subscription: Subscription, catalogue: Catalogue, now: datetime, history: DigestHistory,
                   rules: DigestRules = DigestRules()) -> DigestPayload | None:
    """The digest a subscription gets at `now`, as a document (each front end renders and splits it), in the
    subscription's language (its content translated where it is); None when there is nothing to send."""
    local_day = now.astimezone(subscription.schedule.zone)
    language = subscription.language
    tr = translator(language)

    def title() -> Line:
        return heading(tr.gettext("%(name)s digest · %(weekday)s %(date)s",
                                  name=catalogue.about.in_language(language).name,
                                  weekday=tr.weekday(local_day), date=tr.format_day(local_day)))

    footer = para(italic(tr.gettext("Change it with /settings · stop with /unsubscribe")))
    updates = new_updates(subscription, catalogue, now, history, rules)
    if updates:
        shown = updates[: rules.max_updates]
        keys = tuple(u.key for u in shown)

        def updates_message() -> Document:
            count = tr.ngettext("%(count)s new update", "%(count)s new updates", len(updates))
            more = (para(tr.gettext("… and %(more)s more: /latest %(latest)s", more=len(updates) - len(shown),
                                    latest=min(len(updates), 20)))
                    if len(updates) > len(shown) else Block(()))
            return doc(Block((title(), line(count))), *(render_update(update, language) for update in shown), more,
                       footer)

        message = _built((language, catalogue.version, local_day.date(), len(updates), keys), updates_message)
        return DigestPayload(message=message, update_keys=keys)
    if not (rules.spotlight_when_empty and subscription.spotlight):
        return None
    initiative = pick_spotlight(subscription, catalogue, history)
    if initiative is None:
        return None
    first = not history.sent_update_keys and not history.shown_initiative_keys

    def spotlight_message() -> Document:
        nothing_new = (tr.gettext("No new updates in your sectors yet.") if first
                       else tr.gettext("Nothing new since your last digest."))
        return doc(Block((title(), line(f"{nothing_new} ", bold(tr.gettext("Spotlight")), tr.gettext(":")))),
                   render_initiative(initiative, language), footer)

    message = _built((language, catalogue.version, local_day.date(), initiative.key, first), spotlight_message)
    return DigestPayload(message=message, spotlight_key=initiative.key)
