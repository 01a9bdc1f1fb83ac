"""Every message the engines store reads in the reader's language, whoever wrote it.

The engines run as the scheduled action or an integration user (English); a Polish accountant must still
read Polish: the document history, failure reasons, the sending status, download progress, connection
results. What is checked here: each template the engine writes, rendered in Polish, has no English word of
the code's msgids left in it (names, codes and abbreviations such as KSeF, UPO, NIP, XML excepted).
"""

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest.mock import patch

import polib
import requests
from odoo import fields
from odoo.modules.module import get_module_path
from odoo.tests import TransactionCase, new_test_user, tagged
from odoo.tools.translate import LazyTranslate

from ksefnet_core import visualise
from ksefnet_core.certificates import CredentialError, load_credential
from ksefnet_core.errors import (
    ErrorDetail,
    KsefApiError,
    KsefAuthenticationFailed,
    KsefBadRequest,
    KsefError,
    KsefForbidden,
    KsefGone,
    KsefNotYetAvailable,
    KsefOperationFailed,
    KsefProtocolError,
    KsefRateLimited,
    KsefServerError,
    KsefStillInProgress,
    KsefTimeoutError,
    KsefTransportError,
    KsefUnauthorized,
    KsefUnknownPublicKey,
)
from ksefnet_core.fa3 import InvoiceValidationError, ValidationIssue
from ksefnet_core.throttle import ThrottleDeferred

from ..models import ksefnet_errors
from ..models.ksefnet_document import describe_ksef_error
from ..models.ksefnet_message import Join, Label, render, user_error
from .common import KsefSimulatorCase

_lt = LazyTranslate("ksefnet_buffer")

WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
CODE = re.compile(r"\S*\d\S*")
#: words a Polish message may share with the English ones: names, codes, abbreviations, and words both
#: languages have (Polish "a", "i", "to", "do", "no", "on", "go", "element", "limit", "problem", "token",
#: "status", "offline"...; KOD I, KOD II and Latarnia are names)
ALLOWED = {
    "ksef", "upo", "nip", "xml", "http", "https", "api", "fa", "rr", "vat", "utf", "bom", "doctype", "dtd",
    "pem", "der", "rsa", "pkcs", "ecdsa", "pfx", "p", "gln", "url", "mb", "utc", "id", "ip", "pesel", "ue",
    "odoo", "kor", "a", "i", "to", "do", "no", "on", "go", "element", "minimum", "limit", "problem", "token",
    "status", "kod", "ii", "offline", "xades", "latarnia",
}  # fmt: skip


def english_words(*modules):
    """The words of the English msgids that the modules' Python code writes (their .pot's code terms)."""
    words = set()
    for module in modules:
        for entry in polib.pofile(str(Path(get_module_path(module)) / "i18n" / f"{module}.pot")):
            if "odoo-python" in (entry.comment or ""):
                words |= {w.lower() for w in WORD.findall(PLACEHOLDER.sub(" ", entry.msgid))}
    return words - ALLOWED


def install_polish(env, *modules):
    """Install Polish with the modules' terms (code terms come from the .po files, selection labels such as
    the statuses from the database's terms); the English words of the modules' code terms."""
    env["res.lang"]._activate_lang("pl_PL")
    env["ir.module.module"]._load_module_terms(list(modules), ["pl_PL"], overwrite=True)
    return english_words(*modules)


def as_reader(record, user):
    """``record`` as ``user`` reads it in the web client, over RPC or in an export (the user's language is
    in the context of every request)."""
    return record.with_user(user).with_context(lang=user.lang)


def msgids(data):
    """The msgids of the templates in a stored message (its template and those of its parameters)."""
    if isinstance(data, dict):
        found = {data["t"]} if "t" in data else set()
        for value in (
            (data.get("a") or {}).values() if isinstance(data.get("a"), dict) else data.get("a") or ()
        ):
            found |= msgids(value)
        for part in data.get("p") or ():
            found |= msgids(part)
        return found
    return set()


def english_left(text, words):
    """The English words of ``words`` in ``text`` (lower case, sorted); tokens with digits (numbers, KSeF and
    reference numbers, element names such as P_13_1) are codes, not words."""
    return sorted({w.lower() for w in WORD.findall(CODE.sub(" ", text or ""))} & words)


