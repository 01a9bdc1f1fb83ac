"""Online and batch sessions, their statuses, invoice lists and UPOs (KSEF_API_NOTES §5-§7)."""

from __future__ import annotations

import functools
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .. import archives, fa3
from ..crypto import USAGE_SYMMETRIC_KEY, aes_decrypt, b64decode, sha256_b64
from .app import Simulator
from .auth_api import attachments_allowed, context_limits, permissions_for
from .processing import (
    INVOICE_STATUS,
    Rejected,
    Repository,
    StoredInvoice,
    accept,
    check_and_parse,
    new_reference,
)
from .server import STORAGE_PREFIX, ApiError, Request, Response, iso
from .upo import invoice_upo, session_upo_pages

FORM_CODES = {("FA (3)", "1-0E", "FA"), ("FA (2)", "1-0E", "FA")}
MAX_PART = 100_000_000
MAX_PARTS = 50
UPLOAD_TIME_PER_PART = timedelta(minutes=20)


@dataclass
class SessionInvoice:
    reference: str
    ordinal: int
    session_ref: str
    invoice_hash: str
    received: datetime
    file_name: str | None = None
    code: int = 100
    details: list[str] = field(default_factory=list)
    extensions: dict | None = None
    ksef_number: str | None = None
    invoice_number: str | None = None
    offline: bool = False  # SendInvoiceRequest.offlineMode (online sessions declare it per invoice)


@dataclass
class Session:
    reference: str
    kind: str  # Online | Batch
    context_type: str
    context_value: str
    auth_reference: str
    form_code: dict
    key: bytes
    iv: bytes
    opened: datetime
    opened_at: float  # wall clock, for the expire_sessions fault
    valid_until: datetime
    closed: datetime | None = None
    offline: bool = False
    invoices: list[str] = field(default_factory=list)
    code: int = 100  # session-level status
    parts: dict[int, dict] = field(default_factory=dict)  # batch: declared parts
    uploaded: dict[int, bytes] = field(default_factory=dict)
    batch_file: dict | None = None
    updated: datetime | None = None
    #: error 21184 struck this online session: it takes no more invoices
    unavailable: bool = False


@dataclass
class InvoiceStore:
    sessions: dict[str, Session] = field(default_factory=dict)
    invoices: dict[str, SessionInvoice] = field(default_factory=dict)
    repository: Repository = field(default_factory=Repository)
    storage: dict[str, tuple[str, Any, datetime]] = field(
        default_factory=dict
    )  # token -> (kind, ref, expires)


def store(sim: Simulator) -> InvoiceStore:
    return sim.store("invoices", InvoiceStore)  # type: ignore[no-any-return]


def _validation(detail: str) -> ApiError:
    return ApiError.bad_request(21405, "Błąd walidacji danych wejściowych.", [detail])


def _no_session(ref: str) -> ApiError:
    return ApiError.bad_request(
        21173, "Brak sesji o wskazanym numerze referencyjnym.", [f"Sesja {ref} nie istnieje."]
    )


def _own_session(sim: Simulator, req: Request, ref: str | None = None) -> Session:
    ref = ref or req.path_params["referenceNumber"]
    session = store(sim).sessions.get(ref)
    if session is None or session.context_value != req.auth.context_value:
        raise _no_session(ref)
    return session


def _form_code(body: dict) -> dict:
    fc = body.get("formCode")
    if (
        not isinstance(fc, dict)
        or (fc.get("systemCode"), fc.get("schemaVersion"), fc.get("value")) not in FORM_CODES
    ):
        raise _validation("Wskazany kod formularza nie jest wspierany.")
    return fc


