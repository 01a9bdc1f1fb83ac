"""The access model (docs/access_model.md) cell by cell, over real XML-RPC with API keys and over HTTP sessions
(for /web/content): every role against the documents, their history, their attachments, the buffer and the
configuration, the action methods and the HiperMarket API. Each cell says what must happen: ``ok`` (and what
comes back), ``access`` (AccessError, fault 4) or ``refused`` (a clear UserError/ValidationError, fault 2).
"""

import base64
import json
import xmlrpc.client
from datetime import timedelta

from odoo import fields
from odoo.addons.ksefnet_documents.tests.common import US, DocumentsCase
from odoo.addons.ksefnet_documents.tests.test_permissions import PermissionsSetup
from odoo.tests import HttpCase, new_test_user, tagged

from ksefnet_core.testing import sample_invoice

ACCESS, REFUSED = 4, 2  # Odoo's XML-RPC fault codes of AccessError and UserError


@tagged("post_install", "-at_install")
class TestAccessMatrix(PermissionsSetup, DocumentsCase, HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.setup_permissions()
        env = cls.env
        cls.buffer.send_enabled = False  # nothing leaves for KSeF here
        cls.admin = new_test_user(env, login="kadmin", groups="ksefnet_buffer.group_ksef_admin")
        cls.hm = new_test_user(
            env, login="hm", groups="base.group_user,ksefnet_hipermarket.group_hipermarket"
        )
        cls.hm.write({"ksefnet_hm_buffer_ids": [(6, 0, cls.buffer.ids)], "ksefnet_hm_shop_codes": "A"})
        cls.portal = new_test_user(env, login="portal", groups="base.group_portal")
        api = env["ksefnet.hipermarket.api"]
        cls.hm_a, cls.hm_b = (
            api.submit([cls.item(f"HM-{shop}", shop)])[0]["id"] for shop in ("A", "B")
        )  # shop A's and shop B's HiperMarket documents (submitted by an administrator)
        cls.failed_b = env["ksefnet.document"].browse(api.submit([cls.item("HM-B-REJ", "B")])[0]["id"])
        cls.failed_b._set_state("processing")
        cls.failed_b._set_state("failure", code=450, message="rejected")
        cls.keys = {
            user.login: env["res.users.apikeys"]
            .with_user(user)
            ._generate(None, "matrix", fields.Datetime.now() + timedelta(days=1))
            for user in (cls.admin, cls.reader, cls.handler, cls.shop_a_user, cls.hm, cls.portal)
        }
        cls.users = {
            u.login: u for u in (cls.admin, cls.reader, cls.handler, cls.shop_a_user, cls.hm, cls.portal)
        }

    @classmethod
    def item(cls, ref, shop, **extra):
        xml = sample_invoice(seller_nip=US, number=f"FV/{ref}")
        return {"buffer_nip": US, "document_id": ref, "shop_code": shop, "xml": xml.decode(), **extra}

    # -- calling ----------------------------------------------------------------------------------------------
    def call(self, login, model, method, *args, **kwargs):
        """("ok", result) or ("fault", code, message) of one execute_kw as ``login`` with its API key."""
        proxy = xmlrpc.client.ServerProxy(
            f"http://127.0.0.1:{self.http_port()}/xmlrpc/2/object", allow_none=True
        )
        try:
            return ("ok", proxy.execute_kw(self.env.cr.dbname, self.users[login].id, self.keys[login], model,
                                           method, list(args), kwargs))  # fmt: skip
        except xmlrpc.client.Fault as fault:
            return ("fault", fault.faultCode, fault.faultString)

    def expect(self, cells):
        """Run every (login, expected, model, method, args, kwargs) cell; report every wrong one at once."""
        wrong = []
        for login, expected, model, method, args, kwargs in cells:
            outcome = self.call(login, model, method, *args, **kwargs)
            if callable(expected):
                good = outcome[0] == "ok" and expected(outcome[1])
            elif expected == "ok":
                good = outcome[0] == "ok"
            else:
                good = (
                    outcome[0] == "fault" and outcome[1] == {"access": ACCESS, "refused": REFUSED}[expected]
                )
            if not good:
                wrong.append(
                    f"{login} {model}.{method}{args!r:.120}: expected {expected}, got {str(outcome)[:300]}"
                )
        self.assertFalse(wrong, "\n".join(wrong))

    # -- the cells ----------------------------------------------------------------------------------------------
    def test_documents_are_read_only_as_permissions_say_on_every_read_path(self):
        doc_b, doc_a, energy = self.doc_b.id, self.doc_a.id, self.doc_energy.id
        mine = [["buffer_id", "=", self.buffer.id], ["direction", "=", "purchase"]]

        def ids(expected):
            return lambda rows: {r["id"] for r in rows} == set(expected)

        def count(expected):
            return lambda groups: sum(g["state_count"] for g in groups) == expected

        every = [self.doc_a.id, self.doc_b.id, self.doc_energy.id, self.doc_other.id]
        cells = []
        for login, visible in (("kadmin", every), ("czytelnik", [energy]), ("ksiegowa", [energy]),
                               ("sklep_a", [doc_a]), ("hm", []), ("portal", None)):  # fmt: skip
            if visible is None:
                cells += [(login, "access", "ksefnet.document", "search_read", [mine], {"fields": ["id"]}),
                          (login, "access", "ksefnet.document.event", "search_read", [[]], {"fields": ["id"]}),
                          (login, "access", "ksefnet.document", "name_search", ["F"], {}),
                          (login, "access", "ksefnet.classification.note", "search_read", [[]], {"fields": ["id"]})]  # fmt: skip
                continue
            cells += [
                (login, ids(visible), "ksefnet.document", "search_read", [mine], {"fields": ["id"]}),
                (login, count(len(visible)), "ksefnet.document", "read_group", [mine, ["state"], ["state"]], {}),
                (login, lambda r, n=len(visible): len(r["records"]) == n, "ksefnet.document", "web_search_read",
                 [mine], {"specification": {"id": {}}}),
                (login, lambda rows, n=len(visible): len(rows["datas"]) == n, "ksefnet.document", "export_data",
                 [visible, ["invoice_number"]], {}) if login != "hm" else
                (login, "refused", "ksefnet.document", "export_data", [visible, ["invoice_number"]], {}),
                (login, {"kadmin": "ok", "hm": "refused"}.get(login, "access"), "ksefnet.document", "export_data",
                 [every, ["invoice_number"]], {}),
                (login, lambda rows, v=visible: {r[0] for r in rows} <= set(v), "ksefnet.document", "name_search",
                 ["FV"], {"args": mine}),
                # the history goes with the document: another shop's entries are not there
                (login, "access", "ksefnet.document.event", "search_read", [[["document_id", "in", every]]],
                 {"fields": ["document_id"]}) if login == "hm" else
                (login, lambda rows, v=visible: {r["document_id"][0] for r in rows} == set(v),
                 "ksefnet.document.event", "search_read", [[["document_id", "in", every]]],
                 {"fields": ["document_id"]}),
                (login, "ok" if doc_b in visible else "access", "ksefnet.document", "read", [[doc_b]],
                 {"fields": ["invoice_number"]}),
                # the classification note (stored once, shared by documents): read and searched with the
                # document only, never as a table of its own but by administrators
                (login, ids(visible), "ksefnet.document", "search_read",
                 [mine + [["classification_note", "!=", False]]], {"fields": ["classification_note"]}),
                (login, "ok" if login == "kadmin" else "access", "ksefnet.classification.note", "search_read",
                 [[]], {"fields": ["source"]}),
            ]  # fmt: skip
        self.expect(cells)

    def test_only_the_engine_writes_what_kseF_decides_and_nothing_known_to_ksef_disappears(self):
        doc_a, energy = self.doc_a.id, self.doc_energy.id
        before = self.doc_energy.read(["ksef_number", "xml_sha256", "amount_gross", "state"])[0]
        cells = []
        for field, value in (("ksef_number", "1111111111-20260101-000000000000-00"), ("xml_sha256", "x"),
                             ("amount_gross", 1.0), ("state", "waiting"), ("upo_attachment_id", False),
                             ("hm_change_seq", 1), ("next_retry_at", False),
                             ("reclassify_pending", True)):  # fmt: skip
            for login, doc in (("kadmin", energy), ("ksiegowa", energy), ("sklep_a", doc_a)):
                cells.append((login, "access", "ksefnet.document", "write", [[doc], {field: value}], {}))
        # a context flag passed over RPC grants nothing
        cells.append(("kadmin", "access", "ksefnet.document", "write", [[energy], {"state": "waiting"}],
                      {"context": {"ksefnet_allow_state_write": True}}))  # fmt: skip
        cells += [
            ("ksiegowa", "ok", "ksefnet.document", "write", [[energy], {"tag_ids": [(6, 0, [])]}], {}),
            ("czytelnik", "access", "ksefnet.document", "write", [[energy], {"tag_ids": [(6, 0, [])]}], {}),
            # moving a document out of one's reach is refused; within it, allowed
            ("sklep_a", "access", "ksefnet.document", "write", [[doc_a], {"shop_id": self.shop_b.id}], {}),
            ("ksiegowa", "access", "ksefnet.document", "write", [[energy], {"catalog_id": self.other.id}], {}),
            ("ksiegowa", "ok", "ksefnet.document", "write", [[energy], {"catalog_id": self.costs.id}], {}),
            ("kadmin", "ok", "ksefnet.document", "write", [[energy], {"catalog_id": self.energy.id}], {}),
            # nobody creates, deletes or rewrites history
            ("kadmin", "access", "ksefnet.document", "create", [{"buffer_id": self.buffer.id, "state": "sent"}], {}),
            ("kadmin", "refused", "ksefnet.document", "unlink", [[energy]], {}),
            ("ksiegowa", "access", "ksefnet.document", "unlink", [[energy]], {}),
            ("kadmin", "refused", "ksefnet.document.event", "write",
             [self.doc_energy.event_ids[:1].ids, {"message": "x"}], {}),
            ("kadmin", "refused", "ksefnet.document.event", "unlink", [self.doc_energy.event_ids[:1].ids], {}),
            ("kadmin", "access", "ksefnet.document.event", "create", [{"document_id": energy, "to_state": "sent"}], {}),
            # archiving keeps the document, and the download still knows it
            ("kadmin", "ok", "ksefnet.document", "write", [[energy], {"active": False}], {}),
        ]  # fmt: skip
        self.expect(cells)
        self.env.invalidate_all()
        self.assertTrue(self.doc_energy.exists())
        self.assertFalse(self.doc_energy.active)
        self.assertEqual(
            self.doc_energy.read(["ksef_number", "xml_sha256", "amount_gross", "state"])[0], before
        )

    def test_action_methods_check_the_callers_rights(self):
        failed = self.failed_b.id
        corrected = base64.b64encode(sample_invoice(seller_nip=US, number="FV/HM-B-REJ/2")).decode()
        buffer = [self.buffer.id]
        cells = [
            ("sklep_a", "access", "ksefnet.buffer", "action_test_connection", [buffer], {}),
            ("sklep_a", "access", "ksefnet.buffer", "action_send_now", [buffer], {}),
            ("sklep_a", "access", "ksefnet.buffer", "action_download_now", [buffer], {}),
            ("sklep_a", "access", "ksefnet.buffer", "action_set_token", [buffer], {}),
            ("kadmin", "ok", "ksefnet.buffer", "action_send_now", [buffer], {}),
            ("sklep_a", "access", "ksefnet.buffer", "read", [buffer], {"fields": ["ksef_token"]}),
            ("hm", "access", "ksefnet.document", "action_correct", [[failed], corrected], {}),
            ("czytelnik", "access", "ksefnet.document", "action_retry", [[self.doc_energy.id]], {}),
            ("czytelnik", "access", "ksefnet.document", "action_reclassify", [[self.doc_energy.id]], {}),
            ("czytelnik", "ok", "ksefnet.document", "action_download_xml", [[self.doc_energy.id]], {}),
            ("sklep_a", "access", "ksefnet.document", "action_download_xml", [[self.doc_b.id]], {}),
            ("sklep_a", "access", "ksefnet.classification.rule", "create",
             [{"name": "x", "buffer_id": self.buffer.id}], {}),
            ("sklep_a", "access", "ksefnet.catalog", "action_add_subcatalog", [[self.costs.id]], {}),
            ("sklep_a", "access", "ksefnet.permission", "search_read", [[]], {"fields": ["id"]}),
            ("kadmin", "ok", "ksefnet.permission", "search_read", [[]], {"fields": ["id"]}),
            ("portal", "access", "ksefnet.buffer", "search_read", [[]], {"fields": ["id"]}),
            # added since: the offline certificate, the availability check, the correction form, the KSeF role
            ("sklep_a", "access", "ksefnet.buffer", "action_set_offline_certificate", [buffer], {}),
            ("sklep_a", "access", "ksefnet.buffer", "action_enrol_offline_certificate", [buffer], {}),
            ("sklep_a", "access", "ksefnet.buffer", "action_check_ksef", [buffer], {}),
            ("czytelnik", "access", "ksefnet.document", "action_open_correction", [[failed]], {}),
            ("sklep_a", "access", "res.users", "write", [[self.reader.id], {"ksefnet_role": "admin"}], {}),
            ("sklep_a", "access", "res.users", "write", [[self.reader.id], {"ksefnet_shop_ids": [(6, 0, [])]}], {}),
            ("portal", "access", "ksefnet.correction.wizard", "search_read", [[]], {"fields": ["id"]}),
            # the link to the stored note is the administrators' (the others read the note as "Why")
            ("sklep_a", "access", "ksefnet.document", "read", [[self.doc_a.id]], {"fields": ["classification_note_id"]}),
            ("sklep_a", "ok", "ksefnet.document", "read", [[self.doc_a.id]], {"fields": ["classification_note"]}),
            ("kadmin", "ok", "ksefnet.document", "read", [[self.doc_a.id]], {"fields": ["classification_note_id"]}),
        ]  # fmt: skip
        for field, value in (("offline_mode", "offline24"), ("offline_deadline", "2030-01-01 00:00:00"),
                             ("offline_reason", "x")):  # fmt: skip
            cells.append(
                ("kadmin", "access", "ksefnet.document", "write", [[self.doc_energy.id], {field: value}], {})
            )
        cells.append(
            ("hm", lambda r: isinstance(r, dict), "ksefnet.hipermarket.api", "availability", [US], {})
        )
        cells.append(("sklep_a", "access", "ksefnet.hipermarket.api", "availability", [US], {}))
        self.expect(cells)

    def test_the_hipermarket_user_stays_within_its_buffers_and_shops(self):
        nip = US
        own = lambda result: [r["document_id"] for r in result] == ["HM-A"]  # noqa: E731
        cells = [
            ("hm", lambda r: r[0]["status"] == "waiting", "ksefnet.hipermarket.api", "status", [nip, ["HM-A"]], {}),
            ("hm", lambda r: r[0]["status"] == "unknown", "ksefnet.hipermarket.api", "status", [nip, ["HM-B"]], {}),
            ("hm", lambda r: own(r["changes"]), "ksefnet.hipermarket.api", "changes", [nip, 0], {}),
            ("hm", lambda r: r["acknowledged"] == 0, "ksefnet.hipermarket.api", "acknowledge", [nip, ["HM-B"]], {}),
            ("hm", "refused", "ksefnet.hipermarket.api", "upo", [nip, "HM-B"], {}),
            ("hm", "refused", "ksefnet.hipermarket.api", "qr", [nip, "HM-B"], {}),
            # another shop's waiting document is not replaced by submitting its id under one's own shop
            ("hm", lambda r: r[0]["error"]["code"] == "forbidden", "ksefnet.hipermarket.api", "submit",
             [[self.item("HM-B", "A", xml=sample_invoice(seller_nip=US, number="FV/OTHER").decode())]], {}),
            ("hm", lambda r: r[0]["error"]["code"] == "forbidden", "ksefnet.hipermarket.api", "submit",
             [[self.item("HM-NEW", "B")]], {}),
            ("hm", lambda rows: [r["id"] for r in rows] == [self.hm.id], "res.users", "search_read", [[]],
             {"fields": ["login"]}),
            ("hm", lambda rows: all(r["user_id"][0] == self.hm.id for r in rows), "res.users.apikeys", "search_read",
             [[]], {"fields": ["user_id"]}),
            ("hm", "access", "ksefnet.document", "write", [[self.hm_a], {"shop_code": "B"}], {}),
            ("hm", "access", "ksefnet.document.event", "search_read", [[]], {"fields": ["id"]}),
            ("sklep_a", "access", "ksefnet.hipermarket.api", "status", [nip, ["HM-A"]], {}),
        ]  # fmt: skip
        self.expect(cells)
        self.assertEqual(self.env["ksefnet.document"].browse(self.hm_b)._xml().count(b"FV/OTHER"), 0)

    def test_attachments_over_web_content_follow_the_document(self):
        xml_b = self.doc_b.xml_attachment_id.id
        xml_a = self.doc_a.xml_attachment_id.id
        self.authenticate("sklep_a", "sklep_a")
        self.assertEqual(self.url_open(f"/web/content/{xml_a}").status_code, 200)
        self.assertIn(self.url_open(f"/web/content/{xml_b}").status_code, (403, 404))
        self.authenticate("czytelnik", "czytelnik")
        self.assertIn(self.url_open(f"/web/content/{xml_a}").status_code, (403, 404))

    def test_json_rpc_holds_the_same_rules(self):
        def jsonrpc(login, model, method, *args, **kwargs):
            payload = {"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
                "service": "object", "method": "execute_kw",
                "args": [self.env.cr.dbname, self.users[login].id, self.keys[login], model, method, list(args), kwargs],
            }}  # fmt: skip
            answer = self.url_open(
                "/jsonrpc", data=json.dumps(payload), headers={"Content-Type": "application/json"}
            )
            return answer.json()

        every = [self.doc_a.id, self.doc_b.id, self.doc_energy.id, self.doc_other.id]
        events = jsonrpc("sklep_a", "ksefnet.document.event", "search_read", [["document_id", "in", every]],
                         fields=["document_id"])  # fmt: skip
        self.assertEqual({r["document_id"][0] for r in events["result"]}, {self.doc_a.id})
        denied = jsonrpc("sklep_a", "ksefnet.document", "write", [self.doc_a.id], {"ksef_number": "X"})
        self.assertEqual(denied["error"]["data"]["name"], "odoo.exceptions.AccessError")
        denied = jsonrpc("hm", "res.users", "search_read", [], fields=["login"])
        self.assertEqual([r["login"] for r in denied["result"]], ["hm"])
