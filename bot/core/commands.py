"""The command table and the commands: each turns a Request into a Reply and knows nothing of Telegram."""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.core import admin, review, subscription_commands
from bot.core.catalogue import ENGLISH, Catalogue, Section, Update
from bot.core.chinese import to_traditional
from bot.core.document import Block, Line, Part, block, bold, code, doc, heading, italic, item, line, link, para
from bot.core.i18n import LANGUAGE_NAMES, LANGUAGES, N_, Translator, known_language, translator
from bot.core.messages import SORRY, Button, Reply, Request, replacing_on_button
from bot.core.numbers import whole_number
from bot.core.render import fallback_mark, format_date, render_initiative, render_section_header, render_update
from bot.core.search import index_of
from bot.core.services import Services

log = logging.getLogger(__name__)

Handler = Callable[[Request, Services], Awaitable[Reply]]

LATEST_DEFAULT = 5
LATEST_MAX = 20
SEARCH_RESULTS = 8
SECTION_UPDATES_SHOWN = 3
# A near miss this close (difflib ratio) is taken as meant; below it we ask "did you mean".
SURE_MATCH = 0.8
POSSIBLE_MATCH = 0.6


@dataclass(frozen=True)
class Command:
    """One entry of the command table: it feeds dispatch, /help and the Telegram command menu.

    `summary` is the English text, marked for the catalogue; `describe(tr)` gives it in a chat's language.
    """

    name: str
    summary: str
    usage: str
    handler: Handler
    admin_only: bool = False
    in_menu: bool = True

    def describe(self, tr: Translator) -> str:
        """The summary in the translator's language."""
        return tr.gettext(self.summary)


# --- replies shared by several commands --------------------------------------------------------


def _title(section: Section, language: str) -> str:
    """A section's title in the reader's language (its English one when not translated)."""
    return section.header_in(language).title


def _sector_buttons(catalogue: Catalogue, language: str = ENGLISH,
                    per_row: int = 2) -> tuple[tuple[Button, ...], ...]:
    buttons = [Button(_title(section, language), f"sector {section.id}") for section in catalogue.sections]
    return tuple(tuple(buttons[i:i + per_row]) for i in range(0, len(buttons), per_row))


def _sections_reply(catalogue: Catalogue, tr: Translator, intro: Block | None = None) -> Reply:
    language = tr.language
    listing = block(heading(tr.gettext("Sectors")), *(item(bold(_title(section, language)), f" — /sector {section.id}")
                                                     for section in catalogue.sections))
    return Reply(doc(intro or Block(()), listing,
                     para(tr.gettext("Tap a sector, or type /sector followed by its name."))),
                 buttons=_sector_buttons(catalogue, language))


def _section_reply(catalogue: Catalogue, section: Section, tr: Translator, intro: Line | None = None) -> Reply:
    language = tr.language
    parts: list[Part] = [intro or line(), render_section_header(section, language)]
    updates = catalogue.updates_for(section.id)[:SECTION_UPDATES_SHOWN]
    if updates:
        # The heading sits on the first update's block, as it always has.
        first, *rest = (render_update(u, language) for u in updates)
        parts.extend([Block((heading(tr.gettext("Latest")), *first.lines)), *rest])
    count = len(section.initiatives)
    if section.initiatives:
        parts.append(para(tr.ngettext("%(count)s initiative: /initiatives %(id)s",
                                      "%(count)s initiatives: /initiatives %(id)s", count, id=section.id)))
    rows: list[tuple[Button, ...]] = []
    if section.initiatives:
        rows.append((Button(tr.gettext("Initiatives (%(count)s)", count=count), f"initiatives {section.id}"),))
    related = [catalogue.section(name) for name in section.related]
    related_buttons = tuple(Button(_title(r, language), f"sector {r.id}") for r in related if r is not None)
    if related_buttons:
        rows.append(related_buttons)
    rows.append((Button(tr.gettext("« All sectors"), "sectors"),))
    return Reply(doc(*parts), buttons=tuple(rows))


