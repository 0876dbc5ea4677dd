"""One round of polling: fetch the due sources concurrently, parse, select; pure of storage (states in, states out).

The caller stores what comes back: the found items as candidates, the states for the next round and /status.
Each source is polled on its own: a failure is counted in its state (and logged) and backs it off, doubling its
interval per consecutive failure up to a day; it never stops the other sources.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from bot.core.candidates import FoundItem, SourceState
from bot.core.catalogue import WatchedSource, Watchlist
from bot.sources.fetch import FeedFetcher, FetchError
from bot.sources.page import parse_page
from bot.sources.parse import parse_feed
from bot.sources.select import Entry, Selector

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(days=1)
CONCURRENCY = 8


@dataclass(frozen=True)
class SourcePoll:
    """How polling one source went this round."""

    source: WatchedSource
    state: SourceState  # the state after this poll
    entries: Sequence[Entry] = ()
    not_modified: bool = False
    error: str | None = None  # the poll failed
    problems: Sequence[str] = ()  # the poll worked, but some of the feed was unusable


@dataclass(frozen=True)
class PollResult:
    """What a round found, and every polled source's new state."""

    items: list[FoundItem]
    polls: list[SourcePoll] = field(default_factory=list)

    @property
    def states(self) -> dict[str, SourceState]:
        """The new state of each source polled."""
        return {poll.source.id: poll.state for poll in self.polls}


def is_due(source: WatchedSource, state: SourceState | None, now: datetime) -> bool:
    """Whether a source should be polled now (never polled, or its next poll time has come)."""
    return state is None or state.next_poll_at is None or state.next_poll_at <= now


def backoff(source: WatchedSource, failures: int) -> timedelta:
    """How long to wait after `failures` consecutive failures: the interval, doubled per failure, at most a day."""
    interval = timedelta(minutes=source.poll_minutes)
    return min(interval * (2 ** min(failures, 10)), MAX_BACKOFF) if failures else interval


async def poll_sources(watchlist: Watchlist, states: Mapping[str, SourceState], now: datetime,
                       fetcher: FeedFetcher, *, known_links: Iterable[str] = (), only: str | None = None,
                       everything: bool = False, concurrency: int = CONCURRENCY) -> PollResult:
    """Poll the due sources (`only` one id; `everything`: due or not) and select the found items."""
    chosen = [source for source in watchlist.sources
              if (only is None or source.id == only)
              and (everything or only is not None or is_due(source, states.get(source.id), now))]
    limit = asyncio.Semaphore(concurrency)

    async def one(source: WatchedSource) -> SourcePoll:
        async with limit:
            return await poll_one(source, states.get(source.id) or SourceState(source.id), now, fetcher)

    polls = list(await asyncio.gather(*(one(source) for source in chosen)))
    selector = Selector(watchlist.rules)
    items = selector.select([(poll.source, poll.entries) for poll in polls], known_links)
    return PollResult(items=items, polls=polls)


async def poll_one(source: WatchedSource, state: SourceState, now: datetime, fetcher: FeedFetcher) -> SourcePoll:
    """Fetch and parse one source; any failure becomes its counted, logged error, never an exception."""
    try:
        fetched = await fetcher.fetch(source.url, etag=state.etag, last_modified=state.last_modified)
        if fetched.status == 304:
            return SourcePoll(source, _succeeded(source, state, now, 0, None), not_modified=True)
        # Parsing a large feed takes a while of CPU: off the event loop, so the bot keeps answering meanwhile.
        if source.page is not None:
            parsed = await asyncio.to_thread(parse_page, fetched.body, source.page,
                                             content_type=fetched.content_type, base_url=source.url, now=now)
        else:
            parsed = await asyncio.to_thread(parse_feed, fetched.body, content_type=fetched.content_type,
                                             base_url=source.url, now=now)
        if parsed.error is not None:
            raise FetchError(parsed.error)
    except FetchError as exc:
        return _failed(source, state, now, str(exc))
    except Exception as exc:  # a source must never stop the others, whatever went wrong
        log.exception("source %s: unexpected failure", source.id)
        return _failed(source, state, now, f"unexpected {type(exc).__name__}")
    problem = "; ".join(parsed.problems) or None
    if problem:
        log.warning("source %s: %s", source.id, problem)
    new_state = _succeeded(source, state, now, parsed.total, problem)
    new_state = replace(new_state, etag=fetched.etag, last_modified=fetched.last_modified)
    return SourcePoll(source, new_state, entries=parsed.entries, problems=tuple(parsed.problems))


def _succeeded(source: WatchedSource, state: SourceState, now: datetime, read: int,
               problem: str | None) -> SourceState:
    return replace(state, last_poll_at=now, last_success_at=now, consecutive_failures=0,
                   next_poll_at=now + backoff(source, 0), items_seen=state.items_seen + read,
                   errors=state.errors + (1 if problem else 0), last_error=problem or state.last_error)


def _failed(source: WatchedSource, state: SourceState, now: datetime, error: str) -> SourcePoll:
    log.warning("source %s: poll failed: %s", source.id, error)
    failures = state.consecutive_failures + 1
    new_state = replace(state, last_poll_at=now, consecutive_failures=failures,
                        next_poll_at=now + backoff(source, failures), errors=state.errors + 1, last_error=error)
    return SourcePoll(source, new_state, error=error)
