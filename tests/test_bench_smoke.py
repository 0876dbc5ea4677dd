"""Each benchmark still runs in its --quick mode; no timing is asserted, only that fan-out loses and repeats nothing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
if str(ROOT) not in sys.path:  # bench/ is not an installed package; `pytest` (unlike `python -m pytest`) omits cwd
    sys.path.insert(0, str(ROOT))

from bench import commands, content, fanout, inline, metrics_cost, search_zh, sources, store, webhook_flood  # noqa: E402


@pytest.fixture(autouse=True)
def results_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Leave the figures of real runs in bench/results/ alone.
    monkeypatch.setenv("BENCH_RESULTS", str(tmp_path))
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


def test_fanout_quick_delivers_every_digest_exactly_once_with_and_without_faults() -> None:
    rows = fanout.main(["--quick"])
    engine_rows = [row for row in rows if row["variant"] in fanout.ENGINE_VARIANTS and not row["capped"]]
    assert {row["faults"] for row in engine_rows if row["variant"] == "engine-json"} == {"none", "2% 429, 1% 500"}
    for row in rows:
        assert row["duplicates"] == 0, row
    for row in engine_rows:
        assert row["losses"] == 0, row
        assert row["worker"]["store_sent"] == row["chats"], row


def test_fanout_to_slack_channels_delivers_every_digest_once_within_slacks_spec() -> None:
    [row] = fanout.main(["--quick", "--variants", "engine-slack", "--faults", "none", "--name", "fanout-slack"])
    assert row["duplicates"] == 0 and row["losses"] == 0 and row["violations"] == [], row
    assert row["worker"]["store_sent"] == row["chats"] and row["over_channel_rate"] == 0


def test_search_zh_scores_every_tokeniser_on_every_labelled_query() -> None:
    rows = search_zh.main()
    assert [row["tokeniser"] for row in rows] == ["character bigrams", *search_zh._jieba()]
    assert all(0 <= row["all_p@1"] <= 1 for row in rows)


def test_commands_quick_builds_every_reply_and_answers_every_update() -> None:
    result = commands.main(["--quick"])
    assert [(row["language"], row["command"]) for row in result["reply_build"]] == [
        (language, command) for language in commands.LANGUAGES for command in commands.COMMANDS]
    assert all(row["replies"] == row["updates"] for row in result["end_to_end"])


def test_store_quick_ticks_and_measures_memory() -> None:
    result = store.main(["--quick", "--postgres", ""])
    assert {row["case"] for row in result["ticks"]} == {"~700 due", "5,000 due (one batch)"}
    assert all(prune["deleted"] == min(prune["finished_deliveries"], prune["batch"] * prune["batches"])
               for prune in result["prunes"])
    assert result["memory"]["subscriptions"] == 2_000


def test_content_quick_loads_the_shipped_and_the_scaled_content() -> None:
    rows = content.main(["--quick"])
    assert rows[1]["sections"] == 3 * rows[0]["sections"]


def test_webhook_flood_quick_runs_and_every_post_is_refused() -> None:
    result = webhook_flood.main(["--quick"])
    assert [row["scenario"] for row in result["rows"]] == ["no secret", "secret, over the cap"]
    assert all(post["outcome"] in ("403", "413") or post["outcome"].startswith("closed")
               for row in result["rows"] for post in row["per_post"])


def test_sources_quick_polls_every_feed_and_half_answer_304() -> None:
    result = sources.main(["--quick"])
    poll = result["poll"]
    assert (poll["answered_304"], poll["failed"]) == (3, 0)
    assert poll["items_read"] == 3 * 20 and poll["candidates"] == 3 * 10  # every other item is about AI
    assert result["dedup"]["kept"] < result["dedup"]["entries"]
    assert result["page"]["read"] == result["page"]["items"] == 50


def test_metrics_cost_quick_times_recording_and_records_every_call() -> None:
    figures = metrics_cost.main(["--quick"])
    assert figures["on"] > 0 and figures["off"] > 0


def test_each_benchmark_has_one_documented_command() -> None:
    readme = (ROOT / "bench" / "README.md").read_text()
    for name in ("fanout", "commands", "store", "content", "webhook_flood", "sources", "metrics_cost"):
        assert f"python -m bench.{name}" in readme


def test_inline_quick_answers_every_query_within_the_bot_apis_limits() -> None:
    rows = inline.main(["--quick"])
    assert [row["results"] for row in rows] == [5, 20, 20, 20, 20, 0]
