"""Sending invoices: online (interactive) and batch sessions, statuses, UPO.

Workflows return data and raise typed errors; they never decide business retry policy. The outcome of every
invoice is an :class:`InvoiceStatus` whose :attr:`InvoiceStatus.outcome` tells the caller what it means:
``processing`` (not final yet), ``accepted`` (KSeF number assigned), ``duplicate`` (440: KSeF already has it,
see ``original_ksef_number``), ``rejected`` (KSeF refused the invoice: a person must correct it), or
``cancelled`` (405/500/550: not processed because of a session/system problem; it may be sent again).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import archives
from .archives import ZIP
from .client import KsefClient
from .crypto import (
    USAGE_SYMMETRIC_KEY,
    SymmetricKey,
    aes_encrypt_stream,
    b64,
    choose_certificate,
    parse_datetime,
    sha256_b64,
)
from .errors import KsefError, KsefOperationFailed, KsefUnknownPublicKey
from .outcomes import invoice_outcome

FA3_FORM_CODE = {"systemCode": "FA (3)", "schemaVersion": "1-0E", "value": "FA"}
FA2_FORM_CODE = {"systemCode": "FA (2)", "schemaVersion": "1-0E", "value": "FA"}

MAX_PART_SIZE = 100_000_000  # bytes of the plain archive per part, before encryption
MAX_PARTS = 50
MAX_ARCHIVE_SIZE = 5_000_000_000


@dataclass(frozen=True)
class InvoiceStatus:
    """``SessionInvoiceStatusResponse`` of one invoice in a session."""

    reference_number: str
    code: int
    description: str
    details: tuple[str, ...] = ()
    ordinal_number: int | None = None
    ksef_number: str | None = None
    invoice_number: str | None = None
    invoice_hash: str | None = None
    invoice_file_name: str | None = None
    acquisition_date: datetime | None = None
    invoicing_date: datetime | None = None
    permanent_storage_date: datetime | None = None
    invoicing_mode: str | None = None
    upo_download_url: str | None = None
    original_ksef_number: str | None = None
    original_session_reference_number: str | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict) -> InvoiceStatus:
        st = data.get("status") or {}
        ext = st.get("extensions") or {}
        return cls(
            reference_number=data.get("referenceNumber", ""),
            code=int(st.get("code", 0)),
            description=st.get("description", ""),
            details=tuple(st.get("details") or ()),
            ordinal_number=data.get("ordinalNumber"),
            ksef_number=data.get("ksefNumber"),
            invoice_number=data.get("invoiceNumber"),
            invoice_hash=data.get("invoiceHash"),
            invoice_file_name=data.get("invoiceFileName"),
            acquisition_date=_dt(data.get("acquisitionDate")),
            invoicing_date=_dt(data.get("invoicingDate")),
            permanent_storage_date=_dt(data.get("permanentStorageDate")),
            invoicing_mode=data.get("invoicingMode"),
            upo_download_url=data.get("upoDownloadUrl"),
            original_ksef_number=ext.get("originalKsefNumber"),
            original_session_reference_number=ext.get("originalSessionReferenceNumber"),
            raw=data,
        )

    @property
    def outcome(self) -> str:
        """processing, accepted, duplicate, rejected or cancelled (:func:`ksefnet_core.outcomes.invoice_outcome`)."""
        return invoice_outcome(self.code)

    @property
    def is_final(self) -> bool:
        return self.code >= 200

    @property
    def message(self) -> str:
        """KSeF's description and details in one line, for people."""
        return self.description + (f": {'; '.join(self.details)}" if self.details else "")


@dataclass(frozen=True)
class SessionStatus:
    reference_number: str
    code: int
    description: str
    details: tuple[str, ...] = ()
    invoice_count: int | None = None
    successful_invoice_count: int | None = None
    failed_invoice_count: int | None = None
    upo_pages: tuple[dict, ...] = ()
    valid_until: datetime | None = None
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, reference: str, data: dict) -> SessionStatus:
        st = data.get("status") or {}
        upo = data.get("upo") or {}
        return cls(
            reference_number=reference,
            code=int(st.get("code", 0)),
            description=st.get("description", ""),
            details=tuple(st.get("details") or ()),
            invoice_count=data.get("invoiceCount"),
            successful_invoice_count=data.get("successfulInvoiceCount"),
            failed_invoice_count=data.get("failedInvoiceCount"),
            upo_pages=tuple(upo.get("pages") or ()),
            valid_until=_dt(data.get("validUntil")),
            raw=data,
        )


