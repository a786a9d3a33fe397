"""The ingest ceiling: a Starlette endpoint that reads the body and returns 200.

It runs on uvicorn with the options that ``webpaas-bridge`` passes
(bridge/server.py), so the difference to the bridge is the bridge's own
work: parsing, the state machine and the durable SQLite commit.

Run: ``python bench/noop_server.py --port PORT``.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def accept(request: Request) -> Response:
    await request.body()
    return Response(b'{"status":"accepted"}', media_type="application/json")


async def ready(request: Request) -> Response:
    return Response(b"ok")


app = Starlette(
    routes=[
        Route("/alertmanager", accept, methods=["POST"]),
        Route("/readyz", ready, methods=["GET"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port")
    arguments = parser.parse_args()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=arguments.port,
        log_config=None,
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
