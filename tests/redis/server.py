"""Real ``redis-server`` processes on loopback for the shared-state tests (Debian's ``redis-server`` package).

Absent, the tests skip with the reason, unless ``POLYROUTE_REQUIRE_REDIS=1`` (CI), where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest


def require_redis() -> str:
    """The path of ``redis-server``; skip (or fail when ``POLYROUTE_REQUIRE_REDIS=1``) without it."""
    found = shutil.which("redis-server")
    if found is None:
        reason = "redis-server is not installed (apt-get install -y redis-server)"
        if os.environ.get("POLYROUTE_REQUIRE_REDIS") == "1":
            pytest.fail(reason + "; POLYROUTE_REQUIRE_REDIS=1 says it must be")
        pytest.skip(reason)
    return found


def free_port(bus: bool = False) -> int:
    """A free loopback port; with ``bus``, one below 55536 whose cluster bus port (+10000) is free too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not bus:
            return port
        if port + 10000 <= 65535:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


class RedisServer:
    """One ``redis-server`` on ``127.0.0.1:port``, without persistence; :meth:`stop` then :meth:`start` restarts it
    empty on the same port (as a crashed and restarted Redis)."""

    def __init__(self, *extra: str, port: int | None = None) -> None:
        self.binary = require_redis()
        self.port = port or free_port(bus="--cluster-enabled" in extra)
        self.extra = extra
        self.dir = tempfile.mkdtemp(prefix="polyroute-redis-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", self.dir, *self.extra]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(5)
            self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def command(self, *args: str) -> str:
        """``redis-cli`` against this server (for assertions on keys and command counts)."""
        cli = shutil.which("redis-cli")
        assert cli is not None
        done = subprocess.run(
            [cli, "-h", "127.0.0.1", "-p", str(self.port), *args], capture_output=True, text=True, timeout=10
        )
        return done.stdout


def cluster_nodes(count: int = 3) -> list[RedisServer]:
    """``count`` primaries joined into a Redis Cluster on loopback (raises if redis-cli cannot form one)."""
    nodes = [
        RedisServer("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
        for _ in range(count)
    ]
    try:
        for node in nodes:
            node.start()
        cli = shutil.which("redis-cli")
        assert cli is not None
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            timeout=30,
            check=True,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if all("cluster_state:ok" in n.command("cluster", "info") for n in nodes):
                return nodes
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")
    except BaseException:
        for node in nodes:
            node.cleanup()
        raise


class SentinelServer(RedisServer):
    """One Redis Sentinel (``redis-server --sentinel``, what Debian's ``redis-sentinel`` runs) on loopback watching
    ``master`` as ``mymaster`` with a quorum of one; it fails over half a second after the master stops answering."""

    def __init__(self, master: RedisServer, service: str = "mymaster") -> None:
        super().__init__()
        self.service = service
        self.config = os.path.join(self.dir, "sentinel.conf")
        with open(self.config, "w") as conf:  # Sentinel rewrites it as it learns: it must be its own file
            conf.write(
                f"port {self.port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {service} 127.0.0.1 {master.port} 1\n"
                f"sentinel down-after-milliseconds {service} 500\nsentinel failover-timeout {service} 2000\n"
            )

    def start(self) -> SentinelServer:
        self.process = subprocess.Popen(
            [self.binary, self.config, "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.master_port() is not None:
                return self
            time.sleep(0.05)
        raise RuntimeError(f"redis-sentinel did not answer on port {self.port}")

    def master_port(self) -> int | None:
        """The port of the master Sentinel names now (None: it does not answer yet)."""
        try:
            lines = self.command("sentinel", "get-master-addr-by-name", self.service).split()
        except (OSError, subprocess.SubprocessError):
            return None
        return int(lines[1]) if len(lines) == 2 and lines[1].isdigit() else None

    def replicas(self) -> int:
        """How many replicas of the master Sentinel has found."""
        return self.command("sentinel", "replicas", self.service).splitlines().count("flags")