def _session_key(sim: Simulator, body: dict) -> tuple[bytes, bytes]:
    enc = body.get("encryption")
    if (
        not isinstance(enc, dict)
        or not enc.get("encryptedSymmetricKey")
        or not enc.get("initializationVector")
    ):
        raise _validation("Wymagane pole encryption.")
    key = sim.keys.by_public_key_id(enc.get("publicKeyId"), USAGE_SYMMETRIC_KEY)
    if key is None:
        raise ApiError.bad_request(
            21470,
            "Przesłany identyfikator klucza jest nieznany lub wskazuje na wycofany klucz.",
            [f"Klucz o identyfikatorze {enc.get('publicKeyId')} nie jest wspierany."],
        )
    try:
        aes = key.decrypt(b64decode(enc["encryptedSymmetricKey"]))
        iv = b64decode(enc["initializationVector"])
    except ValueError:
        aes, iv = b"", b""
    return aes, iv


def _open(sim: Simulator, req: Request, kind: str, body: dict) -> Session:
    req.auth.require("InvoiceWrite", "PefInvoiceWrite", "EnforcementOperations")
    form = _form_code(body)
    key, iv = _session_key(sim, body)
    now = sim.clock.now()
    import time

    session = Session(
        reference=new_reference("SO" if kind == "Online" else "SB", now),
        kind=kind,
        context_type=req.auth.context_type,
        context_value=req.auth.context_value,
        auth_reference=req.auth.auth_reference,
        form_code=form,
        key=key,
        iv=iv,
        opened=now,
        opened_at=time.time(),
        valid_until=now + timedelta(seconds=sim.config.online_session_ttl),
        offline=bool(body.get("offlineMode")),
        updated=now,
    )
    if len(key) != 32 or len(iv) != 16:
        session.code = 415  # key decryption error: the session cannot be used
    return session


def open_online(sim: Simulator, req: Request) -> Response:
    body = req.json()
    session = _open(sim, req, "Online", body if isinstance(body, dict) else {})
    with sim.lock:
        store(sim).sessions[session.reference] = session
    return Response.json({"referenceNumber": session.reference, "validUntil": iso(session.valid_until)}, 201)


def _process(sim: Simulator, session: Session, sinv: SessionInvoice, xml: bytes, now: datetime) -> None:
    """Run KSeF's checks on one decrypted invoice and record the outcome on ``sinv``."""
    try:
        parsed = check_and_parse(xml, fa3.poland_date(now))  # P_1 is a calendar day in Poland
        sinv.invoice_number = parsed.number
        if parsed.has_attachment and (
            session.kind == "Online" or not attachments_allowed(sim, parsed.seller_nip)
        ):
            raise Rejected(
                415,
                ["Faktury z załącznikiem można wysyłać tylko w sesji wsadowej po włączeniu tej możliwości."],
            )
        if parsed.seller_nip != session.context_value.split("-")[0] and "InvoiceWrite" not in permissions_for(
            sim, "Nip", parsed.seller_nip, session.context_type, session.context_value
        ):
            raise Rejected(410, [f"Brak uprawnień do wystawiania faktur w imieniu NIP {parsed.seller_nip}."])
        with sim.lock:
            repo = store(sim).repository
            dup = repo.duplicate_of(parsed)
            if dup is not None:
                raise Rejected(
                    440,
                    [
                        f"Duplikat faktury. Faktura o numerze KSeF: {dup.ksef_number} została już prawidłowo przesłana."
                    ],
                    {
                        "originalSessionReferenceNumber": dup.session_ref,
                        "originalKsefNumber": dup.ksef_number,
                    },
                )
            stored = accept(
                repo,
                xml,
                parsed,
                now,
                invoicing_date=session.opened if session.kind == "Batch" else sinv.received,
                offline=session.offline or sinv.offline,
                form_code=session.form_code,
                session_ref=session.reference,
                invoice_ref=sinv.reference,
            )
        sinv.code, sinv.ksef_number = 200, stored.ksef_number
    except Rejected as rej:
        sinv.code, sinv.details, sinv.extensions = rej.code, rej.details, rej.extensions


