"""Benchmark: what hostile calls cost the Odoo server.

    python benchmarks/bench_api_limits.py [--documents 10000]

Starts an Odoo 18 server (ODOO_PATH, default /opt/odoo) with the addons on a scratch database and measures,
over XML-RPC with an API key:

1. the server process's resident memory (RSS, from /proc) after a refused oversize submission (a 101 MB
   invoice: refused as too large before it is decoded or parsed), against the same process after a normal
   submission of one invoice (the bare baseline);
2. ``name_search`` on 10 000 documents with a one-letter pattern, as a user's quick search does, against a
   ``search_count`` of the same documents (the bare baseline).

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import xmlrpc.client
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

from bench_hipermarket import NIP, start_stack  # noqa: E402
from ksefnet_stack import ODOO_PATH, Odoo, odoo_available  # noqa: E402

from ksefnet_core.testing import sample_invoice  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=10_000)
    args = parser.parse_args()
    if not odoo_available():
        print(f"SKIPPED: no Odoo 18 installation at ODOO_PATH={ODOO_PATH}")
        return
    odoo = Odoo("ksefnet_hipermarket", workdir=Path(tempfile.mkdtemp(prefix="ksefnet-bench-")))
    try:
        url, keys = start_stack(odoo)
        assert odoo.proc is not None
        pid = odoo.proc.pid
        proxy = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)
        common = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common")
        uid = common.authenticate(odoo.db, "hipermarket", keys["HMKEY"], {})
        admin = common.authenticate(odoo.db, "admin", keys["ADMINKEY"], {})

        def submit(items):
            return proxy.execute_kw(odoo.db, uid, keys["HMKEY"], "ksefnet.hipermarket.api", "submit", [items])

        def item(ref, xml):
            return {"buffer_nip": NIP, "document_id": ref, "shop_code": "S1", "xml": xml}

        submit([item("WARM", sample_invoice(seller_nip=NIP, number="FV/WARM").decode())])
        base = rss_mb(pid)
        submit([item("ONE", sample_invoice(seller_nip=NIP, number="FV/ONE").decode())])
        normal = rss_mb(pid)
        huge = "<" + "a" * (101 * 1024 * 1024)
        started = time.perf_counter()
        (refused,) = submit([item("HUGE", huge)])
        refused_in = time.perf_counter() - started
        del huge
        after = rss_mb(pid)
        print(
            f"oversize (101 MB) invoice: refused as {refused['error']['code']!r} in {refused_in:.1f} s; server RSS "
            f"{base:.0f} MB -> {after:.0f} MB (+{after - base:.0f} MB, the XML-RPC request itself); one normal "
            f"invoice: +{normal - base:.0f} MB",
            flush=True,
        )

        for start in range(0, args.documents, 500):
            submit([
                item(f"N{i}", sample_invoice(seller_nip=NIP, number=f"FV/N/{i}").decode())
                for i in range(start, min(start + 500, args.documents))
            ])  # fmt: skip

        def timed(method, *call_args, **kw):
            best = float("inf")
            for _ in range(5):
                began = time.perf_counter()
                proxy.execute_kw(
                    odoo.db, admin, keys["ADMINKEY"], "ksefnet.document", method, list(call_args), kw
                )
                best = min(best, time.perf_counter() - began)
            return best

        quick = timed("name_search", "F", limit=8)
        rare = timed("name_search", "no such invoice", limit=8)
        bare = timed("search_count", [])
        print(
            f"name_search on {args.documents} documents: 'F' {quick * 1000:.1f} ms, a pattern nothing matches "
            f"{rare * 1000:.1f} ms; bare search_count {bare * 1000:.1f} ms (ratios {quick / bare:.2f}, "
            f"{rare / bare:.2f})",
            flush=True,
        )
    finally:
        odoo.drop()


if __name__ == "__main__":
    main()
