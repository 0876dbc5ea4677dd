"""The shipped content stays current: every topical sector has a 2025-or-later update and the newest is from 2026."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.content import load_catalogue

SHIPPED = load_catalogue(Path(__file__).parent.parent / "content", now=datetime(2026, 12, 4, tzinfo=UTC))
TOPICAL = ("government", "academia", "startups", "finance", "healthcare", "smart-city", "challenges")


def test_the_topical_sectors_are_every_sector_but_the_overview() -> None:
    assert sorted(TOPICAL) == sorted(s.id for s in SHIPPED.sections if s.id != "overview")


@pytest.mark.parametrize("sector", TOPICAL)
def test_each_topical_sector_has_an_update_dated_2025_or_later(sector: str) -> None:
    recent = [u.title for u in SHIPPED.updates if sector in u.sections and u.date >= date(2025, 1, 1)]
    assert recent, f"no update dated 2025 or later in {sector}"


def test_the_newest_update_is_from_2026() -> None:
    assert max(u.date for u in SHIPPED.updates).year == 2026
