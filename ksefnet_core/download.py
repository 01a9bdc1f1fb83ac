"""Downloading invoices: metadata queries, single downloads, asynchronous exports, incremental sync.

Incremental sync follows KSeF's high-water-mark (HWM) design (``pobieranie-faktur/hwm.md``): filter by
``dateType=PermanentStorage`` in ascending order, restricted to ``permanentStorageHwmDate``; everything
below the HWM is complete and immutable, so the next run starts from the stored mark. Windows may overlap
by one timestamp, so results are de-duplicated by KSeF number (within a run here; across runs the caller's
store has a unique key).

:class:`IncrementalDownloader` yields :class:`DownloadBatch` objects; the caller stores a batch's invoices,
commits, and only then persists ``batch.resume_point``. A crash between the two repeats at most that batch.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from . import archives
from .client import KsefClient
from .crypto import USAGE_SYMMETRIC_KEY, SymmetricKey, choose_certificate, parse_datetime, sha256_b64
from .errors import KsefProtocolError, KsefUnknownPublicKey
from .polling import wait_for_operation

SUBJECT_TYPES = ("Subject1", "Subject2", "Subject3", "SubjectAuthorized")
DATE_FIELD = {"PermanentStorage": "permanentStorageDate", "Invoicing": "invoicingDate", "Issue": "issueDate"}
#: KSeF accepts date ranges of at most three months; stay safely below
MAX_RANGE = timedelta(days=88)
QUERY_CAP = 10_000
METADATA_FILE = "_metadata.json"


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dt(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None


def metadata_date(item: dict, date_type: str) -> datetime:
    value = item.get(DATE_FIELD[date_type])
    if not value:
        raise KsefProtocolError(f"invoice metadata without {DATE_FIELD[date_type]}")
    if date_type == "Issue":
        return datetime.fromisoformat(value[:10]).replace(tzinfo=timezone.utc)
    return parse_datetime(value)


@dataclass(frozen=True)
class MetadataPage:
    invoices: list[dict]
    has_more: bool
    is_truncated: bool
    permanent_storage_hwm_date: datetime | None


def query_metadata(
    client: KsefClient, filters: dict, *, page_offset: int = 0, page_size: int = 250, sort_order: str = "Asc"
) -> MetadataPage:
    data = client.query_invoice_metadata(
        filters, page_offset=page_offset, page_size=page_size, sort_order=sort_order
    )
    return MetadataPage(
        list(data.get("invoices") or []),
        bool(data.get("hasMore")),
        bool(data.get("isTruncated")),
        _dt(data.get("permanentStorageHwmDate")),
    )


def iter_metadata_pages(client: KsefClient, filters: dict, *, page_size: int = 250) -> Iterator[MetadataPage]:
    """Every page of invoices matching ``filters`` (ascending), past the 10 000-record cap.

    Implements KSeF's loop: ``hasMore`` false: stop; ``hasMore`` and not ``isTruncated``: next page;
    ``hasMore`` and ``isTruncated``: move ``dateRange.from`` to the last record's date and restart at page 0.
    Records repeated at a window boundary are dropped, so each KSeF number appears once. The first page is
    yielded even when empty (it carries ``permanentStorageHwmDate``).
    """
    flt = json.loads(json.dumps(filters))
    date_type = flt["dateRange"]["dateType"]
    seen: set[str] = set()
    offset = 0
    while True:
        page = query_metadata(client, flt, page_offset=offset, page_size=page_size, sort_order="Asc")
        fresh = [item for item in page.invoices if item["ksefNumber"] not in seen]
        seen.update(item["ksefNumber"] for item in fresh)
        yield MetadataPage(fresh, page.has_more, page.is_truncated, page.permanent_storage_hwm_date)
        if not page.has_more:
            return
        if page.is_truncated:
            if not page.invoices:
                raise KsefProtocolError("KSeF reported a truncated result without records")
            last = metadata_date(page.invoices[-1], date_type)
            start = flt["dateRange"]["from"]
            if start and parse_datetime(start) >= last:
                raise KsefProtocolError(
                    "more than 10 000 invoices share one timestamp; cannot narrow the range"
                )
            flt["dateRange"]["from"] = _iso(last)
            offset = 0
        else:
            offset += 1


def iter_metadata(client: KsefClient, filters: dict, *, page_size: int = 250) -> Iterator[dict]:
    """Every invoice's metadata matching ``filters``, once each (see :func:`iter_metadata_pages`)."""
    for page in iter_metadata_pages(client, filters, page_size=page_size):
        yield from page.invoices


def download_invoice(client: KsefClient, ksef_number: str) -> bytes:
    """The invoice XML; raises :class:`~ksefnet_core.errors.KsefNotYetAvailable` (transient) for 21165."""
    return client.get_invoice(ksef_number)


# -- export -------------------------------------------------------------------------------------------


