"""The Responses store on Redis (#17, ``responses: {store: redis}``), against a real ``redis-server`` on loopback: a
conversation begun on one router goes on by ``previous_response_id`` on another (another process, as far as the
store can tell: each router has its own store), the stored-response paths answer from either, the store keeps its
bound, and a Redis that is down gives a clear 503 for a lookup and costs no answer.
"""

from __future__ import annotations

import itertools
import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest

from polyroute import Router
from polyroute.errors import ConfigError
from polyroute.state.redis_responses import response_keys
from tests.clients import matrix
from tests.core.test_responses import ONE, OTHER, Start, create, deployment, run, text_upstream, tool_loop
from tests.redis.server import RedisServer, cluster_nodes
from tests.redis.test_shared_state import ROOT


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


NewRouter = Callable[[dict[str, Any]], Router]


@pytest.fixture
def new_router() -> Iterator[NewRouter]:
    """Routers closed at teardown (their background threads end with the test, not at some later gc)."""
    made: list[Router] = []

    def new(config: dict[str, Any]) -> Router:
        made.append(Router(config))
        return made[-1]

    yield new
    for router in made:
        router.close()


def shared_config(url: str, server: RedisServer, prefix: str, **responses: Any) -> dict[str, Any]:
    """One model ``m`` on Claude (the emulator), responses kept on ``server`` under ``prefix``."""
    return {
        "models": [{"name": "m", "deployments": [deployment("anthropic", url)]}],
        "retry": {"backoff": 0},
        "state": {"backend": "redis", "url": server.url, "prefix": prefix, "reconnect": 0.2},
        "responses": {"store": "redis", **responses},
    }


def fleet(new: NewRouter, emulator: Start, server: RedisServer, **responses: Any) -> tuple[Router, Router, str]:
    """Two routers with one config (two processes of a fleet), and their key prefix."""
    url = text_upstream(emulator, "anthropic").url
    prefix = f"t-{uuid.uuid4().hex[:8]}:"
    return new(shared_config(url, server, prefix, **responses)), new(shared_config(url, server, prefix)), prefix


@pytest.mark.parametrize("mode", [ONE, OTHER])
def test_conversation_goes_on_at_another_router(
    new_router: NewRouter, emulator: Start, redis_server: RedisServer, mode: str
) -> None:
    a, b, _ = fleet(new_router, emulator, redis_server)
    first = create(mode, a, input="One")
    second = create(mode, b, input=[{"role": "user", "content": "Two"}], previous_response_id=first.id)
    assert second.previous_response_id == first.id
    page = run(mode, a, lambda c: c.responses.input_items.list(second.id, order="asc"))
    assert [i.content[0].text for i in page.data] == ["One", first.output_text, "Two"]  # B's record, read by A


def test_claude_is_sent_the_whole_conversation_from_the_other_router(
    new_router: NewRouter, emulator: Start, redis_server: RedisServer
) -> None:
    upstream = text_upstream(emulator, "anthropic")
    prefix = f"t-{uuid.uuid4().hex[:8]}:"
    a = new_router(shared_config(upstream.url, redis_server, prefix))
    b = new_router(shared_config(upstream.url, redis_server, prefix))
    first = create(ONE, a, input="One")
    create(ONE, b, input="Two", previous_response_id=first.id)
    messages = upstream.requests[-1].json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert json.dumps(messages).count("One") == 1 and "Two" in json.dumps(messages)


