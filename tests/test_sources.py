"""Watching official sources: the sources file, fetching and parsing every shape and fault, choosing candidates.

Feeds come from a local server (tests/doubles/feed_server.py); nothing here reaches the network.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from doubles.feed_server import HUGE_BYTES, FeedServer, atom, gov_rss

from bot.__main__ import main
from bot.content import InvalidContent, load_catalogue
from bot.content.validate import validate_texts
from bot.core.candidates import SourceState
from bot.core.catalogue import SourceRules, WatchedSource, Watchlist
from bot.sources.fetch import FeedFetcher, FetchLimits, feed_session, user_agent
from bot.sources.parse import parse_feed, plain_text
from bot.sources.poll import backoff, poll_sources
from bot.sources.select import Entry, KeywordMatcher, Selector, canonical_url, title_key

ROOT = Path(__file__).parent.parent
NOW = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
RULES = SourceRules(keywords=("artificial intelligence", "AI", "generative AI", "machine learning", "人工智能",
                              "生成式人工智能", "大模型"),
                    section_keywords={"finance": ("bank", "HKMA", "銀行"), "healthcare": ("hospital", "醫院")})
# Generous for a busy machine; only /fault/slow (which never answers in time) reaches them.
LIMITS = FetchLimits(connect_seconds=5, read_seconds=3, total_seconds=20, max_bytes=4 * 1024 * 1024,
                     max_redirects=3)
GIA = "https://www.info.gov.hk/gia/general/202612/03/P20261203004{:02d}.htm"


def _source(source_id: str, url: str, language: str = "en", sections: tuple[str, ...] = ("government",),
            keywords: tuple[str, ...] = ()) -> WatchedSource:
    return WatchedSource(id=source_id, name=source_id, kind="rss", url=url, language=language, sections=sections,
                         poll_minutes=15, keywords=keywords)


# --- the sources file ---------------------------------------------------------------------------------------------


def test_shipped_sources_file_is_valid_and_names_the_bodies_with_a_documented_feed() -> None:
    # Only feeds whose address was found documented are shipped (the others are listed in the file's comment, to
    # be added once confirmed): a guessed URL would be polled for real.
    catalogue = load_catalogue(ROOT / "content", now=NOW, future_updates=False)
    assert catalogue.watchlist is not None
    ids = {source.id for source in catalogue.watchlist.sources}
    for body in ("gov-press-en", "gov-press-zh", "hkma", "sfc", "pcpd", "hku"):
        assert any(source_id.startswith(body) for source_id in ids), body
    assert all(source.url.startswith("https://") for source in catalogue.watchlist.sources)
    assert all(source.poll_minutes >= 15 for source in catalogue.watchlist.sources)
    assert {"AI", "人工智能"} <= set(catalogue.watchlist.rules.keywords)


def _content_with(sources_yaml: str) -> dict[str, str]:
    texts = {path.relative_to(ROOT / "content").as_posix(): path.read_text(encoding="utf-8")
             for path in (ROOT / "content").rglob("*.yaml")}
    texts["sources.yaml"] = sources_yaml
    return texts


def test_a_broken_sources_file_reports_every_problem_with_its_place() -> None:
    broken = """keywords: [AI]
section_keywords:
  nowhere: [x]
sources:
  - id: a
    name: A
    kind: html
    url: https://example.org/news
    language: en
    sections: [government]
    poll_minutes: 15
  - id: b
    name: B
    kind: rss
    url: ftp://example.org/feed
    language: fr
    sections: [nowhere]
    poll_minutes: 5
    colour: red
  - id: a
    name: A again
    kind: atom
    url: https://example.org/atom
    language: zh-Hant
    sections: []
    poll_minutes: 15
