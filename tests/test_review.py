"""/review through the core, with a real SQLite store and a real copy of the content folder."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from replies import text

from bot.content import ContentLibrary
from bot.content.manager import ContentManager, OffLoopContentAdmin
from bot.core.addresses import telegram
from bot.core.candidates import Candidate, CandidateState, FoundItem
from bot.core.catalogue import LANGUAGES, Update
from bot.core.commands import dispatch
from bot.core.messages import CALLBACK_DATA_LIMIT, Chat, ChatKind, Prompt, Reply, User, interpret
from bot.core.prompts import OpenPrompt, answering
from bot.core.render import render_update
from bot.core.review import _text_length
from bot.core.services import Services
from bot.store import SqlStore, open_store

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
ADA, BEN, EVE = 900, 901, 5  # two admins and a user who is not one
FIXTURES = Path(__file__).parent / "fixtures" / "content"


def found(n: int, sections: tuple[str, ...] = ("finance",)) -> FoundItem:
    """A press release found on the government's feed."""
    return FoundItem(source_id="gov-press-en", title=f"Source's own headline {n}",
                     link=f"https://www.info.gov.hk/gia/general/202611/24/P{n}.htm",
                     published=datetime(2026, 11, 24, 17, 30, tzinfo=UTC),  # 25 Nov in Hong Kong
                     excerpt=f"The Government today announced item {n}, in the source's words.", language="en",
                     sections=sections, title_key=f"source s own headline {n}")


@pytest.fixture
def content(tmp_path: Path) -> Path:
    """A private copy of the fixture content."""
    return Path(shutil.copytree(FIXTURES, tmp_path / "content"))


@pytest.fixture
def services(content: Path, tmp_path: Path, sqlite_store: SqlStore) -> Services:
    """Everything /review needs, real: the content library and its manager, and the SQLite store."""
    library = ContentLibrary.open(content, now=NOW)
    manager = ContentManager(library, tmp_path / "history", lambda: NOW)
    return Services(content=library, clock=lambda: NOW, admin_ids=frozenset({ADA, BEN}),
                    content_admin=OffLoopContentAdmin(manager), audit=sqlite_store, subscriptions=sqlite_store,
                    candidates=sqlite_store)


def asker(services: Services) -> Callable[..., asyncio.Future[Reply]]:
    """Send a command (or press a button) as a user, through the one dispatch."""

    def ask(line: str, user: int = ADA, *, button: bool = False) -> asyncio.Future[Reply]:
        request = interpret(line, Chat(telegram(user), ChatKind.PRIVATE), User(user), "hk_ai_pulse_bot",
                            from_button=button)
        assert request is not None
        return asyncio.ensure_future(dispatch(request, services))

    return ask


def actions(reply: Reply) -> list[str]:
    return [button.action for row in reply.buttons for button in row]


async def state_of(store: SqlStore, candidate: Candidate) -> CandidateState:
    current = await store.get_candidate(candidate.id)
    assert current is not None
    return current.state


async def test_an_empty_queue_says_so(services: Services) -> None:
    assert "No candidates to review." in text(await asker(services)("/review"))


async def test_the_card_shows_the_candidate_and_its_five_buttons(services: Services, sqlite_store: SqlStore) -> None:
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)
    shown = text(await asker(services)("/review"))

    assert "Source's own headline 1" in shown and found(1).link in shown and "gov-press-en" in shown
    assert "25 Nov 2026" in shown and "finance" in shown
    assert "The source's words (never published as they are):" in shown
    reply = await asker(services)("/review")
    assert [button.label for row in reply.buttons for button in row] == [
        "Publish", "Sections…", "Edit", "Reject", "Next"]
    assert actions(reply) == [f"review {verb} {candidate.id}" for verb in ("publish", "sections", "edit", "reject",
                                                                           "next")]
    assert all(len(action.encode()) <= CALLBACK_DATA_LIMIT for action in actions(reply))


async def test_odd_ids_get_a_short_answer(services: Services, sqlite_store: SqlStore) -> None:
    ask = asker(services)
    assert "There is no candidate 7." in text(await ask("/review publish 7"))
    for odd in ("/review publish 99999999999999999999999", "/review publish -1", "/review publish ٣",
                "/review frobnicate 1", "/review publish"):
        assert "Use /review, or its buttons." in text(await ask(odd))


