"""Benchmark: HiperMarket submitting 10 000 invoices over XML-RPC in batches of 100.

    python benchmarks/bench_hipermarket.py [--invoices 10000] [--batch 100]

Starts an Odoo 18 server (ODOO_PATH, default /opt/odoo) with the addons on a scratch database, and submits
through the reference client (tools/hipermarket_client.py) with an API key: each invoice is validated
(FA(3) schema and KSeF's rules), stored with its XML, classified, and queued. Sending is switched off so the
figure is the submission alone. The bare baseline in the same run creates the same number of records holding
the same XML (ir.attachment) over the same XML-RPC endpoint in batches of the same size, with no validation;
the two take turns batch by batch, so that both meet the same moments of the machine.
It also prints what validation alone costs (the floor above the bare create), and how much the peak memory
of the Odoo process grows when the same invoices come in batches of 100 and of 500 (``--memory-batches``),
beside the bare create's own growth at that batch size; and the latency of calls of one invoice (a till
pushing each invoice as it is issued, ``--single-calls``), to a buffer without rules and to one with 100
shops and 200 rules, beside a bare create of one record.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import base64
import sys
import tempfile
import time
import xmlrpc.client
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT))

from hipermarket_client import HiperMarketClient  # noqa: E402
from ksefnet_stack import ODOO_PATH, Odoo, odoo_available  # noqa: E402

from ksefnet_core import fa3  # noqa: E402
from ksefnet_core.testing import sample_invoice  # noqa: E402

NIP = "5265877635"
#: the buffer with 100 shops and 200 rules (SETUP), for the calls of one invoice
CHAIN_NIP = "7740001454"
SETUP = """
import datetime
buffer = env["ksefnet.buffer"].create({"name": "Bench", "nip": "%(nip)s", "send_enabled": False})
# a buffer as a retail chain has it: 100 shops and 200 rules of every kind (for the calls of one invoice)
chain = env["ksefnet.buffer"].create({"name": "Chain", "nip": "%(chain_nip)s", "send_enabled": False})
shops = env["ksefnet.shop"].create([{"name": f"S{s}", "code": f"S{s}", "buffer_id": chain.id,
    "street": f"Handlowa {s}", "postal_code": f"{10 + s %% 80:02d}-100", "gln_numbers": f"590123400{s:04d}",
    "delivery_patterns": f"WZ/{s}/*"} for s in range(100)])
catalog = env["ksefnet.catalog"].create({"name": "C", "buffer_id": chain.id})
rules = []
for r in range(200):
    v = {"name": f"R{r}", "sequence": r, "buffer_id": chain.id, "catalog_id": catalog.id}
    v.update([dict(address_match="shop", address_shop_id=shops[r %% 100].id),
              dict(gln_match="value", gln_values=f"590123400{r %% 100:04d}"),
              dict(delivery_match="pattern", delivery_patterns=f"WZ/{r %% 100}/*"),
              dict(seller_nips="9999999999")][r %% 4])
    rules.append(v)
env["ksefnet.classification.rule"].create(rules)
hm = env["res.users"].create({"name": "HiperMarket", "login": "hipermarket",
    "groups_id": [(6, 0, [env.ref("base.group_user").id, env.ref("ksefnet_hipermarket.group_hipermarket").id])],
    "ksefnet_hm_buffer_ids": [(6, 0, (buffer | chain).ids)]})
expires = datetime.datetime.now() + datetime.timedelta(days=1)
print("HMKEY=" + env["res.users.apikeys"].with_user(hm)._generate(None, "bench", expires))
print("ADMINKEY=" + env["res.users.apikeys"].with_user(env.ref("base.user_admin"))._generate(None, "bench", expires))
env.cr.commit()
"""


def start_stack(odoo: Odoo) -> tuple[str, dict[str, str]]:
    """The buffer, the integration user and the API keys (SETUP), then the server: (URL, {"HMKEY", "ADMINKEY"})."""
    out = odoo.shell(SETUP % {"nip": NIP, "chain_nip": CHAIN_NIP})
    keys = dict(line.split("=", 1) for line in out.splitlines() if line.startswith(("HMKEY=", "ADMINKEY=")))
    return odoo.serve(), keys


def submit_all(
    hm: HiperMarketClient, xmls: list[bytes], batch: int, prefix: str, nip: str = NIP, shop: str = "SKLEP01"
) -> int:
    accepted = 0
    for offset in range(0, len(xmls), batch):
        chunk = xmls[offset : offset + batch]
        results = hm.submit(nip, [(f"{prefix}-{offset + i}", shop, x) for i, x in enumerate(chunk)])
        accepted += sum(1 for r in results if r["ok"])
    return accepted


def memory_kib(pid: int) -> dict[str, int]:
    """The process's resident memory now (VmRSS) and at its highest (VmHWM), in KiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return {k: int(v.split()[0]) for k, v in (line.split(":", 1) for line in status.splitlines()) if k in
            ("VmRSS", "VmHWM")}  # fmt: skip


