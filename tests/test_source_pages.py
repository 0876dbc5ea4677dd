"""`kind: html` sources: declared CSS selectors, validated with their place, run by selectolax on pages served by
the local feed server, with the same caps, error counting and back-off as feeds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from doubles.feed_server import FeedServer

from bot.content import InvalidContent
from bot.content.validate import validate_texts
from bot.core.catalogue import PageSelectors, SourceRules, WatchedSource, Watchlist
from bot.sources.fetch import FeedFetcher, FetchLimits, feed_session
from bot.sources.poll import poll_sources

ROOT = Path(__file__).parent.parent
NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
RULES = SourceRules(keywords=("artificial intelligence", "AI", "人工智能"))
LIMITS = FetchLimits(connect_seconds=5, read_seconds=5, total_seconds=20, max_bytes=4 * 1024 * 1024,
                     max_redirects=3)
SELECTORS = PageSelectors(item="ul.news > li", title="a.headline", link="a.headline", date="span.date",
                          date_format="%d %b %Y", summary="p")
HEADER = """keywords: [AI]
sources:
  - id: cyberport-news
    name: Cyberport news
    kind: html
    url: https://www.cyberport.hk/en/news
    language: en
    sections: [government]
    poll_minutes: 60
"""


def content_with(sources_yaml: str) -> dict[str, str]:
    texts = {path.relative_to(ROOT / "content").as_posix(): path.read_text(encoding="utf-8")
             for path in (ROOT / "content").rglob("*.yaml")}
    texts["sources.yaml"] = sources_yaml
    return texts


def errors_of(sources_yaml: str) -> list[str]:
    with pytest.raises(InvalidContent) as caught:
        validate_texts(content_with(sources_yaml), base=Path("content"), now=NOW)
    return sorted(str(error) for error in caught.value.errors)


def test_an_html_source_with_its_selectors_validates() -> None:
    catalogue = validate_texts(content_with(HEADER + """    select:
      item: ul.news > li
      title: a.headline
      link: a.headline
      date: span.date
      date_format: "%d %b %Y"
      summary: p
"""), base=Path("content"), now=NOW)
    assert catalogue.watchlist is not None
    (source,) = catalogue.watchlist.sources
    assert (source.kind, source.page) == ("html", SELECTORS)


def test_bad_selectors_are_reported_with_their_place() -> None:
    errors = errors_of(HEADER + """    select:
      item: "ul.news > li["
      title: a.headline
      link: ""
      date_format: "%d %b %Y"
      colour: red
""")
    assert errors[0].startswith("content/sources.yaml:11: sources[0].select.item: not a CSS selector the page "
                                "reader understands")
    expected = ["content/sources.yaml:13: sources[0].select.link: must not be empty",
                "content/sources.yaml:14: sources[0].select.date: missing: date_format needs date",
                "content/sources.yaml:15: sources[0].select.colour: unknown key"]
    for line in expected:
        assert any(error.startswith(line) for error in errors), (line, errors)


def test_a_missing_select_a_bad_date_format_and_selectors_on_a_feed_are_refused() -> None:
    assert errors_of(HEADER) == ["content/sources.yaml:3: sources[0].select: missing required field: a kind: html "
                                 "source needs selectors (item, title, link)"]
    assert any(error.startswith("content/sources.yaml:15: sources[0].select.date_format: must be a strptime format")
               for error in errors_of(HEADER + """    select:
      item: li
      title: a
      link: a
      date: .date
      date_format: "day month"
