"""What the sources pipeline hands the core: items found on official sources, the candidates admins review, and
each source's polling state; with the store Protocol that keeps them (SQLite and PostgreSQL alike).

A press release the government's feed lists as "Generative AI sandbox opens to insurers" becomes
`FoundItem(source_id="gov-press-en", title=..., link="https://www.info.gov.hk/gia/general/202611/04/P1.htm",
published=..., excerpt="The HKMA and the IA today...", language="en", sections=("finance",))`; the store keeps it
as a `Candidate` in state NEW until an admin publishes it in their own words or rejects it, or it expires.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol


@dataclass(frozen=True)
class FoundItem:
    """One item of a source that looks like Hong Kong AI news. Its text is the source's, for admins to read: the
    bot never publishes it verbatim."""

    source_id: str
    title: str  # plain text, markup stripped
    link: str  # canonical: tracking parameters and fragments stripped, so one link means one item
    published: datetime | None  # aware UTC; None when the source gave no usable date
    excerpt: str  # plain text, a few hundred characters at most
    language: str  # "en" or "zh-Hant"
    sections: tuple[str, ...]  # suggested section ids
    title_key: str  # the title normalised for near-duplicate matching across sources and languages


class CandidateState(Enum):
    """Where a candidate stands: only NEW ones are offered for review."""

    NEW = "new"
    PUBLISHED = "published"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True)
class ReviewDraft:
    """What an admin wrote for a candidate before publishing it: their own title and summary, and the sections
    (None: the suggested ones)."""

    title: str = ""
    summary: str = ""
    sections: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Candidate:
    """A found item in the review queue."""

    id: int
    item: FoundItem
    state: CandidateState
    found_at: datetime
    decided_by: int | None = None  # the admin's user id
    decided_at: datetime | None = None
    draft: ReviewDraft = ReviewDraft()


@dataclass(frozen=True)
class SourceState:
    """How polling one source went: for conditional GETs, back-off and /status."""

    source_id: str
    etag: str | None = None
    last_modified: str | None = None
    last_poll_at: datetime | None = None
    last_success_at: datetime | None = None
    consecutive_failures: int = 0
    next_poll_at: datetime | None = None  # not before this (interval, or back-off after failures)
    items_seen: int = 0  # items read from the source, in all polls
    errors: int = 0  # failed polls, in all
    last_error: str | None = None


class CandidateStore(Protocol):
    """The review queue and the sources' polling state. All times are aware UTC datetimes."""

    async def add_candidates(self, items: Sequence[FoundItem], now: datetime) -> list[Candidate]:
        """Queue the items not seen before (by link, whatever its state, and by title_key among open candidates);
        returns the new candidates, in the order given."""
        ...

    async def get_candidate(self, candidate_id: int) -> Candidate | None:
        """One candidate, in any state."""
        ...

    async def next_candidate(self, after_id: int | None = None) -> Candidate | None:
        """The oldest NEW candidate (after `after_id`, to skip one), or None."""
        ...

    async def decide_candidate(self, candidate_id: int, state: CandidateState, actor_id: int | None,
                               now: datetime) -> bool:
        """Move a NEW candidate to PUBLISHED or REJECTED; False when it was not NEW any more (decided elsewhere),
        so two admins pressing Publish at once publish it once."""
        ...

    async def save_draft(self, candidate_id: int, draft: ReviewDraft) -> bool:
        """Keep an admin's draft for a NEW candidate; False when it was not NEW any more."""
        ...

    async def reopen_candidate(self, candidate_id: int) -> None:
        """Put a candidate back to NEW (its publication failed after it was claimed)."""
        ...

    async def expire_candidates(self, found_before: datetime, now: datetime) -> int:
        """Expire NEW candidates found before `found_before`; returns how many."""
        ...

    async def count_open_candidates(self) -> dict[str, int]:
        """NEW candidates per source id."""
        ...

    async def known_links(self, links: Sequence[str]) -> set[str]:
        """Which of these links the queue holds already, in any state."""
        ...

    async def source_states(self) -> dict[str, SourceState]:
        """Every source's polling state, by source id."""
        ...

    async def save_source_state(self, state: SourceState) -> None:
        """Create or replace a source's polling state."""
        ...
