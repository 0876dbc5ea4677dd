"""/review: admins go through the candidates found on official sources, one card at a time, and publish each in
their own words or reject it.

`/review` shows the oldest open candidate; its buttons run `review publish 12`, `review sections 12`,
`review reject 12` and `review next 12`. Edit (`review edit 12`) asks for the admin's own words with a prompt: their
reply "Sandbox opens to insurers" newline "The HKMA and the IA let insurers test generative AI." is the title and
summary. Typed, that is `/review edit 12 Sandbox opens to insurers | The HKMA and the IA let insurers test
generative AI.` The admin may change the sections with `review section 12 finance` (a toggle). Publish claims the
candidate once (on any replica) and appends the update to the updates file through the content admin, as an upload
would.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from bot.core import admin
from bot.core.candidates import Candidate, CandidateState, CandidateStore, ReviewDraft
from bot.core.catalogue import LANGUAGES, UPDATE_TITLE_LIMIT, Update
from bot.core.document import (
    MESSAGE_TEXT_LIMIT,
    Block,
    Document,
    block,
    bold,
    code,
    doc,
    heading,
    italic,
    line,
    link,
    para,
)
from bot.core.i18n import N_, Translator, translator
from bot.core.messages import Button, Prompt, Reply, Request, replacing_on_button
from bot.core.render import render_update
from bot.core.services import Services

EDIT_USAGE = "/review edit <id> <your title> | <your summary>"
EDIT_PLACEHOLDER = N_("Your title, then your summary on the next line")
# A summary this long found word for word in the source's excerpt is the source's text, not the admin's.
VERBATIM_RUN = 40
SECTION_BUTTONS_PER_ROW = 2


def _queue(services: Services) -> CandidateStore | None:
    return services.candidates


def _id(args: tuple[str, ...]) -> int | None:
    # ASCII digits, and few enough of them for a 64-bit column: anything else is not one of our ids.
    word = args[1] if len(args) > 1 else ""
    return int(word) if word.isascii() and word.isdigit() and len(word) <= 18 else None


def _sections(candidate: Candidate) -> tuple[str, ...]:
    draft = candidate.draft.sections
    return candidate.item.sections if draft is None else draft


def _day(candidate: Candidate, services: Services) -> date:
    """The update's date: the source's, in the bot's timezone, or today when the source gave none."""
    published = candidate.item.published
    return (published or services.clock()).astimezone(services.zone).date()


def card(candidate: Candidate, services: Services, intro: str = "", tr: Translator | None = None) -> Reply:
    """One candidate as an admin sees it: what the source said, what the admin wrote, and the decisions."""
    tr = tr or translator("en")
    found = candidate.item
    source = found.source_id
    when = tr.format_day(_day(candidate, services)) if found.published is not None else tr.gettext("no date given")
    none = tr.gettext("(none)")
    facts = block(
        heading(tr.gettext("Candidate %(id)s", id=candidate.id)),
        line(bold(found.title)),
        line(tr.gettext("Source: %(source)s · %(when)s · %(language)s", source=source, when=when,
                        language=found.language)),
        line(link(found.link, found.link)),
        line(tr.gettext("Sections: "), code(", ".join(_sections(candidate)) or none)),
    )
    parts = [para(intro)] if intro else []
    parts.append(facts)
    if found.excerpt:
        parts.append(block(line(italic(tr.gettext("The source's words (never published as they are):"))),
                           line(found.excerpt)))
    draft = candidate.draft
    if draft.title or draft.summary:
        not_yet = tr.gettext("(none yet)")
        parts.append(block(heading(tr.gettext("Your words")), line(bold(tr.gettext("Title: ")), draft.title or not_yet),
                           line(bold(tr.gettext("Summary: ")), draft.summary or not_yet)))
    else:
        parts.append(para(tr.gettext("Publishing needs your own title and summary: tap Edit, or type %(usage)s",
                                     usage=EDIT_USAGE)))
    cid = candidate.id
    buttons = (
        (Button(tr.gettext("Publish"), f"review publish {cid}"), Button(tr.gettext("Sections…"),
                                                                        f"review sections {cid}")),
        (Button(tr.gettext("Edit"), f"review edit {cid}"), Button(tr.gettext("Reject"), f"review reject {cid}"),
         Button(tr.gettext("Next"), f"review next {cid}")),
    )
    return Reply(doc(*parts), buttons=buttons)


