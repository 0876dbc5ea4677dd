"""Schedules and digest composition: pure functions tested with fixed datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from replies import parts

from bot.content import load_catalogue
from bot.core.addresses import telegram
from bot.core.digest_composer import DigestRules, compose_digest
from bot.core.messages import ChatKind
from bot.core.schedule import Cadence, QuietHours, Schedule
from bot.core.subscription_commands import BadArguments, change_schedule, parse_subscribe, parse_time
from bot.core.subscriptions import DigestHistory, Subscription
from bot.tg.render import MESSAGE_LIMIT, text_length

HK = "Asia/Hong_Kong"
FIXTURE = load_catalogue(Path(__file__).parent / "fixtures" / "content", now=datetime(2026, 1, 1, tzinfo=UTC))
SHIPPED = load_catalogue(Path(__file__).parent.parent / "content", now=datetime(2026, 1, 1, tzinfo=UTC))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_daily_fires_at_local_time_in_hong_kong() -> None:
    schedule = Schedule(Cadence.DAILY, time(9, 0), HK)
    assert schedule.next_after(utc(2026, 11, 25, 0, 30)) == utc(2026, 11, 25, 1, 0)  # 09:00 HKT = 01:00 UTC
    assert schedule.next_after(utc(2026, 11, 25, 1, 0)) == utc(2026, 11, 26, 1, 0)  # strictly after


def test_weekly_crosses_a_month_boundary() -> None:
    schedule = Schedule(Cadence.WEEKLY, time(8, 0), HK, weekday=0)  # Mondays
    # Friday 27 Nov 2026 -> Monday 30 Nov; after that Monday -> Monday 7 Dec.
    first = schedule.next_after(utc(2026, 11, 27, 12, 0))
    assert first == utc(2026, 11, 30, 0, 0)
    assert schedule.next_after(first) == utc(2026, 12, 7, 0, 0)


def test_weekly_schedule_across_a_year_boundary_in_another_zone() -> None:
    schedule = Schedule(Cadence.WEEKLY, time(18, 30), "America/New_York", weekday=3)  # Thursdays
    assert schedule.next_after(utc(2026, 12, 31, 23, 31)) == utc(2027, 1, 7, 23, 30)


def test_daily_follows_dst_in_london() -> None:
    schedule = Schedule(Cadence.DAILY, time(8, 30), "Europe/London")
    assert schedule.next_after(utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 7, 30)  # BST starts 29 Mar
    assert schedule.next_after(utc(2026, 3, 27, 12)) == utc(2026, 3, 28, 8, 30)  # still GMT


def test_a_time_skipped_by_dst_fires_after_the_gap() -> None:
    schedule = Schedule(Cadence.DAILY, time(1, 30), "Europe/London")  # 01:30 does not exist on 29 Mar 2026
    assert schedule.next_after(utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1, 30)  # = 02:30 BST


def test_latest_at_or_before() -> None:
    schedule = Schedule(Cadence.WEEKLY, time(9, 0), HK, weekday=4)
    assert schedule.latest_at_or_before(utc(2026, 11, 25, 0)) == utc(2026, 11, 20, 1, 0)


def test_schedule_rejects_inconsistent_values() -> None:
    with pytest.raises(ValueError):
        Schedule(Cadence.WEEKLY, time(9), HK)
    with pytest.raises(ValueError):
        Schedule(Cadence.DAILY, time(9), HK, weekday=2)


def test_quiet_hours_across_midnight() -> None:
    hours = QuietHours(time(22), time(7), HK)
    assert hours.contains(utc(2026, 11, 25, 15, 0))  # 23:00 HKT
    assert hours.contains(utc(2026, 11, 25, 22, 59))  # 06:59 HKT
    assert not hours.contains(utc(2026, 11, 25, 23, 0))  # 07:00 HKT


@pytest.mark.parametrize(("text", "expected"), [("08:30", time(8, 30)), ("9:05", time(9, 5)), ("9am", time(9)),
                                                ("6pm", time(18)), ("12am", time(0)), ("24:00", None),
                                                ("9", None), ("noon", None), ("13pm", None)])
def test_parse_time(text: str, expected: time | None) -> None:
    assert parse_time(text) == expected


def test_subscribe_defaults_to_daily_nine_hong_kong_all_sections() -> None:
    choice = parse_subscribe((), SHIPPED, HK)
    assert choice.schedule == Schedule(Cadence.DAILY, time(9), HK) and choice.sections == ()


def test_subscribe_with_time_zone_and_sections() -> None:
    choice = parse_subscribe(("daily", "08:30", "Europe/London"), SHIPPED, HK)
    assert choice.schedule == Schedule(Cadence.DAILY, time(8, 30), "Europe/London")
    weekly = parse_subscribe(("weekly", "mon", "finance", "health"), SHIPPED, HK)
    assert weekly.schedule.weekday == 0 and weekly.sections == ("finance", "healthcare")
    assert parse_subscribe(("friday", "6pm"), SHIPPED, HK).schedule == Schedule(Cadence.WEEKLY, time(18), HK, 4)


@pytest.mark.parametrize(("args", "message"), [(("Mars/Base",), "not a timezone"), (("sometimes",), "“sometimes”"),
                                               (("daily", "tue"), "no weekday")])
def test_subscribe_bad_arguments_explain(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(BadArguments, match=message):
        parse_subscribe(args, SHIPPED, HK)


CREATED = utc(2024, 8, 10)


def subscription(sections: tuple[str, ...] = (), created: datetime = CREATED, sub_id: int = 1,
                 spotlight: bool = True) -> Subscription:
    schedule = Schedule(Cadence.DAILY, time(9), HK)
    return Subscription(id=sub_id, chat=telegram(42), thread_id=None, chat_kind=ChatKind.PRIVATE, schedule=schedule,
                        sections=sections, active=True, created_at=created, next_due_at=created, spotlight=spotlight)


def test_change_schedule_keeps_what_is_not_changed() -> None:
    base = subscription()
    changed = change_schedule(base, ("time", "07:30", "weekly", "fri"))
    assert changed == Schedule(Cadence.WEEKLY, time(7, 30), HK, weekday=4)
    assert change_schedule(base, ("tz", "Europe/London")).at == time(9)


def test_chats_with_the_same_digest_share_one_document() -> None:
    # The fan-out composes one digest per chat; equal digests are one object, so it is rendered and stored once.
    first = compose_digest(subscription(sub_id=1), FIXTURE, utc(2024, 8, 14, 1), DigestHistory())
    second = compose_digest(subscription(sub_id=2), FIXTURE, utc(2024, 8, 14, 2), DigestHistory())
    next_day = compose_digest(subscription(sub_id=3), FIXTURE, utc(2024, 8, 15, 1), DigestHistory())
    assert first is not None and second is not None and next_day is not None
    assert first.message is second.message
    assert next_day.message is not first.message and next_day.message != first.message


def test_digest_lists_new_updates_newest_first_with_links() -> None:
    payload = compose_digest(subscription(), FIXTURE, utc(2024, 8, 14, 1), DigestHistory())
    assert payload is not None
    text = "\n".join(parts(payload))
    assert "1 new update" in text and "GenA.I. Sandbox launched" in text
    assert '<a href="https://example.org/genai-sandbox">Read more</a>' in text
    assert payload.update_keys == ("2024-08-13/GenA.I. Sandbox launched",)
    assert "Wed 14 Aug 2024" in text  # the local date of the digest


def test_digest_skips_what_was_already_sent_and_other_sections() -> None:
    sent = DigestHistory(sent_update_keys=frozenset({"2024-08-13/GenA.I. Sandbox launched"}))
    payload = compose_digest(subscription(), FIXTURE, utc(2024, 8, 14, 1), sent,
                             DigestRules(spotlight_when_empty=False))
    assert payload is None
    assert compose_digest(subscription(("government",)), FIXTURE, utc(2024, 8, 14, 1), DigestHistory(),
                          DigestRules(spotlight_when_empty=False)) is None


def test_an_update_added_later_with_an_earlier_date_still_goes_out() -> None:
    # Created 10 Aug; the 13 Aug update is eligible until sent, whenever the admin added it.
    payload = compose_digest(subscription(), FIXTURE, utc(2024, 9, 30, 1), DigestHistory())
    assert payload is not None and payload.update_keys == ("2024-08-13/GenA.I. Sandbox launched",)


def test_future_dated_updates_wait_for_their_day_in_the_chat_timezone() -> None:
    # 12 Aug 16:00 UTC is 13 Aug 00:00 in Hong Kong: the 13 Aug update is due there.
    assert compose_digest(subscription(), FIXTURE, utc(2024, 8, 12, 15, 59), DigestHistory(),
                          DigestRules(spotlight_when_empty=False)) is None
    assert compose_digest(subscription(), FIXTURE, utc(2024, 8, 12, 16, 0), DigestHistory()) is not None


def test_first_digest_reaches_back_only_the_lookback() -> None:
    late = subscription(created=utc(2024, 9, 1))
    assert compose_digest(late, FIXTURE, utc(2024, 9, 2, 1), DigestHistory(),
                          DigestRules(lookback_days=7, spotlight_when_empty=False)) is None
    assert compose_digest(late, FIXTURE, utc(2024, 9, 2, 1), DigestHistory(),
                          DigestRules(lookback_days=30)) is not None


def test_nothing_new_gives_a_spotlight_not_shown_before_then_nothing() -> None:
    history = DigestHistory(sent_update_keys=frozenset(u.key for u in FIXTURE.updates))
    shown: set[str] = set()
    for _ in range(len(FIXTURE.initiatives)):
        payload = compose_digest(subscription(), FIXTURE, utc(2024, 9, 2, 1),
                                 DigestHistory(history.sent_update_keys, frozenset(shown)))
        assert payload is not None and payload.spotlight_key is not None
        assert payload.spotlight_key not in shown and "Spotlight" in parts(payload)[0]
        shown.add(payload.spotlight_key)
    assert compose_digest(subscription(), FIXTURE, utc(2024, 9, 2, 1),
                          DigestHistory(history.sent_update_keys, frozenset(shown))) is None
    assert compose_digest(subscription(spotlight=False), FIXTURE, utc(2024, 9, 2, 1), history) is None


def test_a_big_digest_is_capped_and_split_to_fit() -> None:
    everything = subscription(created=utc(2030, 1, 1) - timedelta(days=1))
    payload = compose_digest(everything, SHIPPED, utc(2030, 1, 1), DigestHistory(),
                             DigestRules(lookback_days=36500, max_updates=50))
    assert payload is not None and len(payload.update_keys) == len(SHIPPED.updates)
    assert all(0 < text_length(part) <= MESSAGE_LIMIT for part in parts(payload))
    capped = compose_digest(everything, SHIPPED, utc(2030, 1, 1), DigestHistory(), DigestRules(lookback_days=36500))
    assert capped is not None and len(capped.update_keys) == 10 and "more:" in parts(capped)[-1]


def test_a_repeated_hour_fires_once_at_its_first_occurrence() -> None:
    schedule = Schedule(Cadence.DAILY, time(1, 30), "Europe/London")  # 01:30 happens twice on 25 Oct 2026
    first = schedule.next_after(utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)  # 01:30 BST
    assert schedule.next_after(first) == utc(2026, 10, 26, 1, 30)  # not again at 01:30 GMT the same day