@dataclass
class ExportResult:
    reference_number: str
    invoice_count: int
    is_truncated: bool
    last_permanent_storage_date: datetime | None
    permanent_storage_hwm_date: datetime | None
    metadata: list[dict]
    files: dict[str, bytes]  # "{ksefNumber}.xml" -> XML
    raw: dict = field(repr=False, default_factory=dict)

    def invoices(self) -> Iterator[tuple[dict, bytes | None]]:
        """(metadata, XML or None for metadata-only exports) in the package's order."""
        for meta in self.metadata:
            yield meta, self.files.get(f"{meta['ksefNumber']}.xml")


def start_export(
    client: KsefClient,
    filters: dict,
    *,
    only_metadata: bool = False,
    key: SymmetricKey | None = None,
    compression: str | None = None,
) -> tuple[str, SymmetricKey]:
    """``POST /invoices/exports`` with a fresh key; returns (reference number, key to decrypt the parts).

    ``compression``: ``"Zip"`` or ``"TarGz"`` (None: KSeF's default, Zip)."""
    key = key or SymmetricKey.generate()
    if compression is not None:
        archives.check_type(compression)
    for attempt in (1, 2):
        cert = choose_certificate(client.public_keys(refresh=attempt == 2), USAGE_SYMMETRIC_KEY)
        body: dict[str, Any] = {"encryption": key.encryption_info(cert), "filters": filters}
        if only_metadata:
            body["onlyMetadata"] = True
        if compression is not None:
            body["compressionType"] = compression
        try:
            return client.create_export(body)["referenceNumber"], key
        except KsefUnknownPublicKey:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def wait_for_export(
    client: KsefClient, reference_number: str, *, timeout: float = 600.0, poll_interval: float = 1.0
) -> dict:
    """Poll the export until status 200; raise on failure codes or when still running after ``timeout``."""
    return wait_for_operation(
        lambda: client.export_status(reference_number),
        what=f"export {reference_number}",
        reference_number=reference_number,
        fails_from=210,
        timeout=timeout,
        poll_interval=poll_interval,
        max_delay=10.0,
    )


def fetch_export(client: KsefClient, reference_number: str, status: dict, key: SymmetricKey) -> ExportResult:
    """Download every part (no bearer), check hashes, decrypt, join and unpack the package (Zip or TarGz)."""
    package = status.get("package") or {}
    chunks: list[bytes] = []
    for part in sorted(package.get("parts") or [], key=lambda p: p["ordinalNumber"]):
        encrypted = client.download_presigned(part["url"], f"export part {part['ordinalNumber']}")
        if sha256_b64(encrypted) != part["encryptedPartHash"]:
            raise KsefProtocolError(f"export part {part['ordinalNumber']} is corrupt (hash mismatch)")
        plain = key.decrypt(encrypted)
        if sha256_b64(plain) != part["partHash"]:
            raise KsefProtocolError(f"export part {part['ordinalNumber']} decrypted to unexpected content")
        chunks.append(plain)
    files: dict[str, bytes] = {}
    metadata: list[dict] = []
    if chunks:
        # the package says how it is compressed (required since API 2.9); older answers: by its first bytes
        compression = package.get("compressionType")
        try:
            for name, data in archives.read(b"".join(chunks), compression):
                if name == METADATA_FILE:
                    metadata = list(json.loads(data).get("invoices") or [])
                else:
                    files[name] = data
        except archives.ArchiveError as exc:
            raise KsefProtocolError(f"export package {reference_number}: {exc}") from None
    return ExportResult(
        reference_number=reference_number,
        invoice_count=int(package.get("invoiceCount") or 0),
        is_truncated=bool(package.get("isTruncated")),
        last_permanent_storage_date=_dt(package.get("lastPermanentStorageDate")),
        permanent_storage_hwm_date=_dt(package.get("permanentStorageHwmDate")),
        metadata=metadata,
        files=files,
        raw=status,
    )


def export_invoices(
    client: KsefClient,
    filters: dict,
    *,
    only_metadata: bool = False,
    timeout: float = 600.0,
    poll_interval: float = 1.0,
    compression: str | None = None,
) -> ExportResult:
    """Create an export, wait for it, download and unpack it."""
    ref, key = start_export(client, filters, only_metadata=only_metadata, compression=compression)
    status = wait_for_export(client, ref, timeout=timeout, poll_interval=poll_interval)
    return fetch_export(client, ref, status, key)


# -- incremental ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadedInvoice:
    ksef_number: str
    metadata: dict
    xml: bytes


@dataclass(frozen=True)
class DownloadBatch:
    """Invoices to store, then ``resume_point`` to persist once they are committed."""

    subject_type: str
    invoices: list[DownloadedInvoice]
    resume_point: datetime
    complete: bool  # True on the last batch of a run: resume_point is the HWM reached