"""
    with pytest.raises(InvalidContent) as caught:
        validate_texts(_content_with(broken), base=Path("content"), now=NOW)
    errors = {str(error) for error in caught.value.errors}
    expected = [
        "content/sources.yaml:3: section_keywords.nowhere: no section with id 'nowhere'",
        "content/sources.yaml:5: sources[0].select: missing required field: a kind: html source needs selectors",
        "content/sources.yaml:15: sources[1].url: must be an http(s) link",
        "content/sources.yaml:16: sources[1].language: must be one of en, zh-Hant, got 'fr'",
        "content/sources.yaml:17: sources[1].sections: no section with id 'nowhere'",
        "content/sources.yaml:18: sources[1].poll_minutes: must be a whole number of minutes, at least 15, got 5",
        "content/sources.yaml:19: sources[1].colour: unknown key",
        "content/sources.yaml:20: sources[2].id: duplicate source id 'a'",
    ]
    for start in expected:
        assert any(error.startswith(start) for error in errors), (start, sorted(errors))


def test_sources_check_command_passes_the_shipped_file_and_fails_a_broken_one(tmp_path: Path,
                                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sources", "check", str(ROOT / "content")]) == 0
    assert "6 sources" in capsys.readouterr().out
    broken = tmp_path / "content"
    for relative, text in _content_with("keywords: [AI]\nsources:\n  - id: x\n    kind: rss\n").items():
        (broken / relative).parent.mkdir(parents=True, exist_ok=True)
        (broken / relative).write_text(text, encoding="utf-8")
    assert main(["sources", "check", str(broken)]) == 1
    assert "sources.yaml:3: sources[0].name: missing required field" in capsys.readouterr().err


# --- choosing candidates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["AIA Group results", "the minister said", "Thailand visit", "MAIN street",
                                  "Retail sales figures", "airport expansion"])
def test_ai_is_not_found_inside_other_words(text: str) -> None:
    assert not KeywordMatcher(RULES.keywords).matches(text)


@pytest.mark.parametrize("text", ["AI sandbox opens", "An AI-powered triage", "Generative AI: a guide",
                                  "Advances in Machine  Learning", "政府推出人工智能資助計劃", "本地大模型發布",
                                  "HK's AI."])
def test_ai_is_found_as_a_word_and_in_chinese(text: str) -> None:
    assert KeywordMatcher(RULES.keywords).matches(text)


def test_canonical_url_strips_tracking_parameters_and_fragments() -> None:
    assert (canonical_url("HTTPS://WWW.Example.org:443/news/1?id=7&utm_source=rss&fbclid=x&gclid=y#top")
            == "https://www.example.org/news/1?id=7")
    assert canonical_url("http://example.org") == "http://example.org/"


def test_title_key_joins_the_english_and_chinese_release_and_near_identical_titles() -> None:
    en = title_key("LegCo to consider AI motion", GIA.format(1))
    zh = title_key("立法會將考慮人工智能議案", GIA.format(1) + "?lang=zh")
    assert en == zh == "gia:P2026120300401"
    assert title_key("HKU launches AI lab (with photos)") == title_key("HKU launches  AI lab!")
    assert title_key("HKU launches AI lab") != title_key("CUHK launches AI lab")


def test_selector_keeps_ai_items_once_and_suggests_sections() -> None:
    en = _source("gov-press-en", "https://x/en")
    zh = _source("gov-press-zh", "https://x/zh", language="zh-Hant")
    uni = _source("hku", "https://x/hku", sections=("academia",))
    batches = [
        (en, [Entry("HKMA and banks open a generative AI sandbox", GIA.format(1) + "?utm_source=rss", NOW, "text"),
              Entry("Flag day permits issued", GIA.format(2), NOW, "said the spokesman of AIA"),
              Entry("Already in content", "https://example.org/known#x", NOW, "AI news")]),
        (zh, [Entry("金管局與銀行推出生成式人工智能沙盒", GIA.format(1), NOW, "")]),
        (uni, [Entry("Hospital AI triage study", "https://hku.hk/press/1", None, "<p>x</p>"),
               Entry("Hospital  AI triage study!", "https://hku.hk/press/1-copy", None, "")]),
    ]
    found = Selector(RULES).select(batches, known_links=["https://example.org/known"])
    assert [(item.source_id, item.link) for item in found] == [("gov-press-en", GIA.format(1)),
                                                               ("hku", "https://hku.hk/press/1")]
    assert found[0].sections == ("government", "finance")
    assert found[1].sections == ("academia", "healthcare")
    assert found[0].language == "en" and found[0].title_key == "gia:P2026120300401"


def test_a_source_s_own_keywords_count_only_for_it() -> None:
    itc = _source("itc", "https://x/itc", keywords=("InnoHK",))
    other = _source("other", "https://x/other")
    entry = [Entry("InnoHK centres report", "https://x/1", NOW, "")]
    assert len(Selector(RULES).select([(itc, entry)])) == 1
    assert Selector(RULES).select([(other, entry)]) == []


# --- parsing ------------------------------------------------------------------------------------------------------


def test_titles_with_html_and_scripts_become_plain_text() -> None:
    assert plain_text("<b>AI</b> &amp; <script>alert('x')</script>data<style>p{}</style> day") == "AI & data day"
    feed = gov_rss([("<b>AI</b> plan <script>alert(1)</script><img src=x onerror=alert(2)>", GIA.format(3), NOW,
                     "<p>Body <script>evil()</script></p>")])
    entry = parse_feed(feed.encode(), content_type="application/rss+xml", base_url="https://x/", now=NOW).entries[0]
    assert entry.title == "AI plan"
    assert entry.summary == "Body"
    long = gov_rss([("AI " + "word " * 1000, GIA.format(3), NOW, "text " * 10_000)])
    entry = parse_feed(long.encode(), content_type="application/rss+xml", base_url="https://x/", now=NOW).entries[0]
    assert len(entry.title) <= 300 and entry.title.endswith("…") and len(entry.summary) <= 2_000


def test_big5_feed_and_a_feed_lying_about_its_encoding_come_out_right() -> None:
    items = [("政府推出人工智能資助計劃", GIA.format(4), NOW, "香港")]
    big5 = gov_rss(items, language="zh", encoding="Big5").encode("big5")
    parsed = parse_feed(big5, content_type="text/xml", base_url="https://x/", now=NOW)
    assert [e.title for e in parsed.entries] == ["政府推出人工智能資助計劃"]
    lying = gov_rss(items, language="zh", encoding="UTF-8").encode("big5")  # says UTF-8, is Big5
    parsed = parse_feed(lying, content_type="application/rss+xml; charset=utf-8", base_url="https://x/", now=NOW)
    assert [e.title for e in parsed.entries] == ["政府推出人工智能資助計劃"]
    lying = gov_rss(items, language="zh", encoding="Big5").encode("utf-8")  # says Big5, is UTF-8
    parsed = parse_feed(lying, content_type="text/xml; charset=big5", base_url="https://x/", now=NOW)
    assert [e.title for e in parsed.entries] == ["政府推出人工智能資助計劃"]


def test_entries_without_title_or_link_are_skipped_and_future_dates_dropped() -> None:
    feed = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>AI one</title><link>https://x/1</link><pubDate>Thu, 03 Dec 2026 10:00:00 +0800</pubDate></item>
<item><link>https://x/2</link><description>AI no title</description></item>
<item><title>AI no link</title></item>
<item><title>AI no date</title><link>https://x/4</link></item>
<item><title>AI from 2099</title><link>https://x/5</link><pubDate>Fri, 04 Dec 2099 10:00:00 +0800</pubDate></item>
</channel></rss>"""
    parsed = parse_feed(feed.encode(), content_type="application/rss+xml", base_url="https://x/", now=NOW)
    assert [(e.title, e.published) for e in parsed.entries] == [
        ("AI one", datetime(2026, 12, 3, 2, 0, tzinfo=UTC)), ("AI no date", None), ("AI from 2099", None)]
    assert parsed.problems == ["1 entry without a title skipped", "1 entry without a link skipped",
                               "1 entry without a date kept undated", "1 entry dated in the future kept undated"]