def resolve_section(catalogue: Catalogue, name: str) -> tuple[Section | None, list[Section]]:
    """Find the section a user meant: exact id/alias, else a sure near miss, else candidates to offer."""
    wanted = to_traditional(name.strip().lower().lstrip("/"))
    exact = catalogue.section(wanted)
    if exact is not None:
        return exact, []
    scored = sorted(((ratio, n) for n in catalogue.by_name if (ratio := _likeness(wanted, n)) >= POSSIBLE_MATCH),
                    reverse=True)
    candidates: list[Section] = []
    for _, matched in scored:
        section = catalogue.by_name[matched]
        if section not in candidates:
            candidates.append(section)
    if candidates and scored[0][0] >= SURE_MATCH:
        rivals = [s for ratio, n in scored[1:] if ratio >= SURE_MATCH and (s := catalogue.by_name[n]) != candidates[0]]
        if not rivals:
            return candidates[0], []
    return None, candidates[:3]


def _likeness(wanted: str, name: str) -> float:
    """difflib's ratio, skipped (0) when the lengths alone rule out a possible match: a 4,000-character name
    would otherwise cost a third of a second of CPU against every section name."""
    matcher = difflib.SequenceMatcher(None, wanted, name)
    return matcher.ratio() if matcher.real_quick_ratio() >= POSSIBLE_MATCH else 0.0


# --- commands ----------------------------------------------------------------------------------


async def start(request: Request, services: Services) -> Reply:
    """Welcome; a deep-link payload (`/start finance`) opens that section."""
    catalogue = services.content.catalogue
    tr = translator(request.language)
    if request.args:
        section, _ = resolve_section(catalogue, request.args[0])
        if section is not None:
            return _section_reply(catalogue, section, tr)
    about = catalogue.about.in_language(request.language)
    intro = doc(para(bold(about.name), f": {about.tagline}"),
                block(tr.gettext("Pick a sector below, or try:"), tr.gettext("/latest — the newest updates"),
                      tr.gettext("/search <words> — search everything"), tr.gettext("/help — all commands"),
                      tr.gettext("/language — English or Chinese")))
    return Reply(intro, buttons=_sector_buttons(catalogue, request.language))


async def help_(request: Request, services: Services) -> Reply:
    """Every command with its usage, from the command table."""
    tr = translator(request.language)
    is_admin = request.user is not None and request.user.id in services.admin_ids
    listing = block(heading(tr.gettext("Commands")),
                    *(line(f"{tr.gettext(command.usage)} — {command.describe(tr)}") for command in COMMANDS
                      if is_admin or not command.admin_only))
    groups = para(tr.gettext("In groups, address commands to the bot, e.g. /sector@%(bot)s finance.",
                             bot=services.bot_username or "bot"))
    return Reply(doc(listing, groups, _inline_help(services.bot_username, is_admin, tr)))


def _inline_help(bot_username: str, is_admin: bool, tr: Translator) -> Block:
    """How to search from any chat (only a front end with a bot username has inline mode), and, for admins, how
    to switch it on."""
    if not bot_username:
        return Block(())
    # The example is code inside a translated sentence: translate around a marker, then put the code in its place.
    before, _, after = tr.gettext("In any chat, type %(example)s (or any words) and pick a result to share it as a "
                                  "card; with no words you get the latest updates.", example="\0").partition("\0")
    usage = para(before, code(f"@{bot_username} finance"), after)
    if not is_admin:
        return usage
    return block(*usage.lines, italic(tr.gettext("Admins: inline mode is switched on once in @BotFather: /setinline, "
                                                 "pick this bot, give a placeholder such as “Search HK AI…”. "
                                                 "/setinlinefeedback is optional; the bot does not use it.")))


async def sectors(request: Request, services: Services) -> Reply:
    """The list of sections, as buttons."""
    return replacing_on_button(_sections_reply(services.content.catalogue, translator(request.language)), request)


