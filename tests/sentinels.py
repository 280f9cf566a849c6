"""Redis Sentinel for the tests: a primary and a replica (`redis-server`) and three Sentinels
(Debian's `redis-sentinel`) on free loopback ports, watching the primary as `verbatim`."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import redis
from support import debian_tool

from shared.localredis import free_port, stop_process

MASTER = "verbatim"
START_SECONDS = 30


def _wait(check: object, what: str, timeout: float = START_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except redis.RedisError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


class SentinelGroup:
    """`start()` returns once each Sentinel answers; `wait_for_peers()` before a failover."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.server = debian_tool("redis-server")
        self.sentinel = debian_tool("redis-sentinel")
        self.ports = {"primary": free_port(), "replica": free_port()}
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        self.url = f"sentinel://{hosts}/{MASTER}"

    def start(self) -> SentinelGroup:
        primary = self.ports["primary"]
        self._server("primary", primary)
        self._server("replica", self.ports["replica"], "--replicaof", "127.0.0.1", str(primary))
        _wait(lambda: self.client("replica").info("replication")["master_link_status"] == "up",
              "the replica's link")
        for index, port in enumerate(self.sentinel_ports):
            conf = self.dir / f"sentinel-{index}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.dir}\n"
                f"sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n"
                f"sentinel down-after-milliseconds {MASTER} 1000\n"
                f"sentinel failover-timeout {MASTER} 10000\n")
            self._spawn(f"sentinel-{index}", [self.sentinel, str(conf)])
        for port in self.sentinel_ports:
            sentinel = redis.Redis(port=port, socket_timeout=1)
            _wait(lambda s=sentinel: s.sentinel_master(MASTER)["num-slaves"] >= 0, "a Sentinel")
        return self

    def wait_for_peers(self) -> None:
        """Until every Sentinel knows the replica and the two other Sentinels (they find each
        other through the primary's hello messages, every 2 s): only then can they agree on a
        failover. Clients need not wait for this; they only ask where the primary is."""
        for port in self.sentinel_ports:
            sentinel = redis.Redis(port=port, socket_timeout=1)
            _wait(lambda s=sentinel: s.sentinel_master(MASTER)["num-slaves"] >= 1
                  and s.sentinel_master(MASTER)["num-other-sentinels"] >= 2, "the Sentinels")

    def primary_port(self) -> int:
        _, port = redis.Redis(port=self.sentinel_ports[0], socket_timeout=1
                              ).sentinel_get_master_addr_by_name(MASTER)
        return int(port)

    def kill(self, name: str) -> None:
        """SIGKILL the server `name`: it is lost, as with its host."""
        process = self.processes.pop(name)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def client(self, name: str) -> redis.Redis:
        return redis.Redis(port=self.ports[name], socket_timeout=1)

    def stop(self) -> None:
        for process in self.processes.values():
            stop_process(process, 10)
        self.processes.clear()

    def _server(self, name: str, port: int, *options: str) -> None:
        self._spawn(name, [self.server, "--port", str(port), "--bind", "127.0.0.1",
                           "--dir", str(self.dir), "--dbfilename", f"{name}.rdb",
                           "--save", "", "--appendonly", "no", *options])
        _wait(lambda: self.client(name).ping(), f"redis-server {name}")

    def _spawn(self, name: str, args: list[str]) -> None:
        with (self.dir / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
