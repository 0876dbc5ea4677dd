"""Block Kit rendering within Slack's limits, and the Slack sender's answers classified (against the double)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from doubles.slack_api import HTTP_500, SlackApiDouble, block_kit_problems

from bot.core.document import block, bold, code, doc, heading, italic, item, line, link, para, pre
from bot.core.messages import Button, Reply
from bot.delivery import ChatGone, PermanentFailure, RetryAfter, TransientFailure, WorkspaceGone
from bot.slack.connect import close_client, web_client
from bot.slack.identity import id_number, slack_chat, slack_id
from bot.slack.render import BLOCKS_LIMIT, TEXT_LIMIT, escape, message_parts, reply_messages
from bot.slack.sender import SlackSender, classify


def test_mrkdwn_escapes_ampersand_and_angle_brackets_and_links_keep_their_label() -> None:
    [message] = reply_messages(Reply(doc(para("R&D <script> ", link("a > b", "https://x.hk/?a=1&b=|2")))))
    [section] = message["blocks"]
    assert section["text"]["text"] == "R&amp;D &lt;script&gt; <https://x.hk/?a=1&amp;b=%7C2|a &gt; b>"
    assert escape("<@U0123>") == "&lt;@U0123&gt;"  # a typed mention is shown, never pings anyone
    assert message["text"] == "R&amp;D &lt;script&gt; a &gt; b"


def test_styles_headings_items_pre_and_footnotes() -> None:
    [message] = reply_messages(Reply(doc(heading("Status"), block(item(bold("Finance"), " ", code("v7"))),
                                         block(pre("a < b")), para(italic("Content version v7")))))
    kinds = [b["type"] for b in message["blocks"]]
    assert kinds == ["section", "section", "section", "context"]
    texts = [b["text"]["text"] if b["type"] == "section" else b["elements"][0]["text"] for b in message["blocks"]]
    assert texts == ["*Status*", "• *Finance* `v7`", "```a &lt; b```", "_Content version v7_"]


def test_buttons_become_actions_whose_value_is_the_core_action() -> None:
    reply = Reply(doc("Pick"), buttons=((Button("Finance", "sector finance"), Button("Health", "sector health")),
                                        (Button("« All sectors", "sectors"),)))
    [message] = reply_messages(reply)
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    assert [[e["value"] for e in b["elements"]] for b in actions] == [["sector finance", "sector health"],
                                                                        ["sectors"]]
    assert len({e["action_id"] for b in actions for e in b["elements"]}) == 3
    assert block_kit_problems(message) == []


def test_a_long_document_is_split_within_3000_characters_and_50_blocks_with_buttons_on_the_last() -> None:
    long = doc(*[para(f"paragraph {n} " + "x" * 200) for n in range(120)], block(*[line("y" * 90)] * 80),
               para("z" * 7000))
    messages = reply_messages(Reply(long, buttons=((Button("More", "latest 10"),),)))
    assert len(messages) >= 3
    for message in messages:
        assert block_kit_problems(message) == []
        assert len(message["blocks"]) <= BLOCKS_LIMIT
        assert all(len(b["text"]["text"]) <= TEXT_LIMIT for b in message["blocks"] if b["type"] == "section")
    assert messages[-1]["blocks"][-1]["type"] == "actions"
    assert all(b["type"] != "actions" for m in messages[:-1] for b in m["blocks"])
    shown = "".join(b["text"]["text"] for m in messages for b in m["blocks"] if b["type"] == "section")
    assert shown.count("z") == 7000 and "paragraph 119" in shown  # nothing lost in the cuts


def test_commands_named_in_a_reply_read_as_the_slash_command_slack_users_type() -> None:
    [message] = reply_messages(Reply(doc(para("Send /help, or ", code("/sector finance"), "; ",
                                              link("/sector page", "https://x.hk/sector/a"), " /unknown"))))
    assert message["blocks"][0]["text"]["text"] == (
        "Send /hkai help, or `/hkai sector finance`; <https://x.hk/sector/a|/hkai sector page> /unknown")


def test_delivery_parts_are_the_messages_as_json() -> None:
    [part] = message_parts(doc("Hello & welcome"))
    assert json.loads(part)["blocks"][0]["text"]["text"] == "Hello &amp; welcome"


def test_slack_ids_round_trip_and_conversations_map_to_chat_kinds() -> None:
    assert slack_id(id_number("U0AB12")) == "U0AB12" and id_number("U0AB12") >= 2**58 > 2**53
    assert slack_chat("T0123", "D0789").kind.is_group is False and slack_chat("T0123", "C0456").kind.is_group
    assert str(slack_chat("T0123", "C0456").address) == "slack:T0123/C0456"
    with pytest.raises(ValueError):
        slack_chat("T0123", "c-lower")


@pytest.mark.parametrize(("status", "error", "retry_after", "outcome"), [
    (429, "ratelimited", "30", RetryAfter), (200, "channel_not_found", None, ChatGone),
    (200, "not_in_channel", None, ChatGone), (200, "is_archived", None, ChatGone),
    (200, "account_inactive", None, WorkspaceGone), (200, "token_revoked", None, WorkspaceGone),
    (200, "invalid_auth", None, WorkspaceGone), (500, "", None, TransientFailure),
    (200, "internal_error", None, TransientFailure), (200, "invalid_blocks", None, PermanentFailure)])
def test_slack_answers_are_classified(status: int, error: str, retry_after: str | None, outcome: type) -> None:
    assert type(classify(status, error, retry_after, team_id="T0123")) is outcome


def test_a_refused_token_ends_every_chat_of_its_workspace() -> None:
    gone = classify(200, "token_revoked", team_id="T0123")
    assert isinstance(gone, WorkspaceGone) and gone.prefix == "slack:T0123/"


@pytest.fixture
async def slack_api() -> AsyncIterator[SlackApiDouble]:
    async with SlackApiDouble() as api:
        api.add_user("U0OWNER", owner=True)
        api.add_channel("C0456", creator="U0OWNER")
        yield api
        assert api.violations == []


async def test_the_sender_posts_and_maps_the_doubles_faults(slack_api: SlackApiDouble) -> None:
    client = web_client(slack_api.token, slack_api.base_url)
    try:
        await _send_through(SlackSender(client), slack_api)
    finally:
        await close_client(client)


async def _send_through(sender: SlackSender, slack_api: SlackApiDouble) -> None:
    [part] = message_parts(doc(heading("Digest"), para("One update")))
    await sender.send(slack_chat("T0123", "C0456").address, None, part, silent=False)
    assert slack_api.texts("C0456") == ["*Digest*\nOne update"]
    slack_api.fail("chat.postMessage", "ratelimited", retry_after=7)
    with pytest.raises(RetryAfter) as held:
        await sender.post("C0456", part)
    assert held.value.seconds == 7
    slack_api.fail("chat.postMessage", HTTP_500)
    with pytest.raises(TransientFailure):
        await sender.post("C0456", part)
    slack_api.fail("chat.postMessage", "channel_not_found")
    with pytest.raises(ChatGone):
        await sender.post("C0456", part)
    with pytest.raises(ChatGone):
        await sender.post("C0999", part)  # no such channel
    slack_api.fail("chat.postMessage", "invalid_auth")
    with pytest.raises(WorkspaceGone):
        await sender.post("C0456", part, team_id="T0123")
    calls = len(slack_api.calls)
    with pytest.raises(WorkspaceGone):  # the whole workspace: Slack is not asked again with a refused token
        await sender.post("C0456", part, team_id="T0123")
    assert len(slack_api.calls) == calls and len(slack_api.texts("C0456")) == 1
