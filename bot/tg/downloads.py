"""Files users send, downloaded under a size cap: streamed, and abandoned as soon as they pass it."""

from __future__ import annotations

import asyncio

import aiohttp
from telegram import File

CHUNK_BYTES = 64 * 1024
DOWNLOAD_TIMEOUT = aiohttp.ClientTimeout(total=60)


class DownloadFailed(Exception):
    """The file could not be fetched (the message never carries the download URL: it holds the token)."""


async def download_capped(telegram_file: File, limit: int) -> bytes | None:
    """The file's bytes, or None once it is found to be over `limit` bytes.

    Telegram may leave `file_size` out, so the size is checked while streaming, not trusted beforehand
    (PTB's own download reads the whole file into memory first).
    """
    location = telegram_file.file_path
    if not location:
        raise DownloadFailed("Telegram gave no file path to download")
    if not location.startswith(("http://", "https://")):
        # A self-hosted Bot API server in --local mode hands out paths on its own disk.
        return await asyncio.to_thread(_read_local, location, limit)
    # PTB's get_file made this `{base_file_url}{token}/{file_path}`, the server's file endpoint.
    async with aiohttp.ClientSession(timeout=DOWNLOAD_TIMEOUT) as session, session.get(location) as response:
        if response.status != 200:
            raise DownloadFailed(f"the file download answered HTTP {response.status}")
        if response.content_length is not None and response.content_length > limit:
            return None
        data = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            data += chunk
            if len(data) > limit:
                return None
        return bytes(data)


def _read_local(path: str, limit: int) -> bytes | None:
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    return None if len(data) > limit else data