class IncrementalDownloader:
    """Download every invoice of one subject type since ``resume_from``, without duplicates in one run.

    ``mode="metadata"`` queries metadata page by page and downloads each invoice (few invoices);
    ``mode="export"`` uses asynchronous export packages (volume). Both move forward by permanent-storage
    date up to KSeF's HWM.
    """

    def __init__(
        self,
        client: KsefClient,
        subject_type: str,
        resume_from: datetime,
        *,
        mode: str = "metadata",
        page_size: int = 250,
        extra_filters: dict | None = None,
        now: datetime | None = None,
        export_timeout: float = 600.0,
        poll_interval: float = 1.0,
    ) -> None:
        if subject_type not in SUBJECT_TYPES:
            raise ValueError(f"subject type must be one of {', '.join(SUBJECT_TYPES)}")
        if mode not in ("metadata", "export"):
            raise ValueError("mode is 'metadata' or 'export'")
        self.client = client
        self.subject_type = subject_type
        self.resume_point = resume_from.astimezone(timezone.utc)
        self.mode = mode
        self.page_size = page_size
        self.extra_filters = dict(extra_filters or {})
        self.now = now
        self.export_timeout = export_timeout
        self.poll_interval = poll_interval
        self.seen: set[str] = set()

    def _filters(self, start: datetime, end: datetime | None) -> dict:
        date_range: dict[str, Any] = {
            "dateType": "PermanentStorage",
            "from": _iso(start),
            "restrictToPermanentStorageHwmDate": True,
        }
        if end is not None:
            date_range["to"] = _iso(end)
        return {"subjectType": self.subject_type, "dateRange": date_range, **self.extra_filters}

    def _windows(self) -> Iterator[tuple[datetime, datetime | None]]:
        """Date windows of at most ~3 months from the resume point up to now (last one open-ended)."""
        now = self.now or datetime.now(timezone.utc)
        start = self.resume_point
        while now - start > MAX_RANGE:
            yield start, start + MAX_RANGE
            start = start + MAX_RANGE
        yield start, None

    def batches(self) -> Iterator[DownloadBatch]:
        windows = list(self._windows())
        for index, (start, end) in enumerate(windows):
            last_window = index == len(windows) - 1
            if self.mode == "export":
                yield from self._export_window(start, end, last_window)
            else:
                yield from self._metadata_window(start, end, last_window)

    def __iter__(self) -> Iterator[DownloadedInvoice]:
        for batch in self.batches():
            yield from batch.invoices

    def _new(self, items: Iterable[tuple[dict, bytes]]) -> list[DownloadedInvoice]:
        out = []
        for meta, xml in items:
            number = meta["ksefNumber"]
            if number in self.seen:
                continue
            self.seen.add(number)
            out.append(DownloadedInvoice(number, meta, xml))
        return out

    def _metadata_window(
        self, start: datetime, end: datetime | None, last_window: bool
    ) -> Iterator[DownloadBatch]:
        hwm: datetime | None = None
        last_date = start
        for page in iter_metadata_pages(self.client, self._filters(start, end), page_size=self.page_size):
            hwm = page.permanent_storage_hwm_date or hwm
            items = [
                (meta, download_invoice(self.client, meta["ksefNumber"]))
                for meta in page.invoices
                if meta["ksefNumber"] not in self.seen
            ]
            if page.invoices:
                last_date = metadata_date(page.invoices[-1], "PermanentStorage")
            if page.has_more:
                self.resume_point = max(self.resume_point, last_date)
                yield DownloadBatch(self.subject_type, self._new(items), self.resume_point, False)
            else:
                self.resume_point = max(self.resume_point, self._window_end(end, hwm, last_date))
                yield DownloadBatch(self.subject_type, self._new(items), self.resume_point, last_window)

    def _export_window(
        self, start: datetime, end: datetime | None, last_window: bool
    ) -> Iterator[DownloadBatch]:
        current = start
        while True:
            result = export_invoices(
                self.client,
                self._filters(current, end),
                timeout=self.export_timeout,
                poll_interval=self.poll_interval,
            )
            items = []
            for meta, xml in result.invoices():
                if xml is None:
                    raise KsefProtocolError(f"export package lacks the XML of {meta['ksefNumber']}")
                items.append((meta, xml))
            if result.is_truncated:
                if result.last_permanent_storage_date is None:
                    raise KsefProtocolError("truncated export without lastPermanentStorageDate")
                current = result.last_permanent_storage_date
                self.resume_point = max(self.resume_point, current)
                yield DownloadBatch(self.subject_type, self._new(items), self.resume_point, False)
                continue
            final = self._window_end(end, result.permanent_storage_hwm_date, current)
            self.resume_point = max(self.resume_point, final)
            yield DownloadBatch(self.subject_type, self._new(items), self.resume_point, last_window)
            return

    @staticmethod
    def _window_end(end: datetime | None, hwm: datetime | None, fallback: datetime) -> datetime:
        """Where the next run may start after a window: its end for closed windows, else the HWM."""
        if end is not None:
            return min(end, hwm) if hwm else end
        return hwm or fallback