def test_backoff_doubles_per_failure_up_to_a_day() -> None:
    source = _source("s", "https://x/")
    assert [backoff(source, n) for n in range(4)] == [timedelta(minutes=m) for m in (15, 30, 60, 120)]
    assert backoff(source, 40) == timedelta(days=1)


# --- polling a local server: real shapes and every fault -----------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    feeds = FeedServer()
    await feeds.start()
    yield feeds
    await feeds.close()


@pytest.fixture
async def fetcher() -> AsyncIterator[FeedFetcher]:
    async with feed_session("@hkaipulse_ops", LIMITS) as session_fetcher:
        yield session_fetcher


def _serve_everything(server: FeedServer) -> list[WatchedSource]:
    yesterday = NOW - timedelta(days=1)
    en = gov_rss([("HKMA launches generative AI sandbox for banks (with photos)", GIA.format(1), yesterday,
                   "<p>The HKMA today...</p>"),
                  ("Flag day permits issued", GIA.format(2), yesterday, "<p>The SWD said...</p>"),
                  ("AIA results in Thailand", GIA.format(5), yesterday, "<p>He said the results...</p>")])
    zh = gov_rss([("金管局推出生成式人工智能沙盒", GIA.format(1), yesterday, "<p>金管局今日...</p>")], language="zh")
    big5 = gov_rss([("醫院管理局試行人工智能分流", "https://www.ha.org.hk/news/1", yesterday, "醫院")],
                   language="zh", encoding="Big5").encode("big5")
    lying = gov_rss([("大學成立大模型研究中心", "https://www.cuhk.edu.hk/news/9", yesterday, "")],
                    language="zh", encoding="UTF-8").encode("big5")
    uni = atom([("HKU AI lab opens &lt;script&gt;alert(1)&lt;/script&gt;", "https://www.hku.hk/press/1", yesterday,
                 "Machine learning lab"), ("Graduation day", "https://www.hku.hk/press/2", yesterday, "Ceremony")])
    many = gov_rss([(f"AI item {n}", f"https://many.example/{n}", yesterday, "") for n in range(10_000)])
    paths = {
        "gov-en": server.add("/gov/en.xml", en, etag='"en-1"'),
        "gov-zh": server.add("/gov/zh.xml", zh, last_modified="Thu, 03 Dec 2026 08:00:00 GMT"),
        "ha-big5": server.add("/big5.xml", big5, content_type="application/rss+xml"),
        "cuhk-liar": server.add("/liar.xml", lying, content_type="application/rss+xml; charset=utf-8"),
        "hku-atom": server.add("/atom.xml", uni, content_type="application/atom+xml"),
        "many": server.add("/many.xml", many),
        "malformed": server.add("/malformed.xml", "<rss version='2.0'><channel><item><title>AI</ti"),
        "html-page": server.add("/page.xml", "<!doctype html><html><head><title>AI news</title></head>"
                                             "<body><h1>AI</h1><a href='/x'>AI story</a></body></html>",
                                content_type="text/html; charset=utf-8"),
        "huge": server.url("/fault/huge"),
        "loop": server.url("/fault/loop"),
        "slow": server.url("/fault/slow"),
        "missing": server.url("/fault/404"),
        "broken": server.url("/fault/500"),
        "refused": f"http://127.0.0.1:{_closed_port()}/feed.xml",
    }
    return [_source(source_id, url, language="zh-Hant" if source_id in ("gov-zh", "ha-big5", "cuhk-liar") else "en")
            for source_id, url in paths.items()]