async def test_only_admins_may_review(services: Services, sqlite_store: SqlStore) -> None:
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)
    assert "for the bot's admins" in text(await asker(services)(f"/review reject {candidate.id}", EVE))
    assert await state_of(sqlite_store, candidate) is CandidateState.NEW


async def test_publish_needs_the_admins_own_words_then_appends_the_update(
        services: Services, sqlite_store: SqlStore, content: Path) -> None:
    ask = asker(services)
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)
    before = (content / "updates.yaml").read_text()

    refused = text(await ask(f"review publish {candidate.id}", button=True))
    assert "Not published: it needs your own title and summary" in refused
    assert (content / "updates.yaml").read_text() == before
    assert "Your title | Your summary" in text(await ask(f"review edit {candidate.id}", button=True))

    edited = text(await ask(f"/review edit {candidate.id} Sandbox opens to insurers | "
                            "Insurers may now test generative AI under supervision."))
    assert "Saved your words." in edited and "Sandbox opens to insurers" in edited
    published = text(await ask(f"review publish {candidate.id}", button=True))

    assert "Published: Sandbox opens to insurers" in published and "No candidates to review." in published
    newest = services.content.catalogue.updates[0]
    assert (newest.date, newest.sections, newest.title, newest.summary, newest.link) == (
        date(2026, 11, 25), ("finance",), "Sandbox opens to insurers",
        "Insurers may now test generative AI under supervision.", found(1).link)
    assert "Source's own headline" not in (content / "updates.yaml").read_text()  # the admin's words, not theirs
    decided = await sqlite_store.get_candidate(candidate.id)
    assert decided is not None and (decided.state, decided.decided_by) == (CandidateState.PUBLISHED, ADA)
    audit = [(actor, action) for _, actor, action, _ in await sqlite_store.audit_entries(10)]
    assert (ADA, "review:publish") in audit

    assert "Rolled back." in text(await ask("/rollback"))
    assert (content / "updates.yaml").read_text() == before


async def test_two_admins_pressing_publish_at_once_publish_it_once(
        services: Services, sqlite_store: SqlStore, content: Path) -> None:
    ask = asker(services)
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)
    await ask(f"/review edit {candidate.id} Sandbox opens | Insurers may test generative AI.")

    replies = await asyncio.gather(ask(f"review publish {candidate.id}", ADA, button=True),
                                   ask(f"review publish {candidate.id}", BEN, button=True))

    assert sum("Published:" in text(reply) for reply in replies) == 1
    assert sum("decided meanwhile" in text(reply) for reply in replies) == 1
    assert (content / "updates.yaml").read_text().count(found(1).link) == 1


async def test_a_failed_publication_leaves_the_candidate_in_the_queue(
        services: Services, sqlite_store: SqlStore, content: Path) -> None:
    ask = asker(services)
    (candidate,) = await sqlite_store.add_candidates([found(1, sections=("robotics",))], NOW)  # no such section
    before = (content / "updates.yaml").read_text()
    await ask(f"/review edit {candidate.id} Robots | Robots arrive.")

    reply = text(await ask(f"review publish {candidate.id}", button=True))

    assert "was not published; it stays in the queue" in reply and "robotics" in reply
    assert await state_of(sqlite_store, candidate) is CandidateState.NEW
    assert (content / "updates.yaml").read_text() == before


async def test_a_rejected_candidate_is_not_offered_again(services: Services, sqlite_store: SqlStore) -> None:
    ask = asker(services)
    first, _ = await sqlite_store.add_candidates([found(1), found(2)], NOW)

    reply = text(await ask(f"review reject {first.id}", button=True))

    assert f"Rejected candidate {first.id}." in reply and "Source's own headline 2" in reply
    assert "Source's own headline 1" not in text(await ask("/review"))
    again = await ask(f"review publish {first.id}", BEN, button=True)
    assert f"Candidate {first.id} is rejected already." in text(again)
    assert await sqlite_store.add_candidates([found(1)], NOW + timedelta(days=1)) == []


async def test_next_goes_through_the_queue_and_comes_back_to_the_oldest(
        services: Services, sqlite_store: SqlStore) -> None:
    ask = asker(services)
    first, second = await sqlite_store.add_candidates([found(1), found(2)], NOW)

    assert f"Candidate {second.id}" in text(await ask(f"review next {first.id}", button=True))
    assert f"Candidate {first.id}" in text(await ask(f"review next {second.id}", button=True))


