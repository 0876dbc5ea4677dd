"""Subscription commands: /subscribe, /unsubscribe, /settings, /digest and /quiet."""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, time, timedelta

from bot.core.catalogue import Catalogue
from bot.core.digest_composer import compose_digest
from bot.core.document import Document, block, bold, doc, heading, italic, para
from bot.core.i18n import ENGLISH, Translator, translator
from bot.core.messages import Button, Chat, Reply, Request, replacing_on_button
from bot.core.schedule import WEEKDAYS, Cadence, QuietHours, Schedule, find_timezone
from bot.core.services import Services
from bot.core.subscriptions import DigestHistory, Subscription, SubscriptionRequest, SubscriptionStore

DEFAULT_TIME = time(9, 0)
_TIME = re.compile(r"^([0-9]{1,2})(?::([0-9]{2}))?\s*(am|pm)?$")
_TIME_LIKE = re.compile(r"^[0-9]+[:.h][0-9]+$|^[0-9]+\s*(am|pm)$")
_FULL_DAYS = {name: index for index, name in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))}
ENGLISH_TR = translator(ENGLISH)


def subscribe_forms(tr: Translator) -> str:
    """The ways to write /subscribe, one a line."""
    return "\n".join((tr.gettext("/subscribe — daily at 09:00, Hong Kong time, all sectors"),
                      "/subscribe daily 08:30 Europe/London", "/subscribe weekly mon finance healthcare",
                      "/subscribe weekly fri 18:00 smart-city"))


SUBSCRIBE_FORMS = subscribe_forms(ENGLISH_TR)
QUICK_TIMES = ("07:00", "09:00", "12:00", "18:00", "21:00")


@dataclass(frozen=True)
class SubscribeChoice:
    """What /subscribe's arguments asked for."""

    schedule: Schedule
    sections: tuple[str, ...]


class BadArguments(ValueError):
    """The user's arguments cannot be understood; the message says why."""


def parse_time(text: str) -> time | None:
    """'08:30', '8:30', '9', '9am', '6pm' -> a time; None if it is not a time of day."""
    match = _TIME.match(text.strip().lower())
    if not match:
        return None
    hour, minute, half = int(match.group(1)), int(match.group(2) or 0), match.group(3)
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59) or (match.group(2) is None and half is None):
        return None
    return time(hour, minute)


def bad_time(text: str, tr: Translator = ENGLISH_TR) -> str:
    """Why `text` is not a time of day, and what works instead."""
    return tr.gettext("“%(typed)s” is not a time of day; write it as HH:MM in 24-hour time (00:00 to 23:59), "
                      "e.g. 07:30.", typed=text)


def bad_timezone(text: str, tr: Translator = ENGLISH_TR) -> str:
    """Why `text` is not a timezone, and what works instead."""
    return tr.gettext("“%(typed)s” is not a timezone I know; use an IANA name like Asia/Hong_Kong, Europe/London "
                      "or UTC.", typed=text)


def _weekday(text: str) -> int | None:
    word = text.lower()
    if word in WEEKDAYS:
        return WEEKDAYS.index(word)
    return _FULL_DAYS.get(word)


