"""Hypothesis strategies for text people (and other bots) may send: commands, odd characters, huge lines."""

from __future__ import annotations

from hypothesis import strategies as st

from bot.core.commands import COMMANDS

COMMAND_NAMES = [command.name for command in COMMANDS]
# Characters that broke or could break a parser: blanks of every kind, invisible marks (RTL, zero-width, BOM,
# soft hyphen), controls (NUL, the separators str.split() treats as blanks), lone surrogates, combining marks,
# case changes that alter length, emoji sequences and HTML/entity look-alikes.
ODD_PIECES = [
    "/", "//", "/ ", " / ", "@", "/@", "/@hk_ai_pulse_bot", "@hk_ai_pulse_bot", "@other_bot", "_", "-", ":",
    "\u200f", "\u200e", "\u202e", "\u2066", "\ufeff", "\u200b", "\u200d", "\u00ad", "\U000e007f",
    "\x00", "\x1c", "\x1f", "\x7f", "\x85", "\x0b", "\r", "\n", "\t", "\xa0", "\u2028", "\u3000",
    "\ud800", "\udfff", "\udbff\udc00", "\u0301", "İ", "ß", "ǅ", "\U0001f600", "\U0001f468\u200d\U0001f469",
    "&", "&amp;", "&#0;", "<b>", "</a>", "<", ">", '"', "\\", "²", "٣", "９", "1" * 30, "-1", "0", "99",
    "daily", "weekly", "mon", "fri", "08:30", "25:99", "off", "22:00-07:00", "Europe/London", "../etc",
    "finance", "healthcare", "fintech", "send", "cancel", "time", "tz",
]
ODD_CHARACTERS = st.characters(categories=["Cc", "Cf", "Cs", "Zs", "Zl", "Zp", "Mn", "Nd", "No"])

word = st.one_of(
    st.sampled_from(COMMAND_NAMES),
    st.sampled_from(ODD_PIECES),
    st.text(max_size=12),
    st.text(alphabet=ODD_CHARACTERS, max_size=4),
)
separator = st.sampled_from([" ", " ", "", "\n", "\t", "  ", "\u3000", "@", "/"])


@st.composite
def _joined(draw: st.DrawFn) -> str:
    pieces = draw(st.lists(st.tuples(word, separator), max_size=8))
    return "".join(piece + sep for piece, sep in pieces)


# Longer than any Telegram message (4,096): a repeated word, so hypothesis need not draw thousands of characters.
long_text = st.builds(lambda piece, times: piece * times, st.one_of(word, st.text(min_size=1, max_size=6)),
                      st.integers(min_value=300, max_value=1500))

# Our commands (or near misses), addressed to us, to another bot or to nobody, with odd arguments.
command_text = st.builds(
    lambda name, addressee, args: f"/{name}{addressee} {args}",
    st.one_of(st.sampled_from(COMMAND_NAMES), st.sampled_from(COMMAND_NAMES).map(str.upper), st.text(max_size=8)),
    st.sampled_from(["", "", "@hk_ai_pulse_bot", "@HK_AI_Pulse_Bot", "@other_bot", "@"]),
    _joined(),
)

# Anything a user could type: commands with odd arguments, arbitrary text, and very long lines.
typed_text = st.one_of(
    command_text,
    st.builds(lambda prefix, body: prefix + body, st.sampled_from(["/", "", "//", " /", "\u200f/"]), _joined()),
    st.text(),
    long_text,
)

# What a callback's data may hold: 1-64 bytes of UTF-8 (Telegram's limit), ours or anyone's.
callback_data = st.one_of(
    st.builds(lambda name, rest: f"{name} {rest}", st.sampled_from(COMMAND_NAMES), _joined()),
    _joined(),
    st.text(min_size=1),
    st.sampled_from(["/", "//", "/ ", " ", "@", "\x00", "\u200f"]),
).map(lambda data: data.encode("utf-8", "surrogatepass")[:64].decode("utf-8", "ignore") or "/")