def _nothing(tr: Translator, intro: str = "") -> Reply:
    return Reply(doc(*(para(text) for text in (intro, tr.gettext("No candidates to review.")) if text)))


async def _show_next(queue: CandidateStore, services: Services, after: int | None, intro: str = "",
                     tr: Translator | None = None) -> Reply:
    tr = tr or translator("en")
    candidate = await queue.next_candidate(after)
    if candidate is None and after is not None:
        candidate = await queue.next_candidate()  # past the last one: back to the oldest
    return _nothing(tr, intro) if candidate is None else card(candidate, services, intro, tr)


async def review(request: Request, services: Services) -> Reply:
    """The review queue: a card for the oldest open candidate, and what its buttons do."""
    tr = translator(request.language)
    queue = _queue(services)
    if queue is None:
        return Reply(doc(tr.gettext("The review queue is not available here.")))
    action = request.args[0].lower() if request.args else ""
    if not action:
        return replacing_on_button(await _show_next(queue, services, None, tr=tr), request)
    candidate_id = _id(request.args)
    if action not in _ACTIONS or candidate_id is None:
        return Reply(doc(para(tr.gettext("Use /review, or its buttons.")),
                         para(tr.gettext("To write your own words: %(usage)s", usage=EDIT_USAGE))))
    candidate = await queue.get_candidate(candidate_id)
    if candidate is None:
        return Reply(doc(tr.gettext("There is no candidate %(id)s.", id=candidate_id)))
    if action == "next":
        return replacing_on_button(await _show_next(queue, services, candidate_id, tr=tr), request)
    if candidate.state is not CandidateState.NEW:
        state = tr.gettext(_STATES.get(candidate.state.value, candidate.state.value))
        return replacing_on_button(
            await _show_next(queue, services, None, tr.gettext("Candidate %(id)s is %(state)s already.",
                                                               id=candidate_id, state=state), tr),
            request)
    reply = await _ACTIONS[action](request, services, queue, candidate)
    return replacing_on_button(reply, request)


def _ask_for_words(candidate: Candidate, tr: Translator, problem: str = "") -> Reply:
    """The prompt Edit sends: the admin's reply to it is their title and summary."""
    return Reply(doc(*([para(problem)] if problem else []),
                     para(tr.gettext("Reply to this message with your own words for candidate %(id)s: the title on "
                                     "the first line, the summary on the lines below (or %(form)s on one line).",
                                     id=candidate.id, form="Title | Summary")),
                     para(tr.gettext("One line alone changes only the title; start with | to change only the summary. "
                                     "The source's text is for reading: the bot never publishes it as it is.")),
                     para(tr.gettext("Typed instead:"), " ",
                          code(tr.gettext("/review edit %(id)s Your title | Your summary", id=candidate.id)))),
                 prompt=Prompt(f"review edit {candidate.id}", tr.gettext(EDIT_PLACEHOLDER)))


def _words(text: str) -> tuple[str, str]:
    """An admin's answer as (title, summary), either possibly empty (kept as it was).

    `Title` newline `Summary` and `Title | Summary` give both (with a line break, a `|` belongs to the title); a
    single line gives the title; `| Summary` gives the summary. Line breaks inside the summary become spaces, as
    the content validator would make them.
    """
    text = text.strip()
    if text.startswith("|"):
        title, summary = "", text[1:]
    elif "\n" in text:
        title, _, summary = text.partition("\n")
    else:
        title, _, summary = text.partition("|")
    return " ".join(title.split()), " ".join(summary.split())


