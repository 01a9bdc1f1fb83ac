"""Benchmark: classify 10 000 purchase documents against 200 rules in the Odoo documents addon.

    python benchmarks/bench_classification.py [--documents 10000] [--rules 200]

Needs Odoo 18 (ODOO_PATH, default /opt/odoo) and PostgreSQL (PGHOST/PGPORT/PGUSER, default 127.0.0.1:5432 as
ksefnet). Creates a scratch database with ksefnet_documents, stores N generated purchase invoices (varied
addresses, GLNs, WZ numbers, sellers), creates R rules of every condition type, then times ``_classify`` on
all documents (their XML read from the attachments, the results with their matched rules and the tag links
written), then again with the rules unchanged (nothing to rewrite). This ``--runs`` times (3): between runs
the results are put back, the notes the run stored dropped and the database vacuumed; each figure is the
best of its runs. The bare baseline, timed before each classification (its best run counting), makes the
same decisions without the ORM: the addon's rules as it compiles them from the database, each XML parsed
from memory, checked for whom it is addressed to (the buffer's names and roles) and run through them with
ksefnet_core.rules; nothing is read or stored. The ratio is what the ORM adds. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tools"))

from ksefnet_stack import ODOO_PATH, PG, Odoo, odoo_available  # noqa: E402

from ksefnet_core import fa3  # noqa: E402
from ksefnet_core.download import DownloadedInvoice  # noqa: E402
from ksefnet_core.matching import check_addressed_to  # noqa: E402
from ksefnet_core.rules import TEXT_FIELDS, Rule, apply_rules, facts_of  # noqa: E402
from ksefnet_core.testing import sample_invoice  # noqa: E402

US = "5265877635"


def invoices(count: int) -> list[bytes]:
    rng = random.Random(7)
    out = []
    for i in range(count):
        shop = rng.randrange(100)
        out.append(
            sample_invoice(
                seller_nip="7740001454" if i % 3 else "9999999999",
                number=f"FV/B/{i}",
                buyer_nip=US,
                buyer_address=(f"ul. Handlowa {shop}", f"{10 + shop % 80:02d}-100 Warszawa"),
                buyer_gln=f"590123400{shop:04d}" if i % 2 else None,
                delivery_notes=(f"WZ/{shop}/{i}",) if i % 4 == 0 else (),
                kind="VAT",
            )
        )
    return out


def bare(xmls: list[bytes], rules: list[Rule], names: list[str], roles: set[int]) -> float:
    """The same decisions without the ORM: ``rules`` are the addon's own, compiled from the database once."""
    blank = dict.fromkeys(TEXT_FIELDS, False)
    hits = 0
    start = time.perf_counter()
    for xml in xmls:
        invoice = fa3.parse(xml)
        values = dict(blank, **fa3.document_fields(invoice), direction="purchase")  # as downloaded: no source
        validity = check_addressed_to(invoice, US, company_name=names, accepted_roles=roles).result
        hits += len(apply_rules(rules, facts_of(values, invoice, validity)).hits)
    elapsed = time.perf_counter() - start
    assert hits > 0  # the matches are computed, not optimised away
    return elapsed


#: the columns a classification writes on a document
RESULT_COLUMNS = (
    "validity, validity_reasons_source, validity_reasons_template, catalog_id, shop_id, rule_match, "
    "classification_note_id, classified_at, reclassify_pending"
)


def restore(env, last_note: int) -> None:
    """Put the documents' results back as they were before the first run, and drop the notes it stored."""
    sets = ", ".join(f"{c} = r.{c}" for c in (c.strip() for c in RESULT_COLUMNS.split(",")))
    env.cr.execute(f"UPDATE ksefnet_document d SET {sets} FROM bench_results r WHERE r.id = d.id")  # noqa: S608
    env.cr.execute("DELETE FROM ksefnet_classification_note WHERE id > %s", [last_note])
    env.cr.commit()
    env.invalidate_all()


