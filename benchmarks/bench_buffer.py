"""Benchmark of the Odoo buffer's sending engine under KSeF's production rate limits (the simulator's default).

    python benchmarks/bench_buffer.py [--documents 10000] [--buffers 5 --per-buffer 2000] [--limits-off]

Needs an Odoo 18 installation (ODOO_PATH, default /opt/odoo) and PostgreSQL (PGHOST/PGPORT/PGUSER, default
127.0.0.1:5432 as ksefnet). It creates a scratch database with ksefnet_buffer, starts the simulator as its own
process (rate limits ON as on KSeF TEST and PRD, each invoice taking ``--processing-delay`` seconds per
processing step), and measures in one run:

1. the bare core client (no database) doing the work: batch sessions of ``--per-session`` invoices paced by
   its throttle, session status polling, invoice lists, UPOs from the pre-signed links (8 in parallel);
2. the buffer doing the same for ``--documents`` waiting documents through its scheduled action's code
   (interleaved rounds, one transaction per buffer and step): every one ``sent`` with its KSeF number and
   its UPO stored; the time to the last KSeF number is printed too;
3. one buffer with ``--per-buffer`` documents, then ``--buffers`` buffers with as many each, with one
   runner of the scheduled action and with two (the module's two send actions, as with two cron threads).

Each measurement uses NIPs of its own, so that KSeF's per-context limits of one do not slow another. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from ksefnet_stack import ODOO_PATH, Odoo, Simulator, odoo_available  # noqa: E402

from ksefnet_core.auth import ContextIdentifier, authenticate_with_ksef_token  # noqa: E402
from ksefnet_core.client import KsefClient  # noqa: E402
from ksefnet_core.environments import Environment  # noqa: E402
from ksefnet_core.ids import nip_with_checksum  # noqa: E402
from ksefnet_core.sessions import BatchSession, prepare_batch  # noqa: E402
from ksefnet_core.testing import sample_invoice  # noqa: E402
from ksefnet_core.throttle import Throttle  # noqa: E402

_nips = iter(range(10_000, 99_999))


def next_nip() -> str:
    while True:
        nip = nip_with_checksum(f"6{next(_nips):05d}123")
        if nip:
            return nip


def invoices(nip: str, count: int, prefix: str) -> list[bytes]:
    today = date.today()
    return [sample_invoice(seller_nip=nip, number=f"{prefix}/{i}", issue_date=today) for i in range(count)]


def bare_core(server: Simulator, count: int, per_session: int) -> tuple[float, float]:
    """The core client alone under the same limits: (seconds to the last KSeF number, to the last UPO)."""
    nip = next_nip()
    client = KsefClient(Environment.custom(server.api_base), timeout=(5, 120), throttle=Throttle())
    authenticate_with_ksef_token(client, server.token(nip), ContextIdentifier.nip(nip), poll_interval=0.05)
    client.throttle.update_limits(client.rate_limits())  # type: ignore[union-attr]
    xmls = invoices(nip, count, f"CORE{time.time_ns()}")
    start = time.perf_counter()
    sessions = []
    for offset in range(0, count, per_session):
        chunk = xmls[offset : offset + per_session]
        batch = prepare_batch((f"{offset + i}.xml", x) for i, x in enumerate(chunk))
        try:
            session = BatchSession(client)
            session.open(batch)
            session.upload(batch)
            session.close()
            sessions.append(session)
        finally:
            batch.cleanup()
    links = []
    for session in sessions:
        delay = 1.0
        while (status := session.status()).code < 200:
            time.sleep(delay)
            delay = min(delay * 1.5, 60.0)
        found = [st.upo_download_url for st in session.invoices() if st.ksef_number]
        if len(found) != per_session:
            print(
                f"  session {status.reference_number}: status {status.code} {status.description}, {len(found)} numbers"
            )
        links += found
    numbers = time.perf_counter() - start
    with ThreadPoolExecutor(max_workers=8) as pool:
        upos = list(pool.map(client.download_presigned, links))
    assert len(upos) == count, (len(upos), count)
    return numbers, time.perf_counter() - start


class Bench:
    """The Odoo side: one scratch database, buffers created per measurement."""

    def __init__(self, server: Simulator, env, per_session: int) -> None:
        self.server, self.env, self.per_session = server, env, per_session

    def buffers(self, count: int, documents: int) -> list:
        env = self.env
        made = []
        for _ in range(count):
            nip = next_nip()
            buffer = env["ksefnet.buffer"].create(
                {
                    "name": f"Benchmark {nip}",
                    "nip": nip,
                    "environment": "custom",
                    "api_url": self.server.api_base,
                    "send_limit": self.per_session,
                    "download_enabled": False,
                }
            )
            env["ksefnet.credentials.wizard"].create(
                {"buffer_id": buffer.id, "method": "token", "ksef_token": self.server.token(nip)}
            ).action_save()
            Document = env["ksefnet.document"].with_context(ksefnet_defer_trigger=True)
            xmls = invoices(nip, documents, f"ODOO{time.time_ns()}")
            for offset in range(0, documents, 500):
                entries = [
                    (*Document._validate_sales_xml(buffer, x), None, None, None)
                    for x in xmls[offset : offset + 500]
                ]
                Document._queue_submitted(buffer, entries)
                env.cr.commit()
            made.append(buffer)
        env["ksefnet.buffer"].search([("id", "not in", [b.id for b in made])]).write({"send_enabled": False})
        env.cr.commit()
        return made

    def run(self, buffers: list, runners: int = 1) -> tuple[float, float, int]:
        """Run the scheduled action's work until every document is sent with its UPO: (seconds to the last
        KSeF number, seconds to the last UPO, runs of the action). ``runners`` > 1: as many scheduled actions
        at once (Odoo's cron threads), each on a cursor of its own."""
        env = self.env
        ids = [b.id for b in buffers]
        started = datetime.utcnow().replace(microsecond=0)
        start = time.perf_counter()
        runs = [0]
        finished = threading.Event()

        def left(renv) -> int:
            return renv["ksefnet.document"].search_count(
                [("buffer_id", "in", ids), "|", ("state", "!=", "sent"), ("upo_state", "!=", "stored")]
            )

        def runner() -> None:
            with env.registry.cursor() as cr:
                renv = type(env)(cr, env.uid, {})
                while not finished.is_set():
                    runs[0] += 1
                    renv["ksefnet.buffer"]._run_engine_jobs("ksefnet.sender", "send_enabled")
                    cr.rollback()  # a fresh snapshot
                    renv.invalidate_all()
                    if not left(renv):
                        finished.set()
                    elif runs[0] > 200 * runners:
                        finished.set()
                        raise RuntimeError(f"documents not done after {runs[0]} runs")

        threads = [threading.Thread(target=runner) for _ in range(runners)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - start
        env.cr.rollback()
        env.cr.execute(
            "SELECT max(e.date) FROM ksefnet_document_event e JOIN ksefnet_document d ON d.id = e.document_id "
            "WHERE d.buffer_id IN %s AND e.from_state = 'processing' AND e.to_state = 'sent'",
            [tuple(ids)],
        )
        last_number = (env.cr.fetchone()[0] - started).total_seconds()
        return last_number, elapsed, runs[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--per-session", type=int, default=1000, help="invoices per batch session")
    parser.add_argument("--buffers", type=int, default=5)
    parser.add_argument("--per-buffer", type=int, default=2000)
    parser.add_argument("--processing-delay", type=float, default=1.0, help="simulator: seconds per step")
    parser.add_argument("--limits-off", action="store_true", help="secondary figure: rate limits off")
    args = parser.parse_args()
    if not odoo_available():
        print(f"SKIPPED: no Odoo 18 installation at ODOO_PATH={ODOO_PATH}")
        return
    limits = "OFF" if args.limits_off else "ON (production values)"
    server = Simulator(rate_limits=not args.limits_off, processing_delay=args.processing_delay)
    print(f"simulator: rate limits {limits}, processing {args.processing_delay} s per step", flush=True)
    odoo = Odoo("ksefnet_buffer", workdir=Path(tempfile.mkdtemp(prefix="ksefnet-bench-")))
    try:
        core_numbers, core = bare_core(server, args.documents, args.per_session)
        print(
            f"bare core client: {args.documents} invoices, last KSeF number after {core_numbers:.1f} s, "
            f"last UPO after {core:.1f} s ({args.documents / core:.1f} invoices/s)",
            flush=True,
        )
        with odoo.environment() as env:
            bench = Bench(server, env, args.per_session)
            (buffer,) = bench.buffers(1, args.documents)
            numbers, elapsed, runs = bench.run([buffer])
            print(
                f"buffer: {args.documents} documents waiting -> sent with UPO in {elapsed:.1f} s "
                f"({args.documents / elapsed:.1f} documents/s, {runs} runs of the scheduled action), "
                f"last KSeF number after {numbers:.0f} s; ratio to the bare client {elapsed / core:.2f}x",
                flush=True,
            )
            if args.buffers > 1:
                one = bench.buffers(1, args.per_buffer)
                _n, single, _r = bench.run(one)
                figures = []
                for runners in (1, 2):
                    several = bench.buffers(args.buffers, args.per_buffer)
                    _n, multi, _r = bench.run(several, runners=runners)
                    figures.append(f"{runners} runner(s) {multi:.1f} s (ratio {multi / single:.2f}x)")
                print(
                    f"{args.buffers} buffers x {args.per_buffer}: " + ", ".join(figures) + f"; one buffer x "
                    f"{args.per_buffer} with one runner: {single:.1f} s",
                    flush=True,
                )
    finally:
        odoo.drop()
        server.stop()


if __name__ == "__main__":
    main()
