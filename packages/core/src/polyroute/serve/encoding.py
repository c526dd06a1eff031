"""Compressed request bodies (``content-encoding: gzip`` or ``deflate``), decoded before anything reads them.

Clients compress what they send when the body is large and mostly text: a coding agent's conversation resent each
turn (Codex CLI zstd-compresses its Responses bodies to OpenAI's own backend: openai/codex,
``codex-rs/core/src/client.rs``, ``responses_request_compression``). gzip and deflate need only ``zlib``; a coding
this server cannot decode (``br``, ``zstd``) is a 415 that names it and lists the ones it takes (RFC 9110 §15.5.16:
the ``accept-encoding`` response header), never a JSON parse error about byte 0x8b. What a body inflates to is held
to the same limit as a plain body, so a small zip bomb is a 413, found without inflating more than the limit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

ACCEPTED = "gzip, deflate"
"""The codings decoded here, as the ``accept-encoding`` header of a 415 lists them."""

_WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
"""zlib's window bits per coding: gzip's header and trailer, or deflate's zlib wrapper (RFC 9110 §8.4.1)."""


class BodyEncodingError(Exception):
    """A body that cannot be decoded: ``status`` (400, 413 or 415), ``code`` and a message that says what to send."""

    def __init__(self, status: int, message: str, code: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def codings(values: Iterable[bytes]) -> list[str]:
    """The codings of ``content-encoding`` header values, in the order they were applied (``identity`` left out)."""
    found: list[str] = []
    for value in values:
        for coding in value.decode("latin-1").split(","):
            coding = coding.strip().lower()
            if coding and coding != "identity":
                found.append(coding)
    return found


def decode(body: bytes, applied: list[str], limit: int) -> bytes:
    """``body`` with ``applied`` codings undone, last applied first; at most ``limit`` bytes once decoded.

    Raises:
        BodyEncodingError: a coding not decoded here (415), a body that is not what its coding says (400), or one
            that inflates past ``limit`` (413).
    """
    unknown = [coding for coding in applied if coding not in _WBITS]
    if unknown:
        raise BodyEncodingError(
            415,
            f"content-encoding {', '.join(unknown)} is not supported: send the request body as plain JSON (no "
            "content-encoding), or compressed with gzip or deflate",
            "unsupported_content_encoding",
        )
    for coding in reversed(applied):
        body = _inflate(body, coding, limit)
    return body


def _inflate(data: bytes, coding: str, limit: int) -> bytes:
    wbits = _WBITS[coding]
    parts: list[bytes] = []
    size = 0
    while True:  # a gzip body may hold several members, one after the other
        inflater = zlib.decompressobj(wbits)
        try:
            chunk = inflater.decompress(data, limit - size + 1)  # never more than one byte past the limit
        except zlib.error as exc:
            if coding == "deflate" and wbits > 0:  # raw deflate, without the zlib wrapper: some clients send it
                wbits = -zlib.MAX_WBITS
                continue
            raise _corrupt(coding, str(exc)) from None
        size += len(chunk)
        if size > limit:
            raise BodyEncodingError(
                413, f"the request body is larger than {limit} bytes once decompressed ({coding})", None
            )
        parts.append(chunk)
        if not inflater.eof:
            raise _corrupt(coding, "the compressed data ends early")
        data = inflater.unused_data
        if not data:
            return b"".join(parts)
        if coding == "deflate":
            raise _corrupt(coding, "data after the end of the compressed stream")


def _corrupt(coding: str, why: str) -> BodyEncodingError:
    return BodyEncodingError(
        400,
        f"the request body is not valid {coding} data (content-encoding: {coding}): {why}; send it as plain JSON or "
        f"as one whole {coding} stream",
        "invalid_content_encoding",
    )
