"""Benchmark of the Odoo buffer: N documents from waiting to sent against the simulator (rate limits raised).

    python benchmarks/bench_buffer.py [--documents 10000]

Needs an Odoo 18 installation (ODOO_PATH, default /opt/odoo) and PostgreSQL (PGHOST/PGPORT/PGUSER, default
127.0.0.1:5432 as ksefnet). It creates a scratch database with ksefnet_buffer installed, queues N valid FA(3)
invoices in a buffer, then runs the buffer's sending rounds (the scheduled action's work: pick with
FOR UPDATE SKIP LOCKED, batch sessions, status polling, UPOs, one commit per step) until every document is
sent. The bare baseline, in the same run, is the core client alone doing the same work: batch sessions of
the same size and one UPO per invoice, with no database. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from bench_core import NIP, connect  # noqa: E402
from ksefnet_stack import ODOO_PATH, Odoo, Simulator, odoo_available  # noqa: E402

from ksefnet_core.sessions import send_batch  # noqa: E402
from ksefnet_core.testing import sample_invoice  # noqa: E402


def raise_rate_limits(server: Simulator) -> None:
    """As on KSeF TEST: POST /testdata/rate-limits, so that the buffer's own pacing does not dominate."""
    client = connect(server)
    limits = client.rate_limits()
    client.set_test_rate_limits(
        {g: {k: int(v) * 1000 for k, v in lim.items()} for g, lim in limits.items() if isinstance(lim, dict)}
    )


def invoices(count: int, prefix: str) -> list[bytes]:
    today = date.today()
    return [sample_invoice(seller_nip=NIP, number=f"{prefix}/{i}", issue_date=today) for i in range(count)]


def bare_core(server: Simulator, count: int, per_session: int) -> float:
    """The core client alone: batch sessions of ``per_session`` invoices, statuses and one UPO per invoice."""
    client = connect(server)
    xmls = invoices(count, f"CORE{time.time_ns()}")
    start = time.perf_counter()
    for offset in range(0, count, per_session):
        chunk = xmls[offset : offset + per_session]
        session, _files = send_batch(client, ((f"{offset + i}.xml", x) for i, x in enumerate(chunk)))
        session.wait_until_processed(timeout=600, poll_interval=0.2)
        for status in session.invoices():
            if status.ksef_number:
                client.invoice_upo_by_ksef_number(session.reference_number, status.ksef_number)
    return time.perf_counter() - start


def odoo_buffer(server: Simulator, count: int, per_session: int) -> tuple[float, int, int]:
    print("installing ksefnet_buffer into a scratch database ...", flush=True)
    odoo = Odoo("ksefnet_buffer", workdir=Path(tempfile.mkdtemp(prefix="ksefnet-bench-")))
    try:
        with odoo.environment() as env:
            buffer = env["ksefnet.buffer"].create(
                {
                    "name": "Benchmark",
                    "nip": NIP,
                    "environment": "custom",
                    "api_url": server.api_base,
                    "batch_threshold": min(100, per_session),
                    "send_limit": per_session,
                    "download_enabled": False,
                }
            )
            env["ksefnet.credentials.wizard"].create(
                {"buffer_id": buffer.id, "method": "token", "ksef_token": server.token(NIP)}
            ).action_save()
            Document = env["ksefnet.document"]
            for xml in invoices(count, f"ODOO{time.time_ns()}"):
                Document._create_submitted(buffer, xml)
            env.cr.commit()
            start = time.perf_counter()
            rounds = 0
            while True:
                rounds += 1
                env["ksefnet.sender"]._run_buffer(buffer)
                env.cr.commit()
                left = Document.search_count([("buffer_id", "=", buffer.id), ("state", "!=", "sent")])
                if not left or rounds > 10 * (count // per_session + 10):
                    break
            elapsed = time.perf_counter() - start
            sent = Document.search_count([("buffer_id", "=", buffer.id), ("state", "=", "sent")])
    finally:
        odoo.drop()
    return elapsed, sent, rounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--per-session", type=int, default=1000, help="documents per sending round (batch)")
    args = parser.parse_args()
    if not odoo_available():
        print(f"SKIPPED: no Odoo 18 installation at ODOO_PATH={ODOO_PATH}")
        return
    server = Simulator(rate_limits=False)
    try:
        raise_rate_limits(server)
        core = bare_core(server, args.documents, args.per_session)
        elapsed, sent, rounds = odoo_buffer(server, args.documents, args.per_session)
    finally:
        server.stop()
    print(
        f"buffer: {sent} of {args.documents} documents waiting -> sent in {elapsed:.1f} s ({rounds} rounds), "
        f"{sent / elapsed:8.1f} documents/s; bare core client {args.documents / core:8.1f} invoices/s "
        f"({core:.1f} s); ratio {elapsed / core:.2f}x"
    )


if __name__ == "__main__":
    main()
