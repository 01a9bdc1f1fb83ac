"""``ksefnet-simulator``: serve the local KSeF simulator, or drive a running one.

    ksefnet-simulator [serve] --host 127.0.0.1 --port 8800 [--state FILE] [--processing-delay S] [--no-rate-limits]
    ksefnet-simulator token --url http://127.0.0.1:8800 --nip 5265877635
    ksefnet-simulator inject --url http://127.0.0.1:8800 --buyer-nip 5265877635 --count 1000 --days 90

The simulator is a development and demo tool, not KSeF: ``token`` and ``inject`` use simulator-only
endpoints (``/_simulator/...``).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import urllib.request
from datetime import datetime, timedelta, timezone

from .app import Simulator, SimulatorConfig
from .server import SimulatorServer


def _post(url: str, body: dict) -> dict:
    if not url.startswith(("http://", "https://")):
        raise SystemExit("--url must be an http(s) URL")
    req = urllib.request.Request(  # noqa: S310 - scheme checked above
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310 - a URL the user gave on the command line
        return json.loads(resp.read() or b"{}")


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()), format="%(asctime)s %(levelname)s %(message)s"
    )
    config = SimulatorConfig(
        processing_delay=args.processing_delay,
        rate_limits_enabled=not args.no_rate_limits,
        state_file=args.state,
    )
    app = Simulator(config)
    server = SimulatorServer(app, args.host, args.port)
    stop = threading.Event()

    def shutdown(*_: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    server.start()
    print(f"KSeF simulator (a development tool, not KSeF) serving {server.api_base}", flush=True)
    try:
        while not stop.wait(30):
            if args.state:
                app.save_state()
    finally:
        server.stop()
        if args.state:
            app.save_state()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("serve", "token", "inject"):
        argv.insert(0, "serve")
    parser = argparse.ArgumentParser(
        prog="ksefnet-simulator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="serve the simulator")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8800)
    s.add_argument("--state", help="file to keep the state in across restarts")
    s.add_argument(
        "--processing-delay", type=float, default=0.0, help="seconds per processing step (100->150->200)"
    )
    s.add_argument("--no-rate-limits", action="store_true")
    s.add_argument("--log-level", default="warning")
    t = sub.add_parser("token", help="mint a KSeF token for a NIP on a running simulator")
    t.add_argument("--url", default="http://127.0.0.1:8800")
    t.add_argument("--nip", required=True)
    i = sub.add_parser("inject", help="generate purchase invoices for a NIP on a running simulator")
    i.add_argument("--url", default="http://127.0.0.1:8800")
    i.add_argument("--buyer-nip", required=True)
    i.add_argument("--count", type=int, default=100)
    i.add_argument("--days", type=float, default=30)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return serve(args)
    base = args.url.rstrip("/")
    if args.command == "token":
        print(_post(f"{base}/_simulator/tokens", {"nip": args.nip})["token"])
        return 0
    now = datetime.now(timezone.utc)
    result = _post(
        f"{base}/_simulator/invoices/generate",
        {
            "buyerNip": args.buyer_nip,
            "count": args.count,
            "dateFrom": (now - timedelta(days=args.days)).isoformat(),
            "dateTo": now.isoformat(),
        },
    )
    print(json.dumps(result))
    return 0
