"""Every link in content/ against the research notes it was written from (skipped where those notes are absent)."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.content import load_catalogue

RESEARCH = Path(os.environ.get("HKAIPULSE_RESEARCH_DIR", "/work/shared/research"))
SHIPPED = load_catalogue(Path(__file__).parent.parent / "content", now=datetime(2026, 12, 4, tzinfo=UTC))
_URL = re.compile(r"https?://[^\s|<>`\"')\]]+")
UNCONFIRMED = "link unconfirmed"  # what an initiative's note says when its link could not be checked

pytestmark = pytest.mark.skipif(not RESEARCH.is_dir(), reason=f"research notes not found at {RESEARCH}")


def _research_texts() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(RESEARCH.iterdir())
            if path.suffix in (".md", ".txt")}


def _research_urls() -> set[str]:
    """Every whole URL in the notes (a URL is never counted as confirmed by being the start of a longer one)."""
    return {url.rstrip(".,;:") for text in _research_texts().values() for url in _URL.findall(text)}


def _links_said_to_be_wrong() -> set[str]:
    """Addresses the notes' corrections name in backticks as wrong (`pcpd.org.hk/english/whatsnew/...`)."""
    wrong = set()
    for text in _research_texts().values():
        for section in re.split(r"\n(?=## )", text):
            if section.startswith("## Corrections"):
                wrong.update(m for m in re.findall(r"`([^`\s]+\.[^`\s]*/[^`\s]*)`", section))
    return wrong


def _bare(url: str) -> str:
    return re.sub(r"^https?://(www\.)?", "", url)


def test_every_link_is_a_whole_url_of_the_research_or_its_item_says_it_is_unconfirmed() -> None:
    known = _research_urls()
    unconfirmed = []
    for item in SHIPPED.initiatives:
        if item.link not in known and UNCONFIRMED not in (item.note or "").lower():
            unconfirmed.append(f"initiative {item.name}: {item.link}")
    links = [(f"update {u.date} {u.title}", u.link) for u in SHIPPED.updates]
    links += [(f"about source {s.title}", s.link) for s in SHIPPED.about.sources]
    unconfirmed += [f"{where}: {link}" for where, link in links if link not in known]
    assert not unconfirmed, "links not in the research notes (add a note, or fix the link):\n" + "\n".join(unconfirmed)


def test_no_link_is_one_the_research_corrects() -> None:
    wrong = {_bare(url) for url in _links_said_to_be_wrong()}
    assert wrong  # the notes do correct some links: this test reads them
    used = {(_bare(link), link) for link in [i.link for i in SHIPPED.initiatives] + [u.link for u in SHIPPED.updates]
            + [s.link for s in SHIPPED.about.sources]}
    assert not sorted(link for bare, link in used if bare in wrong)
