"""Content in two languages: the zh-Hant schema and its checks, the marked fallback, Chinese names and search."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, time
from pathlib import Path, PurePath

import pytest
from replies import html, parts

from bot.content import ContentLibrary, InvalidContent, load_catalogue, validate_texts
from bot.content.manager import ContentManager
from bot.core.addresses import telegram
from bot.core.catalogue import CHINESE, ENGLISH, Catalogue
from bot.core.commands import dispatch
from bot.core.digest_composer import DigestRules, compose_digest
from bot.core.messages import Chat, Request, User
from bot.core.render import fallback_text, render_initiative, render_update
from bot.core.schedule import Cadence, Schedule
from bot.core.search import index_of
from bot.core.services import Services, StaticContent
from bot.core.subscriptions import DigestHistory, Subscription
from bot.tg.render import MESSAGE_LIMIT, message_length, text_length

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).parent.parent
SHIPPED = load_catalogue(ROOT / "content", now=NOW)

ABOUT = """\
name: Pulse
tagline: News.
about: A bot.
contact: Write to us.
sources: []
zh-Hant:
  tagline: 新聞。
  about: 一個機械人。
  contact: 請聯絡我們。
"""
FINANCE = """\
id: finance
order: 1
title: AI in finance
aliases: [fintech]
summary: Banks use AI.
key_points:
  - Sandboxes let banks pilot new technology.
zh-Hant:
  title: 人工智能與金融
  aliases: [金融]
  summary: 銀行使用人工智能。
  key_points:
    - 沙盒讓銀行試行新科技。
initiatives:
  - name: Fintech Supervisory Sandbox
    year: 2016
    body: HKMA
    description: Banks pilot fintech.
    link: https://example.org/fss
    zh-Hant:
      name: 金融科技監管沙盒
      body: 香港金融管理局
      description: 銀行試行金融科技。
  - name: GenA.I. Sandbox
    year: 2024
    body: HKMA and Cyberport
    description: Banks trial generative AI.
    link: https://example.org/genai
    note: News report.
"""
UPDATES = """\
updates:
  - date: 2024-08-13
    sections: [finance]
    title: GenA.I. Sandbox launched
    summary: The HKMA opened a sandbox.
    link: https://example.org/genai
    zh-Hant:
      title: 生成式人工智能沙盒推出
      summary: 金管局推出沙盒。
  - date: 2025-10-15
    sections: [finance]
    language: zh-Hant
    title: 金管局公布第二期沙盒參與者名單
    summary: 27個用例獲邀參與。
    link: https://example.org/second
