"""The command table and the commands: each turns a Request into a Reply and knows nothing of Telegram."""

from __future__ import annotations

import dataclasses
import difflib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.core import admin, review, subscription_commands
from bot.core.catalogue import Catalogue, Section, Update
from bot.core.document import Block, Line, Part, block, bold, code, doc, heading, italic, item, line, link, para
from bot.core.messages import SORRY, Button, Reply, Request, replacing_on_button
from bot.core.numbers import whole_number
from bot.core.render import format_date, render_initiative, render_section_header, render_update
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
    """One entry of the command table: it feeds dispatch, /help and the Telegram command menu."""

    name: str
    summary: str
    usage: str
    handler: Handler
    admin_only: bool = False
    in_menu: bool = True


# --- replies shared by several commands --------------------------------------------------------


def _sector_buttons(catalogue: Catalogue, per_row: int = 2) -> tuple[tuple[Button, ...], ...]:
    buttons = [Button(section.title, f"sector {section.id}") for section in catalogue.sections]
    return tuple(tuple(buttons[i:i + per_row]) for i in range(0, len(buttons), per_row))


def _sections_reply(catalogue: Catalogue, intro: Block | None = None) -> Reply:
    listing = block(heading("Sectors"),
                    *(item(bold(section.title), f" — /sector {section.id}") for section in catalogue.sections))
    return Reply(doc(intro or Block(()), listing, para("Tap a sector, or type /sector followed by its name.")),
                 buttons=_sector_buttons(catalogue))


def _section_reply(catalogue: Catalogue, section: Section, intro: Line | None = None) -> Reply:
    parts: list[Part] = [intro or line(), render_section_header(section)]
    updates = catalogue.updates_for(section.id)[:SECTION_UPDATES_SHOWN]
    if updates:
        # The heading sits on the first update's block, as it always has.
        first, *rest = (render_update(u) for u in updates)
        parts.extend([Block((heading("Latest"), *first.lines)), *rest])
    if section.initiatives:
        parts.append(para(f"{len(section.initiatives)} initiatives: /initiatives {section.id}"))
    rows: list[tuple[Button, ...]] = []
    if section.initiatives:
        rows.append((Button(f"Initiatives ({len(section.initiatives)})", f"initiatives {section.id}"),))
    related = [catalogue.section(name) for name in section.related]
    related_buttons = tuple(Button(r.title, f"sector {r.id}") for r in related if r is not None)
    if related_buttons:
        rows.append(related_buttons)
    rows.append((Button("« All sectors", "sectors"),))
    return Reply(doc(*parts), buttons=tuple(rows))


def resolve_section(catalogue: Catalogue, name: str) -> tuple[Section | None, list[Section]]:
    """Find the section a user meant: exact id/alias, else a sure near miss, else candidates to offer."""
    wanted = name.strip().lower().lstrip("/")
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
    if request.args:
        section, _ = resolve_section(catalogue, request.args[0])
        if section is not None:
            return _section_reply(catalogue, section)
    about = catalogue.about
    intro = doc(para(bold(about.name), f": {about.tagline}"),
                block("Pick a sector below, or try:", "/latest — the newest updates",
                      "/search <words> — search everything", "/help — all commands"))
    return Reply(intro, buttons=_sector_buttons(catalogue))


async def help_(request: Request, services: Services) -> Reply:
    """Every command with its usage, from the command table."""
    is_admin = request.user is not None and request.user.id in services.admin_ids
    listing = block(heading("Commands"), *(line(f"{command.usage} — {command.summary}") for command in COMMANDS
                                           if is_admin or not command.admin_only))
    groups = para(f"In groups, address commands to the bot, e.g. /sector@{services.bot_username or 'bot'} finance.")
    return Reply(doc(listing, groups, _inline_help(services.bot_username, is_admin)))


def _inline_help(bot_username: str, is_admin: bool) -> Block:
    """How to search from any chat (only a front end with a bot username has inline mode), and, for admins, how
    to switch it on."""
    if not bot_username:
        return Block(())
    usage = para("In any chat, type ", code(f"@{bot_username} finance"), " (or any words) and pick a result to "
                 "share it as a card; with no words you get the latest updates.")
    if not is_admin:
        return usage
    return block(*usage.lines, italic("Admins: inline mode is switched on once in @BotFather: /setinline, pick this "
                                      "bot, give a placeholder such as “Search HK AI…”. /setinlinefeedback is "
                                      "optional; the bot does not use it."))


