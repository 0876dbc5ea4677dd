"""What the web server's POST handlers share (Telegram's webhook, Slack's events): a body read in pieces and
refused on its headers, or as soon as it grows, past a cap; so a request never holds more than the cap in memory."""

from __future__ import annotations

import sys

from tornado.http1connection import HTTP1Connection
from tornado.web import RequestHandler

# Why 1 MiB: a Telegram update or a Slack event is a few KB, tens of KB at the extreme. A refused request is lost
# for good, so the cap leaves a wide margin for what the platforms do not bound; it still bounds what one request
# may hold in memory.
MAX_BODY_BYTES = 1024 * 1024


class CappedBodyHandler(RequestHandler):
    """A streamed POST body of at most `max_body` bytes (decorate the subclass with tornado's
    `stream_request_body`). Subclasses check their own headers in `prepare` first, then call `check_length`."""

    max_body = MAX_BODY_BYTES
    what = "a request"  # in the 413's description: "a request is at most N bytes"
    error_key = "description"  # the JSON field of a refusal's reason

    def initialize(self) -> None:
        self.body = bytearray()

    def check_length(self) -> None:
        """Refuse on the declared length alone (400 unreadable, 413 too large); a chunked body announces none and
        is counted in data_received instead of by tornado (whose own limit would answer a bare 400)."""
        declared = self.request.headers.get("Content-Length")
        if declared is None:
            if isinstance(self.request.connection, HTTP1Connection):
                self.request.connection.set_max_body_size(sys.maxsize)
            return
        lengths = {piece.strip() for piece in declared.split(",")}  # proxies may repeat the header
        if len(lengths) != 1 or not (length := lengths.pop()).isdigit():
            self.refuse(400, "bad Content-Length")
        elif int(length) > self.max_body:
            self.refuse(413, f"{self.what} is at most {self.max_body} bytes")

    def data_received(self, chunk: bytes) -> None:
        """Keep the body, up to the cap."""
        if self._finished:
            return
        if len(self.body) + len(chunk) > self.max_body:
            self.refuse(413, f"{self.what} is at most {self.max_body} bytes")
            return
        self.body += chunk

    def refuse(self, status: int, description: str) -> None:
        """Answer an error with a short JSON reason and close the connection (answering in prepare makes tornado
        close it once the answer is out, instead of reading the body)."""
        self.set_status(status)
        self.set_header("Connection", "close")
        self.finish({"ok": False, self.error_key: description})
