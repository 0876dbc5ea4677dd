"""A local HTTP server of feeds in the shapes official sources publish, and of every way a source can go wrong.

`FeedServer` serves what a test adds (`server.add("/gov/en.xml", body, etag="v1")`) with conditional GET, and
fixed fault routes: `/fault/huge` (50 MB, chunked), `/fault/loop` (redirects to itself), `/fault/slow` (answers
after 30 s, or when the server closes), `/fault/404`, `/fault/500`. It records each request's headers.
No test reaches the network.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime

from aiohttp import web

HUGE_BYTES = 50 * 1024 * 1024


@dataclass
class Served:
    """A response the server gives for one path."""

    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    etag: str | None = None
    last_modified: str | None = None


@dataclass
class FeedServer:
    """Serves feeds and faults on 127.0.0.1; start() it, use url(path), close() it."""

    routes: dict[str, Served] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    huge_sent: int = 0  # bytes of /fault/huge actually sent before the client hung up
    port: int = 0
    _runner: web.AppRunner | None = None
    _closing: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, path: str, body: bytes | str, content_type: str = "application/rss+xml; charset=utf-8",
            etag: str | None = None, last_modified: str | None = None) -> str:
        """Serve `body` at `path`; returns its URL."""
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Served(data, content_type, etag, last_modified)
        return self.url(path)

    def url(self, path: str) -> str:
        """The full URL of a path on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> None:
        """Listen on a free port."""
        app = web.Application()
        app.router.add_get("/fault/huge", self._huge)
        app.router.add_get("/fault/loop", self._loop)
        app.router.add_get("/fault/slow", self._slow)
        app.router.add_get("/fault/404", self._status(404))
        app.router.add_get("/fault/500", self._status(500))
        app.router.add_get("/{path:.*}", self._served)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def close(self) -> None:
        """Stop listening."""
        self._closing.set()  # let /fault/slow end, or the cleanup would wait for it
        if self._runner is not None:
            await self._runner.cleanup()

    def headers_for(self, path: str) -> list[dict[str, str]]:
        """The headers of each request made for a path."""
        return [headers for seen, headers in self.requests if seen == path]

    def _record(self, request: web.Request) -> None:
        self.requests.append((request.path, dict(request.headers)))

    async def _served(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        served = self.routes.get(request.path)
        if served is None:
            return web.Response(status=404, text="not found")
        fresh = ((served.etag is not None and request.headers.get("If-None-Match") == served.etag)
                 or (served.last_modified is not None
                     and request.headers.get("If-Modified-Since") == served.last_modified))
        headers = {}
        if served.etag:
            headers["ETag"] = served.etag
        if served.last_modified:
            headers["Last-Modified"] = served.last_modified
        if fresh:
            return web.Response(status=304, headers=headers)
        return web.Response(body=served.body, headers={**headers, "Content-Type": served.content_type})

    async def _huge(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        response = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        response.enable_chunked_encoding()  # no Content-Length: the client must count for itself
        await response.prepare(request)
        chunk = b"<rss><channel>" + b" " * (1024 * 1024 - 14)
        try:
            while self.huge_sent < HUGE_BYTES:
                await response.write(chunk)
                self.huge_sent += len(chunk)
                chunk = b" " * (1024 * 1024)
        except (ConnectionResetError, RuntimeError):
            pass  # the client stopped reading at its cap
        return response

    async def _loop(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        raise web.HTTPFound(location="/fault/loop")

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        self._record(request)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), 30)
        return web.Response(text="too late")

    def _status(self, status: int):  # type: ignore[no-untyped-def]
        async def handler(request: web.Request) -> web.StreamResponse:
            self._record(request)
            return web.Response(status=status, text=f"status {status}")
        return handler


def http_date(moment: datetime) -> str:
    """An RFC 2822 date as RSS and HTTP write it."""
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def gov_rss(items: list[tuple[str, str, datetime, str]], *, language: str = "en", encoding: str = "UTF-8") -> str:
    """An RSS 2.0 feed shaped like the government's press releases (info.gov.hk/gia/rss/general_en.xml).

    Each item is (title, link, published, description HTML).
    """
    title = "Press Releases" if language == "en" else "新聞公報"
    parts = [f'<?xml version="1.0" encoding="{encoding}"?>\n<rss version="2.0">\n<channel>\n'
             f"<title>{title}</title>\n<link>https://www.info.gov.hk/gia/general/today.htm</link>\n"
             f"<description>{title}</description>\n<language>{'en' if language == 'en' else 'zh-tw'}</language>\n"]
    for item_title, link, published, description in items:
        parts.append(f"<item>\n<title><![CDATA[{item_title}]]></title>\n<link>{link}</link>\n"
                     f"<guid isPermaLink=\"true\">{link}</guid>\n<pubDate>{http_date(published)}</pubDate>\n"
                     f"<description><![CDATA[{description}]]></description>\n</item>\n")
    parts.append("</channel>\n</rss>\n")
    return "".join(parts)


def atom(items: list[tuple[str, str, datetime, str]], *, title: str = "Newsroom") -> str:
    """An Atom 1.0 feed, as university newsrooms publish. Each item is (title, link, updated, summary)."""
    parts = ['<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom">\n'
             f"<title>{title}</title>\n<id>urn:test:{title}</id>\n<updated>2026-12-01T00:00:00Z</updated>\n"]
    for index, (item_title, link, updated, summary) in enumerate(items):
        parts.append(f"<entry>\n<title type=\"html\">{item_title}</title>\n<link rel=\"alternate\" href=\"{link}\"/>\n"
                     f"<id>urn:test:{title}:{index}</id>\n<updated>{updated.isoformat()}</updated>\n"
                     f"<summary>{summary}</summary>\n</entry>\n")
    parts.append("</feed>\n")
    return "".join(parts)
