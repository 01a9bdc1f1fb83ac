"""The main job for now: the protocol core against the local KSeF simulator, end to end.

``python -m ksefnet_core.demo`` (or ``make demo``) starts the simulator on a free loopback port unless
``--url`` names a running one, then, as a real client would against KSeF:

1. obtains a KSeF token for a demo NIP (simulator-only helper; on KSeF TEST you create one in the
   taxpayer's application or with ``POST /tokens``) and authenticates with it;
2. sends a few FA(3) invoices in an online session and prints their KSeF numbers and UPO sizes;
3. lets the simulator play other companies issuing purchase invoices to the NIP, and downloads them
   incrementally, twice, to show that the second run finds nothing new.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timedelta, timezone

import requests

from .auth import ContextIdentifier, authenticate_with_ksef_token, logout
from .client import KsefClient
from .download import IncrementalDownloader
from .environments import Environment
from .fa3 import poland_today
from .sessions import OnlineSession
from .testing import sample_invoice
from .throttle import Throttle

DEMO_NIP = "5265877635"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", help="base URL of a running simulator, e.g. http://127.0.0.1:8800")
    parser.add_argument("--nip", default=DEMO_NIP)
    parser.add_argument("--invoices", type=int, default=5)
    parser.add_argument("--purchases", type=int, default=20)
    args = parser.parse_args(argv)

    server = None
    base = args.url
    if not base:
        from .simulator import Simulator, SimulatorConfig, SimulatorServer

        server = SimulatorServer(Simulator(SimulatorConfig())).start()
        base = server.base_url
        print(f"Local KSeF simulator (not KSeF) started at {server.api_base}")
    try:
        run(base.rstrip("/"), args.nip, args.invoices, args.purchases)
    finally:
        if server:
            server.stop()
    return 0


def run(base: str, nip: str, invoices: int, purchases: int) -> None:
    control = base + "/_simulator"
    token = requests.post(f"{control}/tokens", json={"nip": nip}, timeout=30).json()["token"]
    # The throttle paces requests within KSeF's rate limits (the simulator enforces them like KSeF).
    client = KsefClient(
        Environment.custom(base + "/v2", name="SIMULATOR"), timeout=(5, 30), throttle=Throttle()
    )
    started = time.perf_counter()
    auth = authenticate_with_ksef_token(client, token, ContextIdentifier.nip(nip), poll_interval=0.1)
    print(f"Authenticated in context NIP {nip} (auth {auth.reference_number})")

    stamp = datetime.now(timezone.utc).strftime("%H%M%S%f")
    with OnlineSession(client) as session:
        sent = [
            session.send(
                sample_invoice(seller_nip=nip, number=f"DEMO/{stamp}/{i + 1}", issue_date=poland_today())
            )
            for i in range(invoices)
        ]
        statuses = session.wait_for_invoices(
            [s.reference_number for s in sent], timeout=60, poll_interval=0.2
        )
        for s in sent:
            st = statuses[s.reference_number]
            upo = session.upo(s.reference_number) if st.outcome == "accepted" else b""
            print(
                f"  invoice {st.invoice_number or s.reference_number}: {st.code} {st.description} "
                f"KSeF number {st.ksef_number or '-'} (UPO {len(upo)} bytes)"
            )

    day_from = datetime.now(timezone.utc) - timedelta(days=30)
    requests.post(
        f"{control}/invoices/generate",
        json={
            "buyerNip": nip,
            "count": purchases,
            "dateFrom": day_from.isoformat(),
            "dateTo": datetime.now(timezone.utc).isoformat(),
        },
        timeout=120,
    ).raise_for_status()
    resume_point = day_from - timedelta(days=1)
    for run_no, mode in ((1, "export"), (2, "metadata")):
        # a first download uses an export package; later small ones query metadata
        downloader = IncrementalDownloader(client, "Subject2", resume_point, mode=mode, poll_interval=0.2)
        got = [inv.ksef_number for inv in downloader]
        resume_point = downloader.resume_point  # a real buffer stores it after committing the invoices
        print(
            f"Purchase download run {run_no}: {len(got)} new invoices, resume point {resume_point:%Y-%m-%d %H:%M:%S}"
        )
    logout(client)
    print(f"Done in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
