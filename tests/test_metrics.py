"""Prometheus metrics: a digest round against the Bot API double counted exactly, and who may scrape /metrics."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from doubles.fake_bot_api import FakeBotApi
from harness import FakeClock, e2e_settings, running_bot
from prometheus_client.parser import text_string_to_metric_families

from bot.core.ports import NO_METRICS
from bot.metrics import GaugeReading, PrometheusMetrics, is_local, metrics_server
from bot.settings import Secret

CHATS = (701, 702, 703, 704, 705)  # 701 fine, 702 blocked, 703 refused, 704 a 500 once, 705 a 429 once
TOKEN = "scrape-token-123"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def scrape(port: int, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """GET /metrics over HTTP: the status and the body."""
    async with aiohttp.ClientSession() as session, \
            session.get(f"http://127.0.0.1:{port}/metrics", headers=headers or {}) as answer:
        return answer.status, await answer.text()


def samples(text: str) -> Samples:
    """Every sample, parsed by prometheus-client's own parser, keyed by name and labels (replica left out)."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = frozenset((k, v) for k, v in sample.labels.items() if k != "replica")
            found[sample.name, labels] = sample.value
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series was never recorded (as Prometheus would treat an absent counter)."""
    return found.get((name, frozenset(labels.items())), 0.0)


async def test_a_digest_round_is_counted_as_the_double_recorded_it_sent_and_refused_alike(
        fake: FakeBotApi, tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 4, 16, 0, 0, tzinfo=UTC))  # 08:00 HKT; digests are due at 09:00
    port = free_port()
    settings = e2e_settings(fake, tmp_path, metrics_port=port, metrics_listen="127.0.0.1")
    async with running_bot(fake, settings, clock) as runtime:
        for chat in CHATS:
            fake.push_update(fake.command_update("/subscribe", chat_id=chat, user_id=chat))
            await fake.wait_for("sendMessage", chat_id=chat)
        round_starts = len(fake.requests)
        fake.block_chat(702)
        fake.add_fault(chat_id=703, error_code=400, description="Bad Request: message is too long")
        fake.add_fault(chat_id=704, error_code=500, description="Internal Server Error", times=1)
        fake.add_fault(chat_id=705, error_code=429, description="Too Many Requests: retry after 1",
                       parameters={"retry_after": 1}, times=1)
        clock.advance(hours=1)
        await fake.wait_for("sendMessage", count=2, chat_id=701)
        await fake.wait_for("sendMessage", count=2, chat_id=705, timeout=30)  # after the 429's second
        for _ in range(200):  # the 500 is retried a second later by the bot's clock
            stats = await runtime.store.delivery_stats()
            if stats.failed == 2 and stats.sent == 3:
                break
            clock.advance(seconds=2)
            await asyncio.sleep(0.05)
        status, text = await scrape(port)
        version = runtime.content.catalogue.version

    assert status == 200
    found = samples(text)
    digests = [r for r in fake.requests[round_starts:] if r.method == "sendMessage"]
    delivered = sum(1 for r in digests if r.ok)
    refused = [r.status for r in digests if not r.ok]
    assert (delivered, sorted(refused)) == (3, [400, 403, 429, 500])

    def deliveries(outcome: str) -> float:
        return value(found, "hkaipulse_deliveries_total", platform="telegram", kind="digest", outcome=outcome)

    def platform_errors(status: str) -> float:
        return value(found, "hkaipulse_platform_errors_total", platform="telegram", status=status)

    assert deliveries("sent") == delivered
    # Every refusal is counted once: given up (403, 400), handed back for a retry (500), held and resent (429).
    assert deliveries("failed") + deliveries("retried") + platform_errors("429") == len(refused)
    assert (deliveries("failed"), deliveries("retried"), deliveries("deactivated")) == (2, 1, 1)
    assert platform_errors("429") == refused.count(429)
    assert platform_errors("5xx") == sum(1 for status in refused if status >= 500)
    assert value(found, "hkaipulse_send_round_trip_seconds_count", platform="telegram") == len(digests)
    assert value(found, "hkaipulse_digest_lag_seconds_count", platform="telegram") == delivered
    assert value(found, "hkaipulse_digest_lag_seconds_bucket", platform="telegram", le="1.0") >= 1  # 701 on time
    # The confirmations: five updates handled, five replies sent.
    assert value(found, "hkaipulse_updates_handled_total", kind="message", command="subscribe") == len(CHATS)
    assert value(found, "hkaipulse_replies_sent_total") == len(CHATS)
    assert value(found, "hkaipulse_reply_build_seconds_count") == len(CHATS)
    # Gauges, read at the scrape.
    assert value(found, "hkaipulse_subscriptions_active", cadence="daily") == len(CHATS) - 1  # 702 deactivated
    assert value(found, "hkaipulse_deliveries_open") == 0
    assert value(found, "hkaipulse_scheduler_leader") == 1
    assert value(found, "hkaipulse_scheduler_tick_seconds_count") >= 1
    assert value(found, "hkaipulse_content_info", version=version) == 1
    assert value(found, "hkaipulse_content_broken") == 0
    assert value(found, "hkaipulse_content_loaded_timestamp_seconds") > 0


async def test_every_series_carries_this_replicas_name(fake: FakeBotApi, tmp_path: Path) -> None:
    port = free_port()
    async with running_bot(fake, e2e_settings(fake, tmp_path, metrics_port=port, metrics_listen="127.0.0.1")) \
            as runtime:
        fake.push_update(fake.command_update("/about", chat_id=720, user_id=720))
        await fake.wait_for("sendMessage", chat_id=720)
        _, text = await scrape(port)
        assert runtime.metrics is not None
        replica = runtime.metrics.replica
    families = list(text_string_to_metric_families(text))
    assert families and all(s.labels["replica"] == replica for f in families for s in f.samples)


async def test_metrics_enabled_false_serves_nothing_and_counts_nothing(fake: FakeBotApi, tmp_path: Path) -> None:
    port = free_port()
    settings = e2e_settings(fake, tmp_path, metrics_port=port, metrics_listen="127.0.0.1", metrics_enabled=False)
    async with running_bot(fake, settings) as runtime:
        fake.push_update(fake.command_update("/about", chat_id=721, user_id=721))
        await fake.wait_for("sendMessage", chat_id=721)
        with pytest.raises(aiohttp.ClientConnectionError):
            await scrape(port)
        assert runtime.metrics is None and runtime.services.metrics is NO_METRICS


async def test_the_webhook_server_serves_metrics_beside_the_webhook_unless_disabled(
        fake: FakeBotApi, tmp_path: Path) -> None:
    for enabled, expected in ((True, 200), (False, 404)):
        port = free_port()
        settings = e2e_settings(fake, tmp_path / str(enabled), webhook_url="https://bot.example.test/telegram",
                                port=port, webhook_listen="127.0.0.1", metrics_enabled=enabled)
        async with running_bot(fake, settings):
            status, text = await scrape(port)
        assert status == expected
        assert ("hkaipulse_scheduler_leader" in text) is enabled


# --- who may scrape ---------------------------------------------------------------------------------------------


@pytest.fixture
async def served() -> AsyncIterator[tuple[int, int]]:
    """Two /metrics servers on localhost: one without a token (port 0 of the pair), one with TOKEN."""
    metrics = PrometheusMetrics("test:1")
    metrics.delivery("telegram", "digest", "sent")

    async def read() -> GaugeReading:
        return GaugeReading(open_deliveries=3, content_version="v1")

    servers = [metrics_server(metrics, read, ""), metrics_server(metrics, read, TOKEN)]
    ports = []
    for server in servers:
        port = free_port()
        server.listen(port, "127.0.0.1")
        ports.append(port)
    try:
        yield ports[0], ports[1]
    finally:
        for server in servers:
            server.stop()
            await server.close_all_connections()


# A request a proxy forwarded: from elsewhere, even though the proxy's connection comes from localhost.
FORWARDED = {"X-Forwarded-For": "203.0.113.7"}


async def test_localhost_scrapes_without_a_token(served: tuple[int, int]) -> None:
    for port in served:
        status, text = await scrape(port)
        assert status == 200
        assert value(samples(text), "hkaipulse_deliveries_open") == 3


async def test_a_remote_scrape_is_refused_when_no_token_is_configured(served: tuple[int, int]) -> None:
    no_token, _ = served
    assert (await scrape(no_token, FORWARDED))[0] == 403
    assert (await scrape(no_token, {**FORWARDED, "Authorization": "Bearer anything"}))[0] == 403
    assert (await scrape(no_token, {"X-Real-IP": "127.0.0.1", "Forwarded": "for=203.0.113.7"}))[0] == 403


async def test_a_remote_scrape_needs_the_bearer_token(served: tuple[int, int]) -> None:
    _, with_token = served
    assert (await scrape(with_token, FORWARDED))[0] == 401
    assert (await scrape(with_token, {**FORWARDED, "Authorization": "Bearer wrong"}))[0] == 401
    assert (await scrape(with_token, {**FORWARDED, "Authorization": TOKEN}))[0] == 401  # not a bearer header
    status, text = await scrape(with_token, {**FORWARDED, "Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and "hkaipulse_deliveries_total" in text


def test_only_a_loopback_peer_with_no_forwarding_header_is_local() -> None:
    assert is_local("127.0.0.1", {}) and is_local("::1", {}) and is_local("127.5.5.5", {})
    assert not is_local("10.0.0.5", {}) and not is_local("203.0.113.7", {}) and not is_local("", {})
    assert not is_local("127.0.0.1", {"X-Forwarded-For": "203.0.113.7"})


def test_two_bots_in_one_process_count_apart() -> None:
    first, second = PrometheusMetrics("a:1"), PrometheusMetrics("b:2")
    first.delivery("telegram", "digest", "sent")
    first.delivery("telegram", "digest", "sent")
    second.delivery("telegram", "broadcast", "failed")

    def total(metrics: PrometheusMetrics) -> float:
        return sum(s.value for f in metrics.registry.collect() if f.name == "hkaipulse_deliveries"
                   for s in f.samples if s.name.endswith("_total"))

    assert (total(first), total(second)) == (2, 1)


def test_the_metrics_token_is_read_from_the_environment_only(tmp_path: Path) -> None:
    from bot.settings import SettingsError, load_settings

    settings = load_settings(tmp_path / "none.yaml", {"METRICS_TOKEN": TOKEN, "METRICS_PORT": "9464"})
    assert settings.metrics_token == Secret(TOKEN) and settings.metrics_port == 9464
    assert TOKEN not in repr(settings)
    config = tmp_path / "settings.yaml"
    config.write_text(f"metrics_token: {TOKEN}\n")
    with pytest.raises(SettingsError, match="METRICS_TOKEN"):
        load_settings(config, {})
    with pytest.raises(SettingsError, match="METRICS_PORT"):
        load_settings(tmp_path / "none.yaml", {"METRICS_PORT": "70000"})
    assert not load_settings(tmp_path / "none.yaml", {"METRICS_ENABLED": "false"}).metrics_enabled
    with pytest.raises(SettingsError, match="must differ from PORT"):
        load_settings(tmp_path / "none.yaml", {"WEBHOOK_URL": "https://bot.example.test/hook", "PORT": "9000",
                                               "METRICS_PORT": "9000"})


async def test_the_engines_counters_match_its_report_for_every_outcome(tmp_path: Path) -> None:
    from dataclasses import asdict

    from test_delivery import FAST, UNPACED, Clock, Composer, Crash, FakeSender, subscribe

    from bot.core.addresses import telegram
    from bot.delivery import ChatGone, ChatMoved, DeliveryEngine, PermanentFailure, TransientFailure
    from bot.store import open_store
    from bot.tg.platform import telegram_platform

    url = f"sqlite:///{tmp_path}/bot.sqlite3"
    first = await open_store(url)
    await subscribe(first, 6)
    dying = FakeSender()
    dying.script(6, None, Crash("power cut while part 2 was on the wire"))
    with pytest.raises(Crash):
        await DeliveryEngine(first, telegram_platform(dying, UNPACED), FAST, worker_id="dead",
                             compose=Composer(parts=2), now=Clock()).run_once()
    await first.close()

    store = await open_store(url)  # 6 resumes as a possible duplicate
    try:
        await subscribe(store, 1, 2, 3, 4, -555)
        sender = FakeSender()
        sender.always(2, ChatGone("Forbidden: bot was blocked by the user"))
        sender.always(3, PermanentFailure("Bad Request: message is too long"))
        sender.script(4, TransientFailure("Internal Server Error", 500))
        sender.always(-555, ChatMoved(telegram(-100_555)))
        metrics = PrometheusMetrics("test:1")
        engine = DeliveryEngine(store, telegram_platform(sender, UNPACED), FAST, worker_id="w",
                                compose=Composer(parts=2), now=Clock(), metrics=metrics)
        report = await engine.run_once()
    finally:
        await store.close()
    found = samples(metrics.exposition().decode())
    counted = {outcome: value(found, "hkaipulse_deliveries_total", platform="telegram", kind="digest",
                              outcome=outcome) for outcome in ("sent", "failed", "retried", "deactivated", "migrated",
                                                               "possible_duplicate")}
    expected = asdict(report)
    assert counted == {"sent": expected["sent"], "failed": expected["failed"], "retried": expected["retried"],
                       "deactivated": expected["deactivated"], "migrated": expected["migrated"],
                       "possible_duplicate": expected["possible_duplicates"]}
    assert counted == {"sent": 3, "failed": 2, "retried": 1, "deactivated": 1, "migrated": 1, "possible_duplicate": 1}
    assert value(found, "hkaipulse_platform_errors_total", platform="telegram", status="5xx") == 1