def every_core_exception():
    """One instance of each exception the engines describe, as the client and the core raise them."""
    ksef = {"method": "POST", "path": "/sessions/online", "reference_number": "20260101-EE-1"}
    said = [ErrorDetail(21405, "Błąd walidacji danych wejściowych.", ("Nieprawidłowy numer",))]
    return [
        ThrottleDeferred("invoiceSend", 12.5),
        KsefRateLimited("Too Many Requests", retry_after=30, http_status=429, **ksef),
        KsefAuthenticationFailed(
            "authentication failed: Nieprawidłowy token", status_code=450, ksef_text="Nieprawidłowy token"
        ),
        KsefAuthenticationFailed("authentication failed", status_code=450),
        KsefUnauthorized("Unauthorized", http_status=401, **ksef),
        KsefForbidden("Forbidden", reason_code="missing-permissions", http_status=403, **ksef),
        KsefForbidden("Forbidden", reason_code="ip-not-allowed", http_status=403, **ksef),
        KsefForbidden("Forbidden", reason_code="a-future-reason", http_status=403, ksef_text="Brak dostępu"),
        KsefTimeoutError("no answer in time: Read timed out", **ksef),
        KsefTransportError("connection failed: Connection refused", **ksef),
        KsefServerError("Service Unavailable", http_status=503, **ksef),
        KsefProtocolError("expected JSON, got 'text/html'", http_status=200),
        KsefBadRequest("Bad Request", http_status=400, errors=said, **ksef),
        KsefBadRequest("Bad Request", http_status=400, **ksef),
        KsefNotYetAvailable("Bad Request", http_status=400, errors=[ErrorDetail(21165, "Faktura niedostępna")]),
        KsefUnknownPublicKey("Bad Request", http_status=400, errors=[ErrorDetail(21470, "Nieznany klucz")]),
        KsefGone("Gone", http_status=410, **ksef),
        KsefStillInProgress("export X still in progress after 600 s (status 100)", reference_number="X-1"),
        KsefOperationFailed("session X failed: Sesja anulowana", status_code=440, ksef_text="Sesja anulowana"),
        KsefOperationFailed("export failed", status_code=415, reference_number="X-2"),
        KsefApiError("I'm a teapot", http_status=418, **ksef),
        KsefError("not authenticated: no access token (authenticate first)"),
        CredentialError("the RSA key has 1024 bits; KSeF needs at least 2048", "rsa-key-size", bits=1024, minimum=2048),
        CredentialError("something new", "a-future-code"),
        ValueError("a KSeF token is a non-empty single-line string"),
        RuntimeError("a bug"),
    ]  # fmt: skip


