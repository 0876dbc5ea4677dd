"""Chat addresses: one printable, parseable name for a chat on any platform, checked when made."""

from __future__ import annotations

import pytest

from bot.core.addresses import AddressError, ChatAddress, telegram, typed_address


@pytest.mark.parametrize("text", ["telegram:-1001234567890", "telegram:42", "slack:T0123ABC/C0456DEF", "console:1"])
def test_an_address_prints_as_it_parses(text: str) -> None:
    assert str(ChatAddress.parse(text)) == text


def test_a_telegram_address_is_the_chat_id_behind_its_platform() -> None:
    assert telegram(-100123) == ChatAddress("telegram", "-100123") == ChatAddress.parse("Telegram:-100123")
    assert str(telegram(42)) == "telegram:42"


@pytest.mark.parametrize("text", [
    "-100123",  # no platform
    "matrix:!room",  # a platform nobody serves
    "telegram:abc", "telegram:0", "telegram:+5", "telegram:007", "telegram:99999999999999999999",
    "slack:C0456", "slack:t0123/c0456", "slack:T0123/C0456/X", "slack:",
    "console:one",
    "slack:T" + "1" * 60 + "/C" + "2" * 60,
])
def test_what_is_not_an_address_is_refused_with_a_reason(text: str) -> None:
    with pytest.raises(AddressError) as refused:
        ChatAddress.parse(text)
    assert str(refused.value)


def test_a_typed_bare_number_is_a_telegram_chat_as_it_always_was() -> None:
    assert typed_address("-1001234567890") == telegram(-1001234567890)
    assert typed_address(" slack:T0123/C0456 ") == ChatAddress("slack", "T0123/C0456")
    for text in ("²", "12abc", "0", "99999999999999999999", "telegram:x"):
        with pytest.raises(AddressError):
            typed_address(text)


def test_addresses_are_values() -> None:
    assert len({telegram(1), telegram(1), ChatAddress.parse("telegram:1")}) == 1
    assert sorted([telegram(2), ChatAddress("slack", "T1/C1"), telegram(1)])[0] == ChatAddress("slack", "T1/C1")
