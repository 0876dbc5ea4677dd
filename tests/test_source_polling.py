"""The leader's polling rounds: only the leader polls, a round never overlaps itself or blocks the tick, and the
admins' notices are batched (at most one an hour each) and held back in their quiet hours."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from doubles.feed_server import FeedServer, gov_rss
from harness import CONTENT

from bot.console import console_parts
from bot.content import ContentLibrary
from bot.core.addresses import TELEGRAM, ChatAddress
from bot.core.document import Document
from bot.core.subscriptions import DigestPayload
from bot.delivery import DeliveryEngine, Platform
from bot.digest_scheduler import DigestService
from bot.sources.fetch import feed_session
from bot.sources.rounds import SourcePolling
from bot.store import SqlStore

NOW = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
ADA, BEN = 900, 901
FEED = "/gia/rss/general_en.xml"


class Leader:
    """A leadership double: says what it is told."""

    def __init__(self, leads: bool) -> None:
        self.leads = leads

    async def is_leader(self) -> bool:
        return self.leads


@dataclass
class CountingRounds:
    """A polling double that counts the rounds started, each waiting for `release` (a slow feed)."""

    started: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False

    async def round(self) -> int:
        self.started += 1
        await self.release.wait()
        return 0

    async def close(self) -> None:
        self.closed = True


class NoSender:
    async def send(self, chat: ChatAddress, thread_id: int | None, html: str, *, silent: bool) -> None:
        raise AssertionError("nothing is delivered in these tests")


async def no_digest(_: object) -> DigestPayload | None:
    return None


def service(store: SqlStore, leads: bool, polling: CountingRounds) -> DigestService:
    engine = DeliveryEngine(store, Platform(TELEGRAM, NoSender()), worker_id="w", compose=no_digest, now=lambda: NOW)
    return DigestService(store, engine, lambda: NOW, tick_seconds=60.0, leadership=Leader(leads), polling=polling)


async def test_a_replica_that_does_not_lead_never_polls(sqlite_store: SqlStore) -> None:
    polling = CountingRounds()
    follower = service(sqlite_store, False, polling)
    for _ in range(3):
        await follower._tick_safely()
    await asyncio.sleep(0)
    assert polling.started == 0


async def test_the_leaders_round_runs_in_the_background_and_never_overlaps_itself(sqlite_store: SqlStore) -> None:
    polling = CountingRounds()
    leader = service(sqlite_store, True, polling)
    await asyncio.wait_for(leader._tick_safely(), 10)  # returns although the round waits on a slow feed
    await asyncio.wait_for(leader._tick_safely(), 10)
    await asyncio.sleep(0)
    assert polling.started == 1  # the second tick left the running round alone
    polling.release.set()
    for _ in range(100):
        await asyncio.sleep(0.01)
        task = leader.start_polling_round()
        if task is not None:
            break
    await asyncio.sleep(0)
    assert polling.started == 2  # once it finished, the next tick starts the next round
    await leader.stop()
    assert polling.closed


@dataclass
class Admins:
    """Records the notices each admin gets; `quiet` admins are in their quiet hours."""

    sent: list[tuple[int, str]] = field(default_factory=list)
    quiet: set[int] = field(default_factory=set)

    async def notify(self, admin_id: int, message: Document) -> None:
        self.sent.append((admin_id, "".join(console_parts(message))))

    async def hushed(self, chat_id: int) -> bool:
        return chat_id in self.quiet


def item(n: int) -> tuple[str, str, datetime, str]:
    return (f"Generative AI pilot number {n}", f"https://www.info.gov.hk/gia/general/202611/24/P{n}.htm",
            NOW - timedelta(hours=5), "A pilot.")


async def test_notices_are_batched_hourly_and_wait_for_the_end_of_quiet_hours(
        sqlite_store: SqlStore, feeds: FeedServer, tmp_path: Path) -> None:
    content = Path(shutil.copytree(CONTENT, tmp_path / "content"))
    rules = (content / "sources.yaml").read_text().split("\nsources:\n")[0]
    (content / "sources.yaml").write_text(
        rules + "\nsources:\n  - id: gov-press-en\n    name: Press releases\n    kind: rss\n"
        f"    url: {feeds.url(FEED)}\n    language: en\n    sections: [government]\n    poll_minutes: 15\n")
    now = [NOW]
    admins = Admins(quiet={BEN})
    polling = SourcePolling(sqlite_store, ContentLibrary.open(content, now=NOW), lambda: now[0],
                            lambda: feed_session("@operator"), admin_ids=frozenset({ADA, BEN}),
                            notify=admins.notify, hushed=admins.hushed)
    try:
        feeds.add(FEED, gov_rss([item(1)]), etag='"1"')
        assert await polling.round() == 1
        assert admins.sent == [(ADA, "1 new candidate from official sources: /review")]  # Ben is in quiet hours

        now[0] += timedelta(minutes=16)
        feeds.add(FEED, gov_rss([item(1), item(2)]), etag='"2"')
        assert await polling.round() == 1
        assert len(admins.sent) == 1  # Ada had one this hour; Ben is still quiet

        admins.quiet.clear()
        now[0] += timedelta(minutes=16)
        assert await polling.round() == 0  # 304: nothing new, but Ben's held notice goes out now
        assert admins.sent[1:] == [(BEN, "2 new candidates from official sources: /review")]

        now[0] += timedelta(minutes=30)  # an hour after Ada's notice
        assert await polling.round() == 0
        assert admins.sent[2:] == [(ADA, "1 new candidate from official sources: /review")]

        now[0] += timedelta(hours=2)
        await polling.round()
        assert len(admins.sent) == 3  # nothing pending, nothing sent
        states = await sqlite_store.source_states()
        assert states["gov-press-en"].last_poll_at == now[0] and states["gov-press-en"].items_seen == 3
        assert feeds.headers_for(FEED)[0]["User-Agent"] == "HKAIPulseBot/0.1 (+@operator)"
    finally:
        await polling.close()
