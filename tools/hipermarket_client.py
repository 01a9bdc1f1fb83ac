#!/usr/bin/env python3
"""Reference client of the KSeFNet HiperMarket API: Python standard library only (``xmlrpc.client``).

HiperMarket's integrators can read and copy it. It talks to Odoo's XML-RPC endpoint with an Odoo API key
(Preferences -> Account Security -> New API Key, for the integration user), never with a password.

    from hipermarket_client import HiperMarketClient
    hm = HiperMarketClient("https://odoo.example.com", "ksefnet", "hipermarket", api_key)
    results = hm.submit("5265877635", [("FV/12/2026/SKLEP12", "SKLEP12", xml_bytes)])
    feed = hm.changes("5265877635", cursor)     # new KSeF numbers since the last cursor
    hm.acknowledge("5265877635", [c["document_id"] for c in feed["changes"] if c["ksef_number"]])

When KSeF is down (or by the seller's choice, offline24), invoices are issued offline; print KOD I and KOD II
from the answer at once, the KSeF number arrives through the change feed later as for any invoice:

    if hm.availability("5265877635")["offline_mode"]:        # or always pass offline_mode="auto"
        (res,) = hm.submit("5265877635", [("FV/13/2026/SKLEP12", "SKLEP12", xml_bytes)], offline_mode="auto")
        print_on_receipt(res["offline"]["kod1"]["png"], res["offline"]["kod2"]["png"])  # bytes, labelled

Command line (for trying things out):

    python tools/hipermarket_client.py --url http://127.0.0.1:8069 --db ksefnet --login hipermarket \\
        --api-key-file key.txt --nip 5265877635 submit FV-1:SKLEP12:invoice.xml
    ... status FV-1 | changes [--cursor N] | ack FV-1 | upo FV-1 --out upo.xml | qr FV-1 --out kod.png
    ... availability | submit --offline-mode offline24 --offline-reason "no link" --out-dir codes FV-2:SKLEP12:f.xml
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import xmlrpc.client
from collections.abc import Iterable, Iterator

API_MODEL = "ksefnet.hipermarket.api"


class HiperMarketError(Exception):
    """The API refused a call as a whole (wrong key, no access to the buffer, unknown document...)."""


class HiperMarketClient:
    def __init__(self, url: str, db: str, login: str, api_key: str, *, timeout: float = 120.0) -> None:
        self.url = url.rstrip("/")
        self.db = db
        self.api_key = api_key
        transport = (
            _TimeoutTransport(timeout) if self.url.startswith("http://") else _TimeoutSafeTransport(timeout)
        )
        common = xmlrpc.client.ServerProxy(
            f"{self.url}/xmlrpc/2/common", transport=transport, allow_none=False
        )
        uid = common.authenticate(db, login, api_key, {})
        if not uid:
            raise HiperMarketError("authentication refused: check the login and the API key")
        self.uid = uid
        self._object = xmlrpc.client.ServerProxy(
            f"{self.url}/xmlrpc/2/object", transport=transport, allow_none=False
        )

    def _call(self, method: str, *args: object) -> object:
        try:
            return self._object.execute_kw(self.db, self.uid, self.api_key, API_MODEL, method, list(args))
        except xmlrpc.client.Fault as fault:
            # Odoo puts the error text first; the rest is a server-side traceback.
            raise HiperMarketError(
                fault.faultString.strip().splitlines()[0] if fault.faultString else str(fault)
            ) from None

    # -- the API ------------------------------------------------------------------------------------------
    def submit(
        self,
        buffer_nip: str,
        invoices: Iterable[tuple[str, str, bytes]],
        *,
        offline_mode: str | None = None,
        offline_reason: str | None = None,
        issued_at: str | None = None,
    ) -> list[dict]:
        """Submit (document id, shop code, FA(3) XML bytes) triples; one result per invoice, in order.

        A result is {"ok": True, "document_id", "id", "status", "ksef_number", ...} or {"ok": False,
        "document_id", "error": {"field", "code", "message"}}. Submitting the same document again is safe.

        ``offline_mode`` ("offline24", "unavailability", "failure", "total_failure", or "auto": the buffer
        decides from KSeF's availability) submits the invoices as issued offline, at ``issued_at`` (ISO 8601
        with offset; default now): such a result has "offline": {"mode", "issued_at", "deadline", "kod1",
        "kod2", "kod2_error"}, each code {"url", "label", "png"} with the PNG as bytes.
        """
        extra = {
            key: value
            for key, value in (
                ("offline_mode", offline_mode),
                ("offline_reason", offline_reason),
                ("issued_at", issued_at),
            )
            if value
        }
        items = [
            {
                "buffer_nip": buffer_nip,
                "document_id": document_id,
                "shop_code": shop_code,
                "xml": base64.b64encode(xml).decode("ascii"),
                **extra,
            }
            for document_id, shop_code, xml in invoices
        ]
        results: list[dict] = self._call("submit", items)  # type: ignore[assignment]
        for result in results:
            for code in (result.get("offline") or {}).get("kod1"), (result.get("offline") or {}).get("kod2"):
                if code:
                    code["png"] = base64.b64decode(code.pop("png_base64"))
        return results

    def availability(self, buffer_nip: str) -> dict:
        """{"state": available | maintenance | failure | total_failure | unreachable, "messages", "checked_at",
        "offline_mode": what "auto" would choose now (False: online)}."""
        return self._call("availability", buffer_nip)  # type: ignore[return-value]

    def status(self, buffer_nip: str, document_ids: list[str]) -> list[dict]:
        return self._call("status", buffer_nip, document_ids)  # type: ignore[return-value]

    def changes(self, buffer_nip: str, cursor: int = 0, limit: int = 100) -> dict:
        """{"cursor": next cursor, "changes": [status...], "more": bool}. Store the cursor durably."""
        return self._call("changes", buffer_nip, cursor, limit)  # type: ignore[return-value]

    def iter_changes(self, buffer_nip: str, cursor: int = 0) -> Iterator[tuple[int, dict]]:
        """Every change after ``cursor`` as (cursor after it, change), following ``more``."""
        while True:
            page = self.changes(buffer_nip, cursor)
            for change in page["changes"]:
                yield change["change"], change
            cursor = page["cursor"]
            if not page["more"]:
                return

    def acknowledge(self, buffer_nip: str, document_ids: list[str]) -> int:
        return self._call("acknowledge", buffer_nip, document_ids)["acknowledged"]  # type: ignore[index]

    def upo(self, buffer_nip: str, document_id: str) -> bytes:
        answer = self._call("upo", buffer_nip, document_id)
        return base64.b64decode(answer["upo_xml_base64"])  # type: ignore[index]

    def qr(self, buffer_nip: str, document_id: str) -> dict:
        """{"url", "label", "png", "svg", "kod2"} of the invoice's KOD I (images as bytes); "kod2" is KOD II of
        an offline invoice ({"url", "label", "png", "svg"}) or False."""
        answer = dict(self._call("qr", buffer_nip, document_id))  # type: ignore[arg-type]
        for code in (answer, answer.get("kod2")):
            if code:
                code["png"] = base64.b64decode(code.pop("png_base64"))
                if "svg_base64" in code:
                    code["svg"] = base64.b64decode(code.pop("svg_base64"))
        return answer

    def wait_for_numbers(
        self, buffer_nip: str, document_ids: list[str], *, timeout: float = 300.0, interval: float = 1.0
    ) -> dict[str, dict]:
        """Poll until every document is sent, rejected (failure) or in error; the last statuses."""
        deadline = time.monotonic() + timeout
        while True:
            statuses = {s["document_id"]: s for s in self.status(buffer_nip, document_ids)}
            if all(s["status"] in ("sent", "failure", "error") for s in statuses.values()):
                return statuses
            if time.monotonic() > deadline:
                return statuses
            time.sleep(interval)


class _TimeoutTransport(xmlrpc.client.Transport):
    """HTTP transport with a timeout on every call."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self._timeout = timeout

    def make_connection(self, host):  # type: ignore[no-untyped-def]
        connection = super().make_connection(host)
        connection.timeout = self._timeout
        return connection