async def test_one_poll_reads_every_shape_and_counts_every_fault_without_stopping(
        server: FeedServer, fetcher: FeedFetcher, caplog: pytest.LogCaptureFixture) -> None:
    sources = _serve_everything(server)
    result = await poll_sources(Watchlist(tuple(sources), RULES), {}, NOW, fetcher)
    states = result.states
    assert set(states) == {source.id for source in sources}
    found = {(item.source_id, item.title) for item in result.items}
    assert ("gov-en", "HKMA launches generative AI sandbox for banks (with photos)") in found
    assert not any(source_id == "gov-zh" for source_id, _ in found)  # the same release in Chinese
    assert ("ha-big5", "醫院管理局試行人工智能分流") in found
    assert ("cuhk-liar", "大學成立大模型研究中心") in found
    assert ("hku-atom", "HKU AI lab opens") in found
    assert not any("Flag day" in title or "AIA" in title or "Graduation" in title for _, title in found)
    assert sum(1 for source_id, _ in found if source_id == "many") == 500
    failed = {"malformed": "malformed feed", "html-page": "not an RSS or Atom feed", "huge": "over the",
              "loop": "more than 3 redirects", "slow": "timed out", "missing": "HTTP 404", "broken": "HTTP 500",
              "refused": "ClientConnectorError"}
    for source_id, reason in failed.items():
        state = states[source_id]
        assert state.errors == 1 and state.consecutive_failures == 1, (source_id, state)
        assert reason in (state.last_error or ""), (source_id, state.last_error)
        assert state.last_success_at is None and state.next_poll_at == NOW + timedelta(minutes=30)
        assert f"source {source_id}: poll failed" in caplog.text
    assert states["many"].errors == 1 and states["many"].consecutive_failures == 0
    assert "feed has 10000 entries; read the first 500" in (states["many"].last_error or "")
    for source_id in ("gov-en", "gov-zh", "ha-big5", "cuhk-liar", "hku-atom"):
        state = states[source_id]
        assert (state.errors, state.last_success_at, state.next_poll_at) == (0, NOW, NOW + timedelta(minutes=15))
    assert server.huge_sent < HUGE_BYTES  # cut at the cap, not read to the end
    assert all(headers["User-Agent"] == user_agent("@hkaipulse_ops") for _, headers in server.requests)
    assert "@hkaipulse_ops" in user_agent("@hkaipulse_ops")


