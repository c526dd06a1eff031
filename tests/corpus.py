"""Loading the recorded provider traffic in tests/fixtures (copies of ../shared/corpus, see fixtures/README.md)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Interaction:
    """One recorded request/response pair."""

    method: str
    uri: str
    request_body: Any
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The response body as JSON."""
        return json.loads(self.body)


def load_cassette(path: Path) -> list[Interaction]:
    """A VCR cassette's interactions; ``parsed_body`` re-serialized, gzip bodies decoded."""
    raw_text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text(encoding="utf-8")
    data = yaml.safe_load(raw_text)
    out: list[Interaction] = []
    for item in data["interactions"]:
        request, response = item["request"], item["response"]
        headers = {k.lower(): (v[0] if isinstance(v, list) else v) for k, v in (response.get("headers") or {}).items()}
        if response.get("parsed_body") is not None:
            body = json.dumps(response["parsed_body"]).encode()
        else:
            raw = (response.get("body") or {}).get("string", b"")
            body = raw if isinstance(raw, bytes) else raw.encode()
            if headers.get("content-encoding") == "gzip" or body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
        request_body = request.get("parsed_body")
        if request_body is None and isinstance(request.get("body"), str | bytes) and request.get("body"):
            try:
                request_body = json.loads(request["body"])
            except ValueError:
                request_body = request["body"]
        out.append(
            Interaction(request["method"], request["uri"], request_body, response["status"]["code"], headers, body)
        )
    return out