async def test_sections_are_toggled_and_published(services: Services, sqlite_store: SqlStore) -> None:
    ask = asker(services)
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)

    menu = await ask(f"review sections {candidate.id}", button=True)
    assert f"review section {candidate.id} government" in actions(menu)
    await ask(f"review section {candidate.id} government", button=True)
    toggled = await ask(f"review section {candidate.id} finance", button=True)
    assert "✓ Government initiatives" in [b.label for row in toggled.buttons for b in row]
    assert "There is no section" in text(await ask(f"review section {candidate.id} robotics", button=True))
    await ask(f"/review edit {candidate.id} Policy | A policy.")
    await ask(f"review publish {candidate.id}", button=True)

    assert services.content.catalogue.updates[0].sections == ("government",)


@pytest.mark.postgres
async def test_admins_on_two_replicas_pressing_publish_at_once_publish_it_once(
        services: Services, postgres_db_url: str, content: Path) -> None:
    replicas = [await open_store(postgres_db_url, single_process=False) for _ in range(2)]
    try:
        (candidate,) = await replicas[0].add_candidates([found(1)], NOW)
        asks = [asker(dataclasses.replace(services, candidates=store, audit=store, subscriptions=store))
                for store in replicas]
        await asks[0](f"/review edit {candidate.id} Sandbox opens | Insurers may test generative AI.")

        replies = await asyncio.gather(*(ask(f"review publish {candidate.id}", admin, button=True)
                                         for ask in asks for admin in (ADA, BEN)))

        assert sum("Published:" in text(reply) for reply in replies) == 1
        # The others were refused: pressed while it was being published, or (a slower one) after.
        assert sum("decided meanwhile" in text(reply) or "is published already" in text(reply)
                   for reply in replies) == 3
        assert (content / "updates.yaml").read_text().count(found(1).link) == 1
        assert await state_of(replicas[1], candidate) is CandidateState.PUBLISHED
    finally:
        for store in replicas:
            await store.close()


# ---------------------------------------------------------------------------------------------------- Edit's prompt


def answer(services: Services, prompt: Prompt, reply_text: str, user: int = ADA) -> asyncio.Future[Reply]:
    """Reply to a prompt as a front end would: the prompt's command with the reply's text as its answer."""
    request = answering(OpenPrompt(prompt.action, ADA, NOW), reply_text, Chat(telegram(user), ChatKind.PRIVATE),
                        User(user))
    assert request is not None
    return asyncio.ensure_future(dispatch(request, services))


async def pressed_edit(services: Services, candidate: Candidate) -> Prompt:
    reply = await asker(services)(f"review edit {candidate.id}", button=True)
    assert reply.prompt is not None and not reply.replace and not reply.buttons
    return reply.prompt


async def test_edit_asks_for_a_reply_whose_lines_are_the_title_and_the_summary(
        services: Services, sqlite_store: SqlStore) -> None:
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)
    reply = await asker(services)(f"review edit {candidate.id}", button=True)
    assert reply.prompt == Prompt(f"review edit {candidate.id}", "Your title, then your summary on the next line")
    assert "Reply to this message with your own words" in text(reply)

    saved = await answer(services, reply.prompt, "Sandbox opens to insurers\nInsurers may now test\ngenerative AI.")

    assert "Saved your words." in text(saved) and not saved.replace
    assert actions(saved)[0] == f"review publish {candidate.id}"
    stored = await sqlite_store.get_candidate(candidate.id)
    assert stored is not None
    assert (stored.draft.title, stored.draft.summary) == ("Sandbox opens to insurers",
                                                           "Insurers may now test generative AI.")


async def test_one_line_changes_the_title_and_a_leading_bar_the_summary(
        services: Services, sqlite_store: SqlStore) -> None:
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)
    prompt = await pressed_edit(services, candidate)
    await answer(services, prompt, "First title | First summary of my own.")
    await answer(services, prompt, "Better title")
    await answer(services, prompt, "| Better summary of my own.")

    stored = await sqlite_store.get_candidate(candidate.id)
    assert stored is not None
    assert (stored.draft.title, stored.draft.summary) == ("Better title", "Better summary of my own.")

    await answer(services, prompt, "| Summary on\ntwo lines.")
    stored = await sqlite_store.get_candidate(candidate.id)
    assert stored is not None and (stored.draft.title, stored.draft.summary) == ("Better title",
                                                                                 "Summary on two lines.")
    await answer(services, prompt, "Sandbox | phase two\nInsurers join it.")  # with a line break, | is the title's
    stored = await sqlite_store.get_candidate(candidate.id)
    assert stored is not None
    assert (stored.draft.title, stored.draft.summary) == ("Sandbox | phase two", "Insurers join it.")


