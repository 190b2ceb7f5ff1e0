"""``python -m tether.mock [--host H] [--port P] [--routes FILE.json] [--no-log]``.

Serves a ``FaultServer`` until SIGINT or SIGTERM. Once bound it prints exactly one line,
``listening http://HOST:PORT``, to stdout (flushed), so a parent process can wait for it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from tether.mock._server import FaultServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tether.mock",
        description="Serve a fault-injecting mock HTTP server until SIGINT or SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default 0: a free port)")
    parser.add_argument("--routes", type=Path, help="JSON file of route specs to install at start")
    parser.add_argument("--no-log", action="store_true", help="keep no request log (long benchmarks)")
    return parser


async def _serve(args: argparse.Namespace) -> None:
    server = FaultServer(args.host, args.port, record=not args.no_log)
    if args.routes is not None:
        server.load_routes(json.loads(args.routes.read_text()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        sys.stdout.write(f"listening {server.url}\n")
        sys.stdout.flush()
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    """Run the server; exit status 2 on bad arguments or a bad routes file."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        asyncio.run(_serve(args))
    except (OSError, ValueError) as exc:
        # A routes file that cannot be read or parsed, or an address that cannot be bound.
        print(f"tether.mock: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