async def sectors(request: Request, services: Services) -> Reply:
    """The list of sections, as buttons."""
    return replacing_on_button(_sections_reply(services.content.catalogue), request)


async def sector(request: Request, services: Services) -> Reply:
    """One section: by id, alias or a near miss; no argument lists them all."""
    catalogue = services.content.catalogue
    if not request.args:
        return replacing_on_button(_sections_reply(catalogue, para("Which sector? For example: /sector finance")),
                                   request)
    wanted = request.text
    section, candidates = resolve_section(catalogue, wanted)
    if section is not None:
        exact = catalogue.section(wanted) is not None
        intro = None if exact else line(italic(f"Showing {section.title} (closest to “{wanted}”)."))
        return replacing_on_button(_section_reply(catalogue, section, intro), request)
    if candidates:
        buttons = tuple((Button(c.title, f"sector {c.id}"),) for c in candidates)
        return Reply(doc(f"No sector called “{wanted}”. Did you mean:"), buttons=buttons)
    return _sections_reply(catalogue, para(f"No sector called “{wanted}”."))


async def initiatives(request: Request, services: Services) -> Reply:
    """The named initiatives of one section, or all of them grouped by section (the front end splits long replies)."""
    catalogue = services.content.catalogue
    if request.args:
        section, candidates = resolve_section(catalogue, request.text)
        if section is None:
            hint = ", ".join(f"/initiatives {c.id}" for c in candidates) or "/sectors"
            return Reply(doc(f"No sector called “{request.text}”. Try {hint}."))
        if not section.initiatives:
            return Reply(doc(para(bold(section.title), " lists no initiatives yet.")),
                         buttons=((Button("« " + section.title, f"sector {section.id}"),),))
        body = doc(heading(section.title + ": initiatives"), *(render_initiative(one) for one in section.initiatives))
        return replacing_on_button(Reply(body, buttons=((Button("« " + section.title, f"sector {section.id}"),),)),
                                   request)
    groups: list[Block] = []
    for each in catalogue.sections:
        if each.initiatives:
            # The heading shares a block with the first item so a split never leaves it alone at a part's end.
            first, *rest = (render_initiative(one) for one in each.initiatives)
            groups.append(Block((line(bold(each.title), f" (/initiatives {each.id})"), *first.lines)))
            groups.extend(rest)
    return Reply(doc(*groups) if groups else doc("No initiatives yet."))


async def search(request: Request, services: Services) -> Reply:
    """Ranked matches across sections, initiatives and updates."""
    query = request.text.strip()
    if not query:
        return Reply(doc("What should I look for? For example: /search hkust ai"))
    catalogue = services.content.catalogue
    hits = index_of(catalogue).search(query, limit=SEARCH_RESULTS)
    if not hits:
        return Reply(doc(f"Nothing matches “{query}”. Try fewer or other words, or browse /sectors."))
    lines = [heading(f"Results for “{query}”")]
    for hit in hits:
        found = hit.item
        if isinstance(found, Update):
            lines.append(item(f"{format_date(found.date)} · ", link(found.title, found.link)))
        elif isinstance(found, Section):
            lines.append(item("Sector: ", bold(found.title), f" — /sector {found.id}"))
        else:
            year = f" ({found.year})" if found.year else ""
            section_title = catalogue.section(found.section_id)
            where = f" · {section_title.title}" if section_title else ""
            lines.append(item(link(found.name, found.link), f"{year} — {found.body}{where}"))
    return Reply(doc(block(*lines)))


async def latest(request: Request, services: Services) -> Reply:
    """The newest updates (5 by default, up to 20)."""
    count = LATEST_DEFAULT
    if request.args:
        typed = whole_number(request.args[0], 1, LATEST_MAX)
        if typed is None:
            return Reply(doc(f"“{request.args[0]}” is not a count: /latest takes a number from 1 to "
                             f"{LATEST_MAX}, e.g. /latest 10"))
        count = typed
    updates = services.content.catalogue.updates[:count]
    if not updates:
        return Reply(doc("No updates yet."))
    return Reply(doc(heading("Latest updates"), *(render_update(u) for u in updates)))