def parse_subscribe(args: tuple[str, ...], catalogue: Catalogue, default_timezone: str,
                    tr: Translator = ENGLISH_TR) -> SubscribeChoice:
    """Read /subscribe's arguments in any order: cadence, weekday, time, IANA timezone, sections."""
    cadence: Cadence | None = None
    weekday: int | None = None
    at: time | None = None
    timezone: str | None = None
    sections: list[str] = []
    for word in args:
        lowered = word.lower()
        if lowered in ("daily", "weekly"):
            cadence = Cadence(lowered)
        elif (day := _weekday(lowered)) is not None:
            weekday = day
        elif (parsed := parse_time(lowered)) is not None:
            at = parsed
        elif "/" in word or word.upper() in ("UTC", "GMT"):
            timezone = find_timezone(word)
            if timezone is None:
                raise BadArguments(bad_timezone(word, tr))
        elif _TIME_LIKE.match(lowered):
            raise BadArguments(bad_time(word, tr))
        elif lowered == "all":
            sections = []
        elif (section := catalogue.section(lowered)) is not None:
            if section.id not in sections:
                sections.append(section.id)
        else:
            raise BadArguments(tr.gettext("I don't understand “%(word)s”.", word=word))
    if cadence is Cadence.DAILY and weekday is not None:
        raise BadArguments(tr.gettext("A daily digest has no weekday; use weekly with a day, e.g. weekly mon."))
    if weekday is not None:
        cadence = Cadence.WEEKLY
    cadence = cadence or Cadence.DAILY
    if cadence is Cadence.WEEKLY and weekday is None:
        weekday = 0
    schedule = Schedule(cadence, at or DEFAULT_TIME, timezone or default_timezone, weekday)
    return SubscribeChoice(schedule, tuple(sections))


def describe_schedule(schedule: Schedule, tr: Translator = ENGLISH_TR) -> str:
    """A schedule in words: 'daily at 09:00 (Asia/Hong_Kong)', 'weekly on Mon at 18:00 (UTC)'."""
    if schedule.weekday is None:
        return tr.gettext("daily at %(time)s (%(zone)s)", time=f"{schedule.at:%H:%M}", zone=schedule.timezone)
    # 2024-01-01 was a Monday: the weekday's name comes from the translator, as every other date's does.
    day = tr.weekday(date(2024, 1, 1) + timedelta(days=schedule.weekday))
    return tr.gettext("weekly on %(day)s at %(time)s (%(zone)s)", day=day, time=f"{schedule.at:%H:%M}",
                      zone=schedule.timezone)


def describe_quiet(hours: QuietHours, tr: Translator = ENGLISH_TR) -> str:
    """Quiet hours in words: 'Quiet hours: 22:00-07:00 (Asia/Hong_Kong).'"""
    return tr.gettext("Quiet hours: %(hours)s.", hours=hours.describe())


def describe(subscription: Subscription, catalogue: Catalogue, tr: Translator = ENGLISH_TR) -> str:
    """A chat's subscription in words."""
    titles = [s.title for s in catalogue.sections if s.id in subscription.sections]
    sections = tr.gettext(", ").join(titles) if titles else tr.gettext("all sectors")
    due = subscription.next_due_at.astimezone(subscription.schedule.zone)
    return "\n".join((tr.gettext("Digest %(schedule)s, %(sections)s.", schedule=describe_schedule(subscription.schedule,
                                                                                                  tr),
                                  sections=sections),
                      tr.gettext("Next one: %(when)s.", when=tr.day_and_time(due))))


async def _may_manage(request: Request, services: Services) -> bool:
    if not request.chat.kind.is_group:
        return True
    return await services.chat_admins.is_admin(request.chat, request.user)


def refusal(tr: Translator) -> Reply:
    """What a group member who is not an admin hears."""
    return Reply(doc(tr.gettext("Only this group's administrators can change its digest subscription.")))


def no_store(tr: Translator) -> Reply:
    """What a deployment without a store answers to the subscription commands."""
    return Reply(doc(tr.gettext("Digests are not available here: this bot runs without a subscription store.")))


REFUSAL = refusal(ENGLISH_TR)
NO_STORE = no_store(ENGLISH_TR)
StoreHandler = Callable[[Request, Services, SubscriptionStore], Awaitable[Reply]]


def subscription_command(*, manage: bool) -> Callable[[StoreHandler], Callable[[Request, Services], Awaitable[Reply]]]:
    """The one guard of the subscription commands: no store, no digests; `manage`: in a group, admins only."""

    def guarded(body: StoreHandler) -> Callable[[Request, Services], Awaitable[Reply]]:
        @functools.wraps(body)
        async def command(request: Request, services: Services) -> Reply:
            store = services.subscriptions
            if store is None:
                return no_store(translator(request.language))
            if manage and not await _may_manage(request, services):
                return refusal(translator(request.language))
            return await body(request, services, store)

        return command

    return guarded