def reset_peak(pid: int) -> None:
    """Start the process's peak (VmHWM) again from its resident memory now (Linux's clear_refs 5)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class BareCreate:
    """The baseline: records holding the same XML (ir.attachment), created over the same XML-RPC endpoint
    (authenticated once, as the HiperMarket client is) in batches of the same size, with no validation."""

    def __init__(self, url: str, db: str, key: str) -> None:
        self.db, self.key = db, key
        self.models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object")
        self.uid = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common").authenticate(db, "admin", key, {})

    def create_all(self, xmls: list[bytes], batch: int, prefix: str) -> None:
        for offset in range(0, len(xmls), batch):
            records = [
                {"name": f"{prefix}-{offset + i}.xml", "datas": base64.b64encode(x).decode(),
                 "mimetype": "application/xml"}
                for i, x in enumerate(xmls[offset : offset + batch])
            ]  # fmt: skip
            self.models.execute_kw(self.db, self.uid, self.key, "ir.attachment", "create", [records])


def memory_growth(count: int, batch: int, bare: bool) -> tuple[dict[str, int], dict[str, int], list[float]]:
    """On a server of its own (a fresh database): the Odoo process's memory after a warm-up call of ``batch``
    invoices, and at the end of ``count`` more in calls of ``batch`` (its peak counted from after the warm-up),
    through the HiperMarket API, or the bare create when ``bare``; and its resident memory after each third."""
    odoo = Odoo("ksefnet_hipermarket", workdir=Path(tempfile.mkdtemp(prefix="ksefnet-bench-")))
    try:
        url, keys = start_stack(odoo)
        hm = HiperMarketClient(url, odoo.db, "hipermarket", keys["HMKEY"])
        baseline = BareCreate(url, odoo.db, keys["ADMINKEY"])
        xmls = [sample_invoice(seller_nip=NIP, number=f"FV/MEM/{i}") for i in range(count + batch)]

        def send(share, prefix):
            if bare:
                baseline.create_all(share, batch, prefix)
            else:
                submit_all(hm, share, batch, prefix)

        assert odoo.proc is not None
        pid = odoo.proc.pid
        send(xmls[:batch], "WARM")  # code paths loaded, caches filled
        reset_peak(pid)
        before = memory_kib(pid)
        thirds = []  # resident memory after each third: it grows with the batch, not with the invoices sent
        rest = xmls[batch:]
        for part in range(3):
            send(rest[part * count // 3 : (part + 1) * count // 3], f"MEM{part}")
            thirds.append(memory_kib(pid)["VmRSS"] / 1024)
        return before, memory_kib(pid), thirds
    finally:
        odoo.drop()


def memory_by_batch(count: int, batches: list[int]) -> None:
    """How much the peak memory of the Odoo process grows over ``count`` invoices submitted in batches of each
    size, beside the bare create's growth at that size (each on a server of its own): the bare create's is what
    XML-RPC itself needs for a batch that size (the request, its decoded values and the answer are in memory
    at once), what is above it is the submission's own."""
    for batch in batches:
        bare_before, bare_after, _thirds = memory_growth(count, batch, bare=True)
        before, after, thirds = memory_growth(count, batch, bare=False)
        grown = (after["VmHWM"] - before["VmRSS"]) / 1024
        bare_grown = (bare_after["VmHWM"] - bare_before["VmRSS"]) / 1024
        print(
            f"memory, batches of {batch:3d}: Odoo process {before['VmRSS'] / 1024:6.1f} MiB after warm-up, "
            f"peak {after['VmHWM'] / 1024:6.1f} MiB over {count} invoices (+{grown:.1f} MiB; the bare create's "
            f"+{bare_grown:.1f} MiB: {grown - bare_grown:+.1f} MiB beside it); after each third "
            + ", ".join(f"{m:.1f}" for m in thirds)
            + " MiB"
        )