"""


def texts(**changes: str) -> dict[str, str]:
    files = {"about.yaml": ABOUT, "sections/finance.yaml": FINANCE, "updates.yaml": UPDATES}
    files.update({name.replace("__", "/").replace("_yaml", ".yaml"): text for name, text in changes.items()})
    return files


def load(files: dict[str, str], require: str | None = None) -> Catalogue:
    return validate_texts(files, base=PurePath("c"), now=NOW, require_language=require)


def problems(files: dict[str, str], require: str | None = None) -> list[str]:
    with pytest.raises(InvalidContent) as caught:
        load(files, require)
    return [str(error) for error in caught.value.errors]


# --- schema and validator ------------------------------------------------------------------------


def test_a_translated_item_renders_in_chinese_and_keeps_its_link_and_year() -> None:
    catalogue = load(texts())
    sandbox = catalogue.sections[0].initiatives[0]
    shown = html(_reply(render_initiative(sandbox, CHINESE)))
    assert "金融科技監管沙盒" in shown and "(2016) — 香港金融管理局" in shown and "https://example.org/fss" in shown
    assert fallback_text(CHINESE) not in shown
    assert "Fintech Supervisory Sandbox" in html(_reply(render_initiative(sandbox, ENGLISH)))


def test_plain_loading_accepts_missing_translations_but_the_zh_check_lists_each_with_its_place() -> None:
    load(texts())  # the untranslated GenA.I. Sandbox is no error without --lang
    found = problems(texts(), CHINESE)
    assert found == ["c/sections/finance.yaml:24: initiatives[1].zh-Hant: missing translation"]


def test_a_translation_lacking_a_field_is_listed_at_the_field_and_falls_back_whole() -> None:
    partial = FINANCE.replace("    note: News report.\n", "    note: News report.\n    zh-Hant:\n"
                                                            "      body: 金管局及數碼港\n"
                                                            "      description: 銀行試用生成式人工智能。\n")
    found = problems(texts(sections__finance_yaml=partial), CHINESE)
    assert found == ["c/sections/finance.yaml:31: initiatives[1].zh-Hant.note: missing translation "
                     "(the original has a note)"]
    genai = load(texts(sections__finance_yaml=partial)).sections[0].initiatives[1]
    assert genai.in_language(CHINESE).language == ENGLISH  # the caveat is never lost: English, marked


def test_the_same_rules_hold_in_chinese_with_their_place() -> None:
    bad = (FINANCE.replace("  title: 人工智能與金融", "  title: " + "長" * 41)
           .replace("      body: 香港金融管理局\n", "      body: 香港金融管理局\n      colour: 紅\n")
           .replace("  aliases: [金融]", "  aliases: [金 融]"))
    found = problems(texts(sections__finance_yaml=bad))
    assert "c/sections/finance.yaml:9: zh-Hant.title: is 41 characters; at most 40 allowed" in found
    assert any(e.startswith("c/sections/finance.yaml:23: initiatives[0].zh-Hant.colour: unknown key") for e in found)
    assert "c/sections/finance.yaml:10: zh-Hant.aliases: alias '金 融' must be one word of at most 32 characters" \
        in found


def test_a_translation_must_be_a_mapping_and_not_in_the_items_own_language() -> None:
    chinese_twice = UPDATES.replace("    link: https://example.org/second\n", "    link: https://example.org/second\n"
                                    "    zh-Hant:\n      title: 又一個\n      summary: 重複。\n")
    first = "    zh-Hant:\n      title: 生成式人工智能沙盒推出\n      summary: 金管局推出沙盒。\n"
    not_a_mapping = chinese_twice.replace(first, "    zh-Hant: 生成式人工智能沙盒推出\n")
    found = problems(texts(updates_yaml=not_a_mapping))
    assert any("updates[0].zh-Hant: must be a mapping of translated fields, not str" in e for e in found)
    assert any("updates[1].zh-Hant: the text is in zh-Hant already; a translation goes under en" in e for e in found)


def test_an_unknown_language_is_refused() -> None:
    found = problems(texts(updates_yaml=UPDATES.replace("language: zh-Hant", "language: zh-CN")))
    assert "c/updates.yaml:12: updates[1].language: must be one of en, zh-Hant, got 'zh-CN'" in found


def test_a_chinese_text_is_measured_in_utf16_units_as_telegram_counts() -> None:
    # 2,100 characters outside the Basic Multilingual Plane: under 4,096 characters, but 4,200 UTF-16 units.
    long = FINANCE.replace("      description: 銀行試行金融科技。", "      description: " + "𠀀" * 2100)
    found = problems(texts(sections__finance_yaml=long))
    assert found == [f"c/sections/finance.yaml:15: initiatives[0].zh-Hant: renders to more than {MESSAGE_LIMIT} "
                     "characters"]


def test_the_shipped_content_is_fully_translated_and_every_unit_fits_in_chinese() -> None:
    load_catalogue(ROOT / "content", now=NOW, require_language=CHINESE)
    for section in SHIPPED.sections:
        assert section.in_language(CHINESE).language == CHINESE
        for initiative in section.initiatives:
            assert initiative.in_language(CHINESE).language == CHINESE
            assert message_length(_reply(render_initiative(initiative, CHINESE)).body) <= MESSAGE_LIMIT


def test_content_check_with_lang_lists_missing_translations_and_fails(tmp_path: Path) -> None:
    for name, text in texts().items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    plain = _cli("content", "check", str(tmp_path))
    strict = _cli("content", "check", "--lang", "zh-Hant", str(tmp_path))
    assert plain.returncode == 0, plain.stderr
    assert strict.returncode == 1
    assert f"{tmp_path}/sections/finance.yaml:24: initiatives[1].zh-Hant: missing translation" in strict.stderr
    shipped = _cli("content", "check", "--lang", "zh-Hant", str(ROOT / "content"))
    assert shipped.returncode == 0 and "every item translated into zh-Hant" in shipped.stdout


# --- the marked fallback ----------------------------------------------------------------------------


def test_a_chinese_only_update_is_shown_to_english_readers_in_chinese_with_a_marker() -> None:
    second = next(u for u in load(texts()).updates if u.language == CHINESE)
    english = html(_reply(render_update(second, ENGLISH)))
    chinese = html(_reply(render_update(second, CHINESE)))
    assert "金管局公布第二期沙盒參與者名單" in english and fallback_text(ENGLISH) in english
    assert fallback_text(ENGLISH) not in chinese and fallback_text(CHINESE) not in chinese


def test_an_english_only_item_is_shown_to_chinese_readers_with_a_marker() -> None:
    genai = load(texts()).sections[0].initiatives[1]
    shown = html(_reply(render_initiative(genai, CHINESE)))
    assert "GenA.I. Sandbox" in shown and fallback_text(CHINESE) in shown


# --- commands: names, replies, digests --------------------------------------------------------------


@pytest.mark.parametrize(("name", "section_id"), [("金融", "finance"), ("醫療", "healthcare"),
                                                  ("智慧城市", "smart-city"), ("医疗", "healthcare"),
                                                  ("数码港", "startups")])
async def test_chinese_and_simplified_names_open_their_sector(name: str, section_id: str) -> None:
    reply = await ask(f"sector {name}", CHINESE)
    title = SHIPPED.section(section_id).in_language(CHINESE).title  # type: ignore[union-attr]
    assert f"<b>{title}</b>" in html(reply) and "closest to" not in html(reply)


async def test_every_sector_reply_fits_one_message_in_chinese() -> None:
    for section in SHIPPED.sections:
        reply = await ask(f"sector {section.id}", CHINESE)
        assert section.in_language(CHINESE).title in html(reply)
        assert message_length(reply.body) <= MESSAGE_LIMIT
        assert all(fallback_text(CHINESE) not in line for line in html(reply).splitlines())


async def test_every_digest_part_fits_in_chinese() -> None:
    rules = DigestRules(lookback_days=10_000, max_updates=10)
    for sections in [(), *((s.id,) for s in SHIPPED.sections)]:
        subscription = Subscription(id=7, chat=telegram(5), thread_id=None, chat_kind=Chat(telegram(5)).kind,
                                    schedule=Schedule(Cadence.DAILY, time(9), "Asia/Hong_Kong"), sections=sections,
                                    active=True, created_at=NOW, next_due_at=NOW)
        payload = compose_digest(replace(subscription, language=CHINESE), SHIPPED, NOW, DigestHistory(), rules)
        if payload is None:
            continue
        assert all(0 < text_length(part) <= MESSAGE_LIMIT for part in parts(payload))
        english = compose_digest(replace(subscription, language=ENGLISH), SHIPPED, NOW, DigestHistory(), rules)
        assert english is not None and english.message != payload.message  # not the cached English one


# --- search ---------------------------------------------------------------------------------------


def _found(query: str) -> list[str]:
    return [getattr(hit.item, "key", getattr(hit.item, "id", "")) for hit in index_of(SHIPPED).search(query)]


def test_chinese_search_finds_the_finance_items() -> None:
    found = index_of(SHIPPED).search("人工智能 金融")
    assert found[0].kind == "section" and found[0].item.id == "finance"  # type: ignore[union-attr]
    assert sum(getattr(hit.item, "section_id", "finance" if hit.kind == "section" else "") == "finance"
               or "finance" in getattr(hit.item, "sections", ()) for hit in found) >= 5


@pytest.mark.parametrize(("english", "traditional", "simplified"), [
    ("hkust", "香港科技大學", "香港科技大学"),
    ("supercomputing centre", "超算中心", "超算中心"),
    ("smart lampposts", "智慧燈柱", "智慧灯柱"),
    ("top talent pass", "高端人才通行證", "高端人才通行证"),
])
def test_chinese_and_simplified_searches_find_what_the_english_search_finds(english: str, traditional: str,
                                                                          simplified: str) -> None:
    assert _found(traditional) == _found(simplified)
    top_english = _found(english)[:2]
    assert set(top_english) & set(_found(traditional)[:3]), (top_english, _found(traditional))


async def test_search_replies_show_content_in_the_readers_language() -> None:
    english = html(await ask("search 人工智能 金融", ENGLISH))
    chinese = html(await ask("search 人工智能 金融", CHINESE))
    assert "AI in finance" in english and "人工智能與金融" in chinese


# --- publishing a candidate in its language --------------------------------------------------------


def test_publishing_a_chinese_update_writes_it_as_chinese(tmp_path: Path) -> None:
    content = tmp_path / "content"
    for name, text in texts().items():
        (content / name).parent.mkdir(parents=True, exist_ok=True)
        (content / name).write_text(text)
    manager = ContentManager(ContentLibrary.open(content, now=NOW), tmp_path / "history", lambda: NOW)
    change = manager.publish_update(date(2026, 11, 24), ["finance"], "金管局推出新措施", "金管局今日公布新措施。",
                                    "https://example.org/new", 900, language=CHINESE)
    assert change.ok, change
    published = next(u for u in manager.library.catalogue.updates if u.link == "https://example.org/new")
    assert published.language == CHINESE and published.in_language(ENGLISH) is published
    assert "language: zh-Hant" in (content / "updates.yaml").read_text()


# --- helpers ---------------------------------------------------------------------------------------


def _reply(block: object) -> object:
    from bot.core.document import doc
    from bot.core.messages import Reply
    return Reply(doc(block))  # type: ignore[arg-type]


async def ask(text: str, language: str) -> object:
    command, *args = text.split()
    request = replace(Request(command, tuple(args), Chat(telegram(5)), User(5, "Ada")), language=language)
    return await dispatch(request, Services(content=StaticContent(SHIPPED), clock=lambda: NOW))  # type: ignore[arg-type]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_a_change_to_a_translation_alone_is_reported_as_a_change() -> None:
    from bot.content.diff import diff_catalogues
    old = load(texts())
    new = load(texts(sections__finance_yaml=FINANCE.replace("銀行試行金融科技。", "銀行可試行金融科技。")))
    diff = diff_catalogues(old, new)
    assert diff.describe() and "Fintech Supervisory Sandbox" in diff.describe()
