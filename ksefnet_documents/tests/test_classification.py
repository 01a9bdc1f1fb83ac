import hashlib
import json

from odoo.tests import tagged

from ksefnet_core.testing import ThirdParty

from .common import SAMPLES, US, DocumentsCase

CORRECTIONS = {"2", "3", "5", "6", "7", "11", "12", "13", "18"}
WARSAW = {"1", "8", "10", "14", "17", "19", "24", "25"}
KRAKOW = {"4", "20", "21"}
FOREIGN = {"22", "22_upd-2025-08-27", "23"}
NO_ADDRESS_MATCH = {"9", "15", "16"}


@tagged("post_install", "-at_install")
class TestClassification(DocumentsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        env = cls.env
        cls.waw = env["ksefnet.shop"].create(
            {"name": "Warszawa Polna", "code": "WAW1", "buffer_id": cls.buffer.id, "street": "Polna 1",
             "postal_code": "00-001", "city": "Warszawa", "gln_numbers": "5901234000011"}
        )  # fmt: skip
        cls.krk = env["ksefnet.shop"].create(
            {"name": "Kraków Sadowa", "code": "KRK1", "buffer_id": cls.buffer.id,
             "address_lines": "UL. SADOWA 1 LOK 3", "delivery_patterns": "WZ/KRK/*"}
        )  # fmt: skip
        cls.quarantine = cls.catalog("Kwarantanna")
        cls.review = cls.catalog("Do sprawdzenia")
        cls.wz = cls.catalog("Dostawy WZ")
        cls.shops = cls.catalog("Sklepy")
        cls.cat_waw = cls.catalog("Warszawa", cls.shops)
        cls.cat_krk = cls.catalog("Kraków", cls.shops)
        cls.corrections = cls.catalog("Korekty")
        tag = env["ksefnet.tag"].create
        cls.tag_wz, cls.tag_main, cls.tag_kor = (
            tag({"name": "WZ"}),
            tag({"name": "Główny dostawca"}),
            tag({"name": "Korekta"}),
        )
        kinds = env["ksefnet.invoice.kind"].search([("code", "in", ["KOR", "KOR_ZAL", "KOR_ROZ"])])
        cls.rule("Not ours", 1, validity="invalid", catalog_id=cls.quarantine.id, stop=True)
        cls.rule("Unclear", 2, validity="review", catalog_id=cls.review.id, stop=True)
        cls.rule("WZ deliveries", 5, delivery_match="pattern", delivery_patterns="44343434/*",
                 catalog_id=cls.wz.id, tag_ids=[(6, 0, cls.tag_wz.ids)])  # fmt: skip
        cls.rule("Warsaw shop", 10, address_match="shop", address_shop_id=cls.waw.id,
                 catalog_id=cls.cat_waw.id, shop_action="matched")  # fmt: skip
        cls.rule("Cracow shop", 11, address_match="shop", address_shop_id=cls.krk.id,
                 catalog_id=cls.cat_krk.id, shop_action="matched")  # fmt: skip
        cls.rule("Corrections", 20, invoice_kind_ids=[(6, 0, kinds.ids)], catalog_id=cls.corrections.id,
                 tag_ids=[(6, 0, cls.tag_kor.ids)])  # fmt: skip
        cls.rule("Main supplier", 30, seller_nips="9999999999", tag_ids=[(6, 0, cls.tag_main.ids)])

    def test_compiled_rules_take_what_the_orm_reads(self):
        """_compile takes the rules' values from the cache: for every field it uses, the same as a record's
        attribute gives (False for empty values, ids for relations), the rules in their order."""
        from ..models.ksefnet_classification_rule import COMPILED_FIELDS

        Rule = self.env["ksefnet.classification.rule"].sudo()
        self.rule("Text and amounts", 40, text_field="seller_name", text_value="Hurt", amount_min=10.5,
                  amount_max=99.99, direction="purchase", gln_match="value", gln_values="5901234000011",
                  address_match="any_shop", shop_action="set", shop_id=self.krk.id)  # fmt: skip
        rules = Rule.search([("buffer_id", "=", self.buffer.id)])
        self.assertGreaterEqual(len(rules), 8)
        self.env.invalidate_all()
        rules.fetch(COMPILED_FIELDS)  # as _compile does: the values come from this read, not the test's
        rows = rules._plain_rows(COMPILED_FIELDS)
        for rule, row in zip(rules, rows, strict=True):
            self.assertEqual(row["id"], rule.id)
            for name in COMPILED_FIELDS:
                value = rule[name]
                if rule._fields[name].type == "many2many":
                    value = tuple(value.ids)
                elif rule._fields[name].type == "many2one":
                    value = value.id or False
                self.assertEqual(row[name], value, f"{rule.name}: {name}")
        compiled = {c.rule_id: c for c in rules._compile(self.env["ksefnet.shop"].search([]))}
        corrections = compiled[rules.filtered(lambda r: r.name == "Corrections").id]
        self.assertEqual(corrections.kinds, frozenset({"KOR", "KOR_ZAL", "KOR_ROZ"}))
        self.assertEqual(corrections.tag_ids, tuple(self.tag_kor.ids))
        text = compiled[rules.filtered(lambda r: r.name == "Text and amounts").id]
        self.assertEqual((text.text_field, text.text_value), ("seller_name", "hurt"))
        self.assertEqual((text.amount_min, text.amount_max, text.shop_id), (10.5, 99.99, self.krk.id))
        self.assertEqual(len(text.address_shops), 2)  # any shop: all of them
        warsaw = compiled[rules.filtered(lambda r: r.name == "Warsaw shop").id]
        self.assertEqual([s.shop_id for s in warsaw.address_shops], [self.waw.id])

    def test_every_mf_sample_lands_where_the_rules_say(self):
        names = sorted(p.stem.removeprefix("FA_3_Przyklad_") for p in SAMPLES.glob("*.xml"))
        self.assertEqual(len(names), 26)
        for name in names:
            doc = self.sample(name)
            with self.subTest(sample=name):
                if name in FOREIGN:
                    self.assertEqual((doc.validity, doc.catalog_id), ("review", self.review))
                    self.assertFalse(doc.tag_ids, "the review rule stops the evaluation")
                    continue
                self.assertEqual(doc.validity, "valid", doc.validity_reasons)
                self.assertIn(self.tag_main, doc.tag_ids)
                expected_shop = (
                    self.waw
                    if name in WARSAW | (CORRECTIONS - {"5", "6", "7"})
                    else (self.krk if name in KRAKOW | {"5", "6", "7"} else self.env["ksefnet.shop"])
                )
                self.assertEqual(doc.shop_id, expected_shop)
                if name in CORRECTIONS:
                    self.assertEqual(doc.catalog_id, self.corrections)
                    self.assertIn(self.tag_kor, doc.tag_ids)
                elif name in NO_ADDRESS_MATCH:
                    self.assertFalse(doc.catalog_id, "Unassigned")
                else:
                    self.assertEqual(doc.catalog_id, self.cat_waw if name in WARSAW else self.cat_krk)
                self.assertEqual(self.tag_wz in doc.tag_ids, name == "4")
                self.assertTrue(doc.classification_note)
        self.assertIn("WZ deliveries", self.sample("4").classification_note)
        self.assertIn("delivery id 44343434/2026", self.sample("4").classification_note)

    def test_classified_as_inserted_is_what_a_reclassification_gives(self):
        """The result written into the INSERT (no UPDATE of the new rows) is the one the stored documents get
        when they are classified again from their stored values and XML."""
        docs = self.Document.browse()
        with _no_update(self):
            for path in sorted(SAMPLES.glob("*.xml")):
                docs |= self.store(path.read_bytes())
        self.assertTrue(all(docs.mapped("classified_at")))

        def results():
            docs.invalidate_recordset()
            return [
                (d.validity, d.validity_reasons, d.catalog_id, d.shop_id, d.classification_note, d.rule_ids,
                 d.tag_ids)
                for d in docs
            ]  # fmt: skip

        inserted = results()
        self.assertTrue(any(r[5] for r in inserted) and any(r[6] for r in inserted), "links were written")
        with _no_update(self, allowed={"classified_at", "reclassify_pending"}):
            docs._classify()  # every result stays: only the time of classification is written
        self.assertEqual(results(), inserted)

    def test_gln_and_delivery_identifiers_of_shops(self):
        self.rule("Any shop by GLN", 40, gln_match="any_shop", shop_action="matched")
        self.rule("Any shop by WZ", 41, delivery_match="any_shop", shop_action="matched")
        by_gln = self.generated(
            buyer_address=("Magazyn centralny", "05-800 Pruszków"), buyer_gln="5901234000011"
        )
        self.assertEqual(by_gln.shop_id, self.waw)
        by_wz = self.generated(
            buyer_address=("Magazyn centralny", "05-800 Pruszków"), delivery_notes=("WZ/KRK/77",)
        )
        self.assertEqual(by_wz.shop_id, self.krk)
        self.assertIn("delivery id WZ/KRK/77", by_wz.classification_note)

    def test_validity_and_quarantine(self):
        ours = self.generated()
        self.assertEqual(ours.validity, "valid")
        other = self.generated(buyer_nip="7740001454")
        self.assertEqual((other.validity, other.catalog_id), ("invalid", self.quarantine))
        self.assertIn("7740001454", other.validity_reasons)
        as_recipient = self.generated(buyer_nip="7740001454", third_parties=(ThirdParty(nip=US, role=2),))
        self.assertEqual(as_recipient.validity, "valid")
        as_factor = self.generated(buyer_nip="7740001454", third_parties=(ThirdParty(nip=US, role=1),))
        self.assertEqual(as_factor.validity, "invalid")
        self.buffer.accepted_third_party_roles = "1,2"
        as_factor.action_reclassify()
        self.assertEqual(as_factor.validity, "valid", "the accepted roles are the buffer's setting")

    def test_documents_with_different_reasons_classified_together_keep_their_own(self):
        """Classified at once, in chunks that share what they made (the reasons, the notes' lines), with that
        memo cleared on the way: each document gets what it gets classified alone."""
        from unittest.mock import patch

        from ..models import ksefnet_document

        docs = self.Document.browse()
        for i in range(4):
            docs |= self.generated(seller_nip="9999999999" if i % 2 else "7740001454")
            docs |= self.generated(buyer_nip=f"77400014{54 + i}")
            docs |= self.generated(
                buyer_nip="7740001454", third_parties=(ThirdParty(nip=US, role=i % 3 + 1),)
            )

        def results():
            docs.invalidate_recordset()
            return [(d.validity, d.validity_reasons, d.catalog_id, d.classification_note) for d in docs]

        alone = []
        for doc in docs:
            doc._classify()
            doc.invalidate_recordset()
            alone.append((doc.validity, doc.validity_reasons, doc.catalog_id, doc.classification_note))
        self.assertGreaterEqual(len({r[1] for r in alone}), 4, "distinct reasons among them")
        docs.sudo().write({"catalog_id": False, "validity": False, "validity_reasons": False})
        with (
            patch.object(ksefnet_document, "CLASSIFY_CHUNK", 5),
            patch.object(ksefnet_document, "MEMO_SIZE", 2),
        ):
            docs._classify()
        self.assertEqual(results(), alone)

    def test_rule_test_button_and_reclassification_after_a_change(self):
        doc = self.generated(buyer_address=("ul. Polna 1", "00-001 Warszawa"))
        self.assertEqual(doc.catalog_id, self.cat_waw)
        rule = self.rule("Big ones", 50, amount_min=1_000_000, catalog_id=self.corrections.id)
        action = rule.action_test_rule()
        self.assertFalse(self.Document.search(action["domain"]), "nothing that large yet")
        rule.amount_min = 1
        self.assertIn(doc, self.Document.search(rule.action_test_rule()["domain"]))
        self.assertEqual(doc.catalog_id, self.cat_waw, "testing a rule changes nothing")
        rule.action_apply_to_existing()
        self.assertEqual(doc.catalog_id, self.corrections)
        self.assertIn(rule, doc.rule_ids)

    def test_sales_documents_are_classified_too(self):
        self.rule("Sales", 60, direction="sales", catalog_id=self.wz.id, stop=True)
        doc = self.store(
            __import__("ksefnet_core.testing", fromlist=["sample_invoice"]).sample_invoice(
                seller_nip=US, number="FV/S/1", buyer_nip="7740001454"
            ),
            direction="sales",
        )
        self.assertEqual((doc.validity, doc.catalog_id), ("valid", self.wz))

    def test_matched_rules_are_kept_in_order_searchable_and_shown_as_they_are_now(self):
        main = self.env["ksefnet.classification.rule"].search([("name", "=", "Main supplier")])
        warsaw = self.env["ksefnet.classification.rule"].search([("name", "=", "Warsaw shop")])
        both = self.generated(seller_nip="9999999999", buyer_address=("ul. Polna 1", "00-001 Warszawa"))
        shop_only = self.generated(buyer_address=("ul. Polna 1", "00-001 Warszawa"))
        none = self.generated(buyer_address=("ul. Nieznana 9", "99-999 Nigdzie"))
        self.assertEqual(both.rule_match, [warsaw.id, main.id], "in the order the rules ran")
        self.assertEqual(both.rule_ids, warsaw | main)
        self.assertFalse(none.rule_match)
        self.assertFalse(none.rule_ids)
        mine = [("id", "in", (both | shop_only | none).ids)]
        Document = self.Document
        self.assertEqual(Document.search([*mine, ("rule_ids", "in", main.ids)]), both)
        self.assertEqual(Document.search([*mine, ("rule_ids", "=", warsaw.id)]), both | shop_only)
        self.assertEqual(Document.search([*mine, ("rule_ids", "not in", main.ids)]), shop_only | none)
        self.assertEqual(Document.search([*mine, ("rule_ids", "=", False)]), none)
        self.assertEqual(Document.search([*mine, ("rule_ids", "!=", False)]), both | shop_only)
        self.assertFalse(Document.search([*mine, ("rule_ids", "in", [])]))
        self.assertEqual(len(Document.search([*mine, ("rule_ids", "not in", [])])), 3)
        self.assertEqual(Document.search([*mine, ("rule_ids", "ilike", "Main supp")]), both)
        # a rule archived or deleted since is no longer shown; the classification note still tells
        main.active = False
        both.invalidate_recordset(["rule_ids"])
        self.assertEqual(both.rule_ids, warsaw)
        self.assertIn("Main supplier", both.classification_note)
        warsaw.unlink()
        both.invalidate_recordset(["rule_ids"])
        self.assertFalse(both.rule_ids)

    def test_matched_rules_move_from_the_old_link_table_on_upgrade(self):
        """18.0.0.6.0's migration: the links of 18.0.0.5.0 become each document's rule_match."""
        from ..models.ksefnet_document import OLD_RULE_LINKS, move_rule_links

        rules = self.env["ksefnet.classification.rule"].search([("buffer_id", "=", self.buffer.id)])
        first, second = rules[0], rules[3]
        doc, other = self.generated(), self.generated()
        (doc | other).sudo().write({"rule_match": False})
        self.env.flush_all()
        cr = self.env.cr
        cr.execute(
            f"CREATE TABLE {OLD_RULE_LINKS} (ksefnet_document_id int NOT NULL, "  # noqa: S608 - a constant
            "ksefnet_classification_rule_id int NOT NULL, PRIMARY KEY (ksefnet_document_id, "
            "ksefnet_classification_rule_id))"
        )
        cr.execute(
            f"INSERT INTO {OLD_RULE_LINKS} VALUES (%s, %s), (%s, %s)",  # noqa: S608 - a constant
            [doc.id, second.id, doc.id, first.id],
        )
        move_rule_links(cr)
        (doc | other).invalidate_recordset()
        self.assertEqual(doc.rule_match, [first.id, second.id])
        self.assertFalse(other.rule_match)
        cr.execute("SELECT to_regclass(%s)", [OLD_RULE_LINKS])
        self.assertIsNone(cr.fetchone()[0], "the old table is dropped")
        move_rule_links(cr)  # a second run finds nothing to do

    def test_documents_classified_for_the_same_reasons_share_one_stored_note(self):
        Note = self.env["ksefnet.classification.note"]
        first, second = (self.generated(seller_nip="9999999999") for _i in range(2))
        self.assertIn("Main supplier", first.classification_note)
        self.assertEqual(first.classification_note_id, second.classification_note_id, "stored once")
        self.assertEqual(first.classification_note_source, first.classification_note_id.source)
        # its key is the digest of [text, template] as canonical JSON, as notes stored earlier have it (they
        # are found again after an upgrade)
        note = first.classification_note_id
        canonical = json.dumps([note.source, note.template], sort_keys=True, separators=(",", ":"))
        self.assertEqual(note.key, hashlib.sha256(canonical.encode()).hexdigest())
        self.assertTrue(note.template)
        other = self.generated()
        self.assertNotEqual(other.classification_note_id, first.classification_note_id)
        notes = Note.search_count([])
        (first | second | other).action_reclassify()  # the same rules: the same notes, nothing new stored
        self.assertEqual(Note.search_count([]), notes)
        # searching the note as a user searches its text, among the documents the user may see
        found = self.Document.search([("classification_note", "ilike", "main supplier")])
        self.assertIn(first, found)
        self.assertNotIn(other, found)
        self.assertIn(other, self.Document.search([("classification_note", "not ilike", "main supplier")]))
        unclassified = self.generated()
        unclassified.sudo().write({"classification_note_id": False})
        self.assertIn(unclassified, self.Document.search([("classification_note", "=", False)]))
        self.assertNotIn(first, self.Document.search([("classification_note", "=", False)]))
        self.assertNotIn(unclassified, self.Document.search([("classification_note", "!=", False)]))
        self.assertIn(unclassified, self.Document.search([("classification_note", "not ilike", "main")]))
        # a note no document has any more is deleted by the daily clean-up; the others stay
        rules = self.env["ksefnet.classification.rule"]
        rules.search([("buffer_id", "=", self.buffer.id), ("name", "=", "Main supplier")]).name = "Supplier A"
        old = first.classification_note_id
        (first | second).action_reclassify()
        self.assertIn("Supplier A", first.classification_note)
        self.assertNotEqual(first.classification_note_id, old)
        Note._gc_unused()
        self.assertFalse(old.exists())
        self.assertTrue(first.classification_note_id.exists())
        self.assertTrue(other.classification_note_id.exists())

    def test_notes_move_out_of_the_document_rows_on_upgrade(self):
        """18.0.0.7.0's migration: the notes kept in each document's row (text and template columns) are
        stored once each and the documents point at them; the columns are dropped."""
        from ..models.ksefnet_document import move_notes

        doc, same, other, bare = (self.generated() for _i in range(4))
        self.env.flush_all()
        cr = self.env.cr
        cr.execute(
            "ALTER TABLE ksefnet_document ADD COLUMN classification_note_source text, "
            "ADD COLUMN classification_note_template jsonb"
        )
        template = {"t": "seller NIP %(nip)s", "m": "ksefnet_documents", "a": {"nip": "9999999999"}}
        cr.execute(
            "UPDATE ksefnet_document SET classification_note_id = NULL, classification_note_source = %s, "
            "classification_note_template = %s WHERE id = ANY(%s)",
            ["seller NIP 9999999999", json.dumps(template), [doc.id, same.id]],
        )
        cr.execute(
            "UPDATE ksefnet_document SET classification_note_id = NULL, classification_note_source = 'by hand' "
            "WHERE id = %s",
            [other.id],
        )
        cr.execute("UPDATE ksefnet_document SET classification_note_id = NULL WHERE id = %s", [bare.id])
        move_notes(self.env)
        self.env.invalidate_all()
        self.assertEqual(doc.classification_note_id, same.classification_note_id)
        self.assertEqual(doc.classification_note_template, template)
        self.assertEqual(doc.classification_note, "seller NIP 9999999999")
        self.assertEqual(other.classification_note, "by hand")
        self.assertFalse(bare.classification_note_id)
        cr.execute(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'ksefnet_document' "
            "AND column_name IN ('classification_note_source', 'classification_note_template')"
        )
        self.assertEqual(cr.fetchone()[0], 0, "the old columns are dropped")
        move_notes(self.env)  # a second run finds nothing to do

    def test_many_documents_are_reclassified_in_the_background_chunk_by_chunk(self):
        from unittest.mock import patch

        from ..models import ksefnet_document

        docs = self.Document.browse()
        for _i in range(7):
            docs |= self.generated(buyer_address=("ul. Polna 1", "00-001 Warszawa"))
        self.assertEqual(docs.catalog_id, self.cat_waw)
        rule = self.rule("Big ones", 50, amount_min=1, catalog_id=self.corrections.id)
        with patch.object(ksefnet_document, "CLASSIFY_CHUNK", 3):
            answer = docs.action_reclassify()
            self.assertEqual(answer["params"]["type"], "info")  # queued, not done now
            self.assertEqual(docs.catalog_id, self.cat_waw, "nothing moved yet")
            self.assertEqual(self.buffer.reclassify_remaining, 7)
            cron = self.env.ref("ksefnet_documents.ir_cron_ksefnet_reclassify")
            self.assertTrue(self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]), "woken up")
            progress = []
            for _round in range(4):
                cron_env, record = cron._add_progress()  # as Odoo's scheduler calls it, with its progress
                self.Document.with_env(cron_env.env)._cron_reclassify()
                progress.append((record.done, record.remaining))
        self.assertEqual(progress, [(3, 4), (3, 1), (1, 0), (0, 0)])
        self.buffer.invalidate_recordset(["reclassify_remaining"])
        self.assertEqual(self.buffer.reclassify_remaining, 0)
        self.assertEqual(docs.catalog_id, self.corrections)
        self.assertFalse(any(docs.mapped("reclassify_pending")))
        self.assertTrue(all(rule in d.rule_ids for d in docs))
        # the same rules again: the matched rules stay as they are (only the time of classification is written)
        with _no_update(self, allowed={"classified_at", "reclassify_pending"}):
            docs.action_reclassify()
        rule.active = False
        docs.action_reclassify()
        self.assertEqual(docs.catalog_id, self.cat_waw)
        self.assertFalse(any(rule in d.rule_ids for d in docs), "a rule that no longer matches is unlinked")


