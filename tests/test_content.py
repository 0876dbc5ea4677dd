"""The content loader and validator: the shipped content, a valid fixture, and broken files with exact errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.__main__ import main
from bot.content import ContentLibrary, InvalidContent, load_catalogue

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FIXTURES = Path(__file__).parent / "fixtures"
VALID = FIXTURES / "content"
BROKEN = sorted((FIXTURES / "broken").glob("*.yaml"))
SHIPPED = Path(__file__).parent.parent / "content"


def _header(path: Path, tag: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith(f"# {tag}:")]


def test_shipped_content_is_valid_and_complete() -> None:
    catalogue = load_catalogue(SHIPPED, now=NOW)
    ids = [section.id for section in catalogue.sections]
    assert ids == ["overview", "government", "academia", "startups", "finance", "healthcare", "smart-city",
                   "challenges"]
    for alias, section_id in [("fintech", "finance"), ("banking", "finance"), ("gov", "government"),
                              ("health", "healthcare"), ("medical", "healthcare"), ("smartcity", "smart-city"),
                              ("city", "smart-city"), ("uni", "academia"), ("universities", "academia")]:
        section = catalogue.section(alias)
        assert section is not None and section.id == section_id, alias
    assert all(initiative.link.startswith("https://") or initiative.link.startswith("http://")
               for initiative in catalogue.initiatives)
    assert len(catalogue.updates) >= 10
    assert [u.date for u in catalogue.updates] == sorted((u.date for u in catalogue.updates), reverse=True)


def test_valid_fixture_loads_into_typed_catalogue() -> None:
    catalogue = load_catalogue(VALID, now=NOW)
    assert [s.id for s in catalogue.sections] == ["government", "finance"]
    finance = catalogue.section("FinTech")
    assert finance is not None and finance.title == "AI in finance"
    assert finance.initiatives[1].note == "News report."
    assert finance.initiatives[0].year == 2016
    assert catalogue.updates[0].date == date(2024, 8, 13)
    assert catalogue.about.sources[0].link == "https://example.org/source"
    assert len(catalogue.version) == 12


def test_catalogue_is_immutable() -> None:
    catalogue = load_catalogue(VALID, now=NOW)
    with pytest.raises(AttributeError):
        catalogue.sections = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        catalogue.by_name["x"] = catalogue.sections[0]  # type: ignore[index]


def test_version_changes_with_content() -> None:
    first = load_catalogue(VALID, now=NOW)
    text = (VALID / "updates.yaml").read_text().replace("set up", "established")
    second = load_catalogue(VALID, now=NOW, overrides={"updates.yaml": text})
    assert first.version != second.version


@pytest.mark.parametrize("broken", BROKEN, ids=[p.stem for p in BROKEN])
def test_broken_file_reports_its_place(broken: Path) -> None:
    target = _header(broken, "target")[0]
    expected = _header(broken, "expect")
    assert expected, f"{broken.name} declares no expected error"
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(VALID, now=NOW, overrides={target: broken.read_text()})
    reported = [str(error) for error in caught.value.errors]
    for expectation in expected:
        prefix = f"{(VALID / expectation.split(':', 1)[0]).as_posix()}:{expectation.split(':', 1)[1]}"
        assert any(line.startswith(prefix) for line in reported), f"{prefix!r} not in {reported}"


def test_every_error_is_reported_at_once(tmp_path: Path) -> None:
    overrides = {path: (FIXTURES / "broken" / name).read_text() for path, name in [
        ("sections/finance.yaml", "unknown_key.yaml"), ("updates.yaml", "bad_date.yaml"),
        ("sections/government.yaml", "non_http_link.yaml")]}
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(VALID, now=NOW, overrides=overrides)
    files = {error.file.rsplit("/", 1)[-1] for error in caught.value.errors}
    assert files == {"finance.yaml", "updates.yaml", "government.yaml"}
    assert len(caught.value.errors) >= 5


def test_dates_stay_text_so_a_bad_date_is_an_error_not_a_crash() -> None:
    text = "updates:\n  - date: 2023-13-45\n    sections: [finance]\n    title: t\n    summary: s\n" \
           "    link: https://example.org\n"
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(VALID, now=NOW, overrides={"updates.yaml": text})
    assert "updates.yaml:2: updates[0].date: must be a real date" in str(caught.value)


def test_yaml_tags_for_python_objects_are_refused() -> None:
    text = "updates: !!python/object/apply:os.system ['echo pwned']\n"
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(VALID, now=NOW, overrides={"updates.yaml": text})
    assert "(yaml): not valid YAML" in str(caught.value)


def test_unexpected_file_is_reported() -> None:
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(VALID, now=NOW, overrides={"notes.yaml": "a: 1\n"})
    assert "notes.yaml:1: (file): unexpected content file" in str(caught.value)


def test_missing_directory_is_reported(tmp_path: Path) -> None:
    with pytest.raises(InvalidContent, match="content directory not found"):
        load_catalogue(tmp_path / "nowhere", now=NOW)


def test_failed_reload_keeps_last_good_content(tmp_path: Path) -> None:
    directory = tmp_path / "content"
    (directory / "sections").mkdir(parents=True)
    for path in VALID.rglob("*.yaml"):
        (directory / path.relative_to(VALID)).write_text(path.read_text())
    library = ContentLibrary.open(directory, now=NOW)
    good = library.catalogue
    (directory / "sections" / "finance.yaml").write_text((FIXTURES / "broken" / "duplicate_alias.yaml").read_text())
    with pytest.raises(InvalidContent):
        library.reload(now=NOW)
    assert library.catalogue is good


def test_content_check_command_prints_errors_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "content"
    (directory / "sections").mkdir(parents=True)
    for path in VALID.rglob("*.yaml"):
        (directory / path.relative_to(VALID)).write_text(path.read_text())
    assert main(["content", "check", str(directory)]) == 0
    assert "OK — 2 sections, 3 initiatives, 2 updates" in capsys.readouterr().out
    (directory / "updates.yaml").write_text((FIXTURES / "broken" / "bad_date.yaml").read_text())
    assert main(["content", "check", str(directory)]) == 1
    err = capsys.readouterr().err
    assert f"{directory.as_posix()}/updates.yaml:5: updates[0].date: must be a real date" in err
    assert "2 problem(s)" in err


def test_a_broken_section_does_not_cascade_into_other_files() -> None:
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(VALID, now=NOW, overrides={
            "sections/finance.yaml": (FIXTURES / "broken" / "missing_field.yaml").read_text()})
    assert all(error.file.endswith("sections/finance.yaml") for error in caught.value.errors), caught.value.errors


def test_an_unparseable_section_file_does_not_cascade_either() -> None:
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(VALID, now=NOW, overrides={"sections/finance.yaml": "id: finance\ntitle: [unclosed\n"})
    assert [error.key for error in caught.value.errors] == ["(yaml)"]


def test_a_link_cut_off_inside_a_word_is_reported_at_its_place() -> None:
    updates = (VALID / "updates.yaml").read_text()
    cut = updates.replace("link: https://example.org/genai-sandbox", "link: https://example.org/genai-sandb")
    with pytest.raises(InvalidContent) as caught:
        load_catalogue(VALID, now=NOW, overrides={"updates.yaml": cut})
    [error] = caught.value.errors
    assert (error.file.endswith("updates.yaml"), error.line, error.key) == (True, 6, "updates[0].link")
    assert "looks cut off" in error.message and "https://example.org/genai-sandbox" in error.message


@pytest.mark.parametrize("link", ["https://example.org/", "https://example.org/genai", "https://example.org/genai-"])
def test_a_parent_page_or_a_whole_word_is_not_a_cut_off_link(link: str) -> None:
    updates = (VALID / "updates.yaml").read_text()
    parent = updates.replace("link: https://example.org/genai-sandbox", f"link: {link}")
    load_catalogue(VALID, now=NOW, overrides={"updates.yaml": parent})  # no error
