"""Webhook mode: Telegram's POSTs with and without the secret, the health check, and a restart that loses nothing."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import shutil
import signal
import socket
import sys
import time
from pathlib import Path

import aiohttp
import pytest
from doubles.fake_bot_api import FakeBotApi
from harness import CONTENT, ROOT, FakeClock, e2e_settings, running_bot, texts

from bot.app import webhook_secret
from bot.core.subscriptions import IncomingClaim
from bot.logs import configure_logging
from bot.settings import Secret
from bot.store import StoreError
from bot.tg.webhook import MAX_UPDATE_BYTES, SECRET_HEADER

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


async def exchange(port: int, head: str, body: bytes = b"") -> bytes:
    """Send a request's headers (and the start of its body), then read what comes back until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.replace("\n", "\r\n").encode() + body)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 20)  # read() ends when the server closes
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    """The status of the one HTTP response in `answer`."""
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    return int(answer.split(b" ", 2)[1])


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
           "CONTENT_HISTORY_DIR": str(tmp_path / "history"), "WATCH_CONTENT": "false", "WATCH_SOURCES": "false"}

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


async def test_a_huge_post_is_refused_on_its_headers_and_the_connection_closed(
        fake: FakeBotApi, tmp_path: Path) -> None:
    """Only the headers are sent: a server that waited for the 95 MB body would never answer (nor close)."""
    port = free_port()
    settings = e2e_settings(fake, tmp_path, webhook_url=URL, port=port, webhook_listen="127.0.0.1",
                            webhook_secret=Secret(SECRET))
    huge = "POST /telegram HTTP/1.1\nHost: bot\nContent-Type: application/json\nContent-Length: 95000000\n"
    async with running_bot(fake, settings):
        without_secret = await exchange(port, huge + "\n")
        with_secret = await exchange(port, huge + f"{SECRET_HEADER}: {SECRET}\n\n")
        elsewhere = await exchange(port, huge.replace("/telegram", "/elsewhere") + "\n")
        small = json.dumps({**fake.command_update("/about", chat_id=811, user_id=811),
                            "update_id": next(_next_update_id)}).encode()
        fine = await exchange(port, f"POST /telegram HTTP/1.1\nHost: bot\nContent-Length: {len(small)}\n"
                                    f"{SECRET_HEADER}: {SECRET}\nConnection: close\n\n", small)
    assert status_of(without_secret) == 403 and status_of(with_secret) == 413
    assert b"at most 1048576 bytes" in with_secret
    assert status_of(elsewhere) == 400  # any other path: tornado's own limit, before buffering the body
    assert status_of(fine) == 200 and "HK AI Pulse" in texts(fake, 811)[0]


async def test_a_chunked_post_is_cut_off_at_the_cap(fake: FakeBotApi, tmp_path: Path) -> None:
    """A chunked body announces no length: it is read up to the cap, then refused, the rest never read."""
    port = free_port()
    settings = e2e_settings(fake, tmp_path, webhook_url=URL, port=port, webhook_listen="127.0.0.1",
                            webhook_secret=Secret(SECRET))
    update = json.dumps({**fake.command_update("/about", chat_id=812, user_id=812),
                         "update_id": next(_next_update_id)}).encode()
    padded = update + b" " * (MAX_UPDATE_BYTES + 100 - len(update))  # valid JSON, a little over the cap
    head = f"POST /telegram HTTP/1.1\nHost: bot\n{SECRET_HEADER}: {SECRET}\nTransfer-Encoding: chunked\n\n"
    async with running_bot(fake, settings):
        # One chunk announced as 95 MB, of which only a bit over the cap is sent.
        answer = await exchange(port, head, f"{95_000_000:x}\r\n".encode() + padded)
        # The same body in small chunks, complete: still over the cap.
        chunks = b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
                          for piece in (padded[i:i + 8192] for i in range(0, len(padded), 8192)))
        small_chunks = await exchange(port, head, chunks + b"0\r\n\r\n")
    assert status_of(answer) == 413 and status_of(small_chunks) == 413
    assert texts(fake, 812) == []


