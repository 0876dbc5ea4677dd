"""Console mode: the same core over text streams, and the real `python -m bot` process with no token."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.app import serve
from bot.console import Console, render_text
from bot.content import load_catalogue
from bot.core.candidates import FoundItem
from bot.core.document import bold, doc, link, para
from bot.core.services import Services, StaticContent
from bot.settings import Settings
from bot.store import open_store

ROOT = Path(__file__).parent.parent
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def console() -> Console:
    catalogue = load_catalogue(ROOT / "content", now=NOW)
    return Console(Services(content=StaticContent(catalogue), clock=lambda: NOW), io.StringIO(), io.StringIO())


async def test_console_renders_plain_text_with_numbered_choices() -> None:
    shown = await console().handle_line("/sector finance")
    assert shown is not None
    assert "AI in finance" in shown and "<b>" not in shown and "&amp;" not in shown
    assert "[1] Initiatives (" in shown


async def test_typing_a_number_presses_that_button() -> None:
    session = console()
    await session.handle_line("/sectors")
    shown = await session.handle_line("5")
    assert shown is not None and shown.startswith("AI in finance")
    assert "Choose a number from 1 to" in (await session.handle_line("99") or "")


async def test_plain_text_is_a_search() -> None:
    shown = await console().handle_line("cyberport")
    assert shown is not None and "Results for “cyberport”" in shown


def test_links_show_their_address() -> None:
    assert render_text(doc(para(bold("A & B"), " ", link("src", "https://e.org")))) == "A & B src <https://e.org>"


def test_python_m_bot_without_token_runs_the_console(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"},
           "DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3", "CONTENT_HISTORY_DIR": str(tmp_path / "history")}
    done = subprocess.run([sys.executable, "-m", "bot"], input="/sector fintech\n/latest 1\n/quit\n",
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=60, check=True)
    assert "console mode" in done.stdout
    assert "AI in finance" in done.stdout and "Latest updates" in done.stdout
    assert done.stdout.rstrip().endswith("Bye.")
    assert (tmp_path / "bot.sqlite3").exists()  # the embedded default store is a real SQLite file


def test_console_subscription_persists_across_runs(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"},
           "DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3", "CONTENT_HISTORY_DIR": str(tmp_path / "history")}
    run = {"capture_output": True, "text": True, "cwd": ROOT, "env": env, "timeout": 60, "check": True}
    subprocess.run([sys.executable, "-m", "bot"], input="/subscribe weekly fri 07:15\n", **run)  # type: ignore[call-overload]
    later = subprocess.run([sys.executable, "-m", "bot"], input="/settings\n", **run)  # type: ignore[call-overload]
    assert "weekly on Fri at 07:15 (Asia/Hong_Kong)" in later.stdout


async def _queue_one_candidate(database: str) -> int:
    """A found item waiting for review in the database, as the sources poller leaves it."""
    store = await open_store(database)
    try:
        (candidate,) = await store.add_candidates([FoundItem(
            "hkma-press", "HKMA headline in the source's words", "https://www.hkma.gov.hk/eng/news/p1",
            datetime(2026, 11, 24, 2, 0, tzinfo=UTC), "The HKMA today...", "en", ("finance",), "hkma headline")], NOW)
    finally:
        await store.close()
    return candidate.id


def test_console_reviews_and_publishes_across_a_restart(tmp_path: Path) -> None:
    content = Path(shutil.copytree(ROOT / "content", tmp_path / "content"))
    database = f"sqlite:///{tmp_path}/bot.sqlite3"
    candidate_id = asyncio.run(_queue_one_candidate(database))
    env = {**{k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}, "DATABASE_URL": database,
           "CONTENT_DIR": str(content), "CONTENT_HISTORY_DIR": str(tmp_path / "history"), "WATCH_CONTENT": "false",
           "WATCH_SOURCES": "false"}
    run = {"capture_output": True, "text": True, "cwd": ROOT, "env": env, "timeout": 60, "check": True}
    first = subprocess.run([sys.executable, "-m", "bot"],  # type: ignore[call-overload]
                           input=f"/review\n/review edit {candidate_id} Insurers join the sandbox | "
                                 "Insurers may now test generative AI.\n/quit\n", **run)
    assert "HKMA headline in the source's words" in first.stdout and "Saved your words." in first.stdout
    assert "Insurers join the sandbox" not in (content / "updates.yaml").read_text()

    second = subprocess.run([sys.executable, "-m", "bot"],  # type: ignore[call-overload]
                            input="/review\n1\n/quit\n", **run)  # the first button: Publish
    assert "Published: Insurers join the sandbox" in second.stdout
    assert "- date: 2026-11-24\n" in (content / "updates.yaml").read_text()
    assert "Insurers may now test generative AI." in (content / "updates.yaml").read_text()


def test_in_the_console_the_line_after_edit_answers_it_and_a_command_cancels_it(tmp_path: Path) -> None:
    content = Path(shutil.copytree(ROOT / "content", tmp_path / "content"))
    database = f"sqlite:///{tmp_path}/bot.sqlite3"
    asyncio.run(_queue_one_candidate(database))
    env = {**{k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}, "DATABASE_URL": database,
           "CONTENT_DIR": str(content), "CONTENT_HISTORY_DIR": str(tmp_path / "history"), "WATCH_CONTENT": "false",
           "WATCH_SOURCES": "false"}
    lines = ["/review", "3",  # Edit: a question
             "/review", "insurers",  # a command cancels it; the next plain line is a search again
             "/review", "3", "Insurers join the sandbox | Insurers may now test generative AI.",
             "1", "/quit"]  # the saved card's first button: Publish
    run = subprocess.run([sys.executable, "-m", "bot"], input="\n".join(lines) + "\n", capture_output=True,
                         text=True, cwd=ROOT, env=env, timeout=60, check=True)

    assert run.stdout.count("Type your answer on the next line") == 2
    assert "Results for “insurers”" in run.stdout or "Nothing matches “insurers”" in run.stdout
    assert "Saved your words." in run.stdout and "Published: Insurers join the sandbox" in run.stdout
    assert "Insurers may now test generative AI." in (content / "updates.yaml").read_text()


def test_bot_refuses_to_start_on_invalid_content(tmp_path: Path) -> None:
    (tmp_path / "sections").mkdir()
    (tmp_path / "sections" / "x.yaml").write_text("id: x\n")
    env = {**{k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}, "CONTENT_DIR": str(tmp_path),
           "DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3"}
    done = subprocess.run([sys.executable, "-m", "bot"], input="", capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)
    assert done.returncode == 1
    assert "Refusing to start" in done.stderr
    assert f"{tmp_path.as_posix()}/sections/x.yaml:1: title: missing" in done.stderr


@pytest.mark.parametrize(("data", "expected"), [
    (b"id: x\n\x89PNG\r\n\x1a\n\x00\xff", "sections/x.yaml:1: (file): not UTF-8 text (bad byte at offset 6)"),
    (b"id: &x x\n", "sections/x.yaml:1: (yaml): not valid YAML: anchors (&x) are not allowed"),
    (b"id: x\nsummary: " + b"[" * 300 + b"]" * 300 + b"\n", "sections/x.yaml:2: (yaml): not valid YAML: nested more"),
], ids=["binary", "anchor", "deep"])
def test_bot_refuses_to_start_on_unreadable_or_hostile_content(tmp_path: Path, data: bytes, expected: str) -> None:
    shutil.copytree(ROOT / "tests" / "fixtures" / "content", tmp_path / "content")
    (tmp_path / "content" / "sections" / "x.yaml").write_bytes(data)
    env = {**{k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"},
           "CONTENT_DIR": str(tmp_path / "content"), "DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3"}
    done = subprocess.run([sys.executable, "-m", "bot"], input="", capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=60)
    assert done.returncode == 1
    assert "Refusing to start" in done.stderr
    assert f"{tmp_path.as_posix()}/content/{expected}" in done.stderr
    assert "Traceback" not in done.stderr


async def test_once_started_the_bot_keeps_its_start_up_objects_out_of_full_collections(tmp_path: Path) -> None:
    settings = Settings(content_dir=ROOT / "content", database_url=f"sqlite:///{tmp_path}/bot.sqlite3",
                        watch_sources=False)
    gc.unfreeze()
    out = io.StringIO()
    try:
        assert await serve(settings, force_console=True, stdin=io.StringIO("/sectors\n/quit\n"), stdout=out) == 0
        assert gc.get_freeze_count() > 10_000  # modules, content and clients: the console alone holds this many
    finally:
        gc.unfreeze()
    assert "AI in finance" in out.getvalue()


def _console_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a console run without a token, without the terminal's own locale variables."""
    kept = {k: v for k, v in os.environ.items() if k not in ("TELEGRAM_BOT_TOKEN", "LANG", "LC_ALL", "LC_MESSAGES")}
    return {**kept, "DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3", "CONTENT_HISTORY_DIR": str(tmp_path / "h"),
            "WATCH_CONTENT": "false", "WATCH_SOURCES": "false", **extra}