async def test_an_answer_copying_the_source_or_over_the_limits_is_refused_and_asked_again(
        services: Services, sqlite_store: SqlStore) -> None:
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)
    prompt = await pressed_edit(services, candidate)
    excerpt = found(1).excerpt
    cases = {
        f"My title\n{excerpt}": "The summary copies the source's text",
        f"My title\n{excerpt[4:-1]}": "The summary copies the source's text",  # a long run of it
        f"{found(1).title}\nMy own summary.": "The title is the source's headline word for word",
        f"{'T' * 121}\nMy own summary.": "The title is 121 characters; at most 120 are allowed.",
        # 900 words: about 4,500 characters as its longest reader (English or Chinese) sees it.
        f"My title\n{'word ' * 900}": "The update would be 4",
    }
    for answer_text, problem in cases.items():
        refused = await answer(services, prompt, answer_text)
        assert f"Not saved. {problem}" in text(refused), answer_text[:40]
        assert refused.prompt == prompt  # asked again: the admin replies once more
    stored = await sqlite_store.get_candidate(candidate.id)
    assert stored is not None and (stored.draft.title, stored.draft.summary) == ("", "")


async def test_a_reply_from_someone_other_than_the_admin_asked_is_not_an_answer(
        services: Services, sqlite_store: SqlStore) -> None:
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)
    asked = OpenPrompt(f"review edit {candidate.id}", ADA, NOW)
    group = Chat(telegram(-100200), ChatKind.SUPERGROUP)

    assert answering(asked, "Hijacked title\nHijacked summary.", group, User(EVE)) is None
    assert answering(asked, "Another admin's title", group, User(BEN)) is None
    assert answering(asked, "   ", group, User(ADA)) is None
    request = answering(asked, "Ada's title", group, User(ADA))
    assert request is not None and (request.command, request.args, request.answer) == (
        "review", ("edit", str(candidate.id)), "Ada's title")


async def test_a_non_admin_answering_a_prompt_changes_nothing(services: Services, sqlite_store: SqlStore) -> None:
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)
    # Even a prompt that names nobody (or an admin who lost the role) goes through the admin check of /review.
    request = answering(OpenPrompt(f"review edit {candidate.id}", None, NOW), "Title\nSummary.", Chat(telegram(EVE)),
                        User(EVE))
    assert request is not None
    assert "for the bot's admins" in text(await dispatch(request, services))
    stored = await sqlite_store.get_candidate(candidate.id)
    assert stored is not None and stored.draft.title == ""


async def test_an_answer_for_a_candidate_decided_meanwhile_saves_nothing(
        services: Services, sqlite_store: SqlStore) -> None:
    first, second = await sqlite_store.add_candidates([found(1), found(2)], NOW)
    prompt = await pressed_edit(services, first)
    await asker(services)(f"review reject {first.id}", BEN, button=True)

    late = text(await answer(services, prompt, "Late title\nLate summary."))

    assert f"Candidate {first.id} is rejected already." in late and f"Candidate {second.id}" in late


async def test_a_summary_at_the_message_limit_is_saved_and_published_one_more_character_is_not(
        services: Services, sqlite_store: SqlStore, content: Path) -> None:
    (candidate,) = await sqlite_store.add_candidates([found(1)], NOW)
    prompt = await pressed_edit(services, candidate)
    # How the update renders around its summary, as its longest reader sees it: a Chinese reader gets the
    # untranslated mark and the Chinese date and link words.
    empty = Update(date(2026, 11, 25), tuple(candidate.item.sections), "My title", "", candidate.item.link)
    around = max(_text_length(render_update(empty, language)) for language in LANGUAGES)
    longest = "a" * (4096 - around)

    assert "Not saved." in text(await answer(services, prompt, f"My title\n{longest}a"))
    assert "Saved your words." in text(await answer(services, prompt, f"My title\n{longest}"))
    # The content validator, which publishing goes through, agrees: the update is published.
    assert "Published: My title" in text(await asker(services)(f"review publish {candidate.id}", button=True))
    assert services.content.catalogue.updates[0].summary == longest
