"""httpx and httpx2 side by side.

openai 3.x is built on ``httpx2``, openai 2.x and several frameworks on ``httpx``. Their classes are distinct
(an ``httpx2.Client`` asserts its response stream is an ``httpx2.SyncByteStream``), so the router's transport and
byte stream subclass the bases of *every* importable family and answer each caller in its own library. Type
checkers see httpx names; the runtime bases are chosen here and nowhere else.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

try:  # pragma: no cover - depends on the environment
    import httpx2 as _httpx2
except ImportError:  # pragma: no cover
    _httpx2 = None
try:  # pragma: no cover - depends on the environment
    import httpx as _httpx
except ImportError:  # pragma: no cover
    _httpx = None

if _httpx2 is None and _httpx is None:  # pragma: no cover
    raise ImportError("polyroute needs httpx2 (Python 3.11+) or httpx: pip install httpx2")

LIBS: tuple[types.ModuleType, ...] = tuple(m for m in (_httpx2, _httpx) if m is not None)
"""Every HTTP library family importable here, httpx2 first."""

UPSTREAM: types.ModuleType = LIBS[0]
"""The library polyroute itself calls providers with: httpx2 where present (its async pool is ~2.6x faster)."""

if TYPE_CHECKING:
    import httpx

    Request = httpx.Request
    Response = httpx.Response
    BaseTransportBases = (httpx.BaseTransport, httpx.AsyncBaseTransport)
    ByteStreamBases = (httpx.SyncByteStream, httpx.AsyncByteStream)

    class TransportBase(httpx.BaseTransport, httpx.AsyncBaseTransport):
        """Both transport bases of every importable family (httpx names for type checkers)."""

    class ByteStreamBase(httpx.SyncByteStream, httpx.AsyncByteStream):
        """Both byte-stream bases of every importable family (httpx names for type checkers)."""

else:
    TransportBase = types.new_class(
        "TransportBase", tuple(b for m in LIBS for b in (m.BaseTransport, m.AsyncBaseTransport))
    )
    ByteStreamBase = types.new_class(
        "ByteStreamBase", tuple(b for m in LIBS for b in (m.SyncByteStream, m.AsyncByteStream))
    )


def library_of(request: Any) -> types.ModuleType:
    """The httpx family a request came from, so the answer is built in the caller's own library."""
    if _httpx2 is not None and isinstance(request, _httpx2.Request):
        return _httpx2
    assert _httpx is not None
    return _httpx


def timeout_exceptions() -> tuple[type[BaseException], ...]:
    """Timeout exception classes of every importable family."""
    return tuple(m.TimeoutException for m in LIBS)


def transport_exceptions() -> tuple[type[BaseException], ...]:
    """Transport-level (connection, protocol, timeout) exception classes of every importable family."""
    return tuple(m.TransportError for m in LIBS)


def decoding_exceptions() -> tuple[type[BaseException], ...]:
    """Errors of every importable family decoding a body its ``content-encoding`` names (gzip that is not gzip)."""
    return tuple(m.DecodingError for m in LIBS)