@pytest.mark.parametrize("body", [
    b"[]", b"null", b"1", b'"x"', b'{"message": "hi"}', b'{"update_id": "5"}', b'{"update_id": true}',
    b'{"update_id": -1}', b'{"update_id": 1e3}', b'{"update_id": 5, "message": "hi"}',
    b'{"update_id": 5, "message": {"text": "no chat, no date"}}', b'{"update_id": 5, "x": "\xff\xfe"}',
    b"\xff\xfe\xfd", b"[" * 100_000, b"{not json",
], ids=lambda body: body[:24].decode("latin-1"))
async def test_a_body_that_is_not_an_update_gets_400_without_a_traceback(
        fake: FakeBotApi, tmp_path: Path, caplog: pytest.LogCaptureFixture, body: bytes) -> None:
    port = free_port()
    settings = e2e_settings(fake, tmp_path, webhook_url=URL, port=port, webhook_listen="127.0.0.1",
                            webhook_secret=Secret(SECRET))
    async with running_bot(fake, settings), aiohttp.ClientSession() as session:
        async with session.post(f"http://127.0.0.1:{port}/telegram", data=body,
                                headers={SECRET_HEADER: SECRET}) as answer:
            status, reply = answer.status, await answer.json()
        valid = await post(session, port, fake.command_update("/about", chat_id=813, user_id=813), SECRET)
    assert (status, reply["ok"]) == (400, False) and reply["description"].startswith("malformed update")
    assert valid == 200 and "HK AI Pulse" in texts(fake, 813)[0]  # the server goes on serving
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
    assert {int(message["chat_id"]) for message in fake.sent_messages()} == {813}  # the refused one did nothing


async def test_an_update_posted_again_is_processed_once(fake: FakeBotApi, tmp_path: Path) -> None:
    port = free_port()
    settings = e2e_settings(fake, tmp_path, webhook_url=URL, port=port, webhook_listen="127.0.0.1",
                            webhook_secret=Secret(SECRET))
    again = fake.command_update("/about", chat_id=821, user_id=821)
    at_once = fake.command_update("/about", chat_id=822, user_id=822)
    async with running_bot(fake, settings), aiohttp.ClientSession() as session:
        assert [await post(session, port, again, SECRET) for _ in range(2)] == [200, 200]
        fake.latency = 0.3  # the first request is still processing when the others arrive
        statuses = await asyncio.gather(*(post(session, port, at_once, SECRET) for _ in range(4)))
        fake.latency = 0.0
    assert statuses == [200] * 4
    assert len(texts(fake, 821)) == 1 and len(texts(fake, 822)) == 1


async def test_an_update_held_by_another_replica_waits_for_its_outcome(fake: FakeBotApi, tmp_path: Path) -> None:
    """Another replica claimed the update: done there means not again here; dead there means processed here."""
    port = free_port()
    settings = e2e_settings(fake, tmp_path, webhook_url=URL, port=port, webhook_listen="127.0.0.1",
                            webhook_secret=Secret(SECRET))
    clock = FakeClock()
    finished_there = fake.command_update("/about", chat_id=831, user_id=831)
    died_there = fake.command_update("/about", chat_id=832, user_id=832)
    async with running_bot(fake, settings, clock) as runtime, aiohttp.ClientSession() as session:
        store = runtime.store
        for update in (finished_there, died_there):
            update["update_id"] = next(_next_update_id)
            assert await store.claim_incoming(int(update["update_id"]), "replica-2", clock(), 60) is IncomingClaim.NEW
        first = asyncio.ensure_future(post(session, port, finished_there, SECRET))
        second = asyncio.ensure_future(post(session, port, died_there, SECRET))
        await asyncio.sleep(1.0)
        assert not first.done() and not second.done()  # both wait for replica-2
        await store.finish_incoming(int(finished_there["update_id"]), clock())
        assert await asyncio.wait_for(first, 20) == 200
        clock.advance(seconds=61)  # replica-2's lease runs out: it died
        assert await asyncio.wait_for(second, 20) == 200
    assert texts(fake, 831) == []  # processed by replica-2, not again
    assert "HK AI Pulse" in texts(fake, 832)[0]


