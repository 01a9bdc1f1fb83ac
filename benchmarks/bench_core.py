"""Benchmarks of the protocol core against the local simulator (rate limits off). Prints figures; asserts nothing.

The simulator runs in its own process (the ``ksefnet-simulator`` CLI), so the client's time and memory are
its own; the simulator's request rate is measured first.

    python benchmarks/bench_core.py [--invoices 1000] [--batch 10000] [--export 10000]

1. Online session: invoices/s sent by ``OnlineSession.send`` vs a bare baseline in the same run (the same
   pre-built request bodies POSTed with plain ``requests``, no hashing or encryption on the client).
2. Batch session: time and peak Python memory (tracemalloc) to build, encrypt and upload N invoices, vs a
   bare baseline that only writes the same invoices into a ZIP file.
3. Export: invoices/s to download, decrypt, unpack and parse an export of N invoices, vs a bare baseline that
   unzips and parses the same invoices from plain bytes.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
import tracemalloc
import zipfile
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone

import requests

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))

from ksefnet_stack import Simulator  # noqa: E402

from ksefnet_core import fa3  # noqa: E402
from ksefnet_core.auth import ContextIdentifier, authenticate_with_ksef_token  # noqa: E402
from ksefnet_core.client import KsefClient  # noqa: E402
from ksefnet_core.download import export_invoices  # noqa: E402
from ksefnet_core.environments import Environment  # noqa: E402
from ksefnet_core.sessions import OnlineSession, prepare_batch, send_batch  # noqa: E402
from ksefnet_core.testing import sample_invoice  # noqa: E402

NIP = "5265877635"


def bench_simulator(server: Simulator, client: KsefClient, count: int = 2000, threads: int = 8) -> None:
    """The simulator's own request rate: an authenticated GET answered from memory, bare requests."""
    url = client.url("/limits/context")
    headers = {"Authorization": f"Bearer {client.access_token.token}"}  # type: ignore[union-attr]

    def run(n: int) -> None:
        with requests.Session() as bare:
            for _ in range(n):
                bare.get(url, headers=headers, timeout=30).raise_for_status()

    start = time.perf_counter()
    run(count)
    serial = count / (time.perf_counter() - start)
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, [count // threads] * threads))
    parallel = count / (time.perf_counter() - start)
    print(
        f"simulator: {serial:8.0f} requests/s from one connection, {parallel:8.0f} requests/s from {threads} "
        "threads (authenticated GET /limits/context, rate limits off)"
    )


def connect(server: Simulator) -> KsefClient:
    token = requests.post(f"{server.base_url}/_simulator/tokens", json={"nip": NIP}, timeout=30).json()[
        "token"
    ]
    client = KsefClient(Environment.custom(server.api_base), timeout=(5, 120))
    authenticate_with_ksef_token(client, token, ContextIdentifier.nip(NIP), poll_interval=0.05)
    return client


def invoices(count: int, prefix: str) -> list[bytes]:
    today = date.today()
    return [sample_invoice(seller_nip=NIP, number=f"{prefix}/{i}", issue_date=today) for i in range(count)]


def bench_online(client: KsefClient, count: int) -> None:
    xmls = invoices(count, f"ON{time.time_ns()}")
    with OnlineSession(client) as session:
        start = time.perf_counter()
        for xml in xmls:
            session.send(xml)
        core = time.perf_counter() - start
        # Baseline: the same kind of request, body built beforehand, sent with bare requests.
        bodies = [session.build_request(x) for x in invoices(count, f"BL{time.time_ns()}")]
        url = client.url(f"/sessions/online/{session.reference_number}/invoices")
        headers = {"Authorization": f"Bearer {client.access_token.token}"}  # type: ignore[union-attr]
        bare = requests.Session()
        start = time.perf_counter()
        for body in bodies:
            bare.post(url, json=body, headers=headers, timeout=60).raise_for_status()
        base = time.perf_counter() - start
    print(
        f"online send: {count / core:8.1f} invoices/s (core)  {count / base:8.1f} invoices/s (bare requests)  "
        f"ratio {core / base:.2f}x"
    )


def bench_batch(client: KsefClient, count: int) -> None:
    xmls = invoices(count, f"BT{time.time_ns()}")
    size = sum(len(x) for x in xmls)
    with tempfile.TemporaryDirectory() as tmp:
        tracemalloc.start()
        start = time.perf_counter()
        with zipfile.ZipFile(os.path.join(tmp, "bare.zip"), "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for i, xml in enumerate(xmls):
                zf.writestr(f"{i}.xml", xml)
        base = time.perf_counter() - start
        base_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

        tracemalloc.start()
        start = time.perf_counter()
        batch = prepare_batch(((f"{i}.xml", x) for i, x in enumerate(xmls)), workdir=os.path.join(tmp, "b"))
        prepared = time.perf_counter() - start
        batch.cleanup()
        start = time.perf_counter()
        session, _files = send_batch(
            client, ((f"{i}.xml", x) for i, x in enumerate(xmls)), part_size=5_000_000
        )
        sent = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    st = session.wait_until_processed(timeout=600, poll_interval=0.2)
    print(
        f"batch of {count} invoices ({size / 1e6:.1f} MB XML): build+encrypt {prepared:.2f} s, "
        f"build+encrypt+upload+close {sent:.2f} s; peak traced memory {peak / 1e6:.1f} MB "
        f"(the invoices themselves are {size / 1e6:.1f} MB); bare ZIP baseline {base:.2f} s, "
        f"peak {base_peak / 1e6:.1f} MB; ratio {prepared / base:.2f}x; KSeF status {st.code}, "
        f"{st.successful_invoice_count} accepted"
    )


def bench_export(server: Simulator, client: KsefClient, count: int) -> None:
    now = datetime.now(timezone.utc)
    requests.post(
        f"{server.base_url}/_simulator/invoices/generate",
        json={
            "buyerNip": NIP,
            "count": count,
            "dateFrom": (now - timedelta(days=10)).isoformat(),
            "dateTo": (now - timedelta(minutes=1)).isoformat(),
        },
        timeout=600,
    ).raise_for_status()
    filters = {
        "subjectType": "Subject2",
        "dateRange": {"dateType": "PermanentStorage", "from": (now - timedelta(days=11)).isoformat()},
    }
    start = time.perf_counter()
    result = export_invoices(client, filters, poll_interval=0.1)
    parsed = [fa3.parse(xml) for _meta, xml in result.invoices() if xml]
    core = time.perf_counter() - start
    # Baseline: unzip and parse the same invoices from plain bytes (no HTTP, no decryption).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in result.files.items():
            zf.writestr(name, data)
    start = time.perf_counter()
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zf:
        base_parsed = [fa3.parse(zf.read(n)) for n in zf.namelist()]
    base = time.perf_counter() - start
    print(
        f"export of {len(parsed)} invoices (package truncated: {result.is_truncated}): "
        f"{len(parsed) / core:8.1f} invoices/s download+decrypt+unzip+parse; bare unzip+parse "
        f"{len(base_parsed) / base:8.1f} invoices/s; ratio {core / base:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--export", type=int, default=10_000)
    args = parser.parse_args()
    server = Simulator(rate_limits=False)
    try:
        client = connect(server)
        bench_simulator(server, client)
        bench_online(client, args.invoices)
        bench_batch(client, args.batch)
        bench_export(server, client, args.export)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