@tagged("post_install", "-at_install")
class TestCompiledRulesCache(DocumentsCase):
    """The compiled rules are kept in the registry's cache: compiled once, compiled again after every change
    of what they are made of, and never filing into a catalog or with a tag that is gone."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.shop = cls.env["ksefnet.shop"].create(
            {"name": "Polna", "code": "WAW1", "buffer_id": cls.buffer.id, "street": "Polna 1",
             "postal_code": "00-001", "city": "Warszawa"}
        )  # fmt: skip
        cls.target = cls.catalog("Sklep Polna")
        cls.tag = cls.env["ksefnet.tag"].create({"name": "Polna"})
        cls.by_shop = cls.rule("Polna", 10, address_match="shop", address_shop_id=cls.shop.id,
                               catalog_id=cls.target.id, tag_ids=[(6, 0, cls.tag.ids)])  # fmt: skip

    def compiled(self):
        """{rule name: compiled rule}, {shop code: shop id}, from a cold ORM cache (what the registry keeps)."""
        self.env.invalidate_all()
        rules, shops = self.Document._compiled_rules(self.buffer)
        return {r.name: r for r in rules}, dict(shops)

    def test_compiled_once(self):
        first = self.Document._compiled_rules(self.buffer)
        self.env.invalidate_all()
        with self.assertQueryCount(0):  # no search of rules or shops, no read: the registry's copy
            again = self.Document._compiled_rules(self.buffer)
        self.assertIs(again, first)
        with self.assertRaises(TypeError):  # shared by every caller: it cannot be changed by one of them
            again[1]["XXX"] = 1

    def test_every_change_compiles_again(self):
        rules, shops = self.compiled()
        self.assertEqual(rules["Polna"].catalog_id, self.target.id)
        self.assertEqual(shops, {"WAW1": self.shop.id})
        other = self.catalog("Inny")
        self.by_shop.catalog_id = other
        self.assertEqual(self.compiled()[0]["Polna"].catalog_id, other.id, "a rule changed")
        self.by_shop.active = False
        self.assertNotIn("Polna", self.compiled()[0], "a rule archived")
        self.by_shop.active = True
        new = self.rule("Nowa", 20, seller_nips="9999999999")
        self.assertIn("Nowa", self.compiled()[0], "a rule created")
        new.unlink()
        self.assertNotIn("Nowa", self.compiled()[0], "a rule deleted")
        kind = self.env["ksefnet.invoice.kind"].search([("code", "=", "KOR")])
        self.by_shop.invoice_kind_ids = kind
        self.assertEqual(self.compiled()[0]["Polna"].kinds, frozenset({"KOR"}))
        kind.code = "KOR_X"
        self.assertEqual(self.compiled()[0]["Polna"].kinds, frozenset({"KOR_X"}), "an invoice kind changed")
        kind.code = "KOR"
        self.by_shop.invoice_kind_ids = False
        self.shop.postal_code = "00-002"
        self.assertEqual(self.compiled()[0]["Polna"].address_shops[0].address.postal_code, "00-002",
                         "a shop's address changed")  # fmt: skip
        self.shop.code = "WAW2"
        self.assertEqual(self.compiled()[1], {"WAW2": self.shop.id}, "a shop's code changed")
        second = self.env["ksefnet.shop"].create(
            {"name": "Druga", "code": "WAW3", "buffer_id": self.buffer.id}
        )
        self.assertIn("WAW3", self.compiled()[1], "a shop created")
        second.active = False
        self.assertNotIn("WAW3", self.compiled()[1], "a shop archived")
        second.unlink()
        self.assertEqual(self.compiled()[1], {"WAW2": self.shop.id}, "a shop deleted")

    def test_deleted_catalog_and_tag_are_not_filed_into(self):
        """A catalog or tag deleted (the rule's link emptied by the database, not by a write of the rule): the
        next document is classified without it, not refused for a catalog or tag that no longer exists."""
        polna = {"buyer_address": ("ul. Polna 1", "00-001 Warszawa")}
        doc = self.generated(**polna)
        self.assertEqual((doc.catalog_id, doc.tag_ids), (self.target, self.tag))  # the rules were compiled
        doc.catalog_id = False  # the catalog holds no documents: it may be deleted
        self.target.unlink()
        rules = self.compiled()[0]
        self.assertEqual((rules["Polna"].catalog_id, rules["Polna"].tag_ids), (False, (self.tag.id,)))
        self.tag.unlink()
        self.assertEqual(self.compiled()[0]["Polna"].tag_ids, ())
        doc = self.generated(**polna)
        self.assertEqual(doc.rule_ids, self.by_shop, "the rule still matches")
        self.assertFalse(doc.catalog_id)
        self.assertFalse(doc.tag_ids)


class _no_update:
    """Fails the test when a statement UPDATEs ksefnet_document inside the block, other than one setting only
    the columns ``allowed`` (and the write stamps)."""

    def __init__(self, case, allowed=()):
        self.case, self.allowed = case, set(allowed)

    def __enter__(self):
        import re
        from unittest.mock import patch

        from odoo.sql_db import Cursor

        self.seen = []
        original = Cursor.execute

        def execute(cr, query, params=None, log_exceptions=True):
            text = str(getattr(query, "code", query)).lstrip()
            if text.upper().startswith(('UPDATE "KSEFNET_DOCUMENT"', "UPDATE KSEFNET_DOCUMENT ")):
                assignments = re.split(r"\b(?:WHERE|FROM)\b", text.split(" SET ", 1)[1])[0]
                columns = set(re.findall(r'"?(\w+)"?\s*=', assignments)) - {"write_date", "write_uid"}
                if not columns <= self.allowed:
                    self.seen.append(text)
            return original(cr, query, params, log_exceptions)

        self.patcher = patch.object(Cursor, "execute", execute)
        self.patcher.start()
        return self

    def __exit__(self, *exc):
        self.patcher.stop()
        self.case.assertEqual(self.seen, [], "documents are not written twice")
        return False
