r"""An incremental decoder for streamed upstream bodies (SSE), and the encoder for the caller's stream.

Sans-I/O: ``feed(bytes) -> list[event]``. Byte boundaries may fall anywhere, including inside a UTF-8 sequence
or between ``\r`` and ``\n``, so undecoded bytes are carried to the next call (tests feed one byte at a time).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
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
        buffer = self._buffer + chunk if self._buffer else chunk
        held = b""
        if b"\r" in buffer:
            if buffer.endswith(b"\r"):
                buffer, held = buffer[:-1], b"\r"  # a lone trailing \r may be the first half of \r\n
            buffer = buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
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


def encode_event(data: bytes) -> bytes:
    """One SSE ``data:`` event as OpenAI sends it."""
    return b"data: " + data + b"\n\n"


DONE = b"data: [DONE]\n\n"
