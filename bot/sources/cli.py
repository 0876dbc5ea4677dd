"""`python -m bot sources check [DIR]` and `python -m bot sources poll [--source ID]`: for admins tuning the file."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from bot.content.check import checked_catalogue
from bot.core.catalogue import Catalogue
from bot.core.ports import utc_now
from bot.sources.fetch import feed_session
from bot.sources.poll import PollResult, poll_sources
from bot.sources.select import content_links


def check_sources(directory: Path) -> int:
    """Validate content (the sources file with the sections it names); print every error; 1 if any."""
    catalogue = checked_catalogue(directory)
    if catalogue is None:
        return 1
    if catalogue.watchlist is None:
        print(f"{directory}: no sources.yaml", file=sys.stderr)
        return 1
    watchlist = catalogue.watchlist
    unconfirmed = sum(1 for source in watchlist.sources if source.note)
    print(f"{directory}/sources.yaml: OK — {len(watchlist.sources)} sources ({unconfirmed} with a note), "
          f"{len(watchlist.rules.keywords)} keywords")
    return 0


def poll_once(directory: Path, contact: str, only: str | None) -> int:
    """Fetch every source (or one) now and print what would become candidates; stores nothing."""
    catalogue = checked_catalogue(directory, future_updates=True)
    if catalogue is None:
        return 1
    watchlist = catalogue.watchlist
    if watchlist is None:
        print(f"{directory}: no sources.yaml", file=sys.stderr)
        return 1
    if only is not None and watchlist.source(only) is None:
        print(f"no source with id {only!r} (known: {', '.join(s.id for s in watchlist.sources)})", file=sys.stderr)
        return 2
    result = asyncio.run(_poll(catalogue, contact, only))
    for item in result.items:
        day = item.published.date().isoformat() if item.published else "undated"
        print(f"[{item.source_id}] {day}  {item.title}\n    {item.link}\n    sections: {', '.join(item.sections)}")
    print(f"{len(result.items)} candidate(s)")
    for poll in result.polls:
        if poll.error:
            outcome = f"failed: {poll.error}"
        elif poll.not_modified:
            outcome = "not modified"
        else:
            outcome = f"{len(poll.entries)} entries read" + (f" ({'; '.join(poll.problems)})" if poll.problems else "")
        print(f"  {poll.source.id}: {outcome}")
    return 0


async def _poll(catalogue: Catalogue, contact: str, only: str | None) -> PollResult:
    assert catalogue.watchlist is not None
    known = content_links(catalogue)
    async with feed_session(contact) as fetcher:
        return await poll_sources(catalogue.watchlist, {}, utc_now(), fetcher, known_links=known, only=only,
                                  everything=True)