def _same_text(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _problem_with(draft: ReviewDraft, candidate: Candidate, services: Services, tr: Translator) -> str:
    """Why a draft cannot be published as it is ('' when it can): the validator's limits, and the admin's own words."""
    found = candidate.item
    if len(draft.title) > UPDATE_TITLE_LIMIT:
        return tr.gettext("The title is %(length)s characters; at most %(limit)s are allowed.",
                          length=len(draft.title), limit=UPDATE_TITLE_LIMIT)
    if draft.title and _same_text(draft.title, found.title):
        return tr.gettext("The title is the source's headline word for word: write the title in your own words.")
    summary = " ".join(draft.summary.split()).casefold()
    excerpt = " ".join(found.excerpt.split()).casefold()
    if summary and (_same_text(summary, found.title) or summary == excerpt
                    or (len(summary) >= VERBATIM_RUN and summary in excerpt)):
        return tr.gettext("The summary copies the source's text: write it in your own words.")
    update = Update(_day(candidate, services), _sections(candidate), draft.title, draft.summary, found.link,
                    language=found.language)
    # Readers of either language see it (the other with the untranslated mark), as the validator measures it.
    length = max(_text_length(render_update(update, language)) for language in LANGUAGES)
    if length > MESSAGE_TEXT_LIMIT:
        return tr.gettext("The update would be %(length)s characters long; one message holds %(limit)s. "
                          "Shorten the summary.", length=length, limit=MESSAGE_TEXT_LIMIT)
    return ""


def _text_length(rendered: Block) -> int:
    """Characters as Telegram counts them (UTF-16 units) in a rendered block, as the content validator counts."""
    text = "\n".join("".join(span.text for span in each.spans) for each in rendered.lines)
    return len(text.encode("utf-16-le")) // 2


# A decided candidate's state, as an admin reads it.
_STATES = {"published": N_("published"), "rejected": N_("rejected"), "expired": N_("expired")}


def _decided_meanwhile(tr: Translator, candidate: Candidate) -> str:
    return tr.gettext("Candidate %(id)s was decided meanwhile.", id=candidate.id)


async def _edit(request: Request, services: Services, queue: CandidateStore, candidate: Candidate) -> Reply:
    tr = translator(request.language)
    text = request.answer if request.answer is not None else " ".join(request.args[2:])
    title, summary = _words(text)
    if not title and not summary:
        return _ask_for_words(candidate, tr)
    draft = ReviewDraft(title or candidate.draft.title, summary or candidate.draft.summary, candidate.draft.sections)
    problem = _problem_with(draft, candidate, services, tr)
    if problem:
        return _ask_for_words(candidate, tr, tr.gettext("Not saved. %(problem)s", problem=problem))
    if not await queue.save_draft(candidate.id, draft):
        return await _show_next(queue, services, None, _decided_meanwhile(tr, candidate), tr)
    return card(replace(candidate, draft=draft), services, tr.gettext("Saved your words."), tr)


async def _sections_menu(request: Request, services: Services, queue: CandidateStore, candidate: Candidate) -> Reply:
    tr = translator(request.language)
    chosen = set(_sections(candidate))
    buttons = [Button(("✓ " if section.id in chosen else "") + section.title, f"review section {candidate.id} "
                      f"{section.id}") for section in services.content.catalogue.sections]
    rows = [tuple(buttons[i:i + SECTION_BUTTONS_PER_ROW]) for i in range(0, len(buttons), SECTION_BUTTONS_PER_ROW)]
    rows.append((Button(tr.gettext("Done"), f"review show {candidate.id}"),))
    return Reply(doc(para(tr.gettext("Sections of candidate %(id)s: tap one to add or remove it.", id=candidate.id)),
                     para(code(", ".join(sorted(chosen)) or tr.gettext("(none)")))), buttons=tuple(rows))


async def _toggle_section(request: Request, services: Services, queue: CandidateStore,
                          candidate: Candidate) -> Reply:
    tr = translator(request.language)
    name = request.args[2].lower() if len(request.args) > 2 else ""
    if services.content.catalogue.section(name) is None:
        return Reply(doc(tr.gettext("There is no section %(name)s.", name=repr(name))))
    current = _sections(candidate)
    sections = tuple(s for s in current if s != name) if name in current else (*current, name)
    draft = replace(candidate.draft, sections=sections)
    if not await queue.save_draft(candidate.id, draft):
        return await _show_next(queue, services, None, _decided_meanwhile(tr, candidate), tr)
    return await _sections_menu(request, services, queue, replace(candidate, draft=draft))


async def _show(request: Request, services: Services, queue: CandidateStore, candidate: Candidate) -> Reply:
    return card(candidate, services, tr=translator(request.language))


async def _reject(request: Request, services: Services, queue: CandidateStore, candidate: Candidate) -> Reply:
    tr = translator(request.language)
    actor = request.user.id if request.user else None
    if not await queue.decide_candidate(candidate.id, CandidateState.REJECTED, actor, services.clock()):
        return await _show_next(queue, services, candidate.id, _decided_meanwhile(tr, candidate), tr)
    await admin.audit(services, request, "review:reject", f"candidate {candidate.id}: {candidate.item.link}")
    return await _show_next(queue, services, candidate.id, tr.gettext("Rejected candidate %(id)s.", id=candidate.id),
                            tr)


async def _publish(request: Request, services: Services, queue: CandidateStore, candidate: Candidate) -> Reply:
    tr = translator(request.language)
    draft = candidate.draft
    missing = [name for name, value in ((tr.gettext("title"), draft.title), (tr.gettext("summary"), draft.summary))
               if not value]
    sections = _sections(candidate)
    if not sections:
        missing.append(tr.gettext("sections"))
    if missing:
        return card(candidate, services, tr.gettext("Not published: it needs your own %(missing)s first (%(usage)s; "
                                                    "Sections… for the sections).",
                                                    missing=tr.gettext(" and ").join(missing), usage=EDIT_USAGE), tr)
    content_admin = services.content_admin
    if content_admin is None:
        return Reply(doc(tr.gettext("Publishing is not available here.")))
    actor = request.user.id if request.user else None
    # The claim comes first and is one conditional update: of two admins pressing Publish, on any replicas, one
    # publishes; the other is told it was decided. If writing the update fails, the claim is given back.
    if not await queue.decide_candidate(candidate.id, CandidateState.PUBLISHED, actor, services.clock()):
        return await _show_next(queue, services, candidate.id, _decided_meanwhile(tr, candidate), tr)
    recorder = admin.Recorder(services, request, "review:publish", f"candidate {candidate.id} -> ")
    try:
        outcome = await content_admin.publish_update(_day(candidate, services), sections, draft.title,
                                                     draft.summary, candidate.item.link, actor,
                                                     recorder.before_applying, language=candidate.item.language)
    except BaseException:
        await queue.reopen_candidate(candidate.id)
        raise
    await recorder.after(outcome)
    if not outcome.ok:
        await queue.reopen_candidate(candidate.id)
        return Reply(doc(para(tr.gettext("Candidate %(id)s was not published; it stays in the queue.",
                                         id=candidate.id)),
                         *admin.describe_outcome(outcome, "", tr).blocks))
    done = admin.describe_outcome(outcome, tr.gettext("Published: %(title)s", title=draft.title), tr)
    following = await _show_next(queue, services, candidate.id, tr=tr)
    return Reply(Document(done.blocks + following.body.blocks), buttons=following.buttons)


_ACTIONS = {
    "edit": _edit,
    "sections": _sections_menu,
    "section": _toggle_section,
    "show": _show,
    "reject": _reject,
    "publish": _publish,
    "next": _show,  # handled before the state check; listed so that it is an action
}