async def test_second_poll_is_conditional_and_unchanged_feeds_answer_304(server: FeedServer,
                                                                         fetcher: FeedFetcher) -> None:
    sources = tuple(s for s in _serve_everything(server) if s.id in ("gov-en", "gov-zh"))
    watchlist = Watchlist(sources, RULES)
    first = await poll_sources(watchlist, {}, NOW, fetcher)
    assert first.states["gov-en"].etag == '"en-1"'
    assert first.states["gov-zh"].last_modified == "Thu, 03 Dec 2026 08:00:00 GMT"
    later = NOW + timedelta(minutes=15)
    second = await poll_sources(watchlist, first.states, later, fetcher)
    assert second.items == []
    assert all(poll.not_modified for poll in second.polls)
    assert server.headers_for("/gov/en.xml")[-1]["If-None-Match"] == '"en-1"'
    assert server.headers_for("/gov/zh.xml")[-1]["If-Modified-Since"] == "Thu, 03 Dec 2026 08:00:00 GMT"
    assert second.states["gov-en"].items_seen == 3 and second.states["gov-en"].last_success_at == later


async def test_only_due_sources_are_polled_and_a_failing_one_backs_off(server: FeedServer,
                                                                       fetcher: FeedFetcher) -> None:
    good = _source("good", server.add("/good.xml", gov_rss([("AI news", "https://x/1", NOW, "")])))
    bad = _source("bad", server.url("/fault/500"))
    watchlist = Watchlist((good, bad), RULES)
    states: dict[str, SourceState] = {}
    moments = [NOW + timedelta(minutes=m) for m in (0, 15, 30, 45, 60, 75, 90)]
    polled: list[set[str]] = []
    for moment in moments:
        result = await poll_sources(watchlist, states, moment, fetcher)
        polled.append({poll.source.id for poll in result.polls})
        states.update(result.states)
    # bad fails at 0 (next in 30 min), at 30 (next in 60), at 90; good is polled every 15 minutes.
    assert polled == [{"good", "bad"}, {"good"}, {"good", "bad"}, {"good"}, {"good"}, {"good"}, {"good", "bad"}]
    assert states["bad"].consecutive_failures == 3 and states["bad"].errors == 3
    assert states["good"].errors == 0


async def test_sources_poll_command_prints_candidates_and_stores_nothing(
        tmp_path: Path, server: FeedServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    url = server.add("/gov/en.xml", gov_rss([("AI sandbox opens", GIA.format(1), NOW, "<p>The HKMA...</p>"),
                                             ("Flag day", GIA.format(2), NOW, "")]))
    content = tmp_path / "content"
    texts = _content_with(f"keywords: [AI]\nsources:\n  - id: gov\n    name: Gov\n    kind: rss\n    url: {url}\n"
                          "    language: en\n    sections: [government]\n    poll_minutes: 15\n")
    for relative, text in texts.items():
        (content / relative).parent.mkdir(parents=True, exist_ok=True)
        (content / relative).write_text(text, encoding="utf-8")
    before = _tree(tmp_path)
    monkeypatch.setenv("CONTENT_DIR", str(content))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/bot.sqlite3")
    code = await _run_cli(["sources", "poll", "--source", "gov"])
    out = capsys.readouterr().out
    assert code == 0
    assert "AI sandbox opens" in out and GIA.format(1) in out and "Flag day" not in out
    assert _tree(tmp_path) == before  # no database, no file
    assert await _run_cli(["sources", "poll", "--source", "nope"]) == 2


def _closed_port() -> int:
    """A port nothing listens on: bound, then released."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _tree(root: Path) -> list[Path]:
    return sorted(path.relative_to(root) for path in root.rglob("*"))


async def _run_cli(argv: list[str]) -> int:
    import asyncio

    # The command runs its own event loop (asyncio.run); run it in a thread, as this test's loop serves the feeds.
    return await asyncio.to_thread(main, argv)


def test_a_changed_sources_file_is_named_in_the_change_an_admin_sees() -> None:
    from bot.content.diff import diff_catalogues

    shipped = (ROOT / "content" / "sources.yaml").read_text(encoding="utf-8")
    old = validate_texts(_content_with(shipped), base=Path("content"), now=NOW)
    changed = shipped.replace("poll_minutes: 30", "poll_minutes: 45").replace("  - 大模型\n", "")
    changed = changed.replace("  - id: hku-press", "  - id: hku-news")
    new = validate_texts(_content_with(changed), base=Path("content"), now=NOW)
    diff = diff_catalogues(old, new)
    assert diff.sources_added == ("hku-news",) and diff.sources_removed == ("hku-press",)
    assert diff.sources_changed == ("(rules)", "hkma-press", "sfc-press")
    assert "sources: +1 ~3 -1" in diff.describe()
    assert "sources" not in diff_catalogues(old, old).describe()
