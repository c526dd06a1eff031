"""Shared state through Redis Sentinel (#17, ``state.url: redis+sentinel://host:26379/mymaster/0``), against a real
``redis-server`` and a real Sentinel (``redis-server --sentinel``) on loopback: routers find the master through
Sentinel, and after a failover they find the new one, with the state that was replicated to it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from polyroute import Router
from polyroute.errors import ConfigError
from tests.core.routing_helpers import call, dep, ok, status
from tests.core.test_responses import ONE, Start, create, deployment, run, text_upstream
from tests.emulators import Reply, Request
from tests.redis.server import RedisServer, SentinelServer


@pytest.fixture
def master() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.cleanup()


@pytest.fixture
def sentinel(master: RedisServer) -> Iterator[SentinelServer]:
    server = SentinelServer(master).start()
    yield server
    server.cleanup()


def sentinel_url(sentinel: SentinelServer) -> str:
    return f"redis+sentinel://127.0.0.1:{sentinel.port}/{sentinel.service}/0"


def config(url: str, *deployments: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {
        "models": [{"name": "m", "deployments": list(deployments)}],
        "state": {"backend": "redis", "url": url, "prefix": f"t-{uuid.uuid4().hex[:8]}:", "reconnect": 0.1},
        **more,
    }


def test_routers_share_state_through_sentinel(emulator: Start, master: RedisServer, sentinel: SentinelServer) -> None:
    flaky = emulator(status(429, "slow down", **{"retry-after": "30"}))
    other = emulator(ok("other"))
    cfg = config(sentinel_url(sentinel), dep(flaky, "flaky"), dep(other, "other"))
    first, second = Router(cfg), Router(cfg)
    assert call("sync", first)[1]["x-polyroute-deployment"] == "other"
    first.close()  # its outcomes are sent
    assert call("sync", second)[1]["x-polyroute-deployment"] == "other"
    assert len(flaky.requests) == 1  # the second router learnt the 429 through the master Sentinel named
    assert cfg["state"]["prefix"] in master.command("keys", "*")
    second.close()


def test_responses_store_through_sentinel(emulator: Start, master: RedisServer, sentinel: SentinelServer) -> None:
    url = text_upstream(emulator, "anthropic").url
    cfg = config(sentinel_url(sentinel), deployment("anthropic", url), responses={"store": "redis"})
    routers = [Router(cfg) for _ in range(3)]
    first = create(ONE, routers[0], input="One")
    second = create(ONE, routers[1], input="Two", previous_response_id=first.id)
    assert run(ONE, routers[2], lambda c: c.responses.retrieve(second.id)).output_text == second.output_text
    for router in routers:
        router.close()


@pytest.mark.slow
def test_after_a_failover_routers_find_the_new_master(
    emulator: Start, master: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    replica = RedisServer("--replicaof", "127.0.0.1", str(master.port)).start()
    sentinel: SentinelServer | None = None
    try:
        deadline = time.monotonic() + 10
        while "master_link_status:up" not in replica.command("info", "replication"):
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
        sentinel = SentinelServer(master).start()
        while sentinel.replicas() < 1:
            assert time.monotonic() < deadline, "Sentinel did not find the replica"
            time.sleep(0.05)

        limited = threading.Event()

        def flaky(request: Request) -> Reply:
            return (status(429, "slow down", **{"retry-after": "30"}) if limited.is_set() else ok("flaky"))(request)

        flaky_emu = emulator(flaky)
        other = emulator(ok("other"))
        cfg = config(sentinel_url(sentinel), dep(flaky_emu, "flaky"), dep(other, "other"))
        caplog.set_level(logging.WARNING, logger="polyroute.state")
        first = Router(cfg)
        assert call("sync", first)[1]["x-polyroute-deployment"] == "flaky"

        master.stop()  # Sentinel promotes the replica half a second later
        assert call("sync", first)[1]["x-polyroute-deployment"] == "flaky"  # calls go on meanwhile
        deadline = time.monotonic() + 20
        while sentinel.master_port() != replica.port or "role:master" not in replica.command("info", "replication"):
            assert time.monotonic() < deadline, "Sentinel did not fail over"
            time.sleep(0.1)
        while "reachable again" not in caplog.text:
            assert time.monotonic() < deadline, "the router did not reach the new master"
            time.sleep(0.05)

        limited.set()  # the 429 is learnt on the new master…
        assert call("sync", first)[1]["x-polyroute-deployment"] == "other"
        first.close()
        seen = len(flaky_emu.requests)
        second = Router(cfg)  # …and a fresh router finds it there through Sentinel
        assert call("sync", second)[1]["x-polyroute-deployment"] == "other"
        assert len(flaky_emu.requests) == seen
        assert cfg["state"]["prefix"] in replica.command("keys", "*")
        second.close()
    finally:
        if sentinel is not None:
            sentinel.cleanup()
        replica.cleanup()


def test_sentinel_url_errors_say_what_to_fix() -> None:
    for url, message in [
        ("redis+sentinel://127.0.0.1:26379", "name the service"),
        ("redis+sentinel://127.0.0.1:x/mymaster", "is not host"),
        ("redis+sentinel://127.0.0.1/mymaster/zero", "only a db number"),
    ]:
        with pytest.raises(ConfigError, match=message):
            Router({"state": {"backend": "redis", "url": url}})
    with pytest.raises(ConfigError, match="Sentinel, which serves one master"):
        Router({"state": {"backend": "redis", "url": "redis+sentinel://h/mymaster", "cluster": True}})


def test_sentinel_url_password_stays_out_of_errors_and_reprs(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ConfigError) as caught:
        Router({"state": {"backend": "redis", "url": "redis+sentinel://:hunter2-secret@h:1"}})
    assert "hunter2" not in str(caught.value)
    caplog.set_level(logging.WARNING, logger="polyroute.state")
    router = Router(
        config("redis+sentinel://:hunter2-secret@127.0.0.1:1/mymaster/0", dep("http://127.0.0.1:9/v1", "d"))
    )
    assert router.shared_state is not None
    assert router.shared_state.add("x", 1.0) is None  # no sentinel there: the shared store does not answer
    assert "unreachable" in caplog.text
    assert "hunter2" not in repr(router.config) + repr(router.shared_state) + caplog.text
    router.close()