async def sector(request: Request, services: Services) -> Reply:
    """One section: by id, alias or a near miss; no argument lists them all."""
    catalogue = services.content.catalogue
    tr = translator(request.language)
    language = tr.language
    if not request.args:
        return replacing_on_button(
            _sections_reply(catalogue, tr, para(tr.gettext("Which sector? For example: /sector finance"))), request)
    wanted = request.text
    section, candidates = resolve_section(catalogue, wanted)
    if section is not None:
        exact = catalogue.section(wanted) is not None
        intro = None if exact else line(italic(tr.gettext("Showing %(title)s (closest to “%(wanted)s”).",
                                                          title=_title(section, language), wanted=wanted)))
        return replacing_on_button(_section_reply(catalogue, section, tr, intro), request)
    if candidates:
        buttons = tuple((Button(_title(c, language), f"sector {c.id}"),) for c in candidates)
        return Reply(doc(tr.gettext("No sector called “%(wanted)s”. Did you mean:", wanted=wanted)), buttons=buttons)
    return _sections_reply(catalogue, tr, para(tr.gettext("No sector called “%(wanted)s”.", wanted=wanted)))


async def initiatives(request: Request, services: Services) -> Reply:
    """The named initiatives of one section, or all of them grouped by section (the front end splits long replies)."""
    catalogue = services.content.catalogue
    tr = translator(request.language)
    language = tr.language
    if request.args:
        section, candidates = resolve_section(catalogue, request.text)
        if section is None:
            hint = ", ".join(f"/initiatives {c.id}" for c in candidates) or "/sectors"
            return Reply(doc(tr.gettext("No sector called “%(wanted)s”. Try %(hint)s.", wanted=request.text,
                                        hint=hint)))
        title = _title(section, language)
        if not section.initiatives:
            return Reply(doc(para(tr.gettext("%(title)s lists no initiatives yet.", title=title))),
                         buttons=((Button("« " + title, f"sector {section.id}"),),))
        body = doc(heading(tr.gettext("%(title)s: initiatives", title=title)),
                   *(render_initiative(one, language) for one in section.initiatives))
        return replacing_on_button(Reply(body, buttons=((Button("« " + title, f"sector {section.id}"),),)),
                                   request)
    groups: list[Block] = []
    for each in catalogue.sections:
        if each.initiatives:
            # The heading shares a block with the first item so a split never leaves it alone at a part's end.
            first, *rest = (render_initiative(one, language) for one in each.initiatives)
            groups.append(Block((line(bold(_title(each, language)), f" (/initiatives {each.id})"), *first.lines)))
            groups.extend(rest)
    return Reply(doc(*groups) if groups else doc(tr.gettext("No initiatives yet.")))


async def search(request: Request, services: Services) -> Reply:
    """Ranked matches across sections, initiatives and updates."""
    tr = translator(request.language)
    query = request.text.strip()
    if not query:
        return Reply(doc(tr.gettext("What should I look for? For example: /search hkust ai")))
    catalogue = services.content.catalogue
    hits = index_of(catalogue).search(query, limit=SEARCH_RESULTS)
    if not hits:
        return Reply(doc(tr.gettext("Nothing matches “%(query)s”. Try fewer or other words, or browse /sectors.",
                                    query=query)))
    language = tr.language
    lines = [heading(tr.gettext("Results for “%(query)s”", query=query))]
    for hit in hits:
        if isinstance(hit.item, Update):
            update = hit.item.in_language(language)
            lines.append(item(f"{format_date(update.date, language)} · ", link(update.title, update.link),
                              *fallback_mark(update.language, language)))
        elif isinstance(hit.item, Section):
            lines.append(item(tr.gettext("Sector: "), bold(_title(hit.item, language)), f" — /sector {hit.item.id}"))
        else:
            found = hit.item.in_language(language)
            year = f" ({found.year})" if found.year else ""
            section = catalogue.section(found.section_id)
            where = f" · {_title(section, language)}" if section else ""
            lines.append(item(link(found.name, found.link), f"{year} — {found.body}{where}",
                              *fallback_mark(found.language, language)))
    return Reply(doc(block(*lines)))


