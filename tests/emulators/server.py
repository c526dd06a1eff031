"""A real HTTP/1.1 server on 127.0.0.1 whose replies a test scripts, with faults.

Each :class:`Emulator` runs a threading server on a free loopback port. A handler (``Request -> Reply``) decides
each answer; :class:`Reply` can stream chunks (chunked transfer encoding, as providers do), delay the first byte,
pause between chunks, cut the connection mid-body, reset it, or hang. Every request is recorded for assertions.
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    """A request the emulator received."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    client: tuple[str, int] | None = None
    """The caller's address and port: one per connection (a pooled connection reused keeps its port)."""

    def json(self) -> Any:
        """The body as JSON."""
        return json.loads(self.body)


@dataclass
class Reply:
    """What to answer. ``chunks`` streams (chunked encoding); ``body`` answers in one piece."""

    status: int = 200
    body: bytes | str | dict[str, Any] | list[Any] = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunks: Iterable[bytes | str] | None = None
    first_byte_delay: float = 0.0
    chunk_delay: float = 0.0
    cut_after: int | None = None
    """Close the connection after this many chunks, without finishing the body (a cut stream)."""
    reset: bool = False
    """Reset the connection (RST) instead of answering."""
    hang: float = 0.0
    """Accept the request, then say nothing for this many seconds."""

    @classmethod
    def json(cls, body: Any, status: int = 200, **headers: str) -> Reply:
        """A JSON answer."""
        return cls(status=status, body=body, headers={k.replace("_", "-"): v for k, v in headers.items()})

    @classmethod
    def sse(cls, events: Iterable[str | bytes], **kwargs: Any) -> Reply:
        """A streamed ``text/event-stream`` answer, one chunk per given piece (a generator is read as it is sent,
        so it can pause mid-stream)."""
        pieces = events if isinstance(events, Iterator) else list(events)
        return cls(chunks=pieces, headers={"content-type": "text/event-stream"}, **kwargs)


Handler = Callable[[Request], Reply]


class Emulator:
    """A loopback HTTP server; use as a context manager or call :meth:`start` / :meth:`stop`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Request] = []
        self.open_connections = 0
        """Client connections open on the server side right now (to see that none is left behind)."""
        self._count_lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        assert self._server is not None, "emulator not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Emulator:
        """Start serving on a free port."""
        emulator = self

        class _Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                with emulator._count_lock:
                    emulator.open_connections += 1
                try:
                    while emulator._serve_one(self):
                        pass
                except OSError:  # the client reset the connection
                    pass
                finally:
                    with emulator._count_lock:
                        emulator.open_connections -= 1

        class _Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve_one(self, conn: socketserver.StreamRequestHandler) -> bool:
        line = conn.rfile.readline(65537)
        if not line:
            return False
        method, target, _ = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while True:
            raw = conn.rfile.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            name, _, value = raw.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        body = conn.rfile.read(length) if length else b""
        parts = urlsplit(target)
        request = Request(method, parts.path, parse_qs(parts.query), headers, body, conn.client_address[:2])
        self.requests.append(request)
        try:
            reply = self.handler(request)
        except Exception as exc:  # a broken test handler should be visible, not a hang
            reply = Reply.json({"error": {"message": f"emulator handler failed: {exc!r}"}}, status=599)
        return self._write(conn, reply)

    def _write(self, conn: socketserver.StreamRequestHandler, reply: Reply) -> bool:
        sock: socket.socket = conn.connection
        if reply.reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            return False
        if reply.hang:
            time.sleep(reply.hang)
            return False
        if reply.first_byte_delay:
            time.sleep(reply.first_byte_delay)
        headers = {k.lower(): v for k, v in reply.headers.items()}
        out = conn.wfile
        try:
            if reply.chunks is None:
                body = reply.body
                if isinstance(body, dict | list):
                    body = json.dumps(body).encode()
                    headers.setdefault("content-type", "application/json")
                elif isinstance(body, str):
                    body = body.encode()
                headers["content-length"] = str(len(body))
                out.write(_head(reply.status, headers) + body)
                out.flush()
                return True
            headers["transfer-encoding"] = "chunked"
            out.write(_head(reply.status, headers))
            out.flush()
            for i, chunk in enumerate(reply.chunks):
                if reply.cut_after is not None and i >= reply.cut_after:
                    out.flush()
                    sock.shutdown(socket.SHUT_RDWR)
                    return False
                if i and reply.chunk_delay:
                    time.sleep(reply.chunk_delay)
                data = chunk.encode() if isinstance(chunk, str) else chunk
                if data:
                    out.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                    out.flush()
            out.write(b"0\r\n\r\n")
            out.flush()
            return True
        except (BrokenPipeError, ConnectionResetError):  # the client went away (closed the stream early)
            return False


def _head(status: int, headers: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def sse_events(payloads: Iterable[Any], *, event_names: Iterable[str] | None = None) -> list[str]:
    """SSE text for each payload (JSON-encoded unless a string), with optional ``event:`` names."""
    names = list(event_names) if event_names is not None else None
    out: list[str] = []
    for i, payload in enumerate(payloads):
        data = payload if isinstance(payload, str) else json.dumps(payload)
        prefix = f"event: {names[i]}\n" if names else ""
        out.append(f"{prefix}data: {data}\n\n")
    return out
