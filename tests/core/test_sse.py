"""The incremental SSE decoder, fed bytes split at every awkward place."""

from __future__ import annotations

import pytest

from polyroute._sse import SSEDecoder, SSEEvent

STREAM = (
    b": keep-alive comment\n\n"
    b'event: message_start\ndata: {"a": 1}\n\n'
    b"data: line one\r\ndata: line two\r\n\r\n"
    b"event: ping\rdata: {}\r\r" + 'data: {"text": "h\u00e9llo \U0001f600"}\n\n'.encode() + b"data: [DONE]\n\n"
)
EXPECTED = [
    SSEEvent("message_start", '{"a": 1}'),
    SSEEvent("", "line one\nline two"),
    SSEEvent("ping", "{}"),
    SSEEvent("", '{"text": "h\u00e9llo \U0001f600"}'),
    SSEEvent("", "[DONE]"),
]


def feed_in_pieces(data: bytes, size: int) -> list[SSEEvent]:
    decoder = SSEDecoder()
    events: list[SSEEvent] = []
    for i in range(0, len(data), size):
        events.extend(decoder.feed(data[i : i + size]))
    return events + decoder.flush()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 64, 10_000])
def test_any_split_gives_the_same_events(size: int) -> None:
    assert feed_in_pieces(STREAM, size) == EXPECTED


def test_every_single_split_point() -> None:
    for cut in range(1, len(STREAM)):
        decoder = SSEDecoder()
        events = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:]) + decoder.flush()
        assert events == EXPECTED, f"split at byte {cut}"


def test_last_event_without_blank_line_is_flushed() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: tail") == []
    assert decoder.flush() == [SSEEvent("", "tail")]


def test_data_without_space_and_unknown_fields() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 7\nretry: 10\ndata:x\n\n") == [SSEEvent("", "x")]
