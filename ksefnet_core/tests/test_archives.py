"""Zip and TarGz archives of batch and export packages (ksefnet_core.archives): round trips, detection, and
refusal of what KSeF packages never hold (folders, links, path tricks, damaged data)."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from ksefnet_core import archives

FILES = [("a.xml", b"<a/>" * 100), ("b.xml", b"<b/>"), ("_metadata.json", b'{"invoices": []}')]


@pytest.mark.parametrize("compression", ["Zip", "TarGz"])
def test_round_trip_and_detection(compression):
    data = archives.build(FILES, compression)
    assert archives.detect(data) == compression
    assert list(archives.read(data, compression)) == FILES
    assert list(archives.read(data)) == FILES  # detected when not declared


def test_targz_compresses_similar_invoices_better_than_zip():
    similar = [
        (f"{i}.xml", b"<Faktura><Podmiot1><NIP>5265877635</NIP></Podmiot1>" * 20 + bytes([i]))
        for i in range(200)
    ]
    assert len(archives.build(similar, "TarGz")) < len(archives.build(similar, "Zip")) / 3


def test_declared_type_must_match_the_bytes():
    with pytest.raises(archives.ArchiveError):
        list(archives.read(archives.build(FILES, "Zip"), "TarGz"))
    with pytest.raises(archives.ArchiveError):
        list(archives.read(archives.build(FILES, "TarGz"), "Zip"))
    with pytest.raises(archives.ArchiveError):
        list(archives.read(b"not an archive"))


def test_unknown_compression_type_is_refused():
    with pytest.raises(ValueError, match="Zip, TarGz"):
        archives.build(FILES, "Rar")


@pytest.mark.parametrize("name", ["../evil.xml", "sub/a.xml", ".hidden", "a\\\\b.xml"])
def test_path_tricks_are_refused_in_both_types(name):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(name, b"x")
    with pytest.raises(archives.ArchiveError):
        list(archives.read(buf.getvalue(), "Zip"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo(name)
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(archives.ArchiveError):
        list(archives.read(buf.getvalue(), "TarGz"))


def test_links_in_a_tar_are_refused():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        info = tarfile.TarInfo("a.xml")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(archives.ArchiveError, match="plain files"):
        list(archives.read(buf.getvalue(), "TarGz"))


def test_unpacked_size_is_capped():
    data = archives.build([("big.xml", b"0" * 100_000)], "TarGz")
    with pytest.raises(archives.ArchiveError, match="more than allowed"):
        list(archives.read(data, max_unpacked=10_000))


def test_duplicate_names_are_refused_when_writing():
    with pytest.raises(ValueError, match="duplicate"):
        archives.build([("a.xml", b"1"), ("a.xml", b"2")])
