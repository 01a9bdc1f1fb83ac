"""Zip and TarGz archives of invoices: batch packages (``BatchFileInfo.compressionType``) and export packages
(``InvoiceExportRequest.compressionType``, ``InvoicePackage.compressionType``).

KSeF accepts both since API 2.6.0; Zip is the default. ``limity-api.md`` recommends TarGz for large batches:
it compresses the whole package as one stream and so uses the repetition between similar XML files, whereas
Zip compresses each file on its own.

Reading is strict, as befits files from the network: only plain files at the top level (no folders, no
links, no ``..``), and a cap on the total size unpacked.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Iterator
from typing import IO, Any

ZIP = "Zip"
TAR_GZ = "TarGz"
COMPRESSION_TYPES = (ZIP, TAR_GZ)
#: file name suffix of each type (export part names: ``{ref}-001.zip.aes`` / ``{ref}-001.tar.gz.aes``)
SUFFIX = {ZIP: ".zip", TAR_GZ: ".tar.gz"}
#: the most bytes an archive may unpack to (KSeF packages are at most 5 GB compressed; invoices compress ~10x)
MAX_UNPACKED = 64 * 1024**3


class ArchiveError(ValueError):
    """The archive is damaged, of another type than declared, or holds something other than plain files."""


def check_type(compression: str | None) -> str:
    """``compression`` or the default (Zip); ValueError for anything KSeF does not know."""
    value = compression or ZIP
    if value not in COMPRESSION_TYPES:
        raise ValueError(f"compression type must be one of {', '.join(COMPRESSION_TYPES)}, not {value!r}")
    return value


def detect(data: bytes) -> str | None:
    """The type of an archive by its first bytes (None when neither)."""
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return ZIP
    if data[:2] == b"\x1f\x8b":
        return TAR_GZ
    return None


class ArchiveWriter:
    """Write invoices into a Zip or TarGz archive: ``with ArchiveWriter(fileobj, "TarGz") as w: w.add(n, xml)``."""

    def __init__(self, fileobj: IO[bytes], compression: str | None = None, level: int = 6) -> None:
        self.compression = check_type(compression)
        self.names: set[str] = set()
        self._zip: zipfile.ZipFile | None = None
        self._tar: tarfile.TarFile | None = None
        if self.compression == ZIP:
            self._zip = zipfile.ZipFile(fileobj, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level)
        else:
            self._tar = tarfile.open(fileobj=fileobj, mode="w:gz", compresslevel=level)  # noqa: SIM115

    def add(self, name: str, data: bytes) -> None:
        _check_name(name)
        if name in self.names:
            raise ValueError(f"duplicate file name in archive: {name}")
        self.names.add(name)
        if self._zip is not None:
            self._zip.writestr(name, data)
        else:
            assert self._tar is not None
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
        if self._tar is not None:
            self._tar.close()

    def __enter__(self) -> ArchiveWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build(files: Any, compression: str | None = None, level: int = 6) -> bytes:
    """An archive of ``files`` ((name, bytes) pairs) in memory."""
    buf = io.BytesIO()
    with ArchiveWriter(buf, compression, level) as writer:
        for name, data in files:
            writer.add(name, data)
    return buf.getvalue()


def _check_name(name: str) -> None:
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise ArchiveError(f"unexpected file name in archive: {name!r}")


def read(
    data: bytes, compression: str | None = None, *, max_unpacked: int = MAX_UNPACKED
) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file of an archive of the declared type (default: detected from the bytes).

    Raises :class:`ArchiveError` when the archive cannot be read as that type or holds anything but plain
    top-level files, or unpacks to more than ``max_unpacked`` bytes.
    """
    kind = compression or detect(data)
    if kind not in COMPRESSION_TYPES:
        raise ArchiveError("not a Zip or TarGz archive")
    total = 0
    if kind == ZIP:
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            infos = archive.infolist()
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise ArchiveError(f"not a readable Zip archive: {exc}") from None
        for info in infos:
            if info.is_dir():
                continue
            _check_name(info.filename)
            total += info.file_size
            if total > max_unpacked:
                raise ArchiveError("the archive unpacks to more than allowed")
            try:
                yield info.filename, archive.read(info)
            except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
                raise ArchiveError(f"damaged Zip archive: {exc}") from None
        return
    try:
        tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:gz")  # noqa: SIM115
        members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"not a readable TarGz archive: {exc}") from None
    with tar:
        for member in members:
            if member.isdir():
                continue
            if not member.isfile():
                raise ArchiveError(f"only plain files are allowed in the archive: {member.name!r}")
            _check_name(member.name)
            total += member.size
            if total > max_unpacked:
                raise ArchiveError("the archive unpacks to more than allowed")
            extracted = tar.extractfile(member)
            if extracted is None:
                raise ArchiveError(f"cannot read {member.name!r} from the archive")
            try:
                yield member.name, extracted.read()
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise ArchiveError(f"damaged TarGz archive: {exc}") from None