@tagged("post_install", "-at_install")
class TestTemplatesReadInPolish(TransactionCase):
    """Every template, alone: what describe_ksef_error says of each core exception, each certificate
    reason, each FA(3) issue and schema message, and every code term of the addon's pl.po."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.english = install_polish(cls.env, "ksefnet_buffer")

    def assertPolish(self, part, *, differs=True):
        polish = render(self.env, part, "pl_PL")
        english = render(self.env, part, "en_US")
        self.assertTrue(polish, f"empty message for {english!r}")
        self.assertFalse(english_left(polish, self.english), f"English words left in {polish!r}")
        if differs:
            self.assertNotEqual(polish, english, "not translated")
        return polish

    def test_the_code_terms_of_the_polish_translation_have_no_english_words(self):
        """The translation itself: no msgstr of the code's terms keeps an English word."""
        po = polib.pofile(str(Path(get_module_path("ksefnet_buffer")) / "i18n" / "pl.po"))
        left = {
            e.msgid: english_left(PLACEHOLDER.sub(" ", e.msgstr), self.english)
            for e in po
            if "odoo-python" in (e.comment or "")
        }
        self.assertFalse({k: v for k, v in left.items() if v})

    def test_every_core_exception_is_described_in_polish(self):
        texts = [self.assertPolish(describe_ksef_error(self.env, exc)) for exc in every_core_exception()]
        # what KSeF said (Polish already) is shown as KSeF wrote it; the client's English summary is not
        joined = "\n".join(texts)
        self.assertIn("21405: Błąd walidacji danych wejściowych. (Nieprawidłowy numer)", joined)
        self.assertIn("Nieprawidłowy token", joined)
        for english in ("Connection refused", "Too Many Requests", "a bug", "teapot", "single-line"):
            self.assertNotIn(english, joined)
        self.assertIn("RuntimeError", joined, "an unexpected exception is named by its kind")

    def test_an_error_raised_with_a_template_is_stored_as_the_template(self):
        error = user_error(self.env(context={"lang": "en_US"}), _lt("Nothing to send."))
        self.assertEqual(str(error), "Nothing to send.", "raised in the raiser's language")
        self.assertEqual(
            render(self.env, describe_ksef_error(self.env, error), "pl_PL"), "Brak faktur do wysłania."
        )

    def test_every_certificate_reason_reads_in_polish(self):
        self.assertEqual(
            set(ksefnet_errors.CREDENTIAL_REASONS), set(CERTIFICATE_CODES), "every core code mapped"
        )
        for code in ksefnet_errors.CREDENTIAL_REASONS:
            exc = CredentialError("English text", code, bits=1024, minimum=2048)
            self.assertPolish(describe_ksef_error(self.env, exc))
        with self.assertRaises(CredentialError) as caught:
            load_credential(b"not a certificate")
        text = self.assertPolish(describe_ksef_error(self.env, caught.exception))
        self.assertIn("Nie można użyć certyfikatu: plik nie jest czytelnym certyfikatem PKCS#12", text)

    def test_every_invoice_issue_reads_in_polish(self):
        params = {"size": 2000000, "limit": 1000000, "encoding": "ISO-8859-2", "char": "U+0007",
                  "target": "xml-stylesheet", "root": "Faktura", "namespace": "-", "form": "FA (2)",
                  "date": "2030-01-01", "today": "2026-01-01", "party": "Podmiot2", "nip": "1234567890"}  # fmt: skip
        issues = [
            ValidationIssue("x", "English", line=3, path="/Faktura/Fa", key=key, params=params)
            for key in ksefnet_errors.ISSUE_TEXTS
        ]
        issues += [ValidationIssue("schema", message, line=7, key="xsd") for message in SCHEMA_MESSAGES]
        issues.append(
            ValidationIssue("schema", "Element 'P_2': Something libxml2 may say one day.", key="xsd")
        )
        issues.append(ValidationIssue("x9", "English"))
        for issue in issues:
            part = ksefnet_errors.issue_part(issue)
            self.assertPolish(part)
        for message in SCHEMA_MESSAGES:  # each known libxml2 message has a template of its own
            part = ksefnet_errors._schema_part(ValidationIssue("schema", message))
            self.assertNotEqual(part._source, ksefnet_errors.SCHEMA_UNKNOWN._source, message)
        text = self.assertPolish(ksefnet_errors.invoice_issues_part(InvoiceValidationError(issues)))
        self.assertIn(
            "- Element P_15 nie jest w tym miejscu oczekiwany; oczekiwano: P_13_1, P_14_1 (wiersz 7)\n", text
        )
        self.assertIn("(wiersz 7)", text)
        self.assertIn(f"... oraz pozostałych problemów: {len(issues) - 20}.", text)

    def test_a_document_that_cannot_be_displayed_says_why_in_polish(self):
        for show in (visualise.invoice_html, visualise.upo_html):
            for data in (b"<Rechnung/>", b"<Faktura><Fa>", b'<!DOCTYPE x [<!ENTITY a "b">]><x/>'):
                with self.assertRaises(visualise.VisualisationError) as caught:
                    show(data)
                self.assertTrue(caught.exception.issues, caught.exception)
                self.assertPolish(ksefnet_errors.issues_reason(caught.exception.issues))

    def test_parameters_that_are_translatable_are_rendered_in_the_same_language(self):
        part = _lt(
            "The last step failed: %(reason)s",
            reason=Join("; ", [Label("ksefnet.document", "state", "failure"), _lt("Nothing to send.")]),
        )
        self.assertEqual(
            render(self.env, part, "pl_PL"),
            "Ostatni krok nie powiódł się: Niepowodzenie; Brak faktur do wysłania.",
        )
        self.assertEqual(render(self.env, part, "en_US"), "The last step failed: Failure; Nothing to send.")