class _TimeoutSafeTransport(_TimeoutTransport, xmlrpc.client.SafeTransport):
    """HTTPS transport with a timeout on every call."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--login", required=True)
    parser.add_argument(
        "--api-key-file", required=True, help="a file holding the API key (not on the command line)"
    )
    parser.add_argument("--nip", required=True, help="the buffer's NIP")
    parser.add_argument(
        "command", choices=["submit", "status", "changes", "ack", "upo", "qr", "availability"]
    )
    parser.add_argument("args", nargs="*")
    parser.add_argument("--cursor", type=int, default=0)
    parser.add_argument("--out")
    parser.add_argument("--offline-mode", help="submit as issued offline: offline24, failure, ... or auto")
    parser.add_argument("--offline-reason")
    parser.add_argument("--issued-at", help="ISO 8601 with offset, default now")
    parser.add_argument("--out-dir", help="where submit writes the KOD I / KOD II images of offline invoices")
    args = parser.parse_args(argv)
    with open(args.api_key_file, encoding="utf-8") as fh:
        key = fh.read().strip()
    client = HiperMarketClient(args.url, args.db, args.login, key)
    if args.command == "submit":
        triples = []
        for spec in args.args:
            document_id, shop, path = spec.split(":", 2)
            with open(path, "rb") as fh:
                triples.append((document_id, shop, fh.read()))
        results = client.submit(
            args.nip,
            triples,
            offline_mode=args.offline_mode,
            offline_reason=args.offline_reason,
            issued_at=args.issued_at,
        )
        for item in results:
            block = item.get("offline") or {}
            for name in ("kod1", "kod2"):
                code = block.get(name)
                if not code:
                    continue
                png = code.pop("png")
                if args.out_dir:
                    path = os.path.join(args.out_dir, f"{item['document_id'].replace('/', '_')}-{name}.png")
                    with open(path, "wb") as fh:
                        fh.write(png)
                    code["out"] = path
        result: object = results
    elif args.command == "availability":
        result = client.availability(args.nip)
    elif args.command == "status":
        result = client.status(args.nip, args.args)
    elif args.command == "changes":
        result = client.changes(args.nip, args.cursor)
    elif args.command == "ack":
        result = {"acknowledged": client.acknowledge(args.nip, args.args)}
    elif args.command == "upo":
        data = client.upo(args.nip, args.args[0])
        if args.out:
            with open(args.out, "wb") as fh:
                fh.write(data)
        result = {"bytes": len(data), "out": args.out}
    else:
        code = client.qr(args.nip, args.args[0])
        if args.out:
            with open(args.out, "wb") as fh:
                fh.write(code["png"])
        result = {"url": code["url"], "label": code["label"], "out": args.out}
        if code.get("kod2"):
            result["kod2"] = {"url": code["kod2"]["url"], "label": code["kod2"]["label"]}
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