@dataclass(frozen=True)
class SentInvoice:
    """What ``POST /sessions/online/{ref}/invoices`` accepted: the reference and the hash to correlate."""

    reference_number: str
    invoice_hash: str
    invoice_size: int


def _dt(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


def _encryption_for(client: KsefClient, key: SymmetricKey, refresh: bool) -> dict:
    cert = choose_certificate(client.public_keys(refresh=refresh), USAGE_SYMMETRIC_KEY)
    return key.encryption_info(cert)


class _SessionBase:
    def __init__(self, client: KsefClient, reference_number: str | None = None) -> None:
        self.client = client
        self.reference_number = reference_number

    def _ref(self) -> str:
        if not self.reference_number:
            raise KsefError("the session is not open")
        return self.reference_number

    def status(self) -> SessionStatus:
        return SessionStatus.from_json(self._ref(), self.client.session_status(self._ref()))

    def invoice_status(self, invoice_reference: str) -> InvoiceStatus:
        return InvoiceStatus.from_json(self.client.session_invoice_status(self._ref(), invoice_reference))

    def invoices(self, page_size: int = 1000) -> Iterator[InvoiceStatus]:
        """Every invoice of the session (``GET /sessions/{ref}/invoices``, all pages)."""
        for item in self.client.session_invoices(self._ref(), page_size=page_size):
            yield InvoiceStatus.from_json(item)

    def failed_invoices(self, page_size: int = 1000) -> Iterator[InvoiceStatus]:
        for item in self.client.session_failed_invoices(self._ref(), page_size=page_size):
            yield InvoiceStatus.from_json(item)

    def upo(self, invoice_reference: str) -> bytes:
        """The UPO of one invoice (XML bytes)."""
        return self.client.invoice_upo(self._ref(), invoice_reference)

    def session_upo_pages(self) -> list[bytes]:
        """The collective session UPO (available after the session is closed and processed)."""
        return [self.client.session_upo(self._ref(), p["referenceNumber"]) for p in self.status().upo_pages]

    def wait_until_processed(self, timeout: float = 600.0, poll_interval: float = 1.0) -> SessionStatus:
        """Poll the session status until it is final (200 or an error code); raise on failure codes."""
        deadline = time.monotonic() + timeout
        delay = poll_interval
        while True:
            st = self.status()
            if st.code == 200:
                return st
            if st.code >= 300:
                raise KsefOperationFailed(
                    f"session {st.reference_number} failed: {st.description}"
                    + (f" ({'; '.join(st.details)})" if st.details else ""),
                    status_code=st.code,
                    reference_number=st.reference_number,
                    ksef_text=st.description + (f" ({'; '.join(st.details)})" if st.details else ""),
                )
            if time.monotonic() + delay > deadline:
                return st
            time.sleep(delay)
            delay = min(delay * 1.5, 10.0)

    def wait_for_invoices(
        self, references: Iterable[str], timeout: float = 120.0, poll_interval: float = 0.5
    ) -> dict[str, InvoiceStatus]:
        """Poll the given invoices until each has a final status or ``timeout`` passes; return the latest."""
        pending = list(dict.fromkeys(references))
        result: dict[str, InvoiceStatus] = {}
        deadline = time.monotonic() + timeout
        delay = poll_interval
        while pending:
            still = []
            for ref in pending:
                st = self.invoice_status(ref)
                result[ref] = st
                if not st.is_final:
                    still.append(ref)
            pending = still
            if not pending or time.monotonic() + delay > deadline:
                break
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)
        return result