def send_invoice(sim: Simulator, req: Request) -> Response:
    session = _own_session(sim, req)
    body = req.json()
    if not isinstance(body, dict):
        raise _validation("Nieprawidłowe żądanie.")
    if session.kind != "Online" or session.closed or session.code != 100:
        raise ApiError.bad_request(
            21180, "Status sesji nie pozwala na wykonanie operacji.", [f"Sesja {session.reference}."]
        )
    now = sim.clock.now()
    if now > session.valid_until or sim.faults.session_expired(session.opened_at):
        raise ApiError.bad_request(
            21180, "Status sesji nie pozwala na wykonanie operacji.", ["Sesja wygasła."]
        )
    if not session.unavailable and sim.faults.consume("session_unavailable", req.path, len(session.invoices)):
        session.unavailable = True
    if session.unavailable:  # API 2.8: the client opens a new session and goes on there
        raise ApiError.bad_request(
            21184,
            "Sesja tymczasowo niedostępna.",
            [
                f"Sesja {session.reference} jest tymczasowo niedostępna. Otwórz nową sesję i wyślij pozostałe faktury."
            ],
        )
    limits = context_limits(sim, session.context_value)["onlineSession"]
    if len(session.invoices) >= int(limits["maxInvoices"]):
        raise ApiError.bad_request(21155, "Przekroczono dozwoloną liczbę faktur w sesji.")
    try:
        size, enc_size = int(body["invoiceSize"]), int(body["encryptedInvoiceSize"])
        inv_hash, enc_hash = str(body["invoiceHash"]), str(body["encryptedInvoiceHash"])
        content = b64decode(body["encryptedInvoiceContent"])
    except (KeyError, TypeError, ValueError):
        raise _validation(
            "Wymagane pola: invoiceHash, invoiceSize, encryptedInvoiceHash, encryptedInvoiceSize, encryptedInvoiceContent."
        ) from None
    if size > int(limits["maxInvoiceWithAttachmentSizeInMB"]) * 1_000_000:
        raise _validation(f"Rozmiar faktury przekracza {limits['maxInvoiceWithAttachmentSizeInMB']} MB.")
    if enc_size != len(content):
        raise ApiError.bad_request(
            21402, "Nieprawidłowy rozmiar pliku.", ["Rozmiar zaszyfrowanej faktury się nie zgadza."]
        )
    if enc_hash != sha256_b64(content):
        raise ApiError.bad_request(
            21403, "Nieprawidłowy skrót pliku.", ["Skrót zaszyfrowanej faktury się nie zgadza."]
        )
    with sim.lock:
        ordinal = len(session.invoices) + 1
        sinv = SessionInvoice(new_reference("EE", now), ordinal, session.reference, inv_hash, now)
        sinv.offline = bool(body.get("offlineMode"))
        session.invoices.append(sinv.reference)
        session.updated = now
        store(sim).invoices[sinv.reference] = sinv
    try:
        xml = aes_decrypt(content, session.key, session.iv)
    except ValueError:
        sinv.code, sinv.details = 435, ["Nie udało się odszyfrować faktury."]
        return Response.json({"referenceNumber": sinv.reference}, 202)
    if len(xml) != size or sha256_b64(xml) != inv_hash:
        # KSeF refuses the declared values asynchronously for the plain file
        sinv.code, sinv.details = 430, ["Rozmiar lub skrót faktury nie zgadza się z zadeklarowanym."]
        return Response.json({"referenceNumber": sinv.reference}, 202)
    _process(sim, session, sinv, xml, now)
    return Response.json({"referenceNumber": sinv.reference}, 202)


def close_online(sim: Simulator, req: Request) -> Response:
    session = _own_session(sim, req)
    if session.kind != "Online" or session.closed:
        raise ApiError.bad_request(21180, "Status sesji nie pozwala na wykonanie operacji.")
    with sim.lock:
        session.closed = sim.clock.now()
        session.updated = session.closed
        session.code = 170
    return Response.empty()


# -- batch ------------------------------------------------------------------------------------------------


