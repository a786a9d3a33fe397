"""A fast fake HTTP receiver on 127.0.0.1 for the bridge benchmarks.

It answers every POST with ``200`` and the body ``1`` (what a Microsoft
Teams connector returns, which prom2teams checks), and records the arrival
time (Unix seconds), path and body of each. ``GET /_stats`` returns the
count and the first and last arrival, ``GET /_records`` every record, and
``POST /_reset`` clears them. It speaks just enough HTTP/1.1 for keep-alive
clients (httpx, requests, Go's net/http): a Content-Length body, no chunked
requests.

Run: ``python bench/receiver.py --port PORT``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

_records: list[tuple[float, str, bytes]] = []

_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n1"


def _json_response(document: object) -> bytes:
    body = json.dumps(document).encode()
    head = (
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def _control(method: str, path: str) -> bytes:
    if path == "/_stats":
        return _json_response(
            {
                "count": len(_records),
                "first": _records[0][0] if _records else None,
                "last": _records[-1][0] if _records else None,
            }
        )
    if path == "/_records":
        return _json_response(
            [
                {"time": at, "path": where, "body": body.decode(errors="replace")}
                for at, where, body in _records
            ]
        )
    if path == "/_reset" and method == "POST":
        _records.clear()
        return _json_response({"count": 0})
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


async def _serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            arrived = time.time()
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            close = False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            body = await reader.readexactly(length) if length else b""
            if path.startswith("/_"):
                writer.write(_control(method, path))
            else:
                _records.append((arrived, path, body))
                writer.write(_OK)
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _main(port: int) -> None:
    server = await asyncio.start_server(_serve, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port")
    arguments = parser.parse_args()
    asyncio.run(_main(arguments.port))


if __name__ == "__main__":
    main()
