"""A TCP proxy on 127.0.0.1 that a test can cut: every open connection is closed at once.

Given several targets (the nodes of a RabbitMQ cluster) it is also a tiny load balancer, as a
client sees one in production: each new connection goes to the next target in turn, and a target
that refuses (a node that is down) is passed over for the next one."""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlparse, urlunparse


class CuttableProxy:
    def __init__(self, target_host: str, target_port: int, *more_targets: tuple[str, int]):
        self.targets = [(target_host, target_port), *more_targets]
        self._next = 0
        self._server: asyncio.AbstractServer | None = None
        self._pipes: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.cuts = 0

    @classmethod
    def balancing(cls, targets: list[tuple[str, int]]) -> CuttableProxy:
        """A proxy in front of several servers (a cluster's nodes)."""
        (host, port), *more = targets
        return cls(host, port, *more)

    async def start(self, port: int = 0) -> CuttableProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url_for(self, url: str) -> str:
        """The same URL, pointed at this proxy."""
        parsed = urlparse(url)
        auth = parsed.netloc.rsplit("@", 1)[0] + "@" if "@" in parsed.netloc else ""
        return urlunparse(parsed._replace(netloc=f"{auth}127.0.0.1:{self.port}"))

    async def _accept(self, client_reader, client_writer) -> None:
        start, self._next = self._next, self._next + 1
        for i in range(len(self.targets)):
            try:
                target = self.targets[(start + i) % len(self.targets)]
                server_reader, server_writer = await asyncio.wait_for(asyncio.open_connection(*target), 5)
                break
            except (OSError, TimeoutError):
                continue
        else:
            client_writer.close()
            return
        self._pipes |= {client_writer, server_writer}
        await asyncio.gather(self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer))

    async def _pipe(self, reader, writer) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._pipes.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    @property
    def open_connections(self) -> int:
        return len(self._pipes) // 2

    def cut(self) -> int:
        """Close every connection through the proxy; returns how many were open."""
        open_now = list(self._pipes)
        for writer in open_now:
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._pipes.clear()
        self.cuts += 1
        return len(open_now)

    async def stop(self) -> None:
        self.cut()
        if self._server:
            self._server.close()
            await self._server.wait_closed()