def test_reasoning_resent_by_id_from_the_other_router(
    new_router: NewRouter, emulator: Start, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """openai-agents' default (the conversation resent, reasoning items by id alone), each turn on the other router:
    Claude's signed thinking blocks come back from the response on Redis, and thinking stays on.
    """
    up = matrix.tool_loop_upstream(emulator, "anthropic", True)
    prefix = f"t-{uuid.uuid4().hex[:8]}:"
    routers = itertools.cycle([new_router(shared_config(up.emulator.url, redis_server, prefix)) for _ in range(2)])
    with caplog.at_level(logging.WARNING, logger="polyroute"):
        final = tool_loop(ONE, lambda: next(routers), thinking=True, chain="resent")
    assert final.output_text == matrix.FINAL_TEXT
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    matrix.check_tool_loop(up)


def test_retrieve_input_items_and_delete_from_the_other_router(
    new_router: NewRouter, emulator: Start, redis_server: RedisServer
) -> None:
    a, b, _ = fleet(new_router, emulator, redis_server)
    first = create(ONE, a, input="One")
    got = run(ONE, b, lambda c: c.responses.retrieve(first.id))
    assert got.id == first.id and got.output_text == first.output_text
    items = run(ONE, b, lambda c: c.responses.input_items.list(first.id))
    assert [i.content[0].text for i in items.data] == ["One"]
    run(ONE, b, lambda c: c.responses.delete(first.id))
    with pytest.raises(openai.NotFoundError, match=r"Response with id .* not found"):
        run(ONE, a, lambda c: c.responses.retrieve(first.id))
    with pytest.raises(openai.BadRequestError, match="not found"):
        create(ONE, a, input="Two", previous_response_id=first.id)


def test_turn_two_in_another_process(new_router: NewRouter, emulator: Start, redis_server: RedisServer) -> None:
    """Turn 1 in a child process (its router gone with it), turn 2 here."""
    url = text_upstream(emulator, "anthropic").url
    config = shared_config(url, redis_server, f"t-{uuid.uuid4().hex[:8]}:")
    script = (
        "import json, sys\nfrom polyroute import Router\nrouter = Router(json.loads(sys.argv[1]))\n"
        "r = router.openai_client().responses.create(model='m', input='One')\nrouter.close()\nprint(r.id)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(config)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    first_id = done.stdout.strip().splitlines()[-1]
    second = create(ONE, new_router(config), input="Two", previous_response_id=first_id)
    assert second.previous_response_id == first_id


def test_bounded_by_count_and_time(new_router: NewRouter, emulator: Start, redis_server: RedisServer) -> None:
    a, b, prefix = fleet(new_router, emulator, redis_server, max_stored=2, ttl=60)
    ids = [create(ONE, a, input=f"n{i}").id for i in range(3)]
    with pytest.raises(openai.NotFoundError):
        run(ONE, b, lambda c: c.responses.retrieve(ids[0]))  # the oldest went when the third came
    assert run(ONE, b, lambda c: c.responses.retrieve(ids[2])).id == ids[2]
    index, record = response_keys(prefix, ids[2])
    assert redis_server.command("zcard", index).strip() == "2"
    assert redis_server.command("exists", response_keys(prefix, ids[0])[1]).strip() == "0"
    assert 55_000 < int(redis_server.command("pttl", record)) <= 60_000


def test_ttl_ends_a_response(new_router: NewRouter, emulator: Start, redis_server: RedisServer) -> None:
    a, b, _ = fleet(new_router, emulator, redis_server, ttl=0.5)
    first = create(ONE, a, input="One")
    assert run(ONE, b, lambda c: c.responses.retrieve(first.id)).id == first.id
    time.sleep(0.7)
    with pytest.raises(openai.NotFoundError):
        run(ONE, b, lambda c: c.responses.retrieve(first.id))


def test_redis_down_gives_a_clear_error_and_costs_no_answer(
    new_router: NewRouter, emulator: Start, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    a, b, _ = fleet(new_router, emulator, redis_server)
    first = create(ONE, a, input="One")
    redis_server.stop()
    with pytest.raises(openai.InternalServerError) as caught:
        create(ONE, b, input="Two", previous_response_id=first.id)
    assert caught.value.status_code == 503
    body: Any = caught.value.body
    assert body["code"] == "response_store_unreachable" and body["type"] == "api_error"
    assert "responses store (Redis) is unreachable" in body["message"]
    assert caught.value.response.headers["retry-after"] == "1"
    for path in ("retrieve", "delete"):
        with pytest.raises(openai.InternalServerError, match="unreachable") as caught:
            run(ONE, b, lambda c: getattr(c.responses, path)(first.id))  # noqa: B023 (called at once)
        assert caught.value.status_code == 503
    with caplog.at_level(logging.WARNING, logger="polyroute.state"):
        answered = [create(ONE, a, input=f"while down {i}") for i in range(3)]  # answers still come
    assert all(r.output_text for r in answered)
    dropped = [r for r in caplog.records if "responses store on Redis unreachable" in r.getMessage()]
    assert len(dropped) == 1  # once, not per write
    redis_server.start()  # back, empty: once each router's check has seen it, a response written on A is read on B
    deadline = time.monotonic() + 10
    while True:
        again = create(ONE, a, input="back")
        try:
            got = run(ONE, b, lambda c: c.responses.retrieve(again.id))  # noqa: B023 (called at once)
            break
        except (openai.InternalServerError, openai.NotFoundError):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert got.output_text == again.output_text


@pytest.mark.slow
def test_conversation_on_a_redis_cluster(new_router: NewRouter, emulator: Start) -> None:
    """On a Cluster the store's keys share the ``{responses}`` slot, so its scripts run there (a cross-slot script
    would be refused); writes from one router, reads and a trimmed bound from another, through different nodes."""
    try:
        nodes = cluster_nodes(3)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"cannot start a Redis Cluster on loopback: {exc}")
    try:
        url = text_upstream(emulator, "anthropic").url
        prefix = f"t-{uuid.uuid4().hex[:8]}:"
        configs = [shared_config(url, node, prefix, max_stored=2) for node in nodes[:2]]
        for cfg in configs:
            cfg["state"].update(cluster=True, timeout=0.5)
        a, b = new_router(configs[0]), new_router(configs[1])
        first = create(ONE, a, input="One")
        second = create(ONE, b, input="Two", previous_response_id=first.id)
        assert run(ONE, a, lambda c: c.responses.input_items.list(second.id)).data[0].content[0].text == "Two"
        create(ONE, a, input="Three")
        with pytest.raises(openai.NotFoundError):
            run(ONE, b, lambda c: c.responses.retrieve(first.id))  # the bound holds on the Cluster too
    finally:
        for node in nodes:
            node.cleanup()


def test_redis_store_needs_redis_state() -> None:
    with pytest.raises(ConfigError, match=r"responses.store 'redis' uses the state: Redis"):
        Router({"models": [], "responses": {"store": "redis"}})
    with pytest.raises(ConfigError, match="store 'sqlite' needs store_path"):
        Router({"models": [], "responses": {"store": "sqlite"}})