"""))
    feed = HEADER.replace("kind: html", "kind: rss") + "    select:\n      item: li\n      title: a\n      link: a\n"
    assert errors_of(feed) == ["content/sources.yaml:10: sources[0].select: only a kind: html source has selectors"]


def page(items: list[str], charset: str = "utf-8") -> str:
    return (f"<!doctype html><html><head><meta charset='{charset}'><title>News</title></head><body>"
            "<nav><a href='/about'>About AI</a></nav><ul class='news'>" + "".join(items) + "</ul>"
            "<script>document.write('<li><a class=headline href=/x>AI injected</a></li>')</script></body></html>")


def li(title: str, href: str | None, day: str = "3 Dec 2026", summary: str = "") -> str:
    link = f"<a class='headline' href='{href}'>{title}</a>" if href is not None else f"<a class='headline'>{title}</a>"
    return f"<li>{link} <span class='date'>{day}</span><p>{summary}</p></li>"


@pytest.fixture
async def fetcher() -> AsyncIterator[FeedFetcher]:
    async with feed_session("@hkaipulse_ops", LIMITS) as session_fetcher:
        yield session_fetcher


def source(source_id: str, url: str, language: str = "en") -> WatchedSource:
    return WatchedSource(id=source_id, name=source_id, kind="html", url=url, language=language,
                         sections=("government",), poll_minutes=15, page=SELECTORS)


async def test_a_listing_page_is_read_with_its_selectors_and_its_faults_counted(
        feeds: FeedServer, fetcher: FeedFetcher) -> None:
    listing = page([
        li("Cyberport opens an AI &amp; robotics lab", "/en/news/1", summary="A <i>new</i> lab for AI start-ups."),
        li("Cyberport hosts a career fair", "/en/news/2"),
        li("AI item without a link", None),
        li("AI item dated next year", "/en/news/4", day="3 Dec 2027"),
        li("AI item with a date the format does not read", "/en/news/5", day="yesterday"),
    ])
    chinese = page([li("數碼港人工智能實驗室開幕", "https://www.cyberport.hk/tc/news/1", day="3 Dec 2026")],
                   charset="big5")
    sources = [
        source("cyberport", feeds.add("/en/news", listing, content_type="text/html; charset=utf-8")),
        source("cyberport-zh", feeds.add("/tc/news", chinese.encode("big5hkscs"), content_type="text/html"),
               language="zh-Hant"),
        source("redesigned", feeds.add("/redesigned", page([]).replace("class='news'", "class='stories'"),
                                       content_type="text/html")),
        source("not-a-page", feeds.add("/feed.xml", "<rss version='2.0'><channel></channel></rss>")),
        source("many", feeds.add("/many", page([li(f"AI item {n}", f"/n/{n}") for n in range(600)]),
                                 content_type="text/html")),
    ]

    result = await poll_sources(Watchlist(tuple(sources), RULES), {}, NOW, fetcher)

    found = {item.title: item for item in result.items}
    lab = found["Cyberport opens an AI & robotics lab"]
    assert lab.link == feeds.url("/en/news/1")  # made absolute against the page's address
    assert lab.published == datetime(2026, 12, 2, 16, 0, tzinfo=UTC)  # 3 Dec in Hong Kong
    assert lab.excerpt == "A new lab for AI start-ups."
    assert found["AI item dated next year"].published is None
    assert found["AI item with a date the format does not read"].published is None
    assert "數碼港人工智能實驗室開幕" in found
    assert not any("career fair" in title or "without a link" in title or "injected" in title or "About" in title
                   for title in found)
    states = result.states
    assert states["cyberport"].errors == 1 and states["cyberport"].consecutive_failures == 0
    assert states["cyberport"].last_error == ("1 item without a link skipped; 1 item without a readable date kept "
                                              "undated; 1 item dated in the future kept undated")
    assert (states["cyberport-zh"].errors, states["cyberport-zh"].items_seen) == (0, 1)
    for failed, reason in (("redesigned", "no item matches 'ul.news > li'"), ("not-a-page", "not an HTML page")):
        state = states[failed]
        assert (state.errors, state.consecutive_failures, state.last_success_at) == (1, 1, None), failed
        assert reason in (state.last_error or ""), state.last_error
        assert state.next_poll_at == NOW + timedelta(minutes=30)  # backed off, as a failing feed is
    assert states["many"].items_seen == 600 and "page has 600 items; read the first 500" in (
        states["many"].last_error or "")
    assert sum(1 for item in result.items if item.source_id == "many") == 500
