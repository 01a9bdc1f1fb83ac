"""The HiperMarket API: what HiperMarket calls over Odoo's XML-RPC (``execute_kw``) with an API key.

    submit(invoices)                         -> [result per invoice]
    status(buffer_nip, document_ids)         -> [document status]
    changes(buffer_nip, cursor=0, limit=100) -> {"cursor", "changes", "more"}
    acknowledge(buffer_nip, document_ids)    -> {"acknowledged": n}
    upo(buffer_nip, document_id)             -> {"document_id", "ksef_number", "upo_xml_base64"}
    qr(buffer_nip, document_id)              -> {"document_id", "url", "label", "png_base64", "kod2"}
    availability(buffer_nip)                 -> {"state", "messages", "checked_at", "offline_mode"}

An invoice issued offline (KSeF down, or the seller's offline24) is submitted with ``offline_mode`` (and
optionally ``offline_reason`` and ``issued_at``): its result carries the deadline and, at once, KOD I (label
OFFLINE) and KOD II (signed with the buffer's Offline certificate) to print; the buffer sends it with
``offlineMode: true`` as soon as KSeF answers, and the KSeF number arrives through the change feed.

Documents are identified by HiperMarket's own document id (``document_id``, e.g. "FV/0012/2026/SKLEP12"),
unique per buffer. Everything returned is plain XML-RPC data (no None). See docs/hipermarket_api.md.
"""

import base64
import binascii
import logging
import re
import xmlrpc.client
from datetime import datetime, timedelta, timezone

from odoo import _, api, fields, models
from odoo.addons.ksefnet_buffer.models.ksefnet_document import AlreadySent
from odoo.addons.ksefnet_buffer.models.ksefnet_watch import MODE_FOR_STATE
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import ormcache, split_every

from ksefnet_core import offline as ksef_offline
from ksefnet_core import qr as ksef_qr
from ksefnet_core.ids import is_valid_nip

_logger = logging.getLogger(__name__)

SOURCE = "HiperMarket"
#: the stored fields of a document that its answer (:meth:`KsefnetHipermarketApi._describe`) reads
DESCRIBED_FIELDS = [
    "external_ref", "state", "ksef_number", "ksef_acquisition_date", "last_code", "last_message_source",
    "last_message_template", "upo_attachment_id", "hm_change_seq", "hm_delivered_at", "offline_mode",
    "offline_deadline",
]  # fmt: skip
MAX_BATCH = 500
#: invoices of a call validated, stored and classified together (a call's memory grows with this, not with
#: the call's size)
SUBMIT_CHUNK = 100
#: HiperMarket's document ids: 1..100 characters, letters, digits and / . _ - : # and spaces inside
DOCUMENT_ID = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9/._:#\- ]{0,98}[A-Za-z0-9/._:#\-])?")
MAX_DOCUMENT_IDS = 1000
#: shop codes: 1..32 characters, letters, digits and . _ -
SHOP_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,31}")
#: the largest invoice accepted, checked before it is decoded or parsed (KSeF: 1 MB, 3 MB with attachments)
MAX_XML_BYTES = 3 * 1024 * 1024
OFFLINE_MODES = tuple(m.value for m in ksef_offline.OfflineMode)
MAX_REASON = 500
#: how far ahead of the buffer's clock an offline issue moment may be (clocks differ a little)
CLOCK_SKEW = timedelta(minutes=5)


