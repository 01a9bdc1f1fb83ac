"""The intake's one-INSERT path (ksefnet_bulk) stores what Odoo's create would have stored."""

from unittest.mock import patch

import psycopg2
from odoo.tests import TransactionCase, tagged

from ksefnet_core import fa3
from ksefnet_core.testing import sample_invoice

from ..models import ksefnet_bulk
from ..models.ksefnet_bulk import (
    STALE_ROWS,
    copy_text,
    drop_outdated_indexes,
    insert_records,
    reserve_ids,
    reserve_many,
    set_links,
    update_records,
)

NIP = "5265877635"
#: columns that differ between any two records by nature
OWN = {"id", "create_date", "write_date", "xml_attachment_id", "external_ref", "hm_change_seq"}


@tagged("post_install", "-at_install")
class TestBulkInserts(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.buffer = cls.env["ksefnet.buffer"].create({"name": "Bulk", "nip": NIP, "send_enabled": False})
        cls.Document = cls.env["ksefnet.document"].sudo()

    def _values(self, ref, number=None):
        invoice = fa3.parse(sample_invoice(seller_nip=NIP, number=number or f"FV/BULK/{ref}"))
        return dict(
            self.Document._values_from_invoice(invoice),
            buffer_id=self.buffer.id,
            external_ref=ref,
            source="Test",
            state="waiting",
            last_message="queued",
        )

    def _stored(self, doc):
        names = [n for n, f in doc._fields.items() if f.store and f.column_type and n not in OWN]
        doc.env.flush_all()
        doc.invalidate_recordset()
        return {n: doc[n] for n in names}

    def test_a_document_inserted_in_bulk_equals_one_created_by_the_orm(self):
        same = "FV/BULK/SAME"  # the same invoice under two references
        by_orm = self.Document.create(self.Document._message_vals(self._values("orm", same)))
        (bulk,) = insert_records(self.Document, [self.Document._message_vals(self._values("bulk", same))])
        # company_id (related) and own_issued (computed) were not given: computed as after create
        self.assertEqual(bulk.company_id, self.buffer.company_id)
        self.assertTrue(bulk.own_issued)
        self.assertTrue(bulk.active)  # a default
        self.assertEqual(bulk.last_message, "queued")
        self.assertEqual(self._stored(bulk), self._stored(by_orm))
        self.assertEqual(bulk.create_uid, self.env.user)

    def test_values_copy_escapes_arrive_as_given(self):
        """Rows go in as COPY text: backslashes, tabs, line ends, non-ASCII text, JSON, floats and bytes
        arrive as they were given, and a row with a value COPY is not written for goes in as an INSERT."""
        awkward = "C:\\faktury\\N\tkolumna\nwiersz\r\nkoniec \\. żółć € \\\\"
        values = dict(self._values("copy"), last_message=awkward, amount_gross=1234.56, retry_count=7)
        (doc,) = insert_records(self.Document, [self.Document._message_vals(values)])
        doc.env.flush_all()
        doc.invalidate_recordset()
        self.assertEqual(doc.last_message, awkward)  # stored as JSON (template) and as text (source)
        self.assertEqual((doc.amount_gross, doc.retry_count), (1234.56, 7))
        raw = bytes(range(256)) + b"\\x00\\N\t\n"
        Attachment = self.env["ir.attachment"].sudo()
        (attachment,) = insert_records(Attachment, [{"name": "bytes", "type": "binary", "db_datas": raw}])
        attachment.invalidate_recordset()
        self.assertEqual(bytes(attachment.db_datas), raw)
        with self.assertRaises(TypeError):
            copy_text([(1, ["a list"])])
        with patch.object(ksefnet_bulk, "copy_text", side_effect=TypeError("test")):
            (fallback,) = insert_records(self.Document, [self.Document._message_vals(dict(values, external_ref="i"))])  # fmt: skip
        fallback.invalidate_recordset()
        self.assertEqual(fallback.last_message, awkward)
        self.assertEqual(self._stored(fallback), self._stored(doc))

    def test_a_text_shared_by_rows_is_converted_once_as_its_field_converts_it(self):
        """The state, source and currency repeat in every row of a batch: each distinct text is converted
        once, by its field, and every row gets that field's own result (a Char's size cut included); a wrong
        selection value is still refused, also after a right one; translated fields are not memoised."""
        state = self.Document._fields["state"]
        rows = [
            dict(self.Document._message_vals(self._values(f"memo{i}")), currency_code="PLNX")
            for i in range(3)
        ]
        with patch.object(type(state), "convert_to_column_insert", autospec=True,
                          side_effect=type(state).convert_to_column_insert) as converted:  # fmt: skip
            docs = insert_records(self.Document, rows)
        self.assertEqual([c.args[1] for c in converted.call_args_list].count("waiting"), 1)
        docs.invalidate_recordset()
        self.assertEqual(docs.mapped("state"), ["waiting"] * 3)
        self.assertEqual(docs.mapped("currency_code"), ["PLN"] * 3)  # size=3, for every row
        wrong = [
            rows[0] | {"external_ref": "memo-ok"},
            rows[0] | {"external_ref": "memo-bad", "state": "nope"},
        ]
        with self.assertRaises(ValueError), self.env.cr.savepoint():
            insert_records(self.Document, wrong)
        self.assertFalse(self.Document.search([("external_ref", "in", ["memo-ok", "memo-bad"])]))
        self.assertTrue(ksefnet_bulk._value_alone(self.Document._fields["external_ref"]))
        self.assertFalse(ksefnet_bulk._value_alone(self.env["ir.ui.menu"]._fields["name"]))  # translated

    def test_only_plain_columns_are_accepted(self):
        for wrong in ({"event_ids": []}, {"invoice_html": "x"}, {"create_uid": 1}, {"no_such_field": 1}):
            with self.subTest(wrong), self.assertRaises(ValueError):
                insert_records(self.Document, [dict(self.Document._message_vals(self._values("x")), **wrong)])

    def test_cached_one2many_and_reserved_ids(self):
        (doc,) = insert_records(self.Document, [self.Document._message_vals(self._values("parent"))])
        self.assertFalse(doc.event_ids)  # cached empty
        self.Document._log_events([(doc.id, False, "waiting", 200, "first", "REF")])
        self.assertEqual(doc.event_ids.mapped("message"), ["first"])  # the cache was invalidated
        self.assertEqual(doc.event_ids.company_id, self.buffer.company_id)
        ids = reserve_ids(self.Document, 2)
        self.assertEqual(len(set(ids)), 2)
        plain = self.Document._message_vals
        docs = insert_records(self.Document, [dict(plain(self._values(f"r{i}")), id=i) for i in ids])
        self.assertEqual(docs.ids, ids)
        (after,) = insert_records(self.Document, [plain(self._values("after"))])
        self.assertGreater(after.id, max(ids))  # the sequence moved on past the reserved ids

    def test_the_fields_read_next_come_from_the_cache_as_stored(self):
        """``cached``: what the caller reads right after the insert is in the cache, given, default or empty,
        and equal to what the database then holds."""
        (doc,) = insert_records(self.Document, [self.Document._message_vals(self._values("cached"))])
        Event = self.env["ksefnet.document.event"].sudo()
        base = {"document_id": doc.id, "company_id": doc.company_id.id, "to_state": "waiting"}
        rows = [dict(base, ksef_code=200, reference="R1"), dict(base, from_state="waiting")]
        names = ["to_state", "from_state", "ksef_code", "reference", "document_id", "date", "user_id"]
        events = insert_records(Event, rows, cached=names)  # date and user_id: defaults; from_state: empty
        with self.assertQueryCount(0):
            cached = [[event[n] for n in names] for event in events]
        events.env.flush_all()
        events.invalidate_recordset()
        self.assertEqual(cached, [[event[n] for n in names] for event in events])
        self.assertEqual([(c[1], c[2], c[3]) for c in cached], [(False, 200, "R1"), ("waiting", 0, False)])
        with self.assertRaises(ValueError):
            insert_records(Event, rows[:1], cached=["message"])  # not a column

    def test_ids_of_several_tables_in_one_query(self):
        Event, Attachment = self.env["ksefnet.document.event"].sudo(), self.env["ir.attachment"].sudo()
        with self.assertQueryCount(1):
            docs, none, events, attachments = reserve_many(
                [(self.Document, 3), (Event, 0), (Event, 2), (Attachment, 1)]
            )
        self.assertEqual((len(set(docs)), none, len(set(events)), len(attachments)), (3, [], 2, 1))
        plain = self.Document._message_vals
        (after,) = insert_records(self.Document, [plain(self._values("after many"))])
        self.assertGreater(after.id, max(docs))  # each from its own table's sequence
        self.Document._log_events([(after.id, False, "waiting", 200, "first", "REF")], ids=events[:1])
        self.assertEqual(after.event_ids.ids, events[:1])
        self.Document._log_events([(after.id, "waiting", "waiting", 200, "again", "REF")])
        self.assertGreater(max(after.event_ids.ids), max(events))

    def test_updates_and_links_are_seen_by_the_orm(self):
        plain = self.Document._message_vals
        docs = insert_records(self.Document, [plain(self._values("u1")), plain(self._values("u2"))])
        self.assertEqual(docs.mapped("retry_count"), [0, 0])
        update_records(self.Document, [(docs[0].id, {"retry_count": 3}), (docs[1].id, {"retry_count": 5})])
        self.assertEqual(docs.mapped("retry_count"), [3, 5])  # not the cached zeros
        with self.assertRaises(ValueError):
            update_records(self.Document, [(docs[0].id, {"retry_count": 1}), (docs[1].id, {})])
        # many distinct value sets (more than FEW_DISTINCT, or few rows each): one UPDATE of arrays for all rows
        many = insert_records(self.Document, [plain(self._values(f"m{i}")) for i in range(50)])
        shared = [
            {
                "retry_count": n,
                "last_code": 400 + n,
                "last_message_template": {"t": f"n{n}"} if n % 5 else False,
            }
            for n in range(25)
        ]  # a JSON value (dumped once a set) and none (NULL) among them
        update_records(self.Document, [(doc.id, shared[i // 2]) for i, doc in enumerate(many)])
        many.invalidate_recordset()
        self.assertEqual(many.mapped("retry_count"), [i // 2 for i in range(50)])
        self.assertEqual(many.mapped("last_code"), [400 + i // 2 for i in range(50)])
        self.assertEqual(
            [doc.last_message_template for doc in many],
            [{"t": f"n{i // 2}"} if (i // 2) % 5 else False for i in range(50)],
        )
        self.assertEqual(docs.mapped("retry_count"), [3, 5], "other documents are not touched")
        if "tag_ids" not in self.Document._fields:  # the documents addon is not installed
            return
        tags = self.env["ksefnet.tag"].create([{"name": "A"}, {"name": "B"}, {"name": "C"}])
        self.assertFalse(docs[0].tag_ids)
        set_links(self.Document, "tag_ids", {docs[0].id: tags[:2].ids}, replace=False)
        self.assertEqual(docs[0].tag_ids, tags[:2])
        set_links(self.Document, "tag_ids", {docs[0].id: [tags[1].id, tags[2].id]}, replace=False)
        self.assertEqual(docs[0].tag_ids, tags)  # added, the existing link kept once
        set_links(self.Document, "tag_ids", {docs[0].id: [tags[2].id]}, replace=True)
        self.assertEqual(docs[0].tag_ids, tags[2])

    def test_indexes_no_longer_asked_for_are_dropped(self):
        """An upgrade from a version whose fields were indexed drops those indexes and keeps the others."""
        cr = self.env.cr
        cr.execute("CREATE INDEX ksefnet_document__buffer_id_index ON ksefnet_document (buffer_id)")
        cr.execute("CREATE INDEX ksefnet_document__xml_sha256_index ON ksefnet_document (xml_sha256)")
        cr.execute("CREATE INDEX ksefnet_document__next_retry_at_index_x ON ksefnet_document (next_retry_at)")
        drop_outdated_indexes(self.Document)
        cr.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'ksefnet_document'")
        names = {row[0] for row in cr.fetchall()}
        # served by the unique (buffer, ...) indexes
        self.assertNotIn("ksefnet_document__buffer_id_index", names)
        self.assertNotIn("ksefnet_document__xml_sha256_index", names)
        self.assertIn("ksefnet_document__next_retry_at_index_x", names, "an index of another name is kept")
        for kept in ("ksefnet_document__state_index", "ksefnet_document__next_retry_at_index",
                     "ksefnet_document_ksef_number_unique", "ksefnet_document_external_ref_unique"):  # fmt: skip
            self.assertIn(kept, names)

    def test_attachments_are_stored_as_odoo_stores_them(self):
        xml = sample_invoice(seller_nip=NIP, number="FV/BULK/ATT")
        (doc,) = self.Document._create_in_state(
            [self._values("att")], "waiting", "stored", xmls=[(xml, "FV.xml")]
        )
        attachment = doc.xml_attachment_id
        by_orm = self.env["ir.attachment"].sudo().create(
            {"name": "FV.xml", "raw": xml, "mimetype": "application/xml", "res_model": doc._name,
             "res_id": doc.id, "company_id": doc.company_id.id}
        )  # fmt: skip
        self.assertEqual(attachment.raw, xml)
        self.assertEqual((attachment.res_model, attachment.res_id), (doc._name, doc.id))
        for name in (
            "checksum",
            "file_size",
            "store_fname",
            "mimetype",
            "type",
            "index_content",
            "company_id",
        ):
            self.assertEqual(attachment[name], by_orm[name], name)
        self.assertEqual(doc._xml(), xml)

    def test_the_models_python_constraints_hold(self):
        from odoo.exceptions import ValidationError

        Attachment = self.env["ir.attachment"].sudo()
        (own_id,) = reserve_ids(Attachment, 1)
        with self.assertRaises(ValidationError), self.env.cr.savepoint():
            insert_records(
                Attachment,
                [
                    {
                        "id": own_id,
                        "name": "loop",
                        "type": "binary",
                        "res_model": "ir.attachment",
                        "res_id": own_id,
                    }
                ],
            )

    def test_the_constraints_read_the_written_values_not_the_rows(self):
        """Checking ir.attachment's constraint (res_model, res_id) of new rows reads no row back: the values
        written are in the cache, as after create, and equal what the database holds."""
        from odoo.sql_db import Cursor

        doc = self.Document.create(self.Document._message_vals(self._values("cached")))
        Attachment = self.env["ir.attachment"].sudo()
        rows = [
            {"name": f"a{i}.xml", "type": "binary", "res_model": doc._name, "res_id": doc.id}
            for i in range(3)
        ]
        seen, execute = [], Cursor.execute

        def spy(cr, query, params=None, log_exceptions=True):
            seen.append(str(getattr(query, "code", query)))
            return execute(cr, query, params, log_exceptions)

        with patch.object(Cursor, "execute", spy):
            attachments = insert_records(Attachment, rows)
        self.assertFalse([q for q in seen if q.lstrip().startswith("SELECT") and "ir_attachment" in q], seen)
        cached = [(a.res_model, a.res_id) for a in attachments]
        attachments.invalidate_recordset()
        self.assertEqual(cached, [(a.res_model, a.res_id) for a in attachments])
        self.assertEqual(cached, [(doc._name, doc.id)] * 3)

    def test_an_upgrade_replaces_the_indexes_fields_no_longer_ask_for(self):
        """A database from before: next_retry_at indexed with its NULLs, direction indexed. init drops both and
        Odoo's index check creates what the fields ask for now (NULLs left out; direction none)."""
        cr, table = self.env.cr, "ksefnet_document"

        def indexes():
            cr.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
            return dict(cr.fetchall())

        retry, direction = "ksefnet_document__next_retry_at_index", "ksefnet_document__direction_index"
        cr.execute(f"DROP INDEX {retry}")
        cr.execute(f"CREATE INDEX {retry} ON {table} (next_retry_at)")
        cr.execute(f"CREATE INDEX {direction} ON {table} (direction)")
        cr.execute(f"CREATE INDEX ksefnet_document_by_hand ON {table} (direction)")  # someone's own: kept
        self.Document.init()
        after = indexes()
        self.assertNotIn(retry, after)
        self.assertNotIn(direction, after)
        self.assertIn("ksefnet_document_by_hand", after)
        self.env.registry.check_indexes(cr, ["ksefnet.document"])
        self.assertIn("IS NOT NULL", indexes()[retry])
        self.assertNotIn(direction, indexes())

    def test_long_values_are_compressed_with_lz4_and_older_ones_stay_readable(self):
        """Every text and JSON column of the document table (the other addons' included) compresses with lz4
        where the server has it; a database from before (pglz) is switched by init, and what it had stored
        reads as before."""
        cr = self.env.cr
        cr.execute("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
        row = cr.fetchone()
        if not (row and row[0]):
            self.skipTest("this PostgreSQL server has no lz4 (older than 14, or built without it)")

        def methods():
            cr.execute(
                "SELECT attname, attcompression FROM pg_attribute WHERE attrelid = 'ksefnet_document'::regclass "
                "AND attnum > 0 AND NOT attisdropped AND atttypid IN ('text'::regtype, 'jsonb'::regtype)"
            )
            return dict(cr.fetchall())

        installed = methods()
        self.assertIn("last_message_source", installed)
        self.assertEqual(set(installed.values()), {"l"}, installed)
        long_text = " ".join(f"line {i} of a long message" for i in range(400))  # about 10 kB: compressed
        cr.execute("ALTER TABLE ksefnet_document ALTER COLUMN last_message_source SET COMPRESSION pglz")
        vals = self.Document._message_vals(dict(self._values("LZ-OLD"), last_message=long_text))
        (old,) = insert_records(self.Document, [vals])
        self.env.flush_all()
        self.Document.init()
        self.assertEqual(methods()["last_message_source"], "l")
        (new,) = insert_records(self.Document, [dict(vals, external_ref="LZ-NEW")])
        cr.execute(
            "SELECT id, pg_column_compression(last_message_source), last_message_source FROM ksefnet_document "
            "WHERE id = ANY(%s) ORDER BY id",
            [[old.id, new.id]],
        )
        self.assertEqual(cr.fetchall(), [(old.id, "pglz", long_text), (new.id, "lz4", long_text)])

    def test_the_filestore_collector_waits_for_xml_written_before_its_row(self):
        """Odoo's filestore garbage collector deletes checklisted files no attachment row refers to, under a
        SHARE lock on ir_attachment. From the first file written, this transaction holds a lock that makes
        it wait, so it cannot delete the XML of an invoice whose row is not yet inserted."""
        from odoo.addons.base.models.ir_attachment import IrAttachment
        from odoo.sql_db import db_connect

        refused = []
        original = IrAttachment._file_write

        def file_write(attachment, bin_value, checksum):
            with db_connect(self.env.cr.dbname).cursor() as collector:
                collector.execute("SET LOCAL lock_timeout TO '200ms'")
                try:
                    collector.execute(
                        "LOCK ir_attachment IN SHARE MODE", log_exceptions=False
                    )  # as the collector
                    refused.append(False)
                except psycopg2.errors.LockNotAvailable:
                    refused.append(True)
                collector.rollback()
            return original(attachment, bin_value, checksum)

        xmls = [(sample_invoice(seller_nip=NIP, number=f"FV/GC/{i}"), f"FV{i}.xml") for i in range(3)]
        with patch.object(IrAttachment, "_file_write", file_write):
            docs = self.Document._create_in_state(
                [self._values(f"gc{i}") for i in range(3)], "waiting", "stored", xmls=xmls
            )
        self.assertEqual(refused, [True, True, True])
        self.assertEqual([d._xml() for d in docs], [x for x, _name in xmls])

    def test_a_transaction_storing_documents_one_by_one_analyses_each_time_the_table_doubled(self):
        """The downloader stores invoices one by one, many in one transaction: once past STALE_ROWS the table
        is analysed when it has doubled again, not after every document (which cost an ANALYZE a document:
        a 10 000-invoice load did not finish in 20 minutes)."""
        from ..models.ksefnet_bulk import keep_statistics

        cr = self.env.cr
        cr.execute("ANALYZE ksefnet_document")  # the statistics count what the table holds now
        cr.execute("SELECT count(*) FROM ksefnet_document")
        before = cr.fetchone()[0]
        count = 6 * max(before + 1, 20)  # the table more than doubles, twice or more
        analyses = []
        values = self._values("one")
        with patch.object(ksefnet_bulk, "STALE_ROWS", 20):
            for i in range(count):
                insert_records(
                    self.Document, [dict(self.Document._message_vals(values), external_ref=f"one{i}")]
                )
                analyses.append(keep_statistics(self.Document, 1))  # as _create_in_state calls it
        sizes = [before + i + 1 for i, done in enumerate(analyses) if done]  # the table's size at each
        self.assertTrue(sizes, "analysed at all")
        self.assertLessEqual(len(sizes), 4, sizes)
        for smaller, larger in zip(sizes, sizes[1:], strict=False):
            self.assertGreaterEqual(larger, 2 * smaller - 1, sizes)  # each time it has doubled

    def test_calls_storing_one_invoice_look_at_the_statistics_now_and_then(self):
        """Looking at the statistics costs a query: a process storing one invoice a call looks once it has
        stored a quarter of what they counted (or of STALE_ROWS) since its last look, not every time."""
        from ..models.ksefnet_bulk import CHECK_SHARE, keep_statistics

        cr = self.env.cr

        def looked(rows):
            count = cr.sql_log_count
            keep_statistics(self.Document, rows)
            return cr.sql_log_count > count

        with patch.object(ksefnet_bulk, "STALE_ROWS", 10**6), patch.object(ksefnet_bulk, "_unchecked", {}):
            share = 10**6 // CHECK_SHARE  # the table counts far fewer rows: STALE_ROWS decides
            self.assertFalse(looked(share - 1))
            self.assertTrue(looked(1), "a quarter of STALE_ROWS stored")
            self.assertEqual([looked(1) for _i in range(100)], [False] * 100)
            self.assertTrue(looked(None), "without rows: every time")
            self.assertTrue(looked(share), "a batch that large looks at once")

    def test_references_are_looked_up_by_the_unique_index_once_a_bulk_load_is_analysed(self):
        """Asked for "external_ref IN (...)", PostgreSQL uses the trigram index (slow for equality); before the
        table is analysed it guesses, and may scan the whole buffer: every batch of a bulk load then costs
        more than the one before. Storing more documents than the statistics counted analyses the table, and
        the lookup of the submission then uses the unique index."""
        cr = self.env.cr

        def counted():
            cr.execute("SELECT reltuples FROM pg_class WHERE oid = 'ksefnet_document'::regclass")
            return cr.fetchone()[0]

        cr.execute("SELECT count(*) FROM ksefnet_document")
        before = cr.fetchone()[0]
        count = STALE_ROWS + 1 + max(before, int(counted()))  # more rows than the table held when analysed
        values = self._values("lookup")
        refs = [f"lookup{i}" for i in range(count)]
        docs = self.Document._create_in_state(
            [dict(values, external_ref=ref) for ref in refs], "waiting", "stored"
        )  # fmt: skip
        self.assertGreaterEqual(counted(), before + count)  # analysed, this transaction's rows included
        asked = refs[::50] + ["not-there"]
        plans = []
        original = cr.execute

        def execute(query, params=None, log_exceptions=True):
            if "unnest" in str(query):
                original(f"EXPLAIN {query}", params)
                plans.append("\n".join(row[0] for row in cr.fetchall()))
            return original(query, params, log_exceptions)

        with patch.object(type(cr), "execute", side_effect=execute, autospec=False):
            found = self.Document._known_refs(self.buffer, "Test", asked)
        self.assertEqual(found, {ref: doc for ref, doc in zip(refs, docs, strict=True) if ref in asked})
        (plan,) = plans
        self.assertIn("ksefnet_document_external_ref_unique", plan)
        self.assertNotIn("Seq Scan on ksefnet_document", plan)
        self.assertNotIn("external_ref_index", plan)
