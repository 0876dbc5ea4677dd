"""The gettext catalogues: every message translated, placeholders kept, the template up to date with the source.

These are the CI checks of the Babel workflow (README, "Languages"): a string added to the code without
`pybabel extract` and a translation fails here.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from bot.core.i18n import CHINESE, LANGUAGES, LOCALE_DIR, catalogue_path

ROOT = Path(__file__).parent.parent
TEMPLATE = LOCALE_DIR / "messages.pot"
# Python's named placeholders (`%(count)s`), positional ones (`%s`, `%d`) and brace fields (`{name}`).
PLACEHOLDER = re.compile(r"%\(\w+\)[sdifr]|%[sdifr]|\{\w*\}")


def read(path: Path, locale: str | None = None) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=locale)


def mapping() -> tuple[list[tuple[str, str]], dict[str, dict[str, str]]]:
    """babel.cfg's method map and options, as pybabel extract reads them."""
    with (ROOT / "babel.cfg").open() as config:
        return parse_mapping_cfg(config)  # type: ignore[no-any-return]


def ids(catalogue: Catalog) -> set[object]:
    return {message.id for message in catalogue if message.id}


def placeholders(text: str) -> Counter[str]:
    return Counter(PLACEHOLDER.findall(text.replace("%%", "")))


def translated() -> list[str]:
    return [language for language in LANGUAGES if language != "en"]


@pytest.mark.parametrize("language", translated())
def test_every_message_of_the_template_has_a_translation_that_is_not_fuzzy(language: str) -> None:
    catalogue = read(catalogue_path(language, "po"), "zh_Hant_HK")
    assert not catalogue.fuzzy, "the catalogue's header is marked fuzzy: pybabel compile would skip it"
    missing = []
    for msgid in ids(read(TEMPLATE)):
        message = catalogue.get(msgid)
        strings = (message.string if isinstance(message.string, tuple) else (message.string,)) if message else ("",)
        if message is None or message.fuzzy or not all(strings):
            missing.append(msgid)
    assert missing == []


@pytest.mark.parametrize("language", translated())
def test_translations_keep_the_placeholders_of_their_message(language: str) -> None:
    catalogue = read(catalogue_path(language, "po"), "zh_Hant_HK")
    wrong = []
    for message in catalogue:
        if not message.id:
            continue
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        # Chinese has one plural form: it must carry what the plural message carries.
        wanted = placeholders(sources[-1])
        wrong += [f"{sources[0]!r} -> {string!r}" for string in strings if placeholders(string) != wanted]
        wrong += [f"{sources[0]!r}: {error}" for error in _babel_errors(catalogue, message)]
    assert wrong == []


def _babel_errors(catalogue: Catalog, message: Message) -> list[str]:
    return [str(error) for error in message.check(catalogue)]


def test_the_template_lists_exactly_the_messages_in_the_source(tmp_path: Path) -> None:
    method_map, options_map = mapping()
    extracted = {
        message if isinstance(message, str) else tuple(message)
        for _, _, message, _, _ in extract_from_dir(str(ROOT), method_map, options_map, keywords=DEFAULT_KEYWORDS)
    }
    template = {message.id for message in read(TEMPLATE) if message.id}
    assert {str(m) for m in extracted - template} == set(), "new messages: run pybabel extract and translate them"
    assert {str(m) for m in template - extracted} == set(), "messages gone from the code: run pybabel extract"


def test_the_placeholder_check_sees_a_dropped_name() -> None:
    assert placeholders("Chat %(chat)s (%(state)s)") != placeholders("對話 %(chat)s")
    assert placeholders("%(count)s new update") == placeholders("%(count)s 則新動態")


def test_a_new_message_without_a_translation_would_fail_the_check(tmp_path: Path) -> None:
    """The template check compares sets of messages; a message typed into the code is one the template lacks."""
    (tmp_path / "bot").mkdir()
    (tmp_path / "bot" / "new.py").write_text('tr.gettext("A brand new message")\nN_("another one")\n')
    method_map, options_map = mapping()
    found = {message for *_, message, _, _ in extract_from_dir(str(tmp_path), method_map, options_map,
                                                                 keywords=DEFAULT_KEYWORDS)}
    assert found == {"A brand new message", "another one"}
    assert not found & {message.id for message in read(TEMPLATE)}


def test_the_chinese_catalogue_is_the_one_the_bot_loads() -> None:
    from bot.core.i18n import translator

    assert translator(CHINESE).gettext("Sectors") == "範疇"
    assert translator(CHINESE).ngettext("%(count)s new update", "%(count)s new updates", 3) == "3 則新動態"
    assert translator("en").gettext("Sectors") == "Sectors"
    assert translator("klingon").language == "en"


def test_no_message_hides_inside_an_f_string() -> None:
    """pybabel extract does not look inside f-strings: a message there would never reach the catalogue."""
    import ast

    hidden = []
    for path in sorted((ROOT / "bot").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.JoinedStr):
                hidden += [f"{path.relative_to(ROOT)}:{call.lineno}" for call in ast.walk(node)
                           if isinstance(call, ast.Call) and isinstance(call.func, (ast.Attribute, ast.Name))
                           and (call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id)
                           in ("gettext", "ngettext", "N_", "_")
                           and call.args and isinstance(call.args[0], ast.Constant)]
    assert hidden == []
