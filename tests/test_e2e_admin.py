"""End to end: admins update content without a redeploy, and nothing a bad file does reaches users."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from doubles.fake_bot_api import FakeBotApi
from harness import CONTENT, FakeClock, e2e_settings, running_bot, sent_message_ids, texts

from bot.content import load_catalogue

ADMIN, STRANGER = 900, 901
NEW_UPDATE = """  - date: 2025-04-16
    sections: [healthcare]
    title: Test hospital pilots an AI triage assistant
    summary: A made-up update used only by this test.
    link: https://example.org/triage
"""


@pytest.fixture
def content(tmp_path: Path) -> Path:
    directory = tmp_path / "content"
    shutil.copytree(CONTENT, directory)
    return directory


def with_new_update(content: Path) -> str:
    text = (content / "updates.yaml").read_text()
    return text.replace("updates:\n", "updates:\n" + NEW_UPDATE, 1)


async def test_non_admins_are_refused_every_admin_command(fake: FakeBotApi, tmp_path: Path, content: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    commands = ["/status", "/reload", "/rollback", "/preview", "/broadcast hello"]
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)) as runtime:
        for command in commands:
            fake.push_update(fake.command_update(command, chat_id=STRANGER, user_id=STRANGER))
        fake.push_update(fake.document_update("finance.yaml", b"id: finance\n", chat_id=STRANGER, user_id=STRANGER))
        await fake.wait_for("sendMessage", count=len(commands) + 1, chat_id=STRANGER)
        audit = await runtime.store.audit_entries(20)
    assert all("for the bot's admins" in text for text in texts(fake, STRANGER))
    assert not fake.calls("getFile")  # a stranger's file is never even downloaded
    assert {action for _, who, action, _ in audit if who == STRANGER} == {
        "refused:status", "refused:reload", "refused:rollback", "refused:preview", "refused:broadcast",
        "refused:upload"}
    assert "refused admin command /status from user 901" in caplog.text


async def test_upload_valid_file_applies_it_and_rollback_restores(fake: FakeBotApi, tmp_path: Path,
                                                                  content: Path) -> None:
    original = (content / "updates.yaml").read_text()
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)) as runtime:
        old_version = runtime.content.catalogue.version
        fake.push_update(fake.document_update("updates.yaml", with_new_update(content).encode(), chat_id=ADMIN,
                                              user_id=ADMIN))
        [applied] = await fake.wait_for("sendMessage", chat_id=ADMIN)
        assert "Applied." in applied["text"] and "Test hospital pilots" in applied["text"]
        assert runtime.content.catalogue.version != old_version
        fake.push_update(fake.command_update("/search triage", chat_id=5, user_id=5))
        [found] = await fake.wait_for("sendMessage", chat_id=5)
        assert "Test hospital pilots" in found["text"]

        fake.push_update(fake.command_update("/rollback", chat_id=ADMIN, user_id=ADMIN))
        [_, rolled] = await fake.wait_for("sendMessage", count=2, chat_id=ADMIN)
        assert "Rolled back." in rolled["text"]
        assert runtime.content.catalogue.version == old_version
        audit = [action for _, _, action, _ in await runtime.store.audit_entries(10)]
    assert (content / "updates.yaml").read_text() == original
    assert fake.calls("getFile")
    assert "upload" in audit and "rollback" in audit


async def test_upload_invalid_file_writes_nothing_and_lists_errors(fake: FakeBotApi, tmp_path: Path,
                                                                   content: Path) -> None:
    before = (content / "sections" / "finance.yaml").read_bytes()
    broken = before.replace(b"aliases: [", b"aliases: [gov, ")
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)) as runtime:
        version = runtime.content.catalogue.version
        fake.push_update(fake.document_update("finance.yaml", broken, chat_id=ADMIN, user_id=ADMIN))
        [answer] = await fake.wait_for("sendMessage", chat_id=ADMIN)
        assert runtime.content.catalogue.version == version
    assert "Not applied" in answer["text"] and "finance.yaml:" in answer["text"] and "'gov' is already used" in \
        answer["text"]
    assert (content / "sections" / "finance.yaml").read_bytes() == before


async def test_a_broken_file_on_disk_keeps_old_content_and_tells_admins(fake: FakeBotApi, tmp_path: Path,
                                                                        content: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)) as runtime:
        await asyncio.sleep(0.5)  # let the watcher start
        version = runtime.content.catalogue.version
        (content / "sections" / "finance.yaml").write_text("id: finance\ntitle: [unclosed\n")
        [notice] = await fake.wait_for("sendMessage", chat_id=ADMIN, timeout=10)
        assert "Not applied" in notice["text"] and "finance.yaml:3: (yaml)" in notice["text"]
        assert runtime.content.catalogue.version == version
        fake.push_update(fake.command_update("/sector finance", chat_id=6, user_id=6))
        [still] = await fake.wait_for("sendMessage", chat_id=6)
        assert "AI in finance" in still["text"]
        fake.push_update(fake.command_update("/status", chat_id=ADMIN, user_id=ADMIN))
        [_, status] = await fake.wait_for("sendMessage", count=2, chat_id=ADMIN)
    assert "content on disk is broken" in status["text"]


async def test_a_file_written_in_two_steps_reloads_once_and_new_update_reaches_the_next_digest(
        fake: FakeBotApi, tmp_path: Path, content: Path) -> None:
    clock = FakeClock(datetime(2025, 4, 16, 2, 0, tzinfo=UTC))  # 10:00 HKT, after today's 09:00 slot
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content), clock) as runtime:
        fake.push_update(fake.command_update("/subscribe", chat_id=7, user_id=7))
        await fake.wait_for("sendMessage", chat_id=7)
        await asyncio.sleep(0.5)
        text = with_new_update(content)
        path = content / "updates.yaml"
        with path.open("w") as handle:  # an editor saving in two steps
            handle.write(text[: len(text) // 2])
            handle.flush()
            await asyncio.sleep(0.1)
            handle.write(text[len(text) // 2:])
        [notice] = await fake.wait_for("sendMessage", chat_id=ADMIN, timeout=10)
        assert "Content reloaded." in notice["text"] and "Test hospital pilots" in notice["text"]
        await asyncio.sleep(1.5)
        assert len(texts(fake, ADMIN)) == 1  # one reload, no error notice for the half-written file
        assert any(u.title.startswith("Test hospital") for u in runtime.content.catalogue.updates)
        clock.advance(days=1)  # the next 09:00 slot
        [_, digest] = await fake.wait_for("sendMessage", count=2, chat_id=7)
    assert "Test hospital pilots an AI triage assistant" in digest["text"]


async def test_status_preview_and_reload_for_admins(fake: FakeBotApi, tmp_path: Path, content: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)):
        fake.push_update(fake.command_update("/subscribe", chat_id=8, user_id=8))
        await fake.wait_for("sendMessage", chat_id=8)
        fake.push_update(fake.command_update("/status", chat_id=ADMIN, user_id=ADMIN))
        fake.push_update(fake.command_update("/preview 8", chat_id=ADMIN, user_id=ADMIN))
        fake.push_update(fake.command_update("/reload", chat_id=ADMIN, user_id=ADMIN))
        status, preview, reload = await fake.wait_for("sendMessage", count=3, chat_id=ADMIN)
    assert "Active subscriptions: 1 (telegram 1)." in status["text"] and "Next digest run:" in status["text"]
    shipped = load_catalogue(content, now=datetime(2026, 12, 4, tzinfo=UTC))
    assert f" {len(shipped.initiatives)} initiatives, {len(shipped.updates)} updates" in status["text"]
    assert "Chat telegram:8 (active" in preview["text"] and "digest" in preview["text"]
    assert "Reloaded." in reload["text"]


async def test_broadcast_goes_out_only_after_confirmation(fake: FakeBotApi, tmp_path: Path, content: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)):
        for chat in (21, 22):
            fake.push_update(fake.command_update("/subscribe", chat_id=chat, user_id=chat))
            await fake.wait_for("sendMessage", chat_id=chat)
        fake.push_update(fake.command_update("/quiet 07:00-09:00", chat_id=22, user_id=22))  # now is 08:00 HKT
        await fake.wait_for("sendMessage", count=2, chat_id=22)
        fake.push_update(fake.command_update("/broadcast Meetup at <Cyberport> & online", chat_id=ADMIN,
                                             user_id=ADMIN))
        [draft] = await fake.wait_for("sendMessage", chat_id=ADMIN)
        assert "nothing is sent until you confirm" in draft["text"] and "&lt;Cyberport&gt; &amp;" in draft["text"]
        actions = [b["callback_data"] for row in draft["reply_markup"]["inline_keyboard"] for b in row]
        [message_id] = sent_message_ids(fake, ADMIN)
        cancel = next(a for a in actions if a.startswith("broadcast cancel"))
        fake.push_update(fake.callback_update(cancel, chat_id=ADMIN, user_id=ADMIN, message_id=message_id))
        [edit] = await fake.wait_for("editMessageText")
        assert "cancelled" in edit["text"]
        await asyncio.sleep(0.3)
        assert len(texts(fake, 21)) == 1  # nothing went out

        fake.push_update(fake.command_update("/broadcast Second try", chat_id=ADMIN, user_id=ADMIN))
        [_, draft2] = await fake.wait_for("sendMessage", count=2, chat_id=ADMIN)
        send = next(b["callback_data"] for row in draft2["reply_markup"]["inline_keyboard"] for b in row
                    if b["callback_data"].startswith("broadcast send"))
        fake.push_update(fake.callback_update(send, chat_id=ADMIN, user_id=ADMIN, message_id=sent_message_ids(
            fake, ADMIN)[-1]))
        await fake.wait_for("sendMessage", count=2, chat_id=21)
        await fake.wait_for("sendMessage", count=3, chat_id=22)
        # pressing an old button again sends nothing more
        fake.push_update(fake.callback_update(send, chat_id=ADMIN, user_id=ADMIN, message_id=sent_message_ids(
            fake, ADMIN)[-1]))
        await fake.wait_for("answerCallbackQuery", count=3)
        await asyncio.sleep(0.3)
    assert texts(fake, 21)[-1] == "Second try" and texts(fake, 22)[-1] == "Second try" and len(texts(fake, 22)) == 3
    assert not fake.sent_messages(21)[-1].get("disable_notification")
    assert fake.sent_messages(22)[-1].get("disable_notification") is True  # in chat 22's quiet hours


async def test_a_hostile_upload_is_refused_and_other_users_are_answered(fake: FakeBotApi, tmp_path: Path,
                                                                        content: Path) -> None:
    bomb = ['x0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"x{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    name = "bomb\nNot applied: all good.yaml"
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)) as runtime:
        version = runtime.content.catalogue.version
        fake.push_update(fake.document_update(name, ("id: bomb\n" + "\n".join(bomb) + "\n? *a8\n: x\n").encode(),
                                              chat_id=ADMIN, user_id=ADMIN))
        fake.push_update(fake.command_update("/sector finance", chat_id=6, user_id=6))
        [answer] = await fake.wait_for("sendMessage", chat_id=ADMIN, timeout=10)
        [other] = await fake.wait_for("sendMessage", chat_id=6, timeout=10)
        audit = await runtime.store.audit_entries(5)
        assert runtime.content.catalogue.version == version
    assert "AI in finance" in other["text"]
    assert "bomb?Not applied: all good.yaml:2: (yaml): not valid YAML: anchors (&amp;a0) are not allowed" in \
        answer["text"]
    assert answer["text"].count("\n") == 1  # the heading and the one error: the name added no line
    assert [detail for _, _, action, detail in audit if action == "upload"] == [
        "bomb?Not applied: all good.yaml -> -: 1 error(s)"]
    assert not (content / "sections" / "bomb.yaml").exists()


async def test_an_undecodable_file_on_disk_is_reported_to_admins_and_in_status(fake: FakeBotApi, tmp_path: Path,
                                                                               content: Path) -> None:
    async with running_bot(fake, e2e_settings(fake, tmp_path, content_dir=content)) as runtime:
        await asyncio.sleep(0.5)  # let the watcher start
        version = runtime.content.catalogue.version
        (content / "sections" / "finance.yaml").write_bytes(b"id: finance\n\x89PNG\r\n\x1a\n\x00\xff")
        [notice] = await fake.wait_for("sendMessage", chat_id=ADMIN, timeout=10)
        assert runtime.content.catalogue.version == version
        fake.push_update(fake.command_update("/status", chat_id=ADMIN, user_id=ADMIN))
        [_, status] = await fake.wait_for("sendMessage", count=2, chat_id=ADMIN)
    assert "sections/finance.yaml:1: (file): not UTF-8 text (bad byte at offset 12)" in notice["text"]
    assert str(tmp_path) not in notice["text"]
    assert "content on disk is broken (1 problem(s))" in status["text"]