def _settings_buttons(subscription: Subscription | None, tr: Translator) -> tuple[tuple[Button, ...], ...]:
    if subscription is None or not subscription.active:
        return ((Button(tr.gettext("Subscribe: daily 09:00"), "subscribe daily 09:00"),
                 Button(tr.gettext("Weekly, Mondays"), "subscribe weekly mon 09:00")),)
    schedule = subscription.schedule
    times = tuple(Button(t, f"settings time {t}") for t in QUICK_TIMES if t != f"{schedule.at:%H:%M}")
    switch = (Button(tr.gettext("Make it weekly (Mon)"), "settings weekly mon") if schedule.weekday is None
              else Button(tr.gettext("Make it daily"), "settings daily"))
    return (times[:2], times[2:], (switch, Button(tr.gettext("Preview"), "digest")),
            (Button(tr.gettext("Unsubscribe"), "unsubscribe"),))


# Only this action ends a subscription from a button. The settings button sends plain "unsubscribe", which asks
# first, so an old settings message (or a number typed from an old console list) can never unsubscribe at once.
CONFIRM = "confirm"
UNSUBSCRIBE_CONFIRMED = f"unsubscribe {CONFIRM}"


def change_schedule(subscription: Subscription, args: tuple[str, ...], tr: Translator = ENGLISH_TR) -> Schedule:
    """Apply `/settings` changes (time HH:MM, daily, weekly [day], tz ZONE) to a schedule, keeping the rest."""
    schedule = subscription.schedule
    at, weekday, zone = schedule.at, schedule.weekday, schedule.timezone
    words = list(args)
    while words:
        word = words.pop(0).lower()
        if word == "time":
            if not words:
                raise BadArguments(tr.gettext("Which time? Write it as HH:MM in 24-hour time, e.g. "
                                              "/settings time 07:30."))
            value = words.pop(0)
            parsed = parse_time(value)
            if parsed is None:
                raise BadArguments(bad_time(value, tr))
            at = parsed
        elif word == "daily":
            weekday = None
        elif word == "weekly":
            weekday = weekday if weekday is not None else 0
            if words and (day := _weekday(words[0])) is not None:
                weekday = day
                words.pop(0)
        elif word in ("tz", "timezone"):
            if not words:
                raise BadArguments(tr.gettext("Which timezone? E.g. /settings tz Europe/London."))
            value = words.pop(0)
            found = find_timezone(value)
            if found is None:
                raise BadArguments(bad_timezone(value, tr))
            zone = found
        else:
            raise BadArguments(tr.gettext("I don't understand “%(word)s”.", word=word))
    return Schedule(Cadence.DAILY if weekday is None else Cadence.WEEKLY, at, zone, weekday)


SETTINGS_FORMS = "/settings time 07:30 · /settings daily · /settings weekly fri · /settings tz Europe/London"


def _subscription_request(request: Request, choice: SubscribeChoice) -> SubscriptionRequest:
    chat: Chat = request.chat
    return SubscriptionRequest(chat=chat.address, thread_id=chat.thread_id, chat_kind=chat.kind,
                               schedule=choice.schedule, sections=choice.sections)


@subscription_command(manage=True)
async def subscribe(request: Request, services: Services, store: SubscriptionStore) -> Reply:
    """Subscribe this chat (or forum topic) to digests, or change its schedule."""
    catalogue = services.content.catalogue
    tr = translator(request.language)
    if request.from_button:  # a Subscribe button left on an old message must not reset a subscription made since
        current = await store.get_subscription(request.chat.address, request.chat.thread_id)
        if current is not None and current.active:
            return replacing_on_button(Reply(doc(para(bold(tr.gettext("Already subscribed.")), " ",
                                                      describe(current, catalogue, tr))),
                                             buttons=_settings_buttons(current, tr)), request)
    try:
        choice = parse_subscribe(request.args, catalogue, services.default_timezone, tr)
    except BadArguments as exc:
        return Reply(doc(str(exc), block(tr.gettext("You can write:"), subscribe_forms(tr))))
    saved = await store.save_subscription(_subscription_request(request, choice), services.clock())
    reply = Reply(doc(para(bold(tr.gettext("Subscribed.")), " ", describe(saved, catalogue, tr)),
                      tr.gettext("Change it with /settings, preview it with /digest, stop with /unsubscribe.")),
                  buttons=_settings_buttons(saved, tr), notice=tr.gettext("Saved") if request.from_button else None)
    return replacing_on_button(reply, request)