class OnlineSession(_SessionBase):
    """An interactive session: ``with OnlineSession(client) as s: s.send(xml)``.

    A new AES-256 key is generated per session. To check statuses of an earlier session (e.g. after a
    crash), build ``OnlineSession(client, reference_number=...)`` without opening it.
    """

    def __init__(
        self,
        client: KsefClient,
        form_code: dict | None = None,
        *,
        reference_number: str | None = None,
        key: SymmetricKey | None = None,
    ) -> None:
        super().__init__(client, reference_number)
        self.form_code = form_code or FA3_FORM_CODE
        self.key = key
        self.valid_until: datetime | None = None
        self.closed = False

    def open(self) -> str:
        self.key = self.key or SymmetricKey.generate()
        for attempt in (1, 2):
            try:
                resp = self.client.open_online_session(
                    self.form_code, _encryption_for(self.client, self.key, attempt == 2)
                )
                break
            except KsefUnknownPublicKey:
                if attempt == 2:
                    raise
        self.reference_number = resp["referenceNumber"]
        self.valid_until = _dt(resp.get("validUntil"))
        return self.reference_number

    def build_request(
        self, xml: bytes, *, offline_mode: bool = False, hash_of_corrected_invoice: str | None = None
    ) -> dict:
        """The ``SendInvoiceRequest`` body for ``xml`` (encrypted with the session key)."""
        if self.key is None:
            raise KsefError("the session key is unknown: open the session first")
        encrypted = self.key.encrypt(xml)
        body: dict[str, Any] = {
            "invoiceHash": sha256_b64(xml),
            "invoiceSize": len(xml),
            "encryptedInvoiceHash": sha256_b64(encrypted),
            "encryptedInvoiceSize": len(encrypted),
            "encryptedInvoiceContent": b64(encrypted),
            "offlineMode": offline_mode,
        }
        if hash_of_corrected_invoice:
            body["hashOfCorrectedInvoice"] = hash_of_corrected_invoice
        return body

    def send(
        self, xml: bytes, *, offline_mode: bool = False, hash_of_corrected_invoice: str | None = None
    ) -> SentInvoice:
        """Send one invoice. A :class:`~ksefnet_core.errors.KsefTimeoutError` means the outcome is unknown:
        reconcile with :meth:`find_by_hash` before sending again."""
        body = self.build_request(
            xml, offline_mode=offline_mode, hash_of_corrected_invoice=hash_of_corrected_invoice
        )
        resp = self.client.send_online_invoice(self._ref(), body)
        return SentInvoice(resp["referenceNumber"], body["invoiceHash"], body["invoiceSize"])

    def find_by_hash(self, invoice_hash: str) -> InvoiceStatus | None:
        """Reconcile an ambiguous send: the session's invoice with this SHA-256 (Base64), if KSeF has it."""
        for st in self.invoices():
            if st.invoice_hash == invoice_hash:
                return st
        return None

    def close(self) -> None:
        if not self.closed and self.reference_number:
            self.client.close_online_session(self._ref())
            self.closed = True

    def __enter__(self) -> OnlineSession:
        if not self.reference_number:
            self.open()
        return self

    def __exit__(self, exc_type: Any, *exc: object) -> None:
        if exc_type is None:
            self.close()


# -- batch --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchPart:
    ordinal_number: int
    path: Path
    size: int  # encrypted size
    hash: str  # SHA-256 of the encrypted part