async def about(request: Request, services: Services) -> Reply:
    """What the bot is, where its facts come from, and how to reach the admins."""
    catalogue = services.content.catalogue
    info = catalogue.about
    counts = (f"{len(catalogue.sections)} sectors, {len(catalogue.initiatives)} initiatives, "
              f"{len(catalogue.updates)} updates")
    # The content says how to get in touch; who to write to belongs to the deployment (BOT_CONTACT), not the content.
    reach = services.operator_contact or "The operator of this bot has not published a contact yet."
    return Reply(doc(para(bold(info.name), f" — {info.tagline}"), para(info.about),
                     block(heading("Sources"), *(item(link(s.title, s.link)) for s in info.sources)),
                     block(heading("Contact"), info.contact, reach),
                     para(italic(f"Content version {catalogue.version}: {counts}."))))


COMMANDS: tuple[Command, ...] = (
    Command("start", "welcome and sector buttons", "/start", start, in_menu=False),
    Command("sectors", "list the sectors", "/sectors", sectors),
    Command("sector", "one sector: summary, key points, latest", "/sector <name>", sector),
    Command("initiatives", "named initiatives, by sector", "/initiatives [sector]", initiatives),
    Command("search", "search sectors, initiatives and updates", "/search <words>", search),
    Command("latest", "the newest updates", "/latest [count]", latest),
    Command("subscribe", "get a digest: daily or weekly, your time and sectors",
            "/subscribe [daily|weekly day] [HH:MM] [timezone] [sectors]", subscription_commands.subscribe),
    Command("settings", "your digest settings, with buttons to change them", "/settings",
            subscription_commands.settings),
    Command("digest", "preview your next digest now", "/digest", subscription_commands.digest),
    Command("quiet", "quiet hours: no notification sound except digests", "/quiet HH:MM-HH:MM | off",
            subscription_commands.quiet),
    Command("unsubscribe", "stop the digest", "/unsubscribe", subscription_commands.unsubscribe),
    Command("about", "what this bot is and its sources", "/about", about),
    Command("help", "all commands", "/help", help_),
    Command("status", "content version, subscriptions, next digest run, last broadcast", "/status",
            admin.status, admin_only=True),
    Command("reload", "re-read the content files now", "/reload", admin.reload, admin_only=True),
    Command("rollback", "undo the latest content upload", "/rollback", admin.rollback, admin_only=True),
    Command("preview", "the digest a chat would get now", "/preview [chat id]", admin.preview, admin_only=True),
    Command("broadcast", "message every subscribed chat (after a preview)", "/broadcast <text>", admin.broadcast,
            admin_only=True),
    Command("review", "review the items found on official sources: publish in your own words or reject",
            "/review", review.review, admin_only=True),
    Command("upload", "send a .yaml file to update the content", "(send a .yaml document)", admin.upload,
            admin_only=True, in_menu=False),
)
_BY_NAME = {command.name: command for command in COMMANDS}


def find_command(name: str) -> Command | None:
    """The command of that name, if any."""
    return _BY_NAME.get(name.lower())


async def dispatch(request: Request, services: Services) -> Reply:
    """Run the command a request names; unknown commands, refusals and failures get a short, helpful answer."""
    command = find_command(request.command)
    if command is None:
        suggestion = difflib.get_close_matches(request.command.lower(), list(_BY_NAME), n=1)
        hint = f" Did you mean /{suggestion[0]}?" if suggestion else ""
        return Reply(doc(f"I don't know /{request.command}.{hint} Send /help for the list of commands."))
    if command.admin_only and (request.user is None or request.user.id not in services.admin_ids):
        log.warning("refused admin command /%s from user %s in chat %s", command.name,
                    request.user.id if request.user else None, request.chat.address)
        await admin.audit(services, request, f"refused:{command.name}", f"chat {request.chat.address}")
        return Reply(doc("Sorry, that command is for the bot's admins."))
    try:
        reply = await command.handler(request, services)
    except Exception:
        log.exception("command /%s failed", command.name)
        return Reply(doc(SORRY))
    return await _hush_in_quiet_hours(reply, request, services)


async def _hush_in_quiet_hours(reply: Reply, request: Request, services: Services) -> Reply:
    """A reply made in the chat's quiet hours goes out silently (the rule is Services.hushed)."""
    if reply.silent or not reply.body or not await services.hushed(request.chat.address):
        return reply
    return dataclasses.replace(reply, silent=True)
