#!/usr/bin/env python3
"""The main job (``make demo``): the whole product on this machine, against the local KSeF simulator.

1. starts the local KSeF simulator (not KSeF) and lets other companies issue purchase invoices to the demo
   NIP;
2. creates the Odoo database ``ksefnet_demo`` with the three addons and Polish installed: a buffer pointing at
   the simulator with a KSeF token, shops, catalogs, classification rules, a user per shop (the people read
   Polish) and a HiperMarket integration user with an API key (English, as an integration writes);
3. starts Odoo, downloads and classifies the purchase invoices, and plays HiperMarket with the reference
   client (tools/hipermarket_client.py): submits a handful of sales invoices and prints their KSeF numbers;
4. plays an outage (``--no-outage`` skips it): KSeF fails (the simulator's Latarnia announces it, its API answers
   503), HiperMarket keeps issuing invoices offline and gets KOD I and KOD II at once, KSeF comes back, the
   buffer sends them with offlineMode true and the numbers arrive through the change feed;
5. prints the Odoo address and the logins, and keeps running until Ctrl-C (``--no-wait`` stops at once).

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


OFFLINE_CERT = """
buffer = env["ksefnet.buffer"].search([("nip", "=", "%(nip)s")])
buffer.latarnia_url = "%(latarnia)s"
env["ksefnet.credentials.wizard"].create({"buffer_id": buffer.id, "method": "offline_certificate",
    "certificate_file": "%(p12)s", "certificate_password": "%(password)s"}).action_save()
env.cr.commit()
"""
WATCH = """
env["ksefnet.buffer"].search([])._watch_ksef()
env.cr.commit()
print("STATE=" + ",".join(env["ksefnet.buffer"].search([]).mapped("ksef_availability")))
"""


def play_outage(sim, odoo, hm, stamp, shops, workdir):
    """KSeF fails, HiperMarket issues offline invoices with KOD I/KOD II, KSeF returns, numbers arrive."""
    import base64
    import secrets

    from ksefnet_core.certificates import credential_to_pkcs12
    from ksefnet_core.offline import generate_offline_credential

    password = secrets.token_urlsafe(12)
    credential = generate_offline_credential(NIP, key_type="EC")
    p12 = base64.b64encode(credential_to_pkcs12(credential, password)).decode()
    odoo.shell(OFFLINE_CERT % {"nip": NIP, "latarnia": sim.base_url, "p12": p12, "password": password})
    print("\nOutage: the buffer holds an Offline certificate (it signs KOD II). KSeF fails now...")
    control = f"{sim.base_url}/_simulator/latarnia"
    requests.post(
        control,
        json={
            "status": "FAILURE",
            "message": {"title": "Awaria KSeF", "text": "Trwa usuwanie awarii (symulacja)."},
        },
        timeout=10,
    ).raise_for_status()
    odoo.shell(WATCH)
    seen = hm.availability(NIP)
    print(
        f"  HiperMarket asks the buffer: KSeF is {seen['state']}; invoices are issued as {seen['offline_mode']}"
    )
    batch = [
        (f"FV/{stamp}/OFF{i + 1}/{shops[i % 3]}", shops[i % 3],
         sample_invoice(seller_nip=NIP, number=f"FV/{stamp}/OFF{i + 1}", issue_date=date.today()))
        for i in range(3)
    ]  # fmt: skip
    results = hm.submit(NIP, batch, offline_mode="auto")
    for result in results:
        block = result.get("offline") or {}
        for name in ("kod1", "kod2"):
            code = block.get(name)
            if code:
                path = workdir / f"{result['document_id'].replace('/', '_')}-{name}.png"
                path.write_bytes(code["png"])
        kod2 = block.get("kod2")
        print(f"  {result['document_id']}: {block.get('mode')}, send by {block.get('deadline')} UTC")
        print(f"    KOD I  [{block['kod1']['label']}] {block['kod1']['url']}")
        print(
            f"    KOD II [{kod2['label'] if kod2 else '-'}] {kod2['url'] if kod2 else block.get('kod2_error')}"
        )
    print(f"  (the QR images are in {workdir})")
    time.sleep(2)
    print("KSeF is back...")
    requests.post(control, json={"status": "AVAILABLE"}, timeout=10).raise_for_status()
    odoo.shell(WATCH)
    ids = [r["document_id"] for r in results if r["ok"]]
    until = time.monotonic() + 180
    while True:  # still "error" from the outage until the sender's next round: wait for the numbers
        statuses = {s["document_id"]: s for s in hm.status(NIP, ids)}
        if all(s["status"] in ("sent", "failure") for s in statuses.values()) or time.monotonic() > until:
            break
        time.sleep(1)
    print("  the buffer sent the offline invoices (offlineMode: true); KSeF numbers came back:")
    for document_id, status in statuses.items():
        print(f"  {document_id}: {status['status']} KSeF number {status['ksef_number'] or '-'}")
    hm.acknowledge(NIP, [d for d, s in statuses.items() if s["ksef_number"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invoices", type=int, default=5, help="sales invoices HiperMarket submits")
    parser.add_argument("--purchases", type=int, default=60, help="purchase invoices other companies issue")
    parser.add_argument("--port", type=int, default=8069, help="Odoo's port (0: any free one)")
    parser.add_argument("--interface", default="127.0.0.1", help="where Odoo listens (loopback by default)")
    parser.add_argument("--no-wait", action="store_true", help="stop at the end instead of serving Odoo")
    parser.add_argument("--no-outage", action="store_true", help="do not play a KSeF outage")
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
        if not args.no_outage:
            play_outage(sim, odoo, hm, stamp, shops, workdir)
        print(
            "\nThe accountant (ksiegowa, Polish) reads the history HiperMarket's English-speaking user caused:"
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
