"""A TCP relay that stands between one chaos run's services and a shared server (RabbitMQ).

    python tests/chaos/proxy.py --listen 127.0.0.1:PORT --target 127.0.0.1:5672

Killing this process (SIGKILL) drops every connection through it and refuses new ones until it
is started again on the same port: to the services that is exactly a broker that went away and
came back, while the machine's RabbitMQ, which other people use, never notices. Standard
library only (asyncio), run as its own process so the chaos runner's threads never slow it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

CHUNK = 64 * 1024


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int]) -> None:
    async def relay(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, server_writer), _pipe(server_reader, client_writer)
        )

    server = await asyncio.start_server(relay, *listen, reuse_address=True)
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True, type=_address)
    parser.add_argument("--target", required=True, type=_address)
    args = parser.parse_args()
    asyncio.run(serve(args.listen, args.target))


if __name__ == "__main__":
    main()