def single_calls(hm: HiperMarketClient, baseline: BareCreate, count: int) -> None:
    """Calls of one invoice each (a till that pushes every invoice as it is issued), to the buffer without
    rules and to the one with 100 shops and 200 rules, in turns with bare creates of one record: the
    latency of a call, where what a call costs whatever its size weighs most."""
    for label, nip, shop in (("no rules", NIP, "SKLEP01"), ("100 shops, 200 rules", CHAIN_NIP, "S1")):
        xmls = [sample_invoice(seller_nip=nip, number=f"FV/ONE/{i}") for i in range(count)]
        submit_all(hm, xmls[:10], 1, f"ONE-WARM-{nip}", nip, shop)  # the rules compiled, code paths loaded
        api = bare = 0.0
        for i, xml in enumerate(xmls[10:]):
            for name in ("api", "bare")[:: 1 if i % 2 == 0 else -1]:
                start = time.perf_counter()
                if name == "api":
                    submit_all(hm, [xml], 1, f"ONE-{nip}-{i}", nip, shop)
                    api += time.perf_counter() - start
                else:
                    baseline.create_all([xml], 1, f"one-{nip}-{i}")
                    bare += time.perf_counter() - start
        n = count - 10
        print(
            f"calls of one invoice ({label}): {api / n * 1000:.2f} ms a call; bare create of one record "
            f"{bare / n * 1000:.2f} ms; ratio {api / bare:.2f}x ({n} calls each)"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--invoices", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--single-calls", type=int, default=300, help="calls of one invoice; 0: none")
    parser.add_argument("--memory-invoices", type=int, default=3_000, help="0: no memory figures")
    parser.add_argument("--memory-batches", default="100,500")
    args = parser.parse_args()
    if not odoo_available():
        print(f"SKIPPED: no Odoo 18 installation at ODOO_PATH={ODOO_PATH}")
        return
    odoo = Odoo("ksefnet_hipermarket", workdir=Path(tempfile.mkdtemp(prefix="ksefnet-bench-")))
    try:
        url, keys = start_stack(odoo)
        xmls = [sample_invoice(seller_nip=NIP, number=f"FV/BENCH/{i}") for i in range(args.invoices)]
        started = time.perf_counter()
        for xml in xmls:
            fa3.validate(xml)
        validation = time.perf_counter() - started  # what the bare create does not do: checking the invoice
        hm = HiperMarketClient(url, odoo.db, "hipermarket", keys["HMKEY"])
        baseline = BareCreate(url, odoo.db, keys["ADMINKEY"])
        # one batch each first, not counted: the first calls of each load code and fill caches (the bare
        # create's first thousand records took twice as long as the next)
        submit_all(hm, xmls[: args.batch], args.batch, "WARM")
        baseline.create_all(xmls[: args.batch], args.batch, "warm")
        # batch by batch, the submission and the bare create in turn (each going first every other batch):
        # both meet the same moments of a machine whose speed varies from one minute to the next
        api = bare = 0.0
        accepted = 0
        for number, offset in enumerate(range(0, args.invoices, args.batch)):
            chunk = xmls[offset : offset + args.batch]
            for name in ("api", "bare")[:: 1 if number % 2 == 0 else -1]:
                start = time.perf_counter()
                if name == "api":
                    accepted += submit_all(hm, chunk, args.batch, f"HM{offset}")
                    api += time.perf_counter() - start
                else:
                    baseline.create_all(chunk, args.batch, f"bare{offset}")
                    bare += time.perf_counter() - start
        if args.single_calls:
            single_calls(hm, baseline, args.single_calls + 10)
    finally:
        odoo.drop()
    n = args.invoices
    print(
        f"HiperMarket submit: {accepted} of {n} invoices accepted in {api:.1f} s, {n / api:8.1f} invoices/s "
        f"(batches of {args.batch}); bare create of the same XML as records {n / bare:8.1f} records/s; "
        f"ratio {api / bare:.2f}x"
    )
    print(
        f"  of which FA(3) validation alone (schema and KSeF's rules, in this process): {n / validation:8.1f} "
        f"invoices/s, {validation / n * 1000:.2f} ms each; the bare create plus validation alone would be "
        f"{(bare + validation) / bare:.2f}x"
    )
    if args.memory_invoices:
        memory_by_batch(args.memory_invoices, [int(b) for b in args.memory_batches.split(",")])


if __name__ == "__main__":
    main()
