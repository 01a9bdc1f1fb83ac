"""Hostile input to the HiperMarket API over real XML-RPC: every case gets a clear, typed error, nothing is stored
(row counts of documents, attachments and history), and the server goes on answering."""

import xmlrpc.client
from datetime import timedelta

from odoo import fields
from odoo.tests import HttpCase, new_test_user, tagged

from ksefnet_core.testing import sample_invoice

NIP = "5265877635"
XXE = (
    b'<?xml version="1.0"?><!DOCTYPE Faktura [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b'<Faktura xmlns="http://crd.gov.pl/wzor/2025/06/25/13775/">&e;</Faktura>'
)
LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10)
        for i in range(1, 10)
    )
    + b"]><Faktura>&lol9;</Faktura>"
)


@tagged("post_install", "-at_install")
class TestHostileInput(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.buffer = cls.env["ksefnet.buffer"].create({"name": "Sklepy", "nip": NIP, "send_enabled": False})
        cls.hm = new_test_user(
            cls.env, login="hm", groups="base.group_user,ksefnet_hipermarket.group_hipermarket"
        )
        cls.hm.ksefnet_hm_buffer_ids = cls.buffer
        cls.key = (
            cls.env["res.users.apikeys"]
            .with_user(cls.hm)
            ._generate(None, "hostile", fields.Datetime.now() + timedelta(days=1))
        )

    def rpc(self, method, *args):
        proxy = xmlrpc.client.ServerProxy(
            f"http://127.0.0.1:{self.http_port()}/xmlrpc/2/object", allow_none=True
        )
        return proxy.execute_kw(
            self.env.cr.dbname, self.hm.id, self.key, "ksefnet.hipermarket.api", method, list(args)
        )

    def counts(self):
        self.env.invalidate_all()
        return (
            self.env["ksefnet.document"].with_context(active_test=False).search_count([]),
            self.env["ir.attachment"].search_count([("res_model", "=", "ksefnet.document")]),
            self.env["ksefnet.document.event"].search_count([]),
        )

    def item(self, **values):
        base = {"buffer_nip": NIP, "document_id": "FV/1/2026", "shop_code": "SKLEP1",
                "xml": sample_invoice(seller_nip=NIP, number="FV/1/2026").decode()}  # fmt: skip
        return {**base, **values}

    def test_every_hostile_item_is_refused_clearly_and_stores_nothing(self):
        good = sample_invoice(seller_nip=NIP, number="FV/1/2026")
        cases = {
            ("document_id", "format"): [12345, ["FV/1"], {"a": 1}, "x" * 10_000, "a\nb", "<script>", " FV/1", 1.5],
            ("document_id", "required"): ["", None, False],
            ("buffer_nip", "format"): [5265877635.0, 526587763, "52658776351234", {"nip": NIP}, "1234567890", ""],
            ("shop_code", "format"): [{"x": 1}, "x" * 40, "bad code!", ["SKLEP1"], 7],
            ("xml", "invalid"): [XXE.decode(), LAUGHS.decode(), xmlrpc.client.Binary(b"\xef\xbb\xbf" + good),
                                 xmlrpc.client.Binary(good.replace(b"FV/1/2026", b"FV/\xff\xfe/2026")),
                                 good.decode().replace("<P_15>", "<P_15>x", 1), "<Faktura/>"],
            ("xml", "too_large"): ["<" + "a" * (4 * 1024 * 1024), xmlrpc.client.Binary(b"<" + b"a" * (4 * 1024 * 1024))],
            ("xml", "format"): ["not xml, not base64 !"],
            ("xml", "required"): ["", None, 12],
        }  # fmt: skip
        before = self.counts()
        wrong = []
        for (field, code), values in cases.items():
            items = [self.item(**{field: value}) for value in values]
            for value, result in zip(values, self.rpc("submit", items), strict=True):
                error = result.get("error") or {}
                if (
                    result["ok"]
                    or (error.get("field"), error.get("code")) != (field, code)
                    or not error.get("message")
                ):
                    wrong.append(f"{field}={str(value)[:60]!r}: {str(result)[:300]}")
                if len(result.get("document_id") or "") > 100:
                    wrong.append(f"{field}: echoes {len(result['document_id'])} characters back")
        self.assertFalse(wrong, "\n".join(wrong))
        self.assertEqual(self.counts(), before, "nothing was stored")
        # the whole call refused with a clear fault: not a list, too many
        for args in ({"not": "a list"}, [self.item()] * 501):
            with self.assertRaises(xmlrpc.client.Fault) as caught:
                self.rpc("submit", args)
            self.assertEqual(caught.exception.faultCode, 2, caught.exception.faultString[:300])
        for method, args in (("status", (NIP, "FV/1")), ("status", (NIP, ["x" * 101])), ("changes", (NIP, "0")),
                             ("changes", (NIP, 0, -5)), ("upo", (NIP, ["FV/1"])), ("qr", (526587763, "FV/1")),
                             ("acknowledge", (NIP, [1, 2])), ("status", (NIP, ["FV/1"] * 1001))):  # fmt: skip
            with self.assertRaises(xmlrpc.client.Fault) as caught:
                self.rpc(method, *args)
            self.assertEqual(
                caught.exception.faultCode, 2, f"{method}{args!r:.80}: {caught.exception.faultString[:300]}"
            )
        self.assertEqual(self.counts(), before)
        # and the server still answers, and a good invoice still goes in
        (ok,) = self.rpc("submit", [self.item()])
        self.assertTrue(ok["ok"], ok)
        self.assertEqual(self.counts()[0], before[0] + 1)