async def latest(request: Request, services: Services) -> Reply:
    """The newest updates (5 by default, up to 20)."""
    tr = translator(request.language)
    count = LATEST_DEFAULT
    if request.args:
        typed = whole_number(request.args[0], 1, LATEST_MAX)
        if typed is None:
            return Reply(doc(tr.gettext("“%(typed)s” is not a count: /latest takes a number from 1 to %(most)s, "
                                        "e.g. /latest 10", typed=request.args[0], most=LATEST_MAX)))
        count = typed
    updates = services.content.catalogue.updates[:count]
    if not updates:
        return Reply(doc(tr.gettext("No updates yet.")))
    return Reply(doc(heading(tr.gettext("Latest updates")), *(render_update(u, tr.language) for u in updates)))


async def about(request: Request, services: Services) -> Reply:
    """What the bot is, where its facts come from, and how to reach the admins."""
    tr = translator(request.language)
    catalogue = services.content.catalogue
    info = catalogue.about.in_language(request.language)
    counts = ", ".join((tr.ngettext("%(count)s sector", "%(count)s sectors", len(catalogue.sections)),
                        tr.ngettext("%(count)s initiative", "%(count)s initiatives", len(catalogue.initiatives)),
                        tr.ngettext("%(count)s update", "%(count)s updates", len(catalogue.updates))))
    # The content says how to get in touch; who to write to belongs to the deployment (BOT_CONTACT), not the content.
    reach = services.operator_contact or tr.gettext("The operator of this bot has not published a contact yet.")
    return Reply(doc(para(bold(info.name), f" — {info.tagline}"), para(info.about),
                     block(heading(tr.gettext("Sources")), *(item(link(s.title, s.link)) for s in info.sources)),
                     block(heading(tr.gettext("Contact")), info.contact, reach),
                     para(italic(tr.gettext("Content version %(version)s: %(counts)s.", version=catalogue.version,
                                            counts=counts)))))


async def language(request: Request, services: Services) -> Reply:
    """Show the chat's language with a button per language; `/language zh-Hant` (a button) changes it."""
    tr = translator(request.language)
    buttons = ((*(Button(LANGUAGE_NAMES[each], f"language {each}") for each in LANGUAGES),),)
    if not request.args:
        return Reply(doc(tr.gettext("This chat's language: %(name)s. Choose another:",
                                    name=LANGUAGE_NAMES[known_language(request.language)])), buttons=buttons)
    chosen = _language_named(request.text)
    if chosen is None:
        return Reply(doc(tr.gettext("“%(typed)s” is not a language I speak. Choose one:", typed=request.text)),
                     buttons=buttons)
    store = services.subscriptions
    if store is None:
        return Reply(doc(tr.gettext("Languages cannot be saved here: this bot runs without a store.")))
    if request.chat.kind.is_group and not await services.chat_admins.is_admin(request.chat, request.user):
        return Reply(doc(tr.gettext("Only this group's administrators can change its language.")))
    await store.set_chat_language(request.chat.address, chosen)
    services.remember_language(request.chat.address, chosen)
    new = translator(chosen)
    done = new.gettext("Done: this chat's language is now %(name)s. Send /help for the commands.",
                       name=LANGUAGE_NAMES[chosen])
    return replacing_on_button(Reply(doc(done), notice=new.gettext("Saved")), request)


def _language_named(text: str) -> str | None:
    """`zh-Hant`, `zh`, `中文`, `繁體中文`, `english`, `en` -> a language we speak, else None."""
    wanted = text.strip().lower().replace("_", "-")
    names = {"en": "en", "english": "en", "英文": "en", "zh-hant": "zh-Hant", "zh": "zh-Hant", "chinese": "zh-Hant",
             "中文": "zh-Hant", "繁體中文": "zh-Hant", "zh-hk": "zh-Hant", "zh-tw": "zh-Hant"}
    return names.get(wanted)


