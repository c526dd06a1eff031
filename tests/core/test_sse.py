"""The incremental SSE decoder, fed bytes split at every awkward place."""

from __future__ import annotations

import pytest

from polyroute._sse import SSEDecoder, SSEEvent, SSEFrame, SSEFrameDecoder

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


def test_a_whole_event_after_a_pending_event_name() -> None:
    """A read that is one whole event, after a read that left an event name pending: the name does not leak into
    the next event (the decoder's one-event shortcut must not skip that state).
    """
    decoder = SSEDecoder()
    assert decoder.feed(b"event: a\n") == []
    assert decoder.feed(b"event: b\ndata: x\n\n") == [SSEEvent("b", "x")]
    assert decoder.feed(b"data: y\n\n") == [SSEEvent("", "y")]
    assert decoder.feed(b"event: c\ndata: z\n\n") == [SSEEvent("c", "z")]
    assert decoder.feed(b"data: a\n") == []  # a data line pending: the next read's event joins it
    assert decoder.feed(b"data: b\n\n") == [SSEEvent("", "a\nb")]


def frames_in_pieces(data: bytes, size: int) -> list[SSEFrame]:
    decoder = SSEFrameDecoder()
    frames: list[SSEFrame] = []
    for i in range(0, len(data), size):
        frames.extend(decoder.feed(data[i : i + size]))
    return frames + decoder.flush()


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13, 64, 10_000])
def test_frames_decode_to_the_same_events(size: int) -> None:
    """Each frame names its event and data as the decoder does, and the frames, forwarded as they are, decode to the
    same events (comments dropped, ``\\r`` line ends made ``\\n``).
    """
    frames = frames_in_pieces(STREAM, size)
    assert [SSEEvent(f.event, f.data.decode()) for f in frames] == EXPECTED
    forwarded = b"".join(f.frame for f in frames)
    assert b"\r" not in forwarded
    assert feed_in_pieces(forwarded, 1) == EXPECTED


def test_frames_at_every_split_point() -> None:
    for cut in range(1, len(STREAM)):
        decoder = SSEFrameDecoder()
        frames = decoder.feed(STREAM[:cut]) + decoder.feed(STREAM[cut:]) + decoder.flush()
        assert [SSEEvent(f.event, f.data.decode()) for f in frames] == EXPECTED, f"split at byte {cut}"


def test_a_read_of_one_whole_event_is_its_own_frame() -> None:
    """The usual read (one ``event:`` + ``data:`` event) comes back as the very bytes read, with no copy."""
    chunk = b'event: response.output_text.delta\ndata: {"delta":"h\xc3\xa9"}\n\n'
    (frame,) = SSEFrameDecoder().feed(chunk)
    assert frame.frame is chunk
    assert (frame.event, frame.data) == ("response.output_text.delta", b'{"delta":"h\xc3\xa9"}')


def test_frame_of_a_last_event_without_blank_line() -> None:
    decoder = SSEFrameDecoder()
    assert decoder.feed(b"event: done\ndata: tail") == []
    assert decoder.flush() == [SSEFrame("done", b"tail", b"event: done\ndata: tail\n\n")]
    assert decoder.flush() == []