async def test_updates_are_still_processed_while_the_database_cannot_say_whether_they_were_before(
        fake: FakeBotApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    settings = e2e_settings(fake, tmp_path, webhook_url=URL, port=port, webhook_listen="127.0.0.1",
                            webhook_secret=Secret(SECRET))
    async with running_bot(fake, settings) as runtime, aiohttp.ClientSession() as session:

        async def unreachable(*args: object) -> IncomingClaim:
            raise StoreError("connection refused")

        monkeypatch.setattr(runtime.store, "claim_incoming", unreachable)  # the database is away
        assert await post(session, port, fake.command_update("/about", chat_id=841, user_id=841), SECRET) == 200
    assert "HK AI Pulse" in texts(fake, 841)[0]
    assert any("cannot tell whether update" in record.getMessage() for record in caplog.records)


async def test_an_update_whose_processing_failed_is_processed_when_posted_again(
        fake: FakeBotApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    settings = e2e_settings(fake, tmp_path, webhook_url=URL, port=port, webhook_listen="127.0.0.1",
                            webhook_secret=Secret(SECRET))
    update = fake.command_update("/about", chat_id=851, user_id=851)
    async with running_bot(fake, settings) as runtime, aiohttp.ClientSession() as session:
        assert runtime.application is not None
        process = runtime.application.process_update

        async def fails_once(incoming: object) -> None:
            monkeypatch.setattr(runtime.application, "process_update", process)
            raise RuntimeError("the process is going down")

        monkeypatch.setattr(runtime.application, "process_update", fails_once)
        assert await post(session, port, update, SECRET) == 500  # not acknowledged: Telegram posts it again
        again = await asyncio.wait_for(post(session, port, update, SECRET), 20)  # its claim was given up
    assert again == 200 and "HK AI Pulse" in texts(fake, 851)[0]


@pytest.mark.postgres
async def test_an_update_posted_to_two_replicas_at_once_is_processed_once(
        fake: FakeBotApi, tmp_path: Path, postgres_db_url: str) -> None:
    ports = [free_port(), free_port()]
    replicas = []
    for name, port in zip("ab", ports, strict=True):
        shutil.copytree(CONTENT, tmp_path / name / "content")
        replicas.append(e2e_settings(fake, tmp_path / name, webhook_url=URL, port=port, webhook_listen="127.0.0.1",
                                     webhook_secret=Secret(SECRET), database_url=postgres_db_url,
                                     content_dir=tmp_path / name / "content",
                                     content_history_dir=tmp_path / name / "history", watch_content=False))
    update = fake.command_update("/about", chat_id=861, user_id=861)
    update["update_id"] = next(_next_update_id)
    async with (running_bot(fake, replicas[0]), running_bot(fake, replicas[1]),
                aiohttp.ClientSession() as session):
        fake.latency = 0.3  # the first is still processing when the others arrive
        statuses = await asyncio.gather(*(post(session, port, update, SECRET) for port in ports * 2))
        fake.latency = 0.0
    assert statuses == [200] * 4
    assert len(texts(fake, 861)) == 1


async def test_webhook_updates_of_one_chat_are_handled_one_after_another(fake: FakeBotApi, tmp_path: Path) -> None:
    # Posted at once, as Telegram may over several connections: the second's reply must not start before the
    # first's is answered, the same per-chat order long polling keeps.
    port = free_port()
    settings = e2e_settings(fake, tmp_path, webhook_url=URL, port=port, webhook_listen="127.0.0.1",
                            webhook_secret=Secret(SECRET))
    async with running_bot(fake, settings), aiohttp.ClientSession() as session:
        fake.latency = 0.3
        commands = ("/about", "/help", "/sectors")
        statuses = await asyncio.gather(*(post(session, port, fake.command_update(text, chat_id=821, user_id=821),
                                                SECRET) for text in commands))
        fake.latency = 0.0
        assert statuses == [200, 200, 200]
        arrivals = sorted(rec.at for rec in fake.requests if rec.method == "sendMessage"
                          and rec.params.get("chat_id") in (821, "821"))
        assert len(arrivals) == len(commands)
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
        assert min(gaps) >= 0.3 * 0.9, gaps