def vacuum(db: str) -> None:
    """VACUUM ANALYZE the scratch database (outside a transaction): the rows a run and its restore left
    behind do not weigh on the next run."""
    connection = psycopg2.connect(dbname=db, **PG)
    try:
        connection.autocommit = True
        connection.cursor().execute("VACUUM ANALYZE")
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3, help="each figure is the best of this many runs")
    args = parser.parse_args()
    if not odoo_available():
        print(f"SKIPPED: no Odoo 18 installation at ODOO_PATH={ODOO_PATH}")
        return
    xmls = invoices(args.documents)
    print("installing ksefnet_documents into a scratch database ...", flush=True)
    odoo = Odoo("ksefnet_documents", workdir=Path(tempfile.mkdtemp(prefix="ksefnet-bench-")))
    try:
        with odoo.environment() as env:
            buffer = env["ksefnet.buffer"].create({"name": "Bench", "nip": US})
            shops = env["ksefnet.shop"].create(
                [{"name": f"S{s}", "code": f"S{s}", "buffer_id": buffer.id, "street": f"Handlowa {s}",
                  "postal_code": f"{10 + s % 80:02d}-100", "gln_numbers": f"590123400{s:04d}",
                  "delivery_patterns": f"WZ/{s}/*"} for s in range(100)]
            )  # fmt: skip
            # stored before the rules exist (classified as inserted against none): what is measured is their
            # classification against the 200 rules, every result changing
            Document = env["ksefnet.document"]
            docs = Document.browse()
            for i, xml in enumerate(xmls):
                downloaded = DownloadedInvoice(f"{US}-20260301-{i:012X}-00", {}, xml)
                docs |= Document._create_downloaded(buffer, downloaded, "Subject2")
            catalog = env["ksefnet.catalog"].create({"name": "C", "buffer_id": buffer.id})
            values = []
            for r in range(args.rules):
                kind = r % 4
                v = {"name": f"R{r}", "sequence": r, "buffer_id": buffer.id, "catalog_id": catalog.id}
                if kind == 0:
                    v.update(address_match="shop", address_shop_id=shops[r % 100].id)
                elif kind == 1:
                    v.update(gln_match="value", gln_values=f"590123400{r % 100:04d}")
                elif kind == 2:
                    v.update(delivery_match="pattern", delivery_patterns=f"WZ/{r % 100}/*")
                else:
                    v.update(seller_nips="9999999999")
                values.append(v)
            env["ksefnet.classification.rule"].create(values)
            # what a run changes, to be put back before the next one: the documents' results and the notes
            # stored for them (the rules carry no tags, so no tag links are written)
            env.cr.execute(f"CREATE TABLE bench_results AS SELECT id, {RESULT_COLUMNS} FROM ksefnet_document")
            env.cr.execute("SELECT coalesce(max(id), 0) FROM ksefnet_classification_note")
            (last_note,) = env.cr.fetchone()
            env.cr.commit()
            compiled, _shop_by_code = Document._compiled_rules(buffer)
            names, roles = buffer._company_names(), buffer._accepted_roles()
            bases, firsts, agains = [], [], []
            for run in range(args.runs):
                if run:  # as before the first run: the stored results, no notes of their own, vacuumed
                    restore(env, last_note)
                    vacuum(odoo.db)
                bases.append(bare(xmls, compiled, names, roles))
                env.invalidate_all()
                start = time.perf_counter()
                docs._classify()
                env.flush_all()
                firsts.append(time.perf_counter() - start)
                classified = Document.search_count([("id", "in", docs.ids), ("catalog_id", "!=", False)])
                env.cr.commit()
                env.invalidate_all()
                start = time.perf_counter()  # the same rules again: every result stays, nothing is rewritten
                docs._classify()
                env.flush_all()
                agains.append(time.perf_counter() - start)
                env.cr.commit()
    finally:
        odoo.drop()
    n = args.documents
    base, elapsed, again = min(bases), min(firsts), min(agains)  # the best of each, from the same runs
    print(
        f"classification: {n} documents x {args.rules} rules in {elapsed:.1f} s, {n / elapsed:8.1f} documents/s "
        f"({classified} put into a catalog); bare matcher without the ORM {n / base:8.1f} documents/s; "
        f"ratio {elapsed / base:.2f}x (each the best of {args.runs} runs)"
    )
    print(
        f"  the same rules again (every result stays, only the time of classification is written): "
        f"{n / again:8.1f} documents/s, ratio {again / base:.2f}x"
    )
    print(
        "  each run (s): classification "
        + ", ".join(f"{t:.2f}" for t in firsts)
        + "; again "
        + ", ".join(f"{t:.2f}" for t in agains)
        + "; bare matcher "
        + ", ".join(f"{t:.2f}" for t in bases)
    )


if __name__ == "__main__":
    main()
