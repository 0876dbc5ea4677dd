"""What commands may use: the current content, the clock, and (later) stores, passed down from the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from bot.core.catalogue import Catalogue

Clock = Callable[[], datetime]


class ContentSource(Protocol):
    """Gives the content in force now; a reload swaps it without the commands noticing."""

    @property
    def catalogue(self) -> Catalogue:
        """The last good catalogue."""
        ...


@dataclass(frozen=True)
class StaticContent:
    """A ContentSource that never changes (tests, benchmarks)."""

    catalogue: Catalogue


@dataclass
class Services:
    """Everything a command needs, built once by the composition root."""

    content: ContentSource
    clock: Clock
    bot_username: str = ""
    admin_ids: frozenset[int] = field(default_factory=frozenset)