def open_batch(sim: Simulator, req: Request) -> Response:
    body = req.json()
    if not isinstance(body, dict) or not isinstance(body.get("batchFile"), dict):
        raise _validation("Wymagane pole batchFile.")
    batch = body["batchFile"]
    parts = batch.get("fileParts") or []
    if not parts:
        raise _validation("Wymagana co najmniej jedna część paczki.")
    if len(parts) > MAX_PARTS:
        raise ApiError.bad_request(
            21161, "Przekroczono dozwoloną liczbę części paczki.", [f"Maksymalnie {MAX_PARTS}."]
        )
    for p in parts:
        if int(p.get("fileSize", 0)) > MAX_PART + 16:
            raise ApiError.bad_request(
                21157,
                "Nieprawidłowy rozmiar części paczki.",
                [f"Rozmiar części {p.get('ordinalNumber')} przekroczył dozwolony rozmiar 100MB."],
            )
    if int(batch.get("fileSize", 0)) > 5_000_000_000:
        raise _validation("Rozmiar paczki przekracza 5 GB.")
    if batch.get("compressionType") not in (None, *archives.COMPRESSION_TYPES):
        raise _validation("Nieobsługiwany typ kompresji (dozwolone: Zip, TarGz).")
    session = _open(sim, req, "Batch", body)
    session.parts = {int(p["ordinalNumber"]): p for p in parts}
    session.batch_file = batch
    deadline = sim.clock.now() + UPLOAD_TIME_PER_PART * len(parts)
    uploads = []
    with sim.lock:
        st = store(sim)
        st.sessions[session.reference] = session
        for ordinal in sorted(session.parts):
            token = secrets.token_urlsafe(24)
            st.storage[token] = ("upload", (session.reference, ordinal), deadline)
            uploads.append(
                {
                    "ordinalNumber": ordinal,
                    "method": "PUT",
                    "url": sim.url(f"{STORAGE_PREFIX}/upload/{token}"),
                    "headers": {"x-ms-blob-type": "BlockBlob"},
                }
            )
    return Response.json({"referenceNumber": session.reference, "partUploadRequests": uploads}, 201)


def upload_part(sim: Simulator, req: Request) -> Response:
    entry = store(sim).storage.get(req.path_params["token"])
    if entry is None or entry[0] != "upload":
        return Response(404)
    _, (ref, ordinal), deadline = entry
    if sim.clock.now() > deadline:
        return Response(403)
    session = store(sim).sessions[ref]
    declared = session.parts[ordinal]
    if len(req.body) != int(declared["fileSize"]) or sha256_b64(req.body) != declared["fileHash"]:
        return Response(400, b"part size or hash differs from the declaration", "text/plain")
    with sim.lock:
        session.uploaded[ordinal] = req.body
    return Response(201)


def close_batch(sim: Simulator, req: Request) -> Response:
    session = _own_session(sim, req)
    if session.kind != "Batch" or session.closed:
        raise ApiError.bad_request(21180, "Status sesji nie pozwala na wykonanie operacji.")
    missing = sorted(set(session.parts) - set(session.uploaded))
    if missing:
        raise ApiError.bad_request(
            21205, "Nie przesłano zadeklarowanych części paczki.", [f"Brak części: {missing}."]
        )
    now = sim.clock.now()
    with sim.lock:
        session.closed = now
        session.updated = now
        session.code = 150
    _process_batch(sim, session, now)
    return Response.empty()


def _process_batch(sim: Simulator, session: Session, now: datetime) -> None:
    if session.code == 415:
        return
    try:
        plain = b"".join(
            aes_decrypt(session.uploaded[o], session.key, session.iv) for o in sorted(session.uploaded)
        )
    except ValueError:
        session.code = 435
        return
    batch = session.batch_file or {}
    if len(plain) != int(batch.get("fileSize", -1)) or sha256_b64(plain) != batch.get("fileHash"):
        session.code = 405
        return
    try:  # the declared compression type (Zip by default); another type is a decompression error
        files = list(archives.read(plain, batch.get("compressionType") or archives.ZIP))
    except archives.ArchiveError:
        session.code = 430
        return
    limits = context_limits(sim, session.context_value)["batchSession"]
    if len(files) > int(limits["maxInvoices"]):
        session.code = 420
        return
    for file_name, xml in files:
        with sim.lock:
            sinv = SessionInvoice(
                new_reference("EE", now),
                len(session.invoices) + 1,
                session.reference,
                sha256_b64(xml),
                now,
                file_name,
            )
            session.invoices.append(sinv.reference)
            store(sim).invoices[sinv.reference] = sinv
        _process(sim, session, sinv, xml, now)
    session.uploaded.clear()  # free memory: the invoices are in the repository now
    ok = sum(1 for r in session.invoices if store(sim).invoices[r].code == 200)
    session.code = 200 if ok else 445


