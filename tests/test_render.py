"""HTML rendering and splitting into Telegram-sized messages."""

from __future__ import annotations

import re

from bot.core.document import doc, link, plain
from bot.tg.render import render_html, split_message, text_length


def _balanced(part: str) -> bool:
    stack: list[str] = []
    for closing, name in re.findall(r"<(/?)([a-z]+)[^>]*>", part):
        if closing:
            if not stack or stack.pop() != name:
                return False
        else:
            stack.append(name)
    return not stack


def test_short_text_is_one_message() -> None:
    assert split_message("<b>hi</b>") == ["<b>hi</b>"]


def test_empty_text_is_no_message() -> None:
    assert split_message("   ") == []


def test_split_prefers_paragraph_boundaries() -> None:
    paragraphs = [f"<b>Item {i}</b>\n" + "word " * 150 for i in range(20)]
    parts = split_message("\n\n".join(paragraphs), limit=2000)
    assert len(parts) > 1
    for part in parts:
        assert text_length(part) <= 2000 and _balanced(part)
        assert part.startswith("<b>Item ")  # each part starts at a paragraph
    assert sum(part.count("<b>Item") for part in parts) == 20


def test_a_huge_paragraph_is_split_without_cutting_a_tag() -> None:
    text = "<b>" + " ".join(f"word{i}" for i in range(3000)) + "</b> " + render_html(doc(link("a link", "https://example.org/x")))
    parts = split_message(text, limit=1000)
    assert len(parts) >= 20
    for part in parts:
        assert text_length(part) <= 1000
        assert _balanced(part), part[:80]
    joined = " ".join(re.sub(r"</?b>", "", part) for part in parts)
    assert "word0 " in joined and "word2999" in joined


def test_open_tag_is_reopened_in_the_next_part() -> None:
    text = '<a href="https://example.org">' + "x " * 600 + "</a>"
    parts = split_message(text, limit=500)
    assert all(p.startswith('<a href="https://example.org">') and p.endswith("</a>") for p in parts)


def test_length_counts_entities_once_and_utf16_units() -> None:
    assert text_length("<b>a &amp; b</b>") == 5
    assert text_length("😀") == 2


def test_escaping() -> None:
    assert render_html(doc(plain("<b> & </b>"))) == "&lt;b&gt; &amp; &lt;/b&gt;"
    assert render_html(doc(link("x<y", 'https://e.org/?a=1&b="2"'))) == '<a href="https://e.org/?a=1&amp;b=&quot;2&quot;">x&lt;y</a>'
