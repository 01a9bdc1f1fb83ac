#!/usr/bin/env python3
"""The main job (``make demo``): the whole product on this machine, against the local KSeF simulator.

1. starts the local KSeF simulator (not KSeF) and lets other companies issue purchase invoices to the demo
   NIP;
2. creates the Odoo database ``ksefnet_demo`` with the three addons and Polish installed: a buffer pointing at
   the simulator with a KSeF token, shops, catalogs, classification rules, a user per shop (the people read
   Polish) and a HiperMarket integration user with an API key (English, as an integration writes);
3. starts Odoo, downloads and classifies the purchase invoices, and plays HiperMarket with the reference
   client (tools/hipermarket_client.py): submits a handful of sales invoices and prints their KSeF numbers;
4. prints the Odoo address and the logins, and keeps running until Ctrl-C (``--no-wait`` stops at once).

Without an Odoo 18 installation (ODOO_PATH, default /opt/odoo) it runs the protocol core's demo instead.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import xmlrpc.client
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hipermarket_client import HiperMarketClient  # noqa: E402
from ksefnet_stack import ODOO_PATH, Odoo, Simulator, free_port, odoo_available  # noqa: E402

from ksefnet_core.testing import sample_invoice  # noqa: E402

NIP = "5265877635"
DB = "ksefnet_demo"

SETUP = """
import datetime
env.company.name = "Sieć Sklepów Sp. z o.o."
env.ref("base.user_admin").write({"password": "admin", "lang": "pl_PL"})
buffer = env["ksefnet.buffer"].create({"name": "Sieć Sklepów", "nip": "%(nip)s", "environment": "simulator",
    "api_url": "%(api)s", "company_aliases": "F.H.U. Jan Kowalski\\nSieć Sklepów Sp. z o.o.",
    "download_start_date": datetime.datetime.now() - datetime.timedelta(days=40), "download_mode": "auto"})
env["ksefnet.credentials.wizard"].create({"buffer_id": buffer.id, "method": "token",
                                          "ksef_token": "%(token)s"}).action_save()
Shop, Catalog, Rule, Tag = env["ksefnet.shop"], env["ksefnet.catalog"], env["ksefnet.classification.rule"], env["ksefnet.tag"]
shops = Shop.create([
    {"name": "Warszawa, Handlowa 1", "code": "SKLEP01", "buffer_id": buffer.id, "street": "ul. Handlowa 1",
     "delivery_patterns": "WZ/1/*"},
    {"name": "Warszawa, Handlowa 2", "code": "SKLEP02", "buffer_id": buffer.id, "street": "ul. Handlowa 2",
     "delivery_patterns": "WZ/2/*"},
    {"name": "Kraków, Handlowa 3", "code": "SKLEP03", "buffer_id": buffer.id, "street": "ul. Handlowa 3",
     "gln_numbers": "5901234100030"},
])
root = Catalog.create({"name": "Sklepy", "buffer_id": buffer.id})
quarantine = Catalog.create({"name": "Kwarantanna", "buffer_id": buffer.id})
corrections = Catalog.create({"name": "Korekty", "buffer_id": buffer.id})
kor = Tag.create({"name": "Korekta", "color": 1})
Rule.create({"name": "Nie do nas", "sequence": 1, "buffer_id": buffer.id, "validity": "invalid",
             "catalog_id": quarantine.id, "stop": True})
for i, shop in enumerate(shops):
    catalog = Catalog.create({"name": shop.name, "buffer_id": buffer.id, "parent_id": root.id})
    Rule.create({"name": "Adres: " + shop.name, "sequence": 10 + i, "buffer_id": buffer.id,
                 "address_match": "shop", "address_shop_id": shop.id, "catalog_id": catalog.id,
                 "shop_action": "matched"})
    login = shop.code.lower()
    user = env["res.users"].create({"name": "Kierownik " + shop.name, "login": login, "password": "demo", "lang": "pl_PL",
        "groups_id": [(6, 0, [env.ref("base.group_user").id, shop.group_id.id])]})
Rule.create({"name": "Korekty", "sequence": 30, "buffer_id": buffer.id, "catalog_id": corrections.id,
             "invoice_kind_ids": [(6, 0, env["ksefnet.invoice.kind"].search([("code", "like", "KOR")]).ids)],
             "tag_ids": [(6, 0, kor.ids)]})
env["res.users"].create({"name": "Księgowa", "login": "ksiegowa", "password": "demo", "lang": "pl_PL",
    "groups_id": [(6, 0, [env.ref("base.group_user").id, env.ref("ksefnet_buffer.group_ksef_admin").id])]})
hm = env["res.users"].create({"name": "HiperMarket", "login": "hipermarket",
    "groups_id": [(6, 0, [env.ref("base.group_user").id, env.ref("ksefnet_hipermarket.group_hipermarket").id])],
    "ksefnet_hm_buffer_ids": [(6, 0, buffer.ids)]})
