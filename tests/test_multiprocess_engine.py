"""The sending engine in Odoo's multi-process mode: two Odoo "hosts" on one PostgreSQL database (one with
``--workers=2 --max-cron-threads=2``, one threaded with two cron threads) plus two more processes running the
scheduled action by hand at the same moment, all against the local KSeF simulator with its production rate
limits. Every invoice HiperMarket submitted gets its KSeF number and UPO, and KSeF receives each one once.

Needs an Odoo 18 installation (ODOO_PATH, default /opt/odoo) and PostgreSQL; skipped, saying so, without Odoo.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from ksefnet_core.testing import sample_invoice

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from hipermarket_client import HiperMarketClient  # noqa: E402
from ksefnet_stack import ODOO_PATH, Odoo, Simulator, odoo_available  # noqa: E402
from test_hipermarket_e2e import NIP, SETUP  # noqa: E402

pytestmark = pytest.mark.skipif(
    not odoo_available(), reason=f"no Odoo 18 installation at ODOO_PATH={ODOO_PATH}"
)

INVOICES = 240
PER_SESSION = 40  # several sessions, so that several rounds and workers have something to contend for
RUN_BY_HAND = """
env["ksefnet.sender"]._cron_send()
env.cr.commit()
"""
REPORT = """
docs = env["ksefnet.document"].search([("source", "=", "HiperMarket")])
print("STATES=" + ",".join(sorted(set(docs.mapped("state")))))
print("UPO=" + ",".join(sorted(set(docs.mapped("upo_state")))))
print("NUMBERS=%d" % len(set(docs.mapped("ksef_number"))))
env.cr.execute("SELECT count(*) FROM ksefnet_buffer WHERE send_lease_owner IS NOT NULL")
print("LEASES=%d" % env.cr.fetchone()[0])
"""


def values(output: str) -> dict[str, str]:
    return dict(
        line.split("=", 1) for line in output.splitlines() if "=" in line and line.split("=")[0].isupper()
    )


def test_several_hosts_and_workers_send_each_invoice_once(tmp_path):
    sim = Simulator(processing_delay=1.0)
    odoo = None
    try:
        odoo = Odoo("ksefnet_hipermarket", workdir=tmp_path)
        out = odoo.shell(SETUP % {"nip": NIP, "api": sim.api_base, "token": sim.token(NIP)})
        key = values(out)["APIKEY"]
        odoo.shell(
            f'env["ksefnet.buffer"].search([]).write({{"send_limit": {PER_SESSION}}})\nenv.cr.commit()\n'
        )
        url = odoo.serve(workers=2, cron_threads=2)
        odoo.serve(cron_threads=2)  # a second host on the same database

        hm = HiperMarketClient(url, odoo.db, "hipermarket", key)
        stamp = uuid.uuid4().hex[:6]
        items = [
            (f"HM-{stamp}-{i}", "SKLEP12", sample_invoice(seller_nip=NIP, number=f"FV/MP/{stamp}/{i}"))
            for i in range(INVOICES)
        ]
        for start in range(0, INVOICES, 60):
            assert all(r["ok"] for r in hm.submit(NIP, items[start : start + 60]))
        # Two more workers start the scheduled action by hand while the cron workers of both hosts run it.
        by_hand = [
            subprocess.Popen(
                [*odoo.bin, "shell", *odoo.options, "--no-http"],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for _ in range(2)
        ]
        for proc in by_hand:
            proc.stdin.write(RUN_BY_HAND)
            proc.stdin.close()

        wanted = {ref for ref, _shop, _xml in items}
        numbers: dict[str, str] = {}
        cursor, deadline = 0, time.monotonic() + 420
        while wanted - numbers.keys() and time.monotonic() < deadline:
            for position, change in hm.iter_changes(NIP, cursor):
                cursor = position
                assert change["status"] not in ("failure", "error"), change
                if change["status"] == "sent":
                    numbers[change["document_id"]] = change["ksef_number"]
            time.sleep(2)
        for proc in by_hand:
            proc.wait(timeout=120)
        assert numbers.keys() == wanted, f"{len(numbers)} of {INVOICES} got their KSeF numbers"
        assert len(set(numbers.values())) == INVOICES

        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:  # the UPOs come after the numbers
            report = values(odoo.shell(REPORT))
            if report["UPO"] == "stored":
                break
            time.sleep(5)
        assert report == {"STATES": "sent", "UPO": "stored", "NUMBERS": str(INVOICES), "LEASES": "0"}, report

        stats = requests.get(f"{sim.base_url}/_simulator/stats", timeout=10).json()
        assert stats["accepted"] == INVOICES, stats
        assert stats["mostReceivesOfOneInvoice"] == 1, f"an invoice was sent twice: {stats}"
        assert stats["duplicatesRefused"] == 0, stats
    finally:
        if odoo is not None:
            odoo.drop()
        sim.stop()
