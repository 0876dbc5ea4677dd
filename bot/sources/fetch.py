"""Fetch a feed over HTTP (aiohttp): conditional GET, timeouts, a size cap read as a stream, a redirect limit.

Anything that goes wrong is a FetchError with a short reason for the source's state and /status; nothing else
escapes, so one source's failure never stops another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

BOT_NAME = "HKAIPulseBot/0.1"
CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True)
class FetchLimits:
    """How long and how much a fetch may take."""

    connect_seconds: float = 10.0
    read_seconds: float = 20.0  # between two reads of the body
    total_seconds: float = 60.0
    max_bytes: int = 5 * 1024 * 1024  # a feed is rarely over 1 MB; more is a mistake or an attack
    max_redirects: int = 5


@dataclass(frozen=True)
class Fetched:
    """A feed's response: 200 with its body, or 304 (not modified) with none."""

    status: int
    body: bytes
    content_type: str | None
    etag: str | None
    last_modified: str | None


class FetchError(Exception):
    """Why a fetch failed, in a few words ("HTTP 404", "timed out", "over 5242880 bytes")."""


def user_agent(contact: str) -> str:
    """The User-Agent naming the bot and how to reach its operator: `HKAIPulseBot/0.1 (+@operator)`."""
    contact = " ".join(contact.split())
    return f"{BOT_NAME} (+{contact})" if contact else f"{BOT_NAME} (Hong Kong AI news bot)"


@asynccontextmanager
async def feed_session(contact: str, limits: FetchLimits = FetchLimits()) -> AsyncIterator[FeedFetcher]:
    """A fetcher with its own HTTP session, closed on exit."""
    timeout = aiohttp.ClientTimeout(total=limits.total_seconds, sock_connect=limits.connect_seconds,
                                    sock_read=limits.read_seconds)
    headers = {"User-Agent": user_agent(contact), "Accept": "application/rss+xml, application/atom+xml, "
                                                             "application/xml;q=0.9, text/xml;q=0.9, "
                                                             "text/html;q=0.8, */*;q=0.1"}
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        yield FeedFetcher(session, limits)


class FeedFetcher:
    """Fetches feeds through one session."""

    def __init__(self, session: aiohttp.ClientSession, limits: FetchLimits) -> None:
        self.session = session
        self.limits = limits

    async def fetch(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> Fetched:
        """GET the feed, conditionally when an ETag or Last-Modified is known; raise FetchError on any failure."""
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        try:
            async with self.session.get(url, headers=headers, max_redirects=self.limits.max_redirects) as response:
                if response.status == 304:
                    return Fetched(304, b"", None, etag, last_modified)
                if response.status != 200:
                    raise FetchError(f"HTTP {response.status}")
                body = await self._body(response)
                return Fetched(200, body, response.headers.get("Content-Type"), response.headers.get("ETag"),
                               response.headers.get("Last-Modified"))
        except aiohttp.TooManyRedirects:
            raise FetchError(f"more than {self.limits.max_redirects} redirects") from None
        except TimeoutError:
            raise FetchError("timed out") from None
        except aiohttp.ClientResponseError as exc:
            raise FetchError(f"bad response ({exc.message})") from None
        except aiohttp.ClientError as exc:
            raise FetchError(f"{type(exc).__name__}: {' '.join(str(exc).split())[:120]}") from None

    async def _body(self, response: aiohttp.ClientResponse) -> bytes:
        cap = self.limits.max_bytes
        if response.content_length is not None and response.content_length > cap:
            raise FetchError(f"response of {response.content_length} bytes is over the {cap}-byte cap")
        chunks: list[bytes] = []
        size = 0
        # Read as a stream and stop at the cap: a server may send far more than it announced, or announce nothing.
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            size += len(chunk)
            if size > cap:
                raise FetchError(f"response over the {cap}-byte cap; cut off")
            chunks.append(chunk)
        return b"".join(chunks)