@subscription_command(manage=True)
async def unsubscribe(request: Request, services: Services, store: SubscriptionStore) -> Reply:
    """End this chat's digest subscription; a button first asks to confirm (the typed command is explicit)."""
    tr = translator(request.language)
    if request.from_button and request.args != (CONFIRM,):
        return await _confirm_unsubscribe(request, store, tr)
    ended = await store.unsubscribe(request.chat.address, request.chat.thread_id, services.clock())
    if not ended:
        return Reply(doc(tr.gettext("This chat has no digest subscription. Start one with /subscribe.")))
    return replacing_on_button(Reply(doc(tr.gettext("Unsubscribed: no more digests here. /subscribe brings them "
                                                    "back.")),
                                     buttons=_settings_buttons(None, tr)), request)


async def _confirm_unsubscribe(request: Request, store: SubscriptionStore, tr: Translator) -> Reply:
    subscription = await store.get_subscription(request.chat.address, request.chat.thread_id)
    if subscription is None or not subscription.active:
        return replacing_on_button(Reply(doc(tr.gettext("This chat has no digest subscription. Start one with "
                                                        "/subscribe.")),
                                         buttons=_settings_buttons(None, tr)), request)
    question = (tr.gettext("Unsubscribe this topic? Its digests stop until you /subscribe again.")
                if request.chat.thread_id is not None
                else tr.gettext("Unsubscribe this chat? Its digests stop until you /subscribe again."))
    return replacing_on_button(Reply(doc(question),
                                     buttons=((Button(tr.gettext("Yes, unsubscribe"), UNSUBSCRIBE_CONFIRMED),
                                               Button(tr.gettext("Keep it"), "settings")),)), request)


@subscription_command(manage=False)
async def settings(request: Request, services: Services, store: SubscriptionStore) -> Reply:
    """Show this chat's subscription with buttons to change it; with arguments, change part of it."""
    tr = translator(request.language)
    subscription = await store.get_subscription(request.chat.address, request.chat.thread_id)
    active = subscription is not None and subscription.active
    if request.args and subscription is not None and active:
        if not await _may_manage(request, services):
            return refusal(tr)
        try:
            schedule = change_schedule(subscription, request.args, tr)
        except BadArguments as exc:
            return Reply(doc(tr.gettext("%(problem)s You can write: %(forms)s", problem=str(exc),
                                        forms=SETTINGS_FORMS)))
        changed = SubscriptionRequest(subscription.chat, subscription.thread_id, subscription.chat_kind,
                                      schedule, subscription.sections, subscription.spotlight)
        subscription = await store.save_subscription(changed, services.clock())
    quiet = await services.quiet_hours(request.chat.address)
    quiet_line = describe_quiet(quiet, tr) if quiet else tr.gettext("No quiet hours (/quiet 22:00-07:00).")
    if subscription is None or not active:
        return replacing_on_button(Reply(doc(block(tr.gettext("This chat is not subscribed."), quiet_line),
                                             subscribe_forms(tr)),
                                         buttons=_settings_buttons(None, tr)), request)
    text = doc(block(heading(tr.gettext("Your digest")), describe(subscription, services.content.catalogue, tr),
                     quiet_line))
    return replacing_on_button(Reply(text, buttons=_settings_buttons(subscription, tr),
                                     notice=tr.gettext("Saved") if request.args and request.from_button else None),
                               request)