class KsefnetHipermarketApi(models.AbstractModel):
    _name = "ksefnet.hipermarket.api"
    _description = "HiperMarket API"

    # -- access ----------------------------------------------------------------------------------------------
    @api.model
    def _buffer(self, buffer_nip):
        """The buffer of ``buffer_nip`` if the calling user may use it through this API (memoised per batch)."""
        if not isinstance(buffer_nip, str):
            raise _Refused(
                "buffer_nip",
                "format",
                _("buffer_nip must be a NIP: a text of 10 digits with a valid checksum."),
            )
        memo = self.env.context.get("ksefnet_hm_buffers")
        if memo is not None and buffer_nip in memo:
            return memo[buffer_nip]
        buffer = self._check_buffer(buffer_nip)
        if memo is not None:
            memo[buffer_nip] = buffer
        return buffer

    @api.model
    def _check_buffer(self, buffer_nip):
        user = self.env.user
        if not (
            user.has_group("ksefnet_hipermarket.group_hipermarket")
            or user.has_group("ksefnet_buffer.group_ksef_admin")
        ):
            raise AccessError(_("Only HiperMarket integration users may call the HiperMarket API."))
        nip = buffer_nip.replace("-", "").replace(" ", "") if isinstance(buffer_nip, str) else ""
        if not (len(nip) == 10 and nip.isdigit() and is_valid_nip(nip)):
            raise _Refused(
                "buffer_nip",
                "format",
                _("buffer_nip must be a NIP: a text of 10 digits with a valid checksum."),
            )
        buffer = self.env["ksefnet.buffer"].sudo().browse(self._buffer_id_of(nip) or ())
        allowed = self.env["res.users"]._ksefnet_hm_rights(user.id)[0]
        if not buffer or (not user.has_group("ksefnet_buffer.group_ksef_admin") and buffer.id not in allowed):
            raise AccessError(_("No buffer for NIP %(nip)s is open to this user.", nip=buffer_nip))
        return buffer

    @api.model
    @ormcache("nip")
    def _buffer_id_of(self, nip):
        """The id of the active buffer of ``nip`` (0: none), kept in the registry's cache: a buffer created,
        deleted, archived or given another NIP clears it (ksefnet_buffer.py of this addon)."""
        Buffer = self.env["ksefnet.buffer"].sudo().with_context(active_test=True)  # whatever the caller's
        return Buffer.search([("nip", "=", nip)], limit=1).id or 0

    @api.model
    def _documents(self, buffer, document_ids):
        """The documents of these HiperMarket ids, read as the calling user (record rules apply: its buffers
        and shops only)."""
        if not isinstance(document_ids, list) or len(document_ids) > MAX_DOCUMENT_IDS:
            raise _Refused(
                "document_ids",
                "format",
                _("document_ids must be a list of at most %(n)s ids.", n=MAX_DOCUMENT_IDS),
            )
        for ref in document_ids:
            _document_id(self.env, ref)
        docs = self.env["ksefnet.document"].search(
            [
                ("buffer_id", "=", buffer.id),
                ("source", "=", SOURCE),
                ("external_ref", "in", list(document_ids)),
            ]
        )
        return {d.external_ref: d for d in docs}

    # -- submitting ------------------------------------------------------------------------------------------
    @api.model
    def submit(self, invoices):
        """Submit invoices: a list of {buffer_nip, document_id, shop_code, xml} (xml as text or base64).

        Returns one result per invoice, in order: {document_id, ok, id, status, ...} or {document_id, ok:
        False, error: {field, code, message}}. Idempotent: the same document id with the same content
        returns the existing document; different content replaces it only while nothing was sent to KSeF
        (a document that KSeF rejected is resubmitted as corrected).
        """
        if not isinstance(invoices, list) or len(invoices) > MAX_BATCH:
            raise ValidationError(_("Submit a list of at most %(n)s invoices.", n=MAX_BATCH))
        batch = self.with_context(
            ksefnet_defer_trigger=True,
            ksefnet_hm_buffers={},
            ksefnet_hm_user_shops=self.env["res.users"]._ksefnet_hm_rights(self.env.uid)[1],
            ksefnet_hm_known={},
        )
        results = batch._submit_new_at_once(invoices)
        for index, item in enumerate(invoices):
            if results[index] is None:  # known documents, repeated ids, or a batch that had to go one by one
                results[index] = batch._submit_one(item)
        if any(r["ok"] for r in results):
            self.env["ksefnet.sender"]._trigger()  # once for the whole batch
        batch._add_offline_codes(results)
        return results

    @api.model
    def _offline_arguments(self, item, buffer):
        """The offline values (mode, issue moment, reason, deadline) of a submitted invoice, or None. Mode
        ``auto``: the buffer decides from what it knows of KSeF's availability (online when available)."""
        mode = item.get("offline_mode") or False
        if mode == "auto":
            mode = MODE_FOR_STATE.get(buffer.ksef_availability, False)
            if mode is False:
                return None
            if not item.get("offline_reason"):
                item = dict(item, offline_reason=f"KSeF: {buffer.ksef_availability}")
        reason = item.get("offline_reason") or False
        issued = item.get("issued_at") or False
        if mode is False:
            if reason or issued:
                raise _Refused(
                    "offline_mode",
                    "required",
                    _("offline_reason and issued_at apply only to an invoice submitted with offline_mode."),
                )
            return None
        if not isinstance(mode, str) or mode not in OFFLINE_MODES:
            raise _Refused(
                "offline_mode",
                "format",
                _("offline_mode must be one of: %(modes)s.", modes=", ".join((*OFFLINE_MODES, "auto"))),
            )
        if reason is not False and (not isinstance(reason, str) or len(reason) > MAX_REASON):
            raise _Refused(
                "offline_reason",
                "format",
                _("offline_reason must be a text of at most %(n)s characters.", n=MAX_REASON),
            )
        moment = None
        if issued is not False:
            try:
                moment = datetime.fromisoformat(issued) if isinstance(issued, str) else None
            except ValueError:
                moment = None
            if moment is None or moment.tzinfo is None:
                raise _Refused(
                    "issued_at",
                    "format",
                    _(
                        "issued_at must be a date and time in ISO 8601 with its offset, e.g. "
                        "2026-03-02T14:05:00+01:00."
                    ),
                )
            if moment > datetime.now(timezone.utc) + CLOCK_SKEW:
                raise _Refused("issued_at", "future", _("issued_at lies in the future."))
        try:
            return self.env["ksefnet.document"]._offline_values(mode, moment, reason or None)
        except ValidationError as exc:
            raise _Refused("offline_mode", "invalid", str(exc)) from None

    @api.model
    def _add_offline_codes(self, results):
        """Give each stored offline invoice its KOD I (label OFFLINE) and KOD II at once. Without a usable
        Offline certificate the invoice stays accepted: ``kod2`` is False, ``kod2_error`` says why, and the
        document is flagged (``offline_problem``)."""
        ids = [r["id"] for r in results if r.get("ok") and r.get("id") and r.get("offline_mode")]
        docs = {d.id: d for d in self.env["ksefnet.document"].sudo().browse(ids)}
        signers = {}
        for result in results:
            doc = docs.get(result.get("id")) if result.get("ok") else None
            if doc:
                result["offline"] = self._offline_codes(doc, signers)

    @api.model
    def _offline_codes(self, doc, signers=None, svg=False):
        """{mode, issued_at, deadline, kod1, kod2, kod2_error} of an offline document (``svg``: the codes also
        as SVG)."""
        signers = {} if signers is None else signers
        doc = doc.sudo()
        buffer = doc.buffer_id
        environment = buffer._environment()
        xml = doc._xml()
        url = ksef_qr.invoice_verification_url(environment, doc.seller_nip, doc.issue_date, xml)
        result = {
            "mode": doc.offline_mode,
            "issued_at": fields.Datetime.to_string(doc.offline_issued_at) or False,
            "deadline": fields.Datetime.to_string(doc.offline_deadline) or False,
            "kod1": _code(url, ksef_qr.label_for_invoice(doc.ksef_number), svg),
            "kod2": False,
            "kod2_error": False,
        }
        if doc.offline_mode == "total_failure":
            return result  # tryby-offline.md: invoices of a total failure carry no QR codes
        if buffer.id not in signers:
            try:
                signers[buffer.id] = buffer._offline_credential()
            except UserError as exc:
                signers[buffer.id] = exc
        signer = signers[buffer.id]
        if isinstance(signer, UserError):
            result["kod2_error"] = str(signer)  # in the caller's language
            problem = getattr(signer, "ksefnet_message", None) or str(signer)  # on the document: the reader's
            columns = doc._message_columns("offline_problem", problem)
            if doc.offline_problem_source != columns["offline_problem_source"]:
                doc._engine_write({"offline_problem": problem})
            return result
        kod2 = ksef_offline.kod2_url(environment, buffer.nip, xml, signer)
        result["kod2"] = _code(kod2, ksef_qr.CERTIFICATE_LABEL, svg)
        if doc.offline_problem:
            doc._engine_write({"offline_problem": False})
        return result

    @api.model
    def _submit_new_at_once(self, invoices):
        """Store the valid invoices with new document ids in chunks of SUBMIT_CHUNK, each at once; the results
        for those and for the refused ones, None for the rest (handled one by one, with the documents already
        looked up)."""
        results = [None] * len(invoices)
        checked = []
        for index, item in enumerate(invoices):
            try:
                ref, buffer, shop, xml = self._checked(item)
                checked.append((index, ref, buffer, shop, xml, self._offline_arguments(item, buffer)))
            except Exception as exc:  # noqa: BLE001 - turned into this invoice's error by the same rules as below
                results[index] = self._refusal(item, exc)
        Document = self.env["ksefnet.document"].sudo().with_context(active_test=False)
        known = self.env.context["ksefnet_hm_known"]
        for buffer in {entry[2] for entry in checked}:  # one query per buffer for every id of the batch
            refs = [ref for _i, ref, b, _s, _x, _o in checked if b == buffer]
            known.update(
                {(buffer.id, ref): doc for ref, doc in Document._known_refs(buffer, SOURCE, refs).items()}
            )
        pending, seen = [], set()
        for entry in checked:
            index, ref, buffer = entry[:3]
            if (buffer.id, ref) not in seen and (buffer.id, ref) not in known:
                pending.append(entry)
            seen.add((buffer.id, ref))
        # in chunks: what a chunk parsed and cached is let go before the next, so a call of 500 invoices
        # holds no more of them at once than a call of SUBMIT_CHUNK
        for chunk in split_every(SUBMIT_CHUNK, pending, list):
            self._submit_chunk(invoices, chunk, results)
        return results

    @api.model
    def _submit_chunk(self, invoices, chunk, results):
        """Validate and store ``chunk`` (checked new invoices: index, ref, buffer, shop, xml, offline) with one
        submission per buffer; their results go into ``results``."""
        Document = self.env["ksefnet.document"].sudo().with_context(active_test=False)
        known = self.env.context["ksefnet_hm_known"]
        fresh = []
        for index, ref, buffer, shop, xml, offline in chunk:
            try:
                xml, invoice = Document._validate_sales_xml(buffer, xml)
            except Exception as exc:  # noqa: BLE001
                results[index] = self._refusal(invoices[index], exc)
                continue
            fresh.append((index, buffer, (xml, invoice, ref, SOURCE, shop, offline or {})))
        stored = Document.browse()
        for buffer in {b for _i, b, _e in fresh}:
            group = [(i, e) for i, b, e in fresh if b == buffer]
            try:
                with self.env.cr.savepoint():
                    docs = Document._queue_submitted(buffer, [e for _i, e in group])
            except Exception:  # e.g. a concurrent submission of the same id: one by one instead
                _logger.warning(
                    "HiperMarket batch for buffer %s stored one by one instead", buffer.nip, exc_info=True
                )
                continue
            docs.fetch(DESCRIBED_FIELDS)  # what _describe reads, those columns only, in one query
            for (index, entry), doc in zip(group, docs, strict=True):
                results[index] = self._describe(doc, created=True)
                known[(buffer.id, entry[2])] = doc
            stored |= docs
        if stored:  # let go of what the chunk cached (its XML was written, never read back)
            stored.flush_recordset()
            self.env["ir.attachment"].invalidate_model()
            stored.invalidate_recordset()

    @api.model
    def _checked(self, item):
        """(document id, buffer, shop code, XML bytes) of one submitted invoice, or _Refused/AccessError."""
        if not isinstance(item, dict):
            raise _Refused("invoice", "format", _("Each invoice is a structure with named fields."))
        ref = _document_id(self.env, item.get("document_id"))
        buffer = self._buffer(item.get("buffer_nip"))
        shop = item.get("shop_code") or False
        if shop is not False and not (isinstance(shop, str) and SHOP_CODE.fullmatch(shop)):
            raise _Refused(
                "shop_code",
                "format",
                _("shop_code must be a text of 1 to 32 letters, digits, dots, dashes or underscores."),
            )
        shops = self.env.context.get("ksefnet_hm_user_shops")
        if shops is None:
            shops = self.env["res.users"]._ksefnet_hm_rights(self.env.uid)[1]
        if shops and shop not in shops:
            raise _Refused(
                "shop_code", "forbidden", _("This user may not submit for shop %(shop)s.", shop=shop or "-")
            )
        known = self._shop_codes(buffer)
        if shop and known and shop not in known:
            raise _Refused("shop_code", "unknown", _("The buffer has no shop %(shop)s.", shop=shop))
        return ref, buffer, shop, _xml_bytes(self.env, item.get("xml"))

    @api.model
    def _shop_codes(self, buffer):
        """The codes of the buffer's active shops (a mapping: code -> shop id), as the classification has
        them (kept in the registry's cache, see ksefnet.document._compiled_rules)."""
        return self.env["ksefnet.document"]._compiled_rules(buffer)[1]

    @api.model
    def _refusal(self, item, exc):
        ref = item.get("document_id") if isinstance(item, dict) else ""
        ref = ref[:100] if isinstance(ref, str) else ""  # echoed back: never more than a valid id holds
        if isinstance(exc, _Refused):
            return {"document_id": ref, "ok": False, "error": exc.as_dict()}
        if isinstance(exc, (ValidationError, UserError, AccessError)):
            field = "xml" if isinstance(exc, ValidationError) else "buffer_nip"
            code = "invalid" if isinstance(exc, ValidationError) else "refused"
            return {
                "document_id": ref,
                "ok": False,
                "error": {"field": field, "code": code, "message": str(exc)},
            }
        raise exc

    @api.model
    def _submit_one(self, item):
        try:
            ref, buffer, shop, xml = self._checked(item)
            offline = self._offline_arguments(item, buffer)
            with self.env.cr.savepoint():
                return self._store(buffer, ref, shop, xml, offline)
        except (_Refused, ValidationError, UserError, AccessError) as exc:
            return self._refusal(item, exc)

    @api.model
    def _store(self, buffer, ref, shop, xml, offline=None):
        """One invoice through the document's submission service; its refusals as this API's errors."""
        Document = self.env["ksefnet.document"].sudo().with_context(active_test=False)
        memo = self.env.context.get("ksefnet_hm_known") or {}
        existing = memo.get((buffer.id, ref)) or Document._known_refs(buffer, SOURCE, [ref]).get(ref)
        if existing and not existing.with_user(self.env.user)._filtered_access("read"):
            raise _Refused(
                "document_id",
                "forbidden",
                _("Document %(ref)s belongs to a shop this user may not use.", ref=ref),
            )
        try:
            doc, outcome = Document._submit(
                buffer,
                xml,
                external_ref=ref,
                source=SOURCE,
                shop_code=shop,
                existing=existing or False,
                offline=offline,
            )
        except AlreadySent as exc:
            sent = exc.document
            raise _Refused(
                "document_id",
                "already_sent",
                _(
                    "Document %(ref)s was already sent to KSeF (status %(state)s%(number)s); it cannot be "
                    "replaced. Issue a correction (KOR) as a new document.",
                    ref=ref,
                    state=sent.state,
                    number=_(", KSeF number %(number)s", number=sent.ksef_number) if sent.ksef_number else "",
                ),
            ) from None
        if outcome == "created":
            return self._describe(doc, created=True)
        if outcome == "same":
            return self._describe(doc, created=False)
        return self._describe(doc, created=False, replaced=True)

    # -- reading ----------------------------------------------------------------------------------------------
    @api.model
    def _describe(self, doc, **extra):
        """A document's answer to HiperMarket (its status, KSeF number, UPO, change number, offline mode):
        DESCRIBED_FIELDS."""
        doc = doc.with_env(self.env)
        failed = doc.state in ("failure", "error")
        return dict(
            {
                "document_id": doc.external_ref or "",
                "ok": True,
                "id": doc.id,
                "status": doc.state,
                "ksef_number": doc.ksef_number or False,
                "acquisition_date": fields.Datetime.to_string(doc.ksef_acquisition_date) or False,
                "error_code": doc.last_code if failed else False,
                "error_message": doc.last_message if failed else False,
                "upo_available": bool(doc.sudo().upo_attachment_id),
                "change": doc.hm_change_seq,
                "delivered": bool(doc.hm_delivered_at),
                "offline_mode": doc.offline_mode or False,
                "offline_deadline": fields.Datetime.to_string(doc.offline_deadline) or False,
            },
            **extra,
        )

    @api.model
    def status(self, buffer_nip, document_ids):
        """The status of these HiperMarket document ids; unknown ids come back with status "unknown"."""
        buffer = self._buffer(buffer_nip)
        found = self._documents(buffer, document_ids)
        return [
            self._describe(found[ref])
            if ref in found
            else {"document_id": ref, "ok": False, "status": "unknown", "delivered": False}
            for ref in document_ids
        ]

    @api.model
    def changes(self, buffer_nip, cursor=0, limit=100):
        """Documents whose status changed after ``cursor``, oldest first, and the cursor to ask with next.

        The cursor is a change number: monotonic, kept in the database, so it survives restarts.
        """
        buffer = self._buffer(buffer_nip)
        for name, value in (("cursor", cursor), ("limit", limit)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                # self.env._: plain _() would take the argument called "cursor" for a database cursor
                raise _Refused(
                    name, "format", self.env._("%(name)s must be a whole number, 0 or more.", name=name)
                )
        limit = max(1, min(limit or 100, 1000))
        docs = self.env["ksefnet.document"].search(
            [
                ("buffer_id", "=", buffer.id),
                ("source", "=", SOURCE),
                ("hm_change_seq", ">", cursor),
            ],
            order="hm_change_seq",
            limit=limit + 1,
        )
        page = docs[:limit]
        return {
            "cursor": page[-1].hm_change_seq if page else cursor,
            "changes": [self._describe(d) for d in page],
            "more": len(docs) > limit,
        }

    @api.model
    def acknowledge(self, buffer_nip, document_ids):
        """Record that HiperMarket has taken the KSeF numbers of these documents."""
        buffer = self._buffer(buffer_nip)
        docs = self.env["ksefnet.document"].browse(
            [d.id for d in self._documents(buffer, document_ids).values()]
        )
        now = fields.Datetime.now()
        for doc in docs.sudo():
            doc.write({"hm_delivered_at": now, "hm_delivered_state": doc.state})
        return {"acknowledged": len(docs)}

    @api.model
    def upo(self, buffer_nip, document_id):
        """The UPO (KSeF's official receipt) of a sent document, as base64 XML."""
        doc = self._one(buffer_nip, document_id)
        upo = doc.sudo().upo_attachment_id.raw
        if not upo:
            raise UserError(_("KSeF has not issued the UPO for document %(ref)s yet.", ref=document_id))
        return {
            "document_id": document_id,
            "ksef_number": doc.ksef_number,
            "upo_xml_base64": base64.b64encode(upo).decode("ascii"),
        }

    @api.model
    def qr(self, buffer_nip, document_id):
        """KOD I (the invoice verification link) of a document, with a PNG image for printing."""
        doc = self._one(buffer_nip, document_id)
        environment = doc.buffer_id._environment()
        url = ksef_qr.invoice_verification_url(environment, doc.seller_nip, doc.issue_date, doc._xml())
        label = ksef_qr.label_for_invoice(doc.ksef_number)
        png = ksef_qr.qr_png(url, label)
        offline = self._offline_codes(doc, svg=True) if doc.offline_mode else {}
        return {
            "document_id": document_id,
            "url": url,
            "label": label,
            "png_base64": base64.b64encode(png).decode("ascii"),
            "svg_base64": base64.b64encode(ksef_qr.qr_svg(url, label)).decode("ascii"),
            "kod2": offline.get("kod2", False),
            "kod2_error": offline.get("kod2_error", False),
        }

    @api.model
    def availability(self, buffer_nip):
        """What the buffer knows of KSeF's availability: {state, messages, checked_at, offline_mode} where
        offline_mode is the mode "auto" would choose now (False: online)."""
        buffer = self._buffer(buffer_nip)
        return {
            "state": buffer.ksef_availability or "available",
            "messages": buffer.ksef_messages or "",
            "checked_at": fields.Datetime.to_string(buffer.latarnia_checked_at) or False,
            "offline_mode": MODE_FOR_STATE.get(buffer.ksef_availability, False),
        }

    @api.model
    def _one(self, buffer_nip, document_id):
        buffer = self._buffer(buffer_nip)
        doc = self._documents(buffer, [document_id]).get(document_id)
        if not doc:
            raise UserError(
                _("No document %(ref)s in the buffer of NIP %(nip)s.", ref=document_id, nip=buffer.nip)
            )
        return doc


def _code(url, label, svg=False):
    """A QR code as HiperMarket prints it: the link, its label and the labelled PNG (and SVG), base64."""
    code = {
        "url": url,
        "label": label,
        "png_base64": base64.b64encode(ksef_qr.qr_png(url, label)).decode("ascii"),
    }
    if svg:
        code["svg_base64"] = base64.b64encode(ksef_qr.qr_svg(url, label)).decode("ascii")
    return code


class _Refused(UserError):
    """A refused argument: a structured error in submit's results, a clear fault in the other calls."""

    def __init__(self, field, code, message):
        super().__init__(message)
        self.field, self.code, self.message = field, code, str(message)

    def as_dict(self):
        return {"field": self.field, "code": self.code, "message": self.message}


def _document_id(env, value):
    """HiperMarket's document id, checked: a text of 1..100 characters of the documented set."""
    if value is None or value is False or value == "":
        raise _Refused("document_id", "required", env._("The HiperMarket document id is missing."))
    if not isinstance(value, str) or not DOCUMENT_ID.fullmatch(value):
        raise _Refused(
            "document_id",
            "format",
            env._(
                "A document id is a text of 1 to 100 characters: letters, digits, / . _ - : # and spaces "
                "inside."
            ),
        )
    return value


def _too_large(env):
    return _Refused(
        "xml",
        "too_large",
        env._(
            "The invoice XML is larger than %(mb)s MB, the most this API accepts.",
            mb=MAX_XML_BYTES // 1024 // 1024,
        ),
    )


def _xml_bytes(env, value):
    """The invoice XML from text, base64 text or XML-RPC binary; its size is checked before it is decoded or
    parsed."""
    if isinstance(value, xmlrpc.client.Binary):  # <base64> in the request: Odoo hands it over undecoded
        value = value.data
    if isinstance(value, bytes):
        if len(value) > MAX_XML_BYTES:
            raise _too_large(env)
        return value
    if not isinstance(value, str) or not value.strip():
        raise _Refused("xml", "required", env._("The invoice XML is missing."))
    if (
        len(value) > MAX_XML_BYTES * 4 // 3 + 8
    ):  # base64 of the largest invoice, or more characters than bytes
        raise _too_large(env)
    text = value.strip()
    if text.startswith("<"):
        encoded = text.encode("utf-8")
        if len(encoded) > MAX_XML_BYTES:
            raise _too_large(env)
        return encoded
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _Refused("xml", "format", env._("The invoice XML is neither XML text nor base64.")) from None
