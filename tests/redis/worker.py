"""One process of a fleet sharing routing state: ``python -m tests.redis.worker '<json>'``.

The JSON names a router ``config``, ``calls`` (how many chat calls to make, one after the other) and optionally
their ``max_tokens``. The worker
builds its router, prints ``ready``, waits for a line on stdin (so the test starts all workers at once), makes its
calls through the openai SDK, and prints one JSON line: per call, the deployment that answered or the error status.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import openai

from polyroute import Router


def main() -> None:
    spec: dict[str, Any] = json.loads(sys.argv[1])
    router = Router(spec["config"])
    client = router.openai_client()
    extra: dict[str, Any] = {"max_tokens": spec["max_tokens"]} if "max_tokens" in spec else {}
    print("ready", flush=True)
    sys.stdin.readline()
    served: list[str] = []
    for _ in range(spec["calls"]):
        try:
            raw = client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "hi"}], **extra
            )
            served.append(raw.headers["x-polyroute-deployment"])
        except openai.APIStatusError as exc:
            served.append(str(exc.status_code))
    router.close()  # sends the outcomes still queued for the shared state
    print(json.dumps(served), flush=True)


if __name__ == "__main__":
    main()
