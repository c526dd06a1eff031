"""What a router returned that clients drop: the thinking behind each tool call, kept to give it back.

Anthropic wants a tool loop's last assistant turn to start with the signed thinking blocks it returned; Gemini 3
wants each step's first ``functionCall`` back with its ``thoughtSignature``. Many clients (AutoGen, ag2,
openai-agents, pydantic-ai, langchain-openai) resend an assistant turn as plain ``{role, content, tool_calls}``.
The router saw every answer it translated, so adapters record the blocks / signatures here by tool-call id when
they parse an answer or a stream, and re-attach them when a turn comes back without them.

The Responses API's reasoning items sent back by id alone are given their state from the stored response the id
names (:func:`polyroute.responses.store.stored_reasoning`); what was read there is remembered here too (by the
turn's tool-call ids, as if this process had answered it, or by the item's id), so each is read once.

One store per :class:`~polyroute.router.Router`, shared by its targets; bounded (least recently used entries go
first), so a long-running process keeps the recent conversations and a bounded amount of memory. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

MAX_ENTRIES = 4096
"""Tool-call ids remembered (a turn with parallel calls takes one entry per call, sharing its blocks)."""

MAX_CHARS = 32_000_000
"""Characters of thinking text and signatures remembered, about 32 MB: thinking blocks can be long."""

Blocks = tuple[Mapping[str, Any], ...]


class _Reasoning(NamedTuple):
    blocks: Blocks
    signature: str


def _chars(blocks: Blocks) -> int:
    return sum(len(str(b.get("thinking") or "")) + len(str(b.get("signature") or b.get("data") or "")) for b in blocks)


class ThinkingStore:
    """A bounded LRU map: (provider kind, tool-call id) → the thinking blocks or thought signature of that call;
    (``"reasoning"``, reasoning item id) → its state read from the response store.
    """

    __slots__ = ("_chars", "_entries", "_lock", "max_chars", "max_entries")

    def __init__(self, max_entries: int = MAX_ENTRIES, max_chars: int = MAX_CHARS) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: OrderedDict[tuple[str, str], tuple[object, int]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ThinkingStore(entries={len(self._entries)}, max_entries={self.max_entries})"

    def remember_blocks(self, call_ids: Sequence[str], blocks: Sequence[Mapping[str, Any]]) -> None:
        """Anthropic: the (redacted) thinking blocks of the assistant turn that made these tool calls."""
        if not call_ids or not blocks:
            return
        frozen: Blocks = tuple(dict(b) for b in blocks)
        size = _chars(frozen)
        for call_id in call_ids:
            self._put(("anthropic", call_id), frozen, size)

    def blocks_for(self, call_ids: Sequence[str]) -> list[dict[str, Any]] | None:
        """The thinking blocks recorded for the first of these tool calls that has some, as fresh dicts."""
        for call_id in call_ids:
            found = self._get(("anthropic", call_id))
            if isinstance(found, tuple):
                return [dict(block) for block in found]  # pyright: ignore[reportUnknownArgumentType, reportUnknownVariableType]
        return None

    def remember_signature(self, call_id: str, signature: str) -> None:
        """Gemini: the ``thoughtSignature`` a ``functionCall`` came with."""
        if call_id and signature:
            self._put(("gemini", call_id), signature, len(signature))

    def signature_for(self, call_id: str) -> str | None:
        """The signature recorded for a Gemini tool call, if still known."""
        found = self._get(("gemini", call_id))
        return found if isinstance(found, str) else None

    def remember_reasoning(self, item_id: str, blocks: Sequence[Mapping[str, Any]], signature: str) -> None:
        """A Responses reasoning item's state as the response store had it (its thinking blocks, its thought
        signature; neither: it had none), kept decoded (an item is given its state on every turn that sends it back).
        """
        frozen = _Reasoning(tuple(dict(b) for b in blocks), signature)
        self._put(("reasoning", item_id), frozen, _chars(frozen.blocks) + len(signature))

    def reasoning_for(self, item_id: str) -> dict[str, Any] | None:
        """What :meth:`remember_reasoning` kept for a reasoning item, as fresh state (``{}``: none), if still known."""
        found = self._get(("reasoning", item_id))
        if not isinstance(found, _Reasoning):
            return None
        state: dict[str, Any] = {}
        if found.blocks:
            state["thinking_blocks"] = [dict(block) for block in found.blocks]
        if found.signature:
            state["thought_signature"] = found.signature
        return state

    def _put(self, key: tuple[str, str], value: object, size: int) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._chars -= old[1]
            self._entries[key] = (value, size)
            self._chars += size
            while self._entries and (len(self._entries) > self.max_entries or self._chars > self.max_chars):
                _, (_, dropped) = self._entries.popitem(last=False)
                self._chars -= dropped

    def _get(self, key: tuple[str, str]) -> object | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]
