"""Hosts on one machine, for the chaos suite and the scaling benchmark: network namespaces.

Each host is a network namespace (`ip netns`, as root) whose processes run with a hostname
of their own (a UTS namespace, `unshare --uts`). It reaches each server in the root
namespace (PostgreSQL, the broker) over a veth link of its own, so one link can go down
while the other stays up. On the root side of each link a TCP proxy forwards to the server
(on loopback or a Unix socket, `server_address`) and holds every chunk `latency` seconds
each way (this kernel has no netem), so the servers stay where they are. Only the hosts'
own addresses carry traffic: each link is a /30 of a 10.x block no interface here uses.

    servers = {"postgres": server_address(database_url), "broker": server_address(redis_url)}
    with Hosts(3, servers, latency=0.002) as hosts:
        argv = hosts.command(0, ["celery", "-A", "workers", "worker"])
        env = {"DATABASE_URL": hosts.url(0, "postgres", database_url), ...}

Everything is created on entry and removed on exit. `Hosts.unavailable()` says why none can
be made (not root, no `ip`, no `unshare`), or None.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit


@dataclass(frozen=True)
class Link:
    host: int
    server: str
    root_if: str
    root_address: str
    host_address: str
    proxy_port: int


def server_address(url: str) -> str:
    """Where the server of `url` listens: `unix:<socket>` (PostgreSQL's `?host=/dir`), or
    `host:port`."""
    parts = urlsplit(url)
    directory = dict(parse_qsl(parts.query)).get("host", "")
    if directory.startswith("/"):
        return f"unix:{directory}/.s.PGSQL.{parts.port or 5432}"
    default = {"postgresql": 5432, "redis": 6379, "amqp": 5672}.get(parts.scheme.split("+")[0])
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or default}"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Hosts:
    def __init__(self, count: int, servers: dict[str, str], latency: float = 0.002) -> None:
        self.count, self.servers, self.latency = count, servers, latency
        self.tag = uuid.uuid4().hex[:4]
        self.links: dict[tuple[int, str], Link] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._proxies: list[asyncio.Server] = []

    @staticmethod
    def unavailable() -> str | None:
        """Why this machine cannot make hosts, or None when it can."""
        if os.geteuid() != 0:
            return "network namespaces need root"
        for tool in ("ip", "unshare"):
            if shutil.which(tool) is None:
                return f"`{tool}` is not installed"
        probe = f"petstore-probe-{uuid.uuid4().hex[:6]}"
        try:
            _ip("netns", "add", probe)
        except (subprocess.SubprocessError, OSError) as error:
            return f"`ip netns add` failed: {error}"
        _ip("netns", "delete", probe)
        return None

    def name(self, host: int) -> str:
        """The namespace of host `host` (0-based), also its hostname."""
        return f"pt{self.tag}-host{host + 1}"

    def hostname(self, host: int) -> str:
        return f"host{host + 1}"

    def __enter__(self) -> Hosts:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> Hosts:
        """Make the hosts, their links and proxies."""
        self._thread.start()
        try:
            block = self._free_block()
            for host in range(self.count):
                namespace = self.name(host)
                _ip("netns", "add", namespace)
                _ip("-n", namespace, "link", "set", "lo", "up")
                for number, (server, address) in enumerate(self.servers.items()):
                    self._link(host, number, server, address, block)
        except BaseException:
            self.stop()
            raise
        return self

    def _free_block(self) -> int:
        """A second octet whose 10.x.0.0/16 no interface here uses."""
        used = subprocess.run(["ip", "-o", "-4", "addr"], capture_output=True, text=True,
                              check=True).stdout
        free = [b for b in range(64, 250) if f" 10.{b}." not in used]
        return random.choice(free)

    def _link(self, host: int, number: int, server: str, address: str, block: int) -> None:
        namespace = self.name(host)
        root_if, host_if = f"pt{self.tag}{host}{number}r", f"pt{self.tag}{host}{number}h"
        # Each link a /30: .1 the root side, .2 the host's.
        base = (host * len(self.servers) + number) * 4
        root_address = f"10.{block}.{base // 256}.{base % 256 + 1}"
        host_address = f"10.{block}.{base // 256}.{base % 256 + 2}"
        _ip("link", "add", root_if, "type", "veth", "peer", "name", host_if, "netns",
            namespace)
        _ip("addr", "add", f"{root_address}/30", "dev", root_if)
        _ip("link", "set", root_if, "up")
        _ip("-n", namespace, "addr", "add", f"{host_address}/30", "dev", host_if)
        _ip("-n", namespace, "link", "set", host_if, "up")
        proxy = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._forwarder(address), root_address, 0),
            self._loop).result()
        self._proxies.append(proxy)
        self.links[host, server] = Link(host, server, root_if, root_address, host_address,
                                        proxy.sockets[0].getsockname()[1])

    def _forwarder(self, address: str) -> Any:
        latency = self.latency

        def connect() -> Any:
            if address.startswith("unix:"):
                return asyncio.open_unix_connection(address.removeprefix("unix:"))
            host, _, port = address.rpartition(":")
            return asyncio.open_connection(host, int(port))

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            """One direction, until either side ends or fails; then its socket closes,
            which ends the other direction too."""
            # Chunks queue with the time they may leave: latency without a bandwidth cap.
            queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

            async def read() -> None:
                with contextlib.suppress(OSError):
                    while data := await reader.read(65536):
                        queue.put_nowait((time.monotonic() + latency, data))
                queue.put_nowait((0.0, b""))

            reading = asyncio.ensure_future(read())
            try:
                while (chunk := await queue.get())[1]:
                    await asyncio.sleep(max(0.0, chunk[0] - time.monotonic()))
                    writer.write(chunk[1])
                    await writer.drain()
            except OSError:
                pass
            finally:
                reading.cancel()
                writer.close()

        async def forward(client_reader: asyncio.StreamReader,
                          client_writer: asyncio.StreamWriter) -> None:
            try:
                server_reader, server_writer = await connect()
            except OSError:
                client_writer.close()
                return
            await asyncio.gather(pipe(client_reader, server_writer),
                                 pipe(server_reader, client_writer))

        return forward

    def url(self, host: int, server: str, url: str) -> str:
        """`url` (of a server here) as host `host` reaches it: through its link."""
        link = self.links[host, server]
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k != "host"])
        return urlunsplit(parts._replace(
            netloc=f"{netloc}{link.root_address}:{link.proxy_port}", query=query))

    def env(self, host: int, env: dict[str, str]) -> dict[str, str]:
        """`env` with its servers' URLs as host `host` reaches them: `DATABASE_URL`, and
        the broker's (`BROKER_URL`, else `REDIS_URL`)."""
        broker = "BROKER_URL" if env.get("BROKER_URL") else "REDIS_URL"
        return {**env, "DATABASE_URL": self.url(host, "postgres", env["DATABASE_URL"]),
                broker: self.url(host, "broker", env[broker])}

    def command(self, host: int, argv: list[str]) -> list[str]:
        """`argv` run on host `host`: in its network namespace, with its hostname."""
        return ["ip", "netns", "exec", self.name(host), "unshare", "--uts", "sh", "-c",
                'hostname "$0" && exec "$@"', self.hostname(host), *argv]

    def pids(self, host: int) -> list[int]:
        out = subprocess.run(["ip", "netns", "pids", self.name(host)], capture_output=True,
                             text=True, check=False).stdout
        return [int(pid) for pid in out.split()]

    def kill(self, host: int) -> int:
        """SIGKILL every process on the host, as a machine that loses its power; how many."""
        pids = self.pids(host)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return len(pids)

    def cut(self, host: int, server: str) -> None:
        """Take the host's link to `server` down: its packets go nowhere, connections hang."""
        _ip("link", "set", self.links[host, server].root_if, "down")

    def mend(self, host: int, server: str) -> None:
        _ip("link", "set", self.links[host, server].root_if, "up")

    def stop(self) -> None:
        """Kill what runs on the hosts, and remove them, their links and proxies."""
        for host in range(self.count):
            self.kill(host)
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._close_proxies(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        for host in range(self.count):
            # Deleting a namespace deletes its veth ends, and with them their root peers.
            subprocess.run(["ip", "netns", "delete", self.name(host)], capture_output=True,
                           check=False)

    async def _close_proxies(self) -> None:
        for proxy in self._proxies:
            proxy.close()
        forwarding = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in forwarding:
            task.cancel()
        await asyncio.gather(*forwarding, return_exceptions=True)