def test_the_console_speaks_the_terminal_s_language_and_lang_option_overrides_it(tmp_path: Path) -> None:
    run = {"capture_output": True, "text": True, "cwd": ROOT, "timeout": 60, "check": True}
    chinese = subprocess.run([sys.executable, "-m", "bot"], input="/sector finance\n7\n/quit\n",  # type: ignore[call-overload]
                             env=_console_env(tmp_path, LANG="zh_HK.UTF-8"), **run)
    assert "主控台模式" in chinese.stdout and "重點" in chinese.stdout and "請選擇號碼：" in chinese.stdout
    assert "沒有這個選項" in chinese.stdout or "請選擇 1 至" in chinese.stdout  # a number out of the list
    assert chinese.stdout.rstrip().endswith("再見。")

    english = subprocess.run([sys.executable, "-m", "bot", "--lang", "en", "console"],  # type: ignore[call-overload]
                             input="/sector finance\n/quit\n", env=_console_env(tmp_path, LANG="zh_HK.UTF-8"), **run)
    assert "console mode" in english.stdout and "Key points" in english.stdout and "重點" not in english.stdout


async def test_language_in_the_console_switches_its_replies_and_choices(tmp_path: Path) -> None:
    catalogue = load_catalogue(ROOT / "content", now=NOW)
    store = await open_store(f"sqlite:///{tmp_path}/bot.sqlite3")
    try:
        session = Console(Services(content=StaticContent(catalogue), clock=lambda: NOW, subscriptions=store),
                          io.StringIO(), io.StringIO(), language="zh-Hant")
        await _switch_and_read(session)
    finally:
        await store.close()


async def _switch_and_read(session: Console) -> None:
    shown = await session.handle_line("/language")
    assert shown is not None and "繁體中文" in shown and "請選擇號碼：" in shown
    assert "[1] English" in shown
    switched = await session.handle_line("1")
    assert switched is not None and "English" in switched and "Send /help" in switched
    assert "Key points" in (await session.handle_line("/sector finance") or "")
    assert "Choose a number:" in (await session.handle_line("/sectors") or "")