@subscription_command(manage=False)
async def digest(request: Request, services: Services, store: SubscriptionStore) -> Reply:
    """Preview the digest this chat would get now."""
    tr = translator(request.language)
    subscription = await store.get_subscription(request.chat.address, request.chat.thread_id)
    if subscription is None or not subscription.active:
        return Reply(doc(tr.gettext("This chat is not subscribed; here is what a new subscription would start with. "
                                    "/subscribe to get it regularly."), await _preview_for_new(request, services)))
    history = await store.history(subscription.id)
    payload = compose_digest(dataclasses.replace(subscription, language=tr.language), services.content.catalogue,
                             services.clock(), history, services.digest_rules)
    if payload is None:
        return Reply(doc(tr.gettext("Nothing new for your next digest yet.")))
    return Reply(doc(para(italic(tr.gettext("Preview of your next digest:"))), payload.message or doc()))


async def _preview_for_new(request: Request, services: Services) -> Document:
    now = services.clock()
    choice = parse_subscribe((), services.content.catalogue, services.default_timezone)
    draft = Subscription(id=0, chat=request.chat.address, thread_id=request.chat.thread_id,
                         chat_kind=request.chat.kind, schedule=choice.schedule, sections=(), active=False,
                         created_at=now, next_due_at=choice.schedule.next_after(now), language=request.language)
    payload = compose_digest(draft, services.content.catalogue, now, DigestHistory(), services.digest_rules)
    return (payload.message or doc()) if payload else doc(translator(request.language).gettext("Nothing to show yet."))


async def _chat_timezone(chat: Chat, store: SubscriptionStore, default: str) -> str:
    """The timezone of this chat's digest (its topic's, else the chat's), else the operator's default."""
    for thread_id in dict.fromkeys((chat.thread_id, None)):
        subscription = await store.get_subscription(chat.address, thread_id)
        if subscription is not None and subscription.active:
            return subscription.schedule.timezone
    return default


@subscription_command(manage=True)
async def quiet(request: Request, services: Services, store: SubscriptionStore) -> Reply:
    """Set quiet hours (`/quiet 22:00-07:00 [timezone]`) or clear them (`/quiet off`)."""
    tr = translator(request.language)
    usage = tr.gettext("Write /quiet 22:00-07:00 (in your digest's timezone, or name one: /quiet 23:00-07:30 "
                       "Europe/London), or /quiet off.")
    if not request.args:
        current = await services.quiet_hours(request.chat.address)
        state = describe_quiet(current, tr) if current else tr.gettext("No quiet hours set.")
        return Reply(doc(block(state, usage)))
    if request.args[0].lower() in ("off", "none", "clear"):
        await store.set_quiet_hours(request.chat.address, None)
        services.remember_quiet_hours(request.chat.address, None)
        return Reply(doc(tr.gettext("Quiet hours cleared.")))
    start_text, _, end_text = request.args[0].partition("-")
    start, end = parse_time(start_text), parse_time(end_text)
    if len(request.args) > 2 or not start_text or not end_text:
        return Reply(doc(usage))
    if start is None or end is None:
        return Reply(doc(f"{bad_time(start_text if start is None else end_text, tr)} {usage}"))
    if start == end:
        return Reply(doc(tr.gettext("Quiet hours need a start and an end that differ. %(usage)s", usage=usage)))
    if len(request.args) > 1:
        zone = find_timezone(request.args[1])
        if zone is None:
            return Reply(doc(f"{bad_timezone(request.args[1], tr)} {usage}"))
    else:
        zone = await _chat_timezone(request.chat, store, services.default_timezone)
    hours = QuietHours(start, end, zone)
    await store.set_quiet_hours(request.chat.address, hours)
    services.remember_quiet_hours(request.chat.address, hours)
    return Reply(doc(tr.gettext("Quiet hours set: %(hours)s. Only scheduled digests will make a sound then.",
                                hours=hours.describe())))
