r"""An incremental decoder for streamed upstream bodies (SSE), and the encoder for the caller's stream.

Sans-I/O: ``feed(bytes) -> list[event]``. Byte boundaries may fall anywhere, including inside a UTF-8 sequence
or between ``\r`` and ``\n``, so undecoded bytes are carried to the next call (tests feed one byte at a time).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SSEEvent:
    """One server-sent event: ``event`` name (``""`` when absent) and its joined ``data`` lines."""

    event: str
    data: str


class SSEDecoder:
    """Decodes ``text/event-stream`` bytes per the WHATWG rules we rely on (event, data, comments)."""

    __slots__ = ("_buffer", "_data", "_event")

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Add bytes; return every event completed by them."""
        whole = None if self._buffer or self._data or self._event else _whole_event(chunk)
        if whole is not None:
            return [SSEEvent(whole[0].decode("utf-8", errors="replace"), whole[1].decode("utf-8", errors="replace"))]
        buffer, held = _normalized(self._buffer + chunk if self._buffer else chunk)
        end = buffer.rfind(b"\n")
        if end < 0:
            self._buffer = buffer + held
            return []
        self._buffer = buffer[end + 1 :] + held
        # One C-level decode and split for every complete line: cheaper per event than a find and a decode per
        # line, and never quadratic when one read brings many events. \n is never inside a UTF-8 sequence, so
        # decoding the lines together gives what decoding each would.
        events: list[SSEEvent] = []
        data = self._data
        name_ = self._event
        for line in buffer[:end].decode("utf-8", errors="replace").split("\n"):
            if not line:
                if data or name_:
                    events.append(SSEEvent(name_, "\n".join(data)))
                    data = []
                    name_ = ""
                continue
            if line[0] == ":":
                continue
            name, _, value = line.partition(":")
            if value[:1] == " ":
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                name_ = value
        self._data = data
        self._event = name_
        return events

    def flush(self) -> list[SSEEvent]:
        """End of stream: dispatch a last event that lacked its blank line."""
        events: list[SSEEvent] = []
        if self._buffer:
            event = self._line(self._buffer.rstrip(b"\r"))
            self._buffer = b""
            if event is not None:
                events.append(event)
        event = self._line(b"")
        if event is not None:
            events.append(event)
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        if not raw:
            if not self._data and not self._event:
                return None
            event = SSEEvent(self._event, "\n".join(self._data))
            self._event = ""
            self._data = []
            return event
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        return None


@dataclass(slots=True)
class SSEFrame:
    """One whole server-sent event as it came: its ``frame`` (ending in its blank line), to forward unchanged, and
    the ``event`` name and ``data`` (bytes) a forwarder looks at.
    """

    event: str
    data: bytes
    frame: bytes


class SSEFrameDecoder:
    """Splits ``text/event-stream`` bytes into whole events, each kept as its own bytes: for relaying a stream in
    the caller's own format without decoding and re-framing every event (the Responses pass-through).
    """

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SSEFrame]:
        """Add bytes; return every event completed by them."""
        whole = None if self._buffer else _whole_event(chunk)
        if whole is not None:  # the chunk is the frame
            return [SSEFrame(whole[0].decode("utf-8", errors="replace"), whole[1], chunk)]
        buffer, held = _normalized(self._buffer + chunk if self._buffer else chunk)
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self._buffer = buffer + held
            return []
        self._buffer = buffer[end + 2 :] + held
        frames: list[SSEFrame] = []
        for block in buffer[:end].split(b"\n\n"):
            frame = _frame(block)
            if frame is not None:
                frames.append(frame)
        return frames

    def flush(self) -> list[SSEFrame]:
        """End of stream: a last event that lacked its blank line."""
        block, self._buffer = self._buffer.rstrip(b"\r"), b""
        frame = _frame(block)
        return [] if frame is None else [frame]


def _frame(block: bytes) -> SSEFrame | None:
    """One event's lines (no blank line among them) → its frame; None for comments and blank lines only."""
    frame = block.strip(b"\n") + b"\n\n"
    whole = _whole_event(frame)
    if whole is not None:
        return SSEFrame(whole[0].decode("utf-8", errors="replace"), whole[1], frame)
    events = SSEDecoder().feed(frame)  # any other layout (comments, id lines, several data lines): read as SSE
    return SSEFrame(events[0].event, events[0].data.encode(), frame) if events else None


def _whole_event(chunk: bytes) -> tuple[bytes, bytes] | None:
    """``(name, data)`` of bytes that are exactly one event, one ``data:`` line perhaps after ``event:`` (as most
    reads of a stream are: read without splitting), else None.
    """
    if not chunk.endswith(b"\n\n") or b"\r" in chunk:
        return None
    lines = chunk.count(b"\n")
    if lines == 2 and chunk.startswith(b"data: "):
        return b"", chunk[6:-2]
    if lines == 3 and chunk.startswith(b"event: "):
        name, _, data = chunk.partition(b"\n")
        if data.startswith(b"data: "):
            return name[7:], data[6:-2]
    return None


def _normalized(buffer: bytes) -> tuple[bytes, bytes]:
    r"""``buffer`` with ``\r\n`` and lone ``\r`` line ends as ``\n``, and a trailing ``\r`` held back for the next read
    (it may be the first half of ``\r\n``).
    """
    if b"\r" not in buffer:
        return buffer, b""
    held = b""
    if buffer.endswith(b"\r"):
        buffer, held = buffer[:-1], b"\r"
    return buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n"), held


def encode_event(data: bytes) -> bytes:
    """One SSE ``data:`` event as OpenAI sends it."""
    return b"data: " + data + b"\n\n"


DONE = b"data: [DONE]\n\n"