# -- statuses -----------------------------------------------------------------------------------------------


def _invoice_code(sim: Simulator, sinv: SessionInvoice) -> int:
    delay = sim.config.processing_delay
    if delay <= 0:
        return sinv.code
    age = (sim.clock.now() - sinv.received).total_seconds()
    if age < delay:
        return 100
    if age < 2 * delay:
        return 150
    return sinv.code


def _storage_link(sim: Simulator, kind: str, target: Any, hours: int = 1) -> tuple[str, datetime]:
    token = secrets.token_urlsafe(24)
    expires = sim.clock.now() + timedelta(hours=hours)
    with sim.lock:
        st = store(sim).storage
        st[token] = (kind, target, expires)
        if len(st) > 50_000:
            now = sim.clock.now()
            for key in [k for k, v in st.items() if v[2] < now][:10_000]:
                st.pop(key, None)
    return sim.url(f"{STORAGE_PREFIX}/{kind}/{token}"), expires


def invoice_json(sim: Simulator, sinv: SessionInvoice, with_upo_link: bool = True) -> dict:
    code = _invoice_code(sim, sinv)
    status: dict[str, Any] = {"code": code, "description": INVOICE_STATUS.get(code, "Nieznany błąd")}
    if code >= 400 and sinv.details:
        status["details"] = sinv.details
    if code >= 400 and sinv.extensions:
        status["extensions"] = sinv.extensions
    out: dict[str, Any] = {
        "ordinalNumber": sinv.ordinal,
        "referenceNumber": sinv.reference,
        "invoiceHash": sinv.invoice_hash,
        "invoicingDate": iso(sinv.received),
        "status": status,
    }
    if sinv.invoice_number:
        out["invoiceNumber"] = sinv.invoice_number
    if sinv.file_name:
        out["invoiceFileName"] = sinv.file_name
    if code == 200 and sinv.ksef_number:
        stored = store(sim).repository.invoices[sinv.ksef_number]
        out.update(
            ksefNumber=sinv.ksef_number,
            acquisitionDate=iso(stored.acquisition_date),
            permanentStorageDate=iso(stored.permanent_storage_date),
            invoicingMode=stored.invoicing_mode,
        )
        if with_upo_link:
            url, expires = _storage_link(sim, "upo", sinv.ksef_number)
            out.update(upoDownloadUrl=url, upoDownloadUrlExpirationDate=iso(expires))
    return out


def _session_code(sim: Simulator, session: Session) -> int:
    if session.kind == "Online":
        if not session.closed:
            return session.code
        invoices = [store(sim).invoices[r] for r in session.invoices]
        if not invoices:
            return 440
        if any(_invoice_code(sim, i) < 200 for i in invoices):
            return 170
        return 200 if any(i.code == 200 for i in invoices) else 445
    if session.code == 100 and sim.clock.now() > session.opened + UPLOAD_TIME_PER_PART * max(
        1, len(session.parts)
    ):
        return 440  # upload time exceeded
    if session.code in (200, 445) and sim.config.processing_delay > 0:
        # a batch is processed when every invoice in it is: until then KSeF says 150 (processing)
        if any(_invoice_code(sim, store(sim).invoices[r]) < 200 for r in session.invoices):
            return 150
    return session.code


