"""The scheduler leader's polling rounds: due sources polled, states saved, items queued, admins told (batched).

A round reads every source's state from the store, polls the due ones (bot/sources/poll.py), saves their new
states and queues the found items as candidates. When some were new, each admin gets one notice
("3 new candidates from official sources: /review"), at most one an hour and never in their quiet hours: a notice
held back waits, its count growing, until a later round may send it. The last-notice times are kept in this
process, not the store: with replicas only the leader polls, so a change of leader at worst sends one notice early.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from bot.core.candidates import CandidateStore
from bot.core.catalogue import Catalogue
from bot.core.document import Document, doc
from bot.core.i18n import ENGLISH, Translator, translator
from bot.core.ports import ContentSource, WallClock
from bot.sources.fetch import FeedFetcher
from bot.sources.poll import poll_sources
from bot.sources.select import content_links

log = logging.getLogger(__name__)
NOTICE_INTERVAL = timedelta(hours=1)

FetcherFactory = Callable[[], contextlib.AbstractAsyncContextManager[FeedFetcher]]
NotifyAdmin = Callable[[int, Document], Awaitable[None]]
Hushed = Callable[[int], Awaitable[bool]]
LanguageOf = Callable[[int], Awaitable[str]]


async def _english(chat_id: int) -> str:
    return ENGLISH


def notice(count: int, tr: Translator | None = None) -> Document:
    """The admins' notice: "3 new candidates from official sources: /review"."""
    tr = tr or translator(ENGLISH)
    return doc(tr.ngettext("%(count)s new candidate from official sources: /review",
                           "%(count)s new candidates from official sources: /review", count))


class SourcePolling:
    """Polls the due sources once per call to `round`, queues what is new and tells the admins."""

    def __init__(self, candidates: CandidateStore, content: ContentSource, clock: WallClock,
                 fetchers: FetcherFactory, *, admin_ids: frozenset[int], notify: NotifyAdmin | None,
                 hushed: Hushed, notice_interval: timedelta = NOTICE_INTERVAL,
                 language_of: LanguageOf = _english) -> None:
        self.candidates = candidates
        self.content = content
        self.clock = clock
        self.fetchers = fetchers
        self.admin_ids = admin_ids
        self.notify = notify
        self.hushed = hushed
        self.language_of = language_of  # an admin's language: their private chat's, whose id is their user id
        self.notice_interval = notice_interval
        self.pending: dict[int, int] = {}  # admin id -> candidates not yet announced to them
        self.last_notice_at: dict[int, datetime] = {}
        self.rounds = 0
        self._fetcher: FeedFetcher | None = None
        self._session = contextlib.AsyncExitStack()

    async def _opened_fetcher(self) -> FeedFetcher:
        # Opened on the first round, inside the running loop; closed by `close` when the digest service stops.
        if self._fetcher is None:
            self._fetcher = await self._session.enter_async_context(self.fetchers())
        return self._fetcher

    async def round(self) -> int:
        """Poll the due sources, save their states, queue the new items; announce them. Returns how many were new."""
        added = 0
        catalogue = self.content.catalogue
        if catalogue.watchlist is not None:
            added = await self._poll(catalogue)
        self.rounds += 1
        if added:
            for admin_id in self.admin_ids:
                self.pending[admin_id] = self.pending.get(admin_id, 0) + added
        await self._announce()
        return added

    async def _poll(self, catalogue: Catalogue) -> int:
        assert catalogue.watchlist is not None
        now = self.clock()
        states = await self.candidates.source_states()
        known = content_links(catalogue)
        result = await poll_sources(catalogue.watchlist, states, now, await self._opened_fetcher(),
                                    known_links=known)
        for state in result.states.values():
            await self.candidates.save_source_state(state)
        new = await self.candidates.add_candidates(result.items, now) if result.items else []
        if result.polls:
            log.info("polled %d source(s): %d item(s) selected, %d new candidate(s)",
                     len(result.polls), len(result.items), len(new))
        return len(new)

    async def _announce(self) -> None:
        if self.notify is None:
            return
        now = self.clock()
        for admin_id, count in sorted(self.pending.items()):
            last = self.last_notice_at.get(admin_id)
            if count == 0 or (last is not None and now - last < self.notice_interval):
                continue
            if await self.hushed(admin_id):  # an admin's private chat id is their user id
                continue
            try:
                await self.notify(admin_id, notice(count, translator(await self.language_of(admin_id))))
            except Exception:
                log.exception("could not notify admin %s of new candidates", admin_id)
                continue
            self.pending[admin_id] = 0
            self.last_notice_at[admin_id] = now

    async def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        self._fetcher = None
        await self._session.aclose()

