"""End to end: a feed served locally is polled by the leader, the admin is told, reviews, publishes, and the digest
carries the update; with the real PTB Application against the Bot API double and a real SQLite file."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from doubles.fake_bot_api import FakeBotApi
from doubles.feed_server import FeedServer, gov_rss
from harness import CONTENT, FakeClock, e2e_settings, running_bot, sent_message_ids, texts

from bot.app import Runtime

ADMIN, SUBSCRIBER = 900, 7
AI_TITLE = "Government launches generative AI sandbox for public hospitals"
OTHER_TITLE = "Trade mission to Thailand said to boost exports"
PUBLISHED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def feed(*extra: tuple[str, str, datetime, str]) -> str:
    """The government's English press-release feed, with one AI item and one that is not about AI."""
    return gov_rss([(AI_TITLE, "https://www.info.gov.hk/gia/general/202611/24/P1.htm", PUBLISHED,
                     "The Government today launched a sandbox for <b>generative AI</b> in hospitals."),
                    (OTHER_TITLE, "https://www.info.gov.hk/gia/general/202611/24/P2.htm", PUBLISHED,
                     "A trade mission visited Bangkok."), *extra])


@pytest.fixture
def content(tmp_path: Path, feeds: FeedServer) -> Path:
    """A copy of the shipped content whose only source is the local feed server."""
    directory = Path(shutil.copytree(CONTENT, tmp_path / "content"))
    rules = (directory / "sources.yaml").read_text().split("\nsources:\n")[0]
    (directory / "sources.yaml").write_text(
        rules + "\nsources:\n  - id: gov-press-en\n    name: Government press releases (English)\n    kind: rss\n"
        f"    url: {feeds.url('/gia/rss/general_en.xml')}\n    language: en\n    sections: [government]\n"
        "    poll_minutes: 15\n")
    return directory


