"""Chinese text for matching: Simplified input made Hong Kong Traditional (OpenCC s2hk), and Chinese tokens.

The one core module that imports a library beyond the standard one: OpenCC is a pure text converter (no I/O beyond
its own dictionaries), and matching `人工智能` typed in Simplified needs it wherever names or words are compared.
"""

from __future__ import annotations

import re
from functools import cache

import opencc

# CJK ideographs (the unified block, extension A and the compatibility block): the characters that make Chinese runs.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_HAN_RUN = re.compile(f"[{HAN}]+")
_HAS_HAN = re.compile(f"[{HAN}]")


@cache
def _converter() -> opencc.OpenCC:
    # Built on first use, not at import: loading the dictionaries is the costly part, and most messages are English.
    return opencc.OpenCC("s2hk")


def has_chinese(text: str) -> bool:
    """True when the text holds at least one Chinese character."""
    return _HAS_HAN.search(text) is not None


def to_traditional(text: str) -> str:
    """`香港科技大学 人工智能` becomes `香港科技大學 人工智能`; text without Chinese comes back unconverted."""
    return _converter().convert(text) if has_chinese(text) else text


def han_runs(text: str) -> list[str]:
    """The runs of Chinese characters in a text: `GenA.I. 沙盒（金管局）` gives `['沙盒', '金管局']`."""
    return _HAN_RUN.findall(text)


def bigrams(run: str) -> list[str]:
    """A Chinese run as overlapping character pairs (`人工智能` -> 人工, 工智, 智能); one character stays one token."""
    if len(run) < 2:
        return [run] if run else []
    return [run[i:i + 2] for i in range(len(run) - 1)]
