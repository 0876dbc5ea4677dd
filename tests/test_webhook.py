"""Webhook mode: Telegram's POSTs with and without the secret, the health check, and a restart that loses nothing."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from harness import CONTENT, ROOT, e2e_settings, running_bot, texts

from bot.app import webhook_secret
from bot.logs import configure_logging
from bot.settings import Secret
from bot.testing.fake_bot_api import FakeBotApi
from bot.tg.webhook import SECRET_HEADER

SECRET = "test-webhook-secret_1"
URL = "https://bot.example.test/telegram"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


_next_update_id = iter(range(1, 1_000_000))


async def post(session: aiohttp.ClientSession, port: int, update: dict[str, object], secret: str | None) -> int:
    update.setdefault("update_id", next(_next_update_id))
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    async with session.post(f"http://127.0.0.1:{port}/telegram", data=json.dumps(update), headers=headers) as answer:
        return answer.status


async def test_webhook_accepts_only_requests_with_the_secret(fake: FakeBotApi, tmp_path: Path) -> None:
    port = free_port()
    settings = e2e_settings(fake, tmp_path, webhook_url=URL, port=port, webhook_listen="127.0.0.1",
                            webhook_secret=Secret(SECRET))
    async with running_bot(fake, settings), aiohttp.ClientSession() as session:
        [registered] = fake.calls("setWebhook")
        assert registered["url"] == URL and registered["secret_token"] == SECRET
        assert not fake.calls("getUpdates")  # no polling in webhook mode
        assert await post(session, port, fake.command_update("/about", chat_id=801, user_id=801), None) == 403
        assert await post(session, port, fake.command_update("/about", chat_id=802, user_id=802), "wrong") == 403
        assert await post(session, port, fake.command_update("/about", chat_id=803, user_id=803), SECRET) == 200
        async with session.post(f"http://127.0.0.1:{port}/telegram", data=b"{not json",
                                headers={SECRET_HEADER: SECRET}) as answer:
            assert answer.status == 400
        async with session.get(f"http://127.0.0.1:{port}/healthz") as health:
            assert health.status == 200 and (await health.json())["ok"] is True
    assert texts(fake, 801) == [] and texts(fake, 802) == []
    assert "HK AI Pulse" in texts(fake, 803)[0]  # processed before the 200 was sent


async def test_the_default_secret_is_derived_from_the_token_and_never_logged(
        fake: FakeBotApi, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    settings = e2e_settings(fake, tmp_path, webhook_url=URL, port=free_port(), webhook_listen="127.0.0.1")
    configure_logging("DEBUG", [settings.telegram_token, webhook_secret(settings)])
    try:
        async with running_bot(fake, settings):
            secret = fake.calls("setWebhook")[0]["secret_token"]
    finally:
        logging.getLogger().handlers.clear()
    logged = capfd.readouterr().err
    assert len(secret) == 64 and fake.token not in secret
    assert "setWebhook" in logged and secret not in logged and fake.token not in logged


@pytest.mark.slow
async def test_a_replica_restarting_while_updates_arrive_loses_none(fake: FakeBotApi, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_URL": fake.api_url, "WEBHOOK_URL": URL,
           "WEBHOOK_SECRET": SECRET, "PORT": str(port), "WEBHOOK_LISTEN": "127.0.0.1",
           "DATABASE_URL": f"sqlite:///{tmp_path}/bot.sqlite3", "CONTENT_DIR": str(CONTENT),
           "CONTENT_HISTORY_DIR": str(tmp_path / "history"), "WATCH_CONTENT": "false"}

    async def start() -> asyncio.subprocess.Process:
        with (tmp_path / "bot.log").open("ab") as log:
            return await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", cwd=ROOT, env=env,
                                                        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)

    async def deliver(session: aiohttp.ClientSession, update: dict[str, object]) -> None:
        """Like Telegram: keep re-sending an update until the webhook answers 200."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if await post(session, port, update, SECRET) == 200:
                    return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"update {update['update_id']} was never accepted")

    replica = await start()
    chats = range(1001, 1061)
    try:
        async with aiohttp.ClientSession() as session:
            for number, chat in enumerate(chats):
                update = fake.command_update("/latest 1", chat_id=chat, user_id=chat)
                update["update_id"] = number + 1
                if number == 25:  # the replica dies while updates keep coming, and comes back
                    replica.send_signal(signal.SIGKILL)
                    await replica.wait()
                    replica = await start()
                await deliver(session, update)
        await fake.wait_for("sendMessage", count=len(chats), timeout=30)
    finally:
        replica.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(replica.wait(), 30) == 0
    answered = {int(message["chat_id"]) for message in fake.sent_messages()}
    assert answered == set(chats)  # every update got its answer; none was lost in the restart
