"""A scriptable HTTP server on 127.0.0.1 standing in for Yahoo and CoinGecko in tests.

Routes are matched on the request path (a regex) and optionally on query parameters. Each
route holds a queue of :class:`Reply` objects served in order; the last one is repeated. A
reply can stall (``delay``) to test client timeouts, or be any status, headers and body (HTML,
truncated JSON, ...). Every request is recorded with its path, query and headers so tests can
assert on what the client sent (and on what it must never send, such as an API key in a URL).

The server runs in a daemon thread and stops when the context manager exits; stalled handlers
are released at shutdown so nothing outlives the test.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

__all__ = ["FakeServer", "Reply", "Recorded", "json_reply", "text_reply"]


@dataclass
class Reply:
    """One canned HTTP answer."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to stall before answering
    cut_after: int | None = None  # announce the full length, send this many bytes, drop the connection


def json_reply(payload: object, status: int = 200, **headers: str) -> Reply:
    """A JSON answer."""
    return Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})


def text_reply(text: str, status: int = 200, content_type: str = "text/html", **headers: str) -> Reply:
    """A text (HTML by default) answer."""
    return Reply(status, text.encode(), {"Content-Type": f"{content_type}; charset=utf-8", **headers})


@dataclass
class Recorded:
    """A request the server received."""

    method: str
    host: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    raw_path: str
    at: float = field(default_factory=time.time)  # wall-clock time the request arrived


@dataclass
class _Route:
    pattern: re.Pattern[str]
    match_query: dict[str, str]
    replies: list[Reply | Callable[[Recorded], Reply]]
    hits: int = 0

    def matches(self, rec: Recorded) -> bool:
        if not self.pattern.fullmatch(rec.path):
            return False
        return all(rec.query.get(k, [None])[0] == v for k, v in self.match_query.items())

    def next_reply(self, rec: Recorded) -> Reply:
        reply = self.replies[min(self.hits, len(self.replies) - 1)]
        self.hits += 1
        return reply(rec) if callable(reply) else reply


class FakeServer:
    """A local HTTP server with scripted routes.

    Examples
    --------
    >>> with FakeServer() as srv:                                    # doctest: +SKIP
    ...     srv.route(r"/api/v3/ping", json_reply({"gecko_says": "(V3) To the Moon!"}))
    ...     requests.get(srv.url + "/api/v3/ping").json()
    """

    def __init__(self) -> None:
        self._routes: list[_Route] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.requests: list[Recorded] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # ----------------------------------------------------------- lifecycle
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and release stalled handlers."""
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -------------------------------------------------------------- routes
    def route(self, path_regex: str, *replies: Reply | Callable[[Recorded], Reply], query: dict[str, str] | None = None) -> None:
        """Add (or put in front) a route; replies are served in order, the last one repeats."""
        if not replies:
            raise ValueError("a route needs at least one reply")
        with self._lock:
            self._routes.insert(0, _Route(re.compile(path_regex), dict(query or {}), list(replies)))

    def reset(self) -> None:
        """Forget all routes and recorded requests."""
        with self._lock:
            self._routes.clear()
            self.requests.clear()

    def hits(self, path_regex: str) -> list[Recorded]:
        """Recorded requests whose path matches ``path_regex``."""
        pat = re.compile(path_regex)
        with self._lock:
            return [r for r in self.requests if pat.fullmatch(r.path)]

    def _dispatch(self, rec: Recorded) -> Reply:
        with self._lock:
            self.requests.append(rec)
            for route in self._routes:
                if route.matches(rec):
                    return route.next_reply(rec)
        return text_reply(f"no fake route for {rec.path}", status=404, content_type="text/plain")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                parts = urlsplit(self.path)
                rec = Recorded(
                    method=self.command,
                    host=self.headers.get("Host", ""),
                    path=parts.path,
                    query=parse_qs(parts.query, keep_blank_values=True),
                    headers={k: v for k, v in self.headers.items()},
                    raw_path=self.path,
                )
                reply = server._dispatch(rec)
                if reply.delay and server._stop.wait(reply.delay):
                    return
                try:
                    self.send_response(reply.status)
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if reply.cut_after is None:
                        self.wfile.write(reply.body)
                    else:
                        self.wfile.write(reply.body[: reply.cut_after])
                        self.wfile.flush()
                        self.close_connection = True
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = _serve
            do_POST = _serve

        return Handler