COMMANDS: tuple[Command, ...] = (
    Command("start", N_("welcome and sector buttons"), "/start", start, in_menu=False),
    Command("sectors", N_("list the sectors"), "/sectors", sectors),
    Command("sector", N_("one sector: summary, key points, latest"), N_("/sector <name>"), sector),
    Command("initiatives", N_("named initiatives, by sector"), N_("/initiatives [sector]"), initiatives),
    Command("search", N_("search sectors, initiatives and updates"), N_("/search <words>"), search),
    Command("latest", N_("the newest updates"), N_("/latest [count]"), latest),
    Command("subscribe", N_("get a digest: daily or weekly, your time and sectors"),
            N_("/subscribe [daily|weekly day] [HH:MM] [timezone] [sectors]"), subscription_commands.subscribe),
    Command("settings", N_("your digest settings, with buttons to change them"), "/settings",
            subscription_commands.settings),
    Command("digest", N_("preview your next digest now"), "/digest", subscription_commands.digest),
    Command("quiet", N_("quiet hours: no notification sound except digests"), "/quiet HH:MM-HH:MM | off",
            subscription_commands.quiet),
    Command("unsubscribe", N_("stop the digest"), "/unsubscribe", subscription_commands.unsubscribe),
    Command("language", N_("the chat's language: English or Traditional Chinese"), "/language", language),
    Command("about", N_("what this bot is and its sources"), "/about", about),
    Command("help", N_("all commands"), "/help", help_),
    Command("status", N_("content version, subscriptions, next digest run, last broadcast"), "/status",
            admin.status, admin_only=True),
    Command("reload", N_("re-read the content files now"), "/reload", admin.reload, admin_only=True),
    Command("rollback", N_("undo the latest content upload"), "/rollback", admin.rollback, admin_only=True),
    Command("preview", N_("the digest a chat would get now"), N_("/preview [chat id]"), admin.preview,
            admin_only=True),
    Command("broadcast", N_("message every subscribed chat (after a preview)"), N_("/broadcast <text>"),
            admin.broadcast, admin_only=True),
    Command("review", N_("review the items found on official sources: publish in your own words or reject"),
            "/review", review.review, admin_only=True),
    Command("upload", N_("send a .yaml file to update the content"), N_("(send a .yaml document)"), admin.upload,
            admin_only=True, in_menu=False),
)
_BY_NAME = {command.name: command for command in COMMANDS}


def find_command(name: str) -> Command | None:
    """The command of that name, if any."""
    return _BY_NAME.get(name.lower())


async def dispatch(request: Request, services: Services) -> Reply:
    """Run the command a request names; unknown commands, refusals and failures get a short, helpful answer."""
    command = find_command(request.command)
    tr = translator(request.language)
    if command is None:
        suggestion = difflib.get_close_matches(request.command.lower(), list(_BY_NAME), n=1)
        if suggestion:
            return Reply(doc(tr.gettext("I don't know /%(command)s. Did you mean /%(suggestion)s? Send /help for the "
                                        "list of commands.", command=request.command, suggestion=suggestion[0])))
        return Reply(doc(tr.gettext("I don't know /%(command)s. Send /help for the list of commands.",
                                    command=request.command)))
    if command.admin_only and (request.user is None or request.user.id not in services.admin_ids):
        log.warning("refused admin command /%s from user %s in chat %s", command.name,
                    request.user.id if request.user else None, request.chat.address)
        await admin.audit(services, request, f"refused:{command.name}", f"chat {request.chat.address}")
        return Reply(doc(tr.gettext("Sorry, that command is for the bot's admins.")))
    if command.admin_only:
        services.metrics.admin_action(command.name)
    try:
        reply = await command.handler(request, services)
    except Exception:
        log.exception("command /%s failed", command.name)
        return Reply(doc(tr.gettext(SORRY)))
    return await _hush_in_quiet_hours(reply, request, services)


async def _hush_in_quiet_hours(reply: Reply, request: Request, services: Services) -> Reply:
    """A reply made in the chat's quiet hours goes out silently (the rule is Services.hushed)."""
    if reply.silent or not reply.body or not await services.hushed(request.chat.address):
        return reply
    return dataclasses.replace(reply, silent=True)