async def until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait (looking every 50 ms, for up to 10 s: generous on a busy machine) until `condition()` holds."""
    for _ in range(200):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def polled_at(runtime: Runtime, moment: datetime) -> bool:
    assert runtime.candidates is not None
    state = (await runtime.candidates.source_states()).get("gov-press-en")
    return state is not None and state.last_poll_at == moment


def buttons(message: dict[str, object]) -> list[str]:
    markup = message["reply_markup"]
    assert isinstance(markup, dict)
    return [button["callback_data"] for row in markup["inline_keyboard"] for button in row]


async def test_a_new_ai_item_is_noticed_reviewed_published_and_digested(
        fake: FakeBotApi, tmp_path: Path, content: Path, feeds: FeedServer) -> None:
    feeds.add("/gia/rss/general_en.xml", feed(), etag='"v1"')
    clock = FakeClock()  # 08:00 in Hong Kong
    settings = e2e_settings(fake, tmp_path, content_dir=content, content_history_dir=tmp_path / "history",
                            watch_content=False, watch_sources=True)
    async with running_bot(fake, settings, clock) as runtime:
        fake.push_update(fake.command_update("/subscribe", chat_id=SUBSCRIBER, user_id=SUBSCRIBER))
        await fake.wait_for("sendMessage", chat_id=SUBSCRIBER)
        [notice] = await fake.wait_for("sendMessage", chat_id=ADMIN, timeout=15)
        assert notice["text"] == "1 new candidate from official sources: /review"

        fake.push_update(fake.command_update("/review", chat_id=ADMIN, user_id=ADMIN))
        [_, card] = await fake.wait_for("sendMessage", count=2, chat_id=ADMIN)
        assert AI_TITLE in card["text"] and OTHER_TITLE not in card["text"]
        publish = next(action for action in buttons(card) if action.startswith("review publish"))
        candidate_id = publish.split()[-1]
        fake.push_update(fake.command_update(
            f"/review edit {candidate_id} Hospitals get a generative AI sandbox | "
            "Public hospitals may now try generative AI tools in a supervised sandbox.", chat_id=ADMIN, user_id=ADMIN))
        [*_, saved] = await fake.wait_for("sendMessage", count=3, chat_id=ADMIN)
        assert "Saved your words." in saved["text"]
        fake.push_update(fake.callback_update(publish, chat_id=ADMIN, user_id=ADMIN,
                                              message_id=sent_message_ids(fake, ADMIN)[-1]))
        [published] = await fake.wait_for("editMessageText")
        assert "Published: Hospitals get a generative AI sandbox" in published["text"]
        updates = (content / "updates.yaml").read_text()
        assert "https://www.info.gov.hk/gia/general/202611/24/P1.htm" in updates
        assert AI_TITLE not in updates  # the admin's words, not the source's

        clock.advance(hours=1)  # 09:00 in Hong Kong: the subscriber's digest
        [_, digest] = await fake.wait_for("sendMessage", count=2, chat_id=SUBSCRIBER, timeout=15)
        assert "Hospitals get a generative AI sandbox" in digest["text"]

        assert runtime.candidates is not None
        assert await runtime.candidates.count_open_candidates() == {}  # the non-AI item never became one
    assert all(OTHER_TITLE not in text for text in texts(fake, ADMIN))


async def test_a_rejected_item_is_not_offered_again_after_another_poll(
        fake: FakeBotApi, tmp_path: Path, content: Path, feeds: FeedServer) -> None:
    feeds.add("/gia/rss/general_en.xml", feed(), etag='"v1"')
    clock = FakeClock()
    settings = e2e_settings(fake, tmp_path, content_dir=content, content_history_dir=tmp_path / "history",
                            watch_content=False, watch_sources=True)
    async with running_bot(fake, settings, clock) as runtime:
        await fake.wait_for("sendMessage", chat_id=ADMIN, timeout=15)  # the notice
        fake.push_update(fake.command_update("/review", chat_id=ADMIN, user_id=ADMIN))
        [_, card] = await fake.wait_for("sendMessage", count=2, chat_id=ADMIN)
        reject = next(action for action in buttons(card) if action.startswith("review reject"))
        fake.push_update(fake.callback_update(reject, chat_id=ADMIN, user_id=ADMIN,
                                              message_id=sent_message_ids(fake, ADMIN)[-1]))
        await fake.wait_for("answerCallbackQuery")

        # The feed changes (a new ETag, the same items and one more that is not about AI) and is due again.
        feeds.add("/gia/rss/general_en.xml", feed(("Lunar New Year fair opens", "https://www.info.gov.hk/p3.htm",
                                                   PUBLISHED, "Stalls."),), etag='"v2"')
        moment = clock.advance(minutes=16)
        await until(lambda: polled_at(runtime, moment), "the second poll")
        fake.push_update(fake.command_update("/review", chat_id=ADMIN, user_id=ADMIN))
        await fake.wait_for("sendMessage", count=3, chat_id=ADMIN)
    assert len(feeds.headers_for("/gia/rss/general_en.xml")) == 2
    assert "No candidates to review." in texts(fake, ADMIN)[-1]
    assert len(texts(fake, ADMIN)) == 3  # no second notice: nothing new was found


async def test_status_shows_each_sources_polling(fake: FakeBotApi, tmp_path: Path, content: Path,
                                                 feeds: FeedServer) -> None:
    feeds.add("/gia/rss/general_en.xml", feed(), etag='"v1"')
    clock = FakeClock()
    settings = e2e_settings(fake, tmp_path, content_dir=content, content_history_dir=tmp_path / "history",
                            watch_content=False, watch_sources=True)
    async with running_bot(fake, settings, clock):
        await fake.wait_for("sendMessage", chat_id=ADMIN, timeout=15)  # the notice
        fake.push_update(fake.command_update("/status", chat_id=ADMIN, user_id=ADMIN))
        [_, status] = await fake.wait_for("sendMessage", count=2, chat_id=ADMIN)
    assert "Sources (1 candidate(s) to /review)" in status["text"]
    assert "gov-press-en" in status["text"]
    assert "polled 11-25 08:00, ok 11-25 08:00, 2 items, 1 open, 0 error(s)" in status["text"]


async def test_with_watch_sources_off_nothing_is_polled(fake: FakeBotApi, tmp_path: Path, content: Path,
                                                        feeds: FeedServer) -> None:
    feeds.add("/gia/rss/general_en.xml", feed(), etag='"v1"')
    settings = e2e_settings(fake, tmp_path, content_dir=content, watch_content=False, watch_sources=False)
    async with running_bot(fake, settings) as runtime:
        assert runtime.digests is not None
        await asyncio.sleep(0.5)  # ten ticks
    assert feeds.requests == [] and texts(fake, ADMIN) == []


def markup_sent(fake: FakeBotApi, chat_id: int) -> list[object]:
    """The reply_markup of every message the bot sent to a chat, as the Bot API received it."""
    return [message.get("reply_markup") for message in fake.sent_messages(chat_id)]


async def test_edit_asks_for_a_reply_that_is_kept_across_a_restart_and_published(
        fake: FakeBotApi, tmp_path: Path, content: Path, feeds: FeedServer) -> None:
    feeds.add("/gia/rss/general_en.xml", feed(), etag='"v1"')
    clock = FakeClock()
    settings = e2e_settings(fake, tmp_path, content_dir=content, content_history_dir=tmp_path / "history",
                            watch_content=False, watch_sources=True)
    async with running_bot(fake, settings, clock):
        await fake.wait_for("sendMessage", chat_id=ADMIN, timeout=15)  # the notice
        fake.push_update(fake.command_update("/review", chat_id=ADMIN, user_id=ADMIN))
        [_, card] = await fake.wait_for("sendMessage", count=2, chat_id=ADMIN)
        edit = next(action for action in buttons(card) if action.startswith("review edit"))
        fake.push_update(fake.callback_update(edit, chat_id=ADMIN, user_id=ADMIN,
                                              message_id=sent_message_ids(fake, ADMIN)[-1]))
        [*_, prompt] = await fake.wait_for("sendMessage", count=3, chat_id=ADMIN)
        assert "Reply to this message with your own words" in prompt["text"]
        assert markup_sent(fake, ADMIN)[-1] == {"force_reply": True, "selective": True,
                                                "input_field_placeholder": "Your title, then your summary on the "
                                                                           "next line"}
    prompt_id = sent_message_ids(fake, ADMIN)[-1]

    # A restart between the prompt and the answer: the prompt is in the database, not in the process.
    async with running_bot(fake, settings, clock):
        fake.push_update(fake.reply_update(
            "Hospitals get a generative AI sandbox\nPublic hospitals may now try generative AI tools under "
            "supervision.", reply_to_message_id=prompt_id, chat_id=ADMIN, user_id=ADMIN))
        [*_, saved] = await fake.wait_for("sendMessage", count=4, chat_id=ADMIN)
        assert "Saved your words." in saved["text"]
        assert "Hospitals get a generative AI sandbox" in saved["text"]
        assert "Public hospitals may now try generative AI tools under supervision." in saved["text"]
        publish = next(action for action in buttons(saved) if action.startswith("review publish"))
        fake.push_update(fake.callback_update(publish, chat_id=ADMIN, user_id=ADMIN,
                                              message_id=sent_message_ids(fake, ADMIN)[-1]))
        [published] = await fake.wait_for("editMessageText")
        assert "Published: Hospitals get a generative AI sandbox" in published["text"]
    updates = (content / "updates.yaml").read_text()
    assert "Public hospitals may now try generative AI tools under supervision." in updates
    assert "https://www.info.gov.hk/gia/general/202611/24/P1.htm" in updates


async def test_in_a_group_only_the_admin_who_pressed_edit_answers_the_prompt(
        fake: FakeBotApi, tmp_path: Path, content: Path, feeds: FeedServer) -> None:
    group, member = -1005550001, 42
    feeds.add("/gia/rss/general_en.xml", feed(), etag='"v1"')
    clock = FakeClock()
    settings = e2e_settings(fake, tmp_path, content_dir=content, content_history_dir=tmp_path / "history",
                            watch_content=False, watch_sources=True)
    async with running_bot(fake, settings, clock) as runtime:
        await fake.wait_for("sendMessage", chat_id=ADMIN, timeout=15)  # the notice, in private
        fake.push_update(fake.command_update("/review", chat_id=group, user_id=ADMIN, chat_type="supergroup",
                                             title="Editors"))
        [card] = await fake.wait_for("sendMessage", chat_id=group)
        edit = next(action for action in buttons(card) if action.startswith("review edit"))
        fake.push_update(fake.callback_update(edit, chat_id=group, user_id=ADMIN, chat_type="supergroup",
                                              message_id=sent_message_ids(fake, group)[-1]))
        [_, prompt] = await fake.wait_for("sendMessage", count=2, chat_id=group)
        # The admin is mentioned, so that the selective forced reply opens their reply field and nobody else's.
        assert prompt["text"].startswith("<a href=\"tg://user?id=900\">Ada</a>:")
        [sent] = [r.result for r in fake.requests if r.method == "sendMessage" and r.ok
                  and r.result["message_id"] == sent_message_ids(fake, group)[-1] and r.result["chat"]["id"] == group]
        assert sent["entities"][0]["type"] == "text_mention" and sent["entities"][0]["user"]["id"] == ADMIN
        prompt_id = sent_message_ids(fake, group)[-1]

        fake.push_update(fake.reply_update("Hijacked\nNot an admin's words.", reply_to_message_id=prompt_id,
                                           chat_id=group, user_id=member, chat_type="supergroup"))
        fake.push_update(fake.reply_update("Hospitals get a sandbox\nPublic hospitals may try generative AI.",
                                           reply_to_message_id=prompt_id, chat_id=group, user_id=ADMIN,
                                           chat_type="supergroup"))
        [*_, saved] = await fake.wait_for("sendMessage", count=3, chat_id=group)
        assert "Saved your words." in saved["text"] and "Hijacked" not in saved["text"]
        assert runtime.candidates is not None
        candidate = await runtime.candidates.get_candidate(int(edit.split()[-1]))
        assert candidate is not None
        assert (candidate.draft.title, candidate.draft.summary) == ("Hospitals get a sandbox",
                                                                    "Public hospitals may try generative AI.")
    assert len(texts(fake, group)) == 3  # the member's reply got no answer at all