SESSION_STATUS = {
    100: "Sesja interaktywna otwarta",
    150: "Trwa przetwarzanie",
    170: "Sesja interaktywna zamknięta",
    200: "Sesja przetworzona pomyślnie",
    405: "Błąd weryfikacji poprawności dostarczonych elementów paczki",
    415: "Błąd odszyfrowania dostarczonego klucza",
    420: "Przekroczony limit faktur w sesji",
    430: "Błąd dekompresji pierwotnego archiwum",
    435: "Błąd odszyfrowania zaszyfrowanych części archiwum",
    440: "Sesja anulowana",
    445: "Błąd weryfikacji, brak poprawnych faktur",
}


def _counts(sim: Simulator, session: Session) -> tuple[int, int, int]:
    invoices = [store(sim).invoices[r] for r in session.invoices]
    ok = sum(1 for i in invoices if _invoice_code(sim, i) == 200)
    failed = sum(1 for i in invoices if _invoice_code(sim, i) >= 400)
    return len(invoices), ok, failed


def session_status(sim: Simulator, req: Request) -> Response:
    session = _own_session(sim, req)
    code = _session_code(sim, session)
    total, ok, failed = _counts(sim, session)
    out: dict[str, Any] = {
        "status": {"code": code, "description": SESSION_STATUS.get(code, "Nieznany błąd")},
        "dateCreated": iso(session.opened),
        "dateUpdated": iso(session.updated or session.opened),
        "invoiceCount": total,
        "successfulInvoiceCount": ok,
        "failedInvoiceCount": failed,
    }
    if session.kind == "Online":
        out["validUntil"] = iso(session.valid_until)
    if code == 200:
        stored = _session_stored(sim, session)
        pages = []
        for index in range(max(1, -(-len(stored) // 10_000))):
            url, expires = _storage_link(sim, "session-upo", (session.reference, index))
            pages.append(
                {
                    "referenceNumber": _upo_ref(session.reference, index),
                    "downloadUrl": url,
                    "downloadUrlExpirationDate": iso(expires),
                }
            )
        out["upo"] = {"pages": pages}
    return Response.json(out)


def _upo_ref(session_ref: str, index: int) -> str:
    digest = hashlib.sha256(f"{session_ref}:{index}".encode()).hexdigest().upper()
    return f"{session_ref[:8]}-EU-{digest[:10]}-{digest[10:20]}-{index:02X}"


def _session_stored(sim: Simulator, session: Session) -> list[StoredInvoice]:
    repo = store(sim).repository
    return [
        repo.invoices[store(sim).invoices[r].ksef_number]  # type: ignore[index]
        for r in session.invoices
        if store(sim).invoices[r].code == 200
    ]


def _page(req: Request, items: list[Any]) -> tuple[list[Any], str | None]:
    try:
        size = int(req.q("pageSize") or 10)
        start = int(req.headers.get("x-continuation-token") or 0)
    except ValueError:
        raise ApiError.bad_request(21418, "Przekazany token kontynuacji ma nieprawidłowy format.") from None
    if not 10 <= size <= 1000:
        raise _validation("pageSize musi mieścić się w zakresie 10-1000.")
    page = items[start : start + size]
    return page, (str(start + size) if start + size < len(items) else None)


def _invoices_page(sim: Simulator, req: Request, failed_only: bool) -> Response:
    session = _own_session(sim, req)
    items = [store(sim).invoices[r] for r in session.invoices]
    if failed_only:
        items = [i for i in items if _invoice_code(sim, i) >= 400]
    page, nxt = _page(req, items)
    body: dict[str, Any] = {"invoices": [invoice_json(sim, i) for i in page]}
    if nxt:
        body["continuationToken"] = nxt
    return Response.json(body)


def session_invoices(sim: Simulator, req: Request) -> Response:
    return _invoices_page(sim, req, False)


def session_failed(sim: Simulator, req: Request) -> Response:
    return _invoices_page(sim, req, True)


def _session_invoice(sim: Simulator, req: Request) -> tuple[Session, SessionInvoice]:
    session = _own_session(sim, req)
    sinv = store(sim).invoices.get(req.path_params["invoiceReferenceNumber"])
    if sinv is None or sinv.session_ref != session.reference:
        raise ApiError.bad_request(
            21405, "Błąd walidacji danych wejściowych.", ["Faktura nie istnieje w tej sesji."]
        )
    return session, sinv


def invoice_status(sim: Simulator, req: Request) -> Response:
    _, sinv = _session_invoice(sim, req)
    return Response.json(invoice_json(sim, sinv))


def _upo_for(sim: Simulator, session: Session, stored: StoredInvoice) -> Response:
    op = sim.stores.get("auth").operations.get(session.auth_reference)  # type: ignore[union-attr]
    auth_hash = sha256_b64((op.reference if op else session.auth_reference).encode())
    xml = invoice_upo(
        stored,
        sim.config.receiver_name,
        session.reference,
        session.context_type,
        session.context_value,
        auth_hash,
    )
    return Response.xml(xml, {"x-ms-meta-hash": sha256_b64(xml)})


def _no_upo() -> ApiError:
    return ApiError.bad_request(21178, "Nie znaleziono UPO dla podanych kryteriów.")


def invoice_upo_by_ref(sim: Simulator, req: Request) -> Response:
    session, sinv = _session_invoice(sim, req)
    if _invoice_code(sim, sinv) != 200:
        raise _no_upo()
    return _upo_for(sim, session, store(sim).repository.invoices[sinv.ksef_number])  # type: ignore[index]


def invoice_upo_by_ksef(sim: Simulator, req: Request) -> Response:
    session = _own_session(sim, req)
    stored = store(sim).repository.invoices.get(req.path_params["ksefNumber"])
    if stored is None or stored.session_ref != session.reference:
        raise _no_upo()
    sinv = store(sim).invoices.get(stored.invoice_ref or "")
    if sinv is not None and _invoice_code(sim, sinv) != 200:
        raise _no_upo()
    return _upo_for(sim, session, stored)


def _session_upo_xml(sim: Simulator, session: Session, index: int) -> bytes:
    op = sim.stores.get("auth").operations.get(session.auth_reference)  # type: ignore[union-attr]
    auth_hash = sha256_b64((op.reference if op else session.auth_reference).encode())
    pages = session_upo_pages(
        _session_stored(sim, session),
        sim.config.receiver_name,
        session.reference,
        session.context_type,
        session.context_value,
        auth_hash,
    )
    if index >= len(pages):
        raise _no_upo()
    return pages[index]


def session_upo(sim: Simulator, req: Request) -> Response:
    session = _own_session(sim, req)
    if _session_code(sim, session) != 200:
        raise _no_upo()
    wanted = req.path_params["upoReferenceNumber"]
    for index in range(max(1, -(-len(session.invoices) // 10_000))):
        if _upo_ref(session.reference, index) == wanted:
            xml = _session_upo_xml(sim, session, index)
            return Response.xml(xml, {"x-ms-meta-hash": sha256_b64(xml)})
    raise _no_upo()


def list_sessions(sim: Simulator, req: Request) -> Response:
    kind = req.q("sessionType")
    if kind not in ("Online", "Batch"):
        raise _validation("Parametr sessionType jest wymagany (Online lub Batch).")
    statuses = set(req.q_all("statuses"))
    mapping = {
        "InProgress": {100, 150, 170},
        "Succeeded": {200},
        "Failed": {405, 415, 420, 430, 435, 445},
        "Cancelled": {440},
    }
    wanted_codes = set().union(*(mapping[s] for s in statuses if s in mapping)) if statuses else None
    ref = req.q("referenceNumber")
    sessions = [
        s
        for s in store(sim).sessions.values()
        if s.kind == kind and s.context_value == req.auth.context_value and (not ref or s.reference == ref)
    ]
    sessions.sort(key=lambda s: s.opened, reverse=True)  # the spec: sorted by dateCreated, descending
    items = []
    for s in sessions:
        code = _session_code(sim, s)
        if wanted_codes is not None and code not in wanted_codes:
            continue
        items.append((s, code))
    page, nxt = _page(req, items)
    out = []
    for s, code in page:
        total, ok, failed = _counts(sim, s)
        item: dict[str, Any] = {
            "referenceNumber": s.reference,
            "status": {"code": code, "description": SESSION_STATUS.get(code, "Nieznany błąd")},
            "dateCreated": iso(s.opened),
            "dateUpdated": iso(s.updated or s.opened),
            "totalInvoiceCount": total,
            "successfulInvoiceCount": ok,
            "failedInvoiceCount": failed,
        }
        if s.kind == "Online":
            item["validUntil"] = iso(s.valid_until)
        out.append(item)
    body: dict[str, Any] = {"sessions": out}
    if nxt:
        body["continuationToken"] = nxt
    return Response.json(body)


def _storage_download_for(sim: Simulator, kind: str, req: Request) -> Response:
    return storage_download(sim, req, kind)


def storage_download(sim: Simulator, req: Request, kind: str) -> Response:
    entry = store(sim).storage.get(req.path_params["token"])
    if entry is None or entry[0] != kind:
        return Response(404)
    _, target, expires = entry
    if sim.clock.now() > expires:
        return Response(403)
    if kind == "upo":
        stored = store(sim).repository.invoices[target]
        session = store(sim).sessions.get(stored.session_ref or "")
        if session is None:
            return Response(404)
        return _upo_for(sim, session, stored)
    if kind == "session-upo":
        ref, index = target
        xml = _session_upo_xml(sim, store(sim).sessions[ref], index)
        return Response.xml(xml, {"x-ms-meta-hash": sha256_b64(xml)})
    blob = target() if callable(target) else target
    return Response(200, blob, "application/octet-stream", {"x-ms-meta-hash": sha256_b64(blob)})


def register(sim: Simulator) -> None:
    def add(method: str, path: str, handler: Any, group: str, **kw: Any) -> None:
        sim.router.add(method, path, functools.partial(handler, sim), rate_group=group, **kw)

    add("POST", "/sessions/online", open_online, "onlineSession")
    add("POST", "/sessions/online/{referenceNumber}/invoices", send_invoice, "invoiceSend")
    add("POST", "/sessions/online/{referenceNumber}/close", close_online, "onlineSessionClose")
    add("POST", "/sessions/batch", open_batch, "batchSession")
    add("POST", "/sessions/batch/{referenceNumber}/close", close_batch, "batchSessionClose")
    add("GET", "/sessions", list_sessions, "sessionList")
    add("GET", "/sessions/{referenceNumber}/invoices/failed", session_failed, "sessionInvoiceList")
    add(
        "GET",
        "/sessions/{referenceNumber}/invoices/ksef/{ksefNumber}/upo",
        invoice_upo_by_ksef,
        "sessionMisc",
    )
    add(
        "GET",
        "/sessions/{referenceNumber}/invoices/{invoiceReferenceNumber}/upo",
        invoice_upo_by_ref,
        "sessionMisc",
    )
    add(
        "GET",
        "/sessions/{referenceNumber}/invoices/{invoiceReferenceNumber}",
        invoice_status,
        "invoiceStatus",
    )
    add("GET", "/sessions/{referenceNumber}/invoices", session_invoices, "sessionInvoiceList")
    add("GET", "/sessions/{referenceNumber}/upo/{upoReferenceNumber}", session_upo, "sessionMisc")
    add("GET", "/sessions/{referenceNumber}", session_status, "sessionMisc")
    sim.router.add(
        "PUT",
        "/upload/{token}",
        lambda req: upload_part(sim, req),
        auth=None,
        rate_group=None,
        prefix=STORAGE_PREFIX,
    )
    for kind in ("upo", "session-upo", "export"):
        sim.router.add(
            "GET",
            f"/{kind}/{{token}}",
            functools.partial(_storage_download_for, sim, kind),
            auth=None,
            rate_group=None,
            prefix=STORAGE_PREFIX,
        )