#: the templates the scenario of TestEngineMessagesReadInPolish makes the engines write
WRITTEN = {
    "%(count)s new invoices downloaded.",
    "%(count)s new invoices, up to %(date)s.",
    "Buffer %(name)s has no KSeF credentials: set a token or a certificate first.",
    "Connected to %(env)s as NIP %(nip)s. KSeF accepts invoices up to %(size)s MB and %(count)s invoices per session.",
    "Corrected invoice queued.",
    "Downloaded from KSeF (%(subject)s).",
    "Downloading from %(date)s...",
    "Found in KSeF's session as %(inv)s; KSeF number %(number)s assigned.",
    "KSeF already holds a different invoice with this seller, kind and number (%(number)s): %(msg)s. Give the invoice a new number and resubmit it.",
    "KSeF is unavailable or failed (HTTP %(status)s). The buffer will retry.",
    "KSeF number %(number)s assigned.",
    "KSeF refused the request because of its request limits; retrying after %(s)s seconds.",
    "Latarnia, KSeF's status service, cannot be reached; the buffer asks again later.",
    "KSeF says the buffer lacks permissions for this operation (%(reason)s). Grant them in KSeF to the token or certificate used by the buffer.",
    "Next step at %(when)s (UTC).",
    "Nothing to send.",
    "Queued again by %(user)s.",
    "Received by KSeF as %(inv)s.",
    "Sending to KSeF in batch session %(ref)s.",
    "Sending to KSeF in online session %(ref)s.",
    "UPO (KSeF's receipt) stored.",
    "Validated and queued for KSeF.",
    "the permissions needed for this operation are missing in this context",
}

CERTIFICATE_CODES = (
    "rsa-key-size", "ec-key-size", "key-type", "key-password", "no-key", "no-certificate", "empty",
    "pkcs12-unreadable", "pkcs12-incomplete", "pem-without-key", "key-mismatch",
)  # fmt: skip
#: libxml2's XSD messages as fa3.validate_xsd reports them (namespaces dropped)
SCHEMA_MESSAGES = [
    "Element 'P_15': This element is not expected. Expected is one of ( P_13_1, P_14_1 ).",
    "Element 'Adnotacje': This element is not expected.",
    "Element 'Fa': Missing child element(s). Expected is ( P_2 ).",
    "Element 'NIP': [facet 'pattern'] The value '12' is not accepted by the pattern '[1-9]((\\d[1-9])|([1-9]\\d))\\d{7}'.",
    "Element 'KodWaluty': [facet 'enumeration'] The value 'XXX' is not an element of the set {'AED', 'PLN'}.",
    "Element 'P_2': [facet 'maxLength'] The value 'AAAA' has a length of '300'; this exceeds the allowed maximum length of '256'.",
    "Element 'P_2': [facet 'minLength'] The value '' has a length of '0'; this underruns the allowed minimum length of '1'.",
    "Element 'KodKraju': [facet 'length'] The value 'POL' has a length of '3'; this differs from the allowed length of '2'.",
    "Element 'P_8B': [facet 'minInclusive'] The value '-1' is less than the minimum value allowed ('0').",
    "Element 'P_8B': [facet 'maxInclusive'] The value '1e30' is greater than the maximum value allowed ('1e20').",
    "Element 'P_15': [facet 'totalDigits'] The value '1234567890123456789' has more digits than are allowed ('18').",
    "Element 'P_15': [facet 'fractionDigits'] The value '1.123' has more fractional digits than are allowed ('2').",
    "Element 'P_1': '2026-13-01' is not a valid value of the atomic type 'TData'.",
    "Element 'Faktura', attribute 'foo': The attribute 'foo' is not allowed.",
    "Element 'KodFormularza': The attribute 'kodSystemowy' is required but missing.",
    "Element 'Fa': Character content other than whitespace is not allowed because the content type is 'element-only'.",
    "Element 'Rechnung': No matching global declaration available for the validation root.",
]  # fmt: skip