@dataclass
class PreparedBatch:
    """A batch archive split into encrypted parts on disk, ready to be declared and uploaded."""

    workdir: Path
    archive_size: int
    archive_hash: str
    parts: list[BatchPart]
    key: SymmetricKey
    files: dict[str, str]  # invoice file name in the archive -> SHA-256 (Base64) of the invoice
    _owns_workdir: bool = True
    compression: str = ZIP

    def batch_file(self) -> dict:
        return {
            "fileSize": self.archive_size,
            "fileHash": self.archive_hash,
            "compressionType": self.compression,
            "fileParts": [
                {"ordinalNumber": p.ordinal_number, "fileSize": p.size, "fileHash": p.hash}
                for p in self.parts
            ],
        }

    def cleanup(self) -> None:
        if self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def prepare_batch(
    invoices: Iterable[tuple[str, bytes]],
    *,
    workdir: str | os.PathLike[str] | None = None,
    part_size: int = MAX_PART_SIZE,
    key: SymmetricKey | None = None,
    compression: str = ZIP,
) -> PreparedBatch:
    """Write the invoices (file name, XML bytes) into a Zip or TarGz archive (``compression``: ``"Zip"``, the
    default, or ``"TarGz"``, which compresses large batches better), split it into parts and encrypt each part.

    Everything streams through files in ``workdir`` (a temporary folder by default), so memory does not grow
    with the size of the batch. File names must be unique; they come back as ``invoiceFileName`` in the
    statuses.
    """
    if not 0 < part_size <= MAX_PART_SIZE:
        raise ValueError(f"part size must be between 1 and {MAX_PART_SIZE} bytes")
    compression = archives.check_type(compression)
    owns = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="ksef-batch-")) if workdir is None else Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    key = key or SymmetricKey.generate()
    archive = wd / ("batch" + archives.SUFFIX[compression])
    files: dict[str, str] = {}
    try:
        with archive.open("wb") as out, archives.ArchiveWriter(out, compression) as writer:
            for name, xml in invoices:
                if name in files:
                    raise ValueError(f"duplicate file name in batch: {name}")
                files[name] = sha256_b64(xml)
                writer.add(name, xml)
        if not files:
            raise ValueError("a batch needs at least one invoice")
        archive_size = archive.stat().st_size
        if archive_size > MAX_ARCHIVE_SIZE:
            raise ValueError("the batch archive exceeds 5 GB")
        nparts = -(-archive_size // part_size)
        if nparts > MAX_PARTS:
            raise ValueError(f"the batch needs {nparts} parts of {part_size} bytes; KSeF allows {MAX_PARTS}")
        whole = hashlib.sha256()
        parts: list[BatchPart] = []
        with archive.open("rb") as src:
            for ordinal in range(1, nparts + 1):
                remaining = min(part_size, archive_size - (ordinal - 1) * part_size)
                part_path = wd / f"part-{ordinal:03d}.zip.aes"
                enc_hash = hashlib.sha256()
                enc_size = 0

                def plain_chunks(n: int = remaining) -> Iterator[bytes]:
                    left = n
                    while left:
                        chunk = src.read(min(1 << 20, left))
                        if not chunk:
                            raise OSError("batch archive ended early")
                        whole.update(chunk)
                        left -= len(chunk)
                        yield chunk

                with part_path.open("wb") as out:
                    for block in aes_encrypt_stream(plain_chunks(), key.key, key.iv):
                        enc_hash.update(block)
                        enc_size += len(block)
                        out.write(block)
                parts.append(BatchPart(ordinal, part_path, enc_size, b64(enc_hash.digest())))
        archive.unlink()
        return PreparedBatch(wd, archive_size, b64(whole.digest()), parts, key, files, owns, compression)
    except BaseException:
        if owns:
            shutil.rmtree(wd, ignore_errors=True)
        raise


class BatchSession(_SessionBase):
    """A batch session: declare the prepared parts, upload them (no bearer), close, then poll statuses."""

    def __init__(
        self,
        client: KsefClient,
        form_code: dict | None = None,
        *,
        reference_number: str | None = None,
        offline_mode: bool = False,
    ) -> None:
        super().__init__(client, reference_number)
        self.form_code = form_code or FA3_FORM_CODE
        self.offline_mode = offline_mode
        self.upload_requests: list[dict] = []

    def open(self, batch: PreparedBatch) -> str:
        for attempt in (1, 2):
            body = {
                "formCode": self.form_code,
                "batchFile": batch.batch_file(),
                "encryption": _encryption_for(self.client, batch.key, attempt == 2),
                "offlineMode": self.offline_mode,
            }
            try:
                resp = self.client.open_batch_session(body)
                break
            except KsefUnknownPublicKey:
                if attempt == 2:
                    raise
        self.reference_number = resp["referenceNumber"]
        self.upload_requests = list(resp.get("partUploadRequests") or [])
        return self.reference_number

    def upload(self, batch: PreparedBatch) -> None:
        by_ordinal = {p.ordinal_number: p for p in batch.parts}
        for req in self.upload_requests:
            part = by_ordinal[int(req["ordinalNumber"])]
            with part.path.open("rb") as fp:
                self.client.upload_batch_part(req, fp)

    def close(self) -> None:
        self.client.close_batch_session(self._ref())


def send_batch(
    client: KsefClient,
    invoices: Iterable[tuple[str, bytes]],
    *,
    form_code: dict | None = None,
    offline_mode: bool = False,
    part_size: int = MAX_PART_SIZE,
    workdir: str | os.PathLike[str] | None = None,
    compression: str = ZIP,
) -> tuple[BatchSession, dict[str, str]]:
    """Prepare, open, upload and close a batch; return the session and the file name -> hash map.

    Poll ``session.wait_until_processed()`` and ``session.invoices()`` for the outcome.
    """
    batch = prepare_batch(invoices, workdir=workdir, part_size=part_size, compression=compression)
    try:
        session = BatchSession(client, form_code, offline_mode=offline_mode)
        session.open(batch)
        session.upload(batch)
        session.close()
        return session, dict(batch.files)
    finally:
        batch.cleanup()