key = env["res.users.apikeys"].with_user(hm)._generate(None, "HiperMarket demo",
                                                         datetime.datetime.now() + datetime.timedelta(days=30))
env.cr.commit()
created = env["ksefnet.downloader"]._run_buffer(buffer)
env.cr.commit()
print("APIKEY=" + key)
print("DOWNLOADED=%%s" %% created)
"""


def polish_history(url: str, limit: int = 4) -> list[str]:
    """The newest history entries as the Polish accountant reads them over XML-RPC (no context sent: Odoo
    uses her language)."""
    common = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common")
    uid = common.authenticate(DB, "ksiegowa", "demo", {})
    models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object")
    events = models.execute_kw(
        DB,
        uid,
        "demo",
        "ksefnet.document.event",
        "search_read",
        [[]],
        {"fields": ["message"], "limit": limit},
    )
    return [event["message"] for event in events]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=5, help="sales invoices HiperMarket submits")
    parser.add_argument("--purchases", type=int, default=60, help="purchase invoices other companies issue")
    parser.add_argument("--port", type=int, default=8069, help="Odoo's port (0: any free one)")
    parser.add_argument("--interface", default="127.0.0.1", help="where Odoo listens (loopback by default)")
    parser.add_argument("--no-wait", action="store_true", help="stop at the end instead of serving Odoo")
    args = parser.parse_args(argv)
    if not odoo_available():
        print(
            f"No Odoo 18 installation at ODOO_PATH={ODOO_PATH}: running the protocol core's demo instead.\n"
        )
        from ksefnet_core.demo import main as core_demo

        return core_demo([])

    started = time.perf_counter()
    sim = Simulator()
    print(f"Local KSeF simulator (not KSeF) at {sim.api_base}")
    now = datetime.now(timezone.utc)
    requests.post(
        f"{sim.base_url}/_simulator/invoices/generate",
        json={"buyerNip": NIP, "count": args.purchases, "dateFrom": (now - timedelta(days=30)).isoformat(),
              "dateTo": (now - timedelta(minutes=1)).isoformat()},
        timeout=120,
    ).raise_for_status()  # fmt: skip
    workdir = Path(tempfile.mkdtemp(prefix="ksefnet-demo-"))
    odoo = None
    try:
        Odoo.drop_named(DB)
        print(f"Creating the Odoo database {DB} with the KSeFNet addons (about a minute)...", flush=True)
        odoo = Odoo("ksefnet_hipermarket", workdir=workdir, db=DB, languages="pl_PL")
        out = odoo.shell(SETUP % {"nip": NIP, "api": sim.api_base, "token": sim.token(NIP)})
        key = next(line[7:] for line in out.splitlines() if line.startswith("APIKEY="))
        downloaded = next(line[11:] for line in out.splitlines() if line.startswith("DOWNLOADED="))
        print(f"Purchase invoices downloaded from KSeF and classified: {downloaded}")
        url = odoo.serve(args.port or free_port(), interface=args.interface)
        hm = HiperMarketClient(url, DB, "hipermarket", key)
        stamp = datetime.now().strftime("%H%M%S")
        shops = ["SKLEP01", "SKLEP02", "SKLEP03"]
        batch = [
            (f"FV/{stamp}/{i + 1}/{shops[i % 3]}", shops[i % 3],
             sample_invoice(seller_nip=NIP, number=f"FV/{stamp}/{i + 1}", issue_date=date.today()))
            for i in range(args.invoices)
        ]  # fmt: skip
        results = hm.submit(NIP, batch)
        refused = [r for r in results if not r["ok"]]
        if refused:
            print("Refused:", refused)
        statuses = hm.wait_for_numbers(NIP, [r["document_id"] for r in results if r["ok"]], timeout=180)
        print("HiperMarket submitted sales invoices over XML-RPC; KSeF numbers came back:")
        for document_id, status in statuses.items():
            print(f"  {document_id}: {status['status']} KSeF number {status['ksef_number'] or '-'}")
        hm.acknowledge(NIP, [d for d, s in statuses.items() if s["ksef_number"]])
        print(
            "The accountant (ksiegowa, Polish) reads the history HiperMarket's English-speaking user caused:"
        )
        for line in polish_history(url):
            print(f"  {line}")
        print(f"\nOdoo: {url}/odoo/action-ksefnet_buffer.action_ksefnet_dashboard  (database {DB})")
        print("  admin / admin (everything), ksiegowa / demo (KSeF administrator),")
        print(
            "  sklep01, sklep02, sklep03 / demo (each sees only its shop's documents); all of them in Polish"
        )
        print(f"Done in {time.perf_counter() - started:.0f} s.")
        if not args.no_wait:
            print("Odoo keeps running; Ctrl-C stops the demo.")
            try:
                while odoo.proc and odoo.proc.poll() is None:
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0
    finally:
        if odoo is not None:
            from ksefnet_stack import stop

            stop(odoo.proc)
        sim.stop()


if __name__ == "__main__":
    sys.exit(main())