@tagged("post_install", "-at_install")
class TestEngineMessagesReadInPolish(KsefSimulatorCase):
    """The engines, for real against the simulator, running in English as the scheduled action does: every
    message they stored reads in Polish for a Polish reader and in English for an English one."""

    fresh_simulator_per_test = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.english = install_polish(cls.env, "ksefnet_buffer")
        cls.polish_reader = new_test_user(
            cls.env, "ksiegowa_pl", groups="base.group_user,ksefnet_buffer.group_ksef_admin", lang="pl_PL"
        )
        cls.english_reader = new_test_user(
            cls.env, "accountant_en", groups="base.group_user,ksefnet_buffer.group_ksef_admin", lang="en_US"
        )

    def setUp(self):
        super().setUp()
        self.buffer.name = "Sieć Sklepów"  # a name, not an English word
        self.env = self.env(context={"lang": "en_US"})  # the scheduled action's language

    def stored_messages(self):
        """(record, field) of every message stored for this buffer, with its source and template."""
        Document = self.env["ksefnet.document"].with_context(active_test=False)
        docs = Document.search([("buffer_id", "=", self.buffer.id)])
        found = [(doc, name) for doc in docs for name in ("last_message", "upo_last_error")]
        found += [(event, "message") for event in docs.event_ids]
        found += [(doc, "offline_problem") for doc in docs]
        found += [
            (self.buffer, name) for name in ("engine_note", "last_connection_result", "latarnia_problem")
        ]
        found += [
            (sync, n) for sync in self.buffer.sync_ids for n in ("last_result", "last_error", "progress_note")
        ]
        return [(record, name) for record, name in found if record[f"{name}_source"]]

    def check_stored(self, step):
        """Every message stored now: kept as a template, read in English by an English reader as the engine
        wrote it, and in Polish, with no English word left, by a Polish reader."""
        for record, name in self.stored_messages():
            template = record[f"{name}_template"]
            where = f"after {step}: {record._name}.{name}"
            self.assertTrue(template, f"{where} stored as plain text: {record[f'{name}_source']!r}")
            polish = as_reader(record, self.polish_reader)[name]
            english = as_reader(record, self.english_reader)[name]
            self.assertEqual(
                english, record[f"{name}_source"], f"{where}: English readers read what was written"
            )
            self.assertFalse(english_left(polish, self.english), f"{where}: {polish!r}")
            self.assertNotEqual(polish, english, where)
            self.kinds.add(f"{record._name}.{name}")
            self.written |= msgids(template)

    def test_every_stored_message_reads_in_polish(self):
        """The engines write each kind of message (every transition, retries, errors, UPOs, rejections,
        corrections, rate limits, downloads with progress and errors, connection results); each one stored
        is checked after the step that wrote it."""
        self.kinds, self.written = set(), set()
        check = self.check_stored
        self.buffer.action_test_connection()
        check("a connection test")
        self.add_fault(kind="status", status=503, method="POST", path="/sessions/online", times=1)
        first = self.submit()
        self.send_round()
        check("KSeF unavailable")
        self.make_due(first)
        self.send_round()
        check("a retry, sent with its UPO")
        duplicate = self.submit(number=first.invoice_number, net_amounts=("10.00",))
        self.send_round()
        check("a rejection")
        duplicate.action_correct(self.invoice())
        check("a correction")
        self.add_fault(kind="rate_limit", retry_after=45, method="POST", path="/sessions/online", times=1)
        self.send_round()
        check("KSeF's rate limit")
        self.buffer.batch_threshold = 2
        batch = self.submit(2)
        self.make_due(batch | duplicate)
        self.send_round()
        check("a batch session")
        refusal = KsefForbidden("Forbidden", reason_code="missing-permissions", http_status=403)
        with patch.object(type(self.env["ksefnet.buffer"]), "_authenticate", side_effect=refusal):
            self.buffer._forget_clients()
            refused = self.submit()
            self.send_round()
            check("a refused authentication")
            self.buffer.action_test_connection()
            check("a failed connection test")
        refused.action_retry()
        check("queued again by a person")
        batch[0]._upo_failed(describe_ksef_error(self.env, KsefServerError("Bad Gateway", http_status=502)))
        check("a UPO not fetched")
        now = datetime.now(timezone.utc)
        requests.post(
            f"{self.sim.base_url}/_simulator/invoices/generate",
            json={"buyerNip": self.nip, "count": 3, "dateFrom": (now - timedelta(days=3)).isoformat(),
                  "dateTo": (now - timedelta(minutes=1)).isoformat()},
            timeout=60,
        ).raise_for_status()  # fmt: skip
        self.buffer.download_start_date = fields.Datetime.now() - timedelta(days=5)
        self.raise_rate_limits()
        self.env["ksefnet.downloader"]._run_buffer(self.buffer)
        self.assertTrue(self.buffer.sync_ids.last_result, self.buffer.sync_ids.read(["last_error"]))
        check("a download")
        self.add_fault(kind="unavailable")
        self.buffer.download_own = True
        self.env["ksefnet.downloader"]._run_buffer(self.buffer)
        check("a failed download")
        self.buffer.latarnia_url = "http://127.0.0.1:9"  # nothing listens there
        self.buffer._watch_ksef()
        check("Latarnia unreachable")
        self.buffer._forget_clients()
        self.buffer.sudo().write({"credentials_set": False})
        unsent = self.submit()
        self.send_round()
        check("no credentials")
        self.assertIn("credentials", unsent.last_message)

        self.assertEqual(
            self.kinds,
            {
                "ksefnet.document.last_message", "ksefnet.document.upo_last_error", "ksefnet.document.event.message",
                "ksefnet.buffer.engine_note", "ksefnet.buffer.last_connection_result", "ksefnet.buffer.latarnia_problem",
                "ksefnet.buffer.sync.last_result", "ksefnet.buffer.sync.last_error",
                "ksefnet.buffer.sync.progress_note",
            },
        )  # fmt: skip
        transitions = {(e.from_state or False, e.to_state) for e in self.buffer.document_ids.event_ids}
        self.assertEqual(
            transitions,
            {(False, "waiting"), (False, "sent"), ("waiting", "processing"), ("waiting", "error"),
             ("processing", "processing"), ("processing", "sent"), ("processing", "failure"),
             ("error", "processing"), ("error", "waiting"), ("failure", "waiting"), ("sent", "sent")},
        )  # fmt: skip
        self.assertEqual(self.written, WRITTEN, "the kinds of messages the scenario writes")

    def test_a_message_written_by_the_english_cron_reads_in_each_readers_language(self):
        doc = self.submit()
        self.send_round()
        self.assertEqual(doc.state, "sent")
        number = doc.ksef_number
        event = doc.event_ids.filtered(lambda e: e.to_state == "sent" and e.from_state == "processing")
        self.assertEqual(event.message_source, f"KSeF number {number} assigned.", "stored in English")
        # the same row, read by each user (the form, the list, RPC reads and exports use this field)
        as_polish = as_reader(event, self.polish_reader)
        as_english = as_reader(event, self.english_reader)
        self.assertEqual(as_polish.message, f"Nadano numer KSeF {number}.")
        self.assertEqual(as_english.message, f"KSeF number {number} assigned.")
        self.assertEqual(as_polish.read(["message"])[0]["message"], f"Nadano numer KSeF {number}.")
        # an RPC call that sends no context: Odoo's _() and these fields use the user's own language
        self.assertEqual(
            event.with_user(self.polish_reader).with_context({}).message, f"Nadano numer KSeF {number}."
        )
        self.assertEqual(event.with_user(self.english_reader).with_context({}).message, event.message_source)
        exported = as_reader(doc, self.polish_reader).export_data(["event_ids/message"])["datas"]
        self.assertIn([f"Nadano numer KSeF {number}."], exported)
        self.assertIn(
            "Zapisano UPO (urzędowe poświadczenie odbioru KSeF).",
            as_reader(doc, self.polish_reader).event_ids.mapped("message"),
        )
        # searching a message searches what was stored (in English)
        Event = as_reader(self.env["ksefnet.document.event"], self.polish_reader)
        self.assertEqual(Event.search([("message", "ilike", f"number {number}")]), event)

    def test_rows_written_before_templates_read_as_stored(self):
        doc = self.submit()
        self.env.cr.execute(
            "UPDATE ksefnet_document SET last_message_source = 'Wysłano ręcznie.', last_message_template = NULL "
            "WHERE id = %s",
            [doc.id],
        )
        doc.invalidate_recordset()
        self.assertEqual(as_reader(doc, self.polish_reader).last_message, "Wysłano ręcznie.")
        self.assertEqual(as_reader(doc, self.english_reader).last_message, "Wysłano ręcznie.")

    def test_a_broken_translation_falls_back_to_english_not_to_an_error(self):
        part = {"t": "KSeF number %(number)s assigned.", "m": "ksefnet_buffer", "a": {"wrong": "x"}}
        self.assertEqual(render(self.env, part, "pl_PL"), "KSeF number %(number)s assigned.")
