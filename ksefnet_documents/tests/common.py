"""Documents for the tests: the MF FA(3) samples and generated invoices, stored as downloaded purchases."""

from itertools import count
from pathlib import Path

from odoo.tests import TransactionCase

from ksefnet_core.download import DownloadedInvoice
from ksefnet_core.testing import sample_invoice

SAMPLES = Path(__file__).resolve().parents[2] / "ksefnet_core" / "tests" / "data" / "fa3-mf-examples"
US = "1111111111"  # the buyer of the MF samples: our company here
_numbers = count(1)


class DocumentsCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env.company.name = "F.H.U. Jan Kowalski"  # the buyer named in the MF samples
        cls.buffer = cls.env["ksefnet.buffer"].create(
            {
                "name": "Sieć",
                "nip": US,
                "download_own": True,
                # the MF samples address NIP 1111111111 under several names
                "company_aliases": "CDE sp. j.\nCeDeE s.c.\nGmina Bzdziszewo",
            }
        )
        cls.Document = cls.env["ksefnet.document"]

    @classmethod
    def store(cls, xml, direction="purchase"):
        number = next(_numbers)
        downloaded = DownloadedInvoice(f"{US}-20260301-{number:012X}-00", {}, xml)
        subject = "Subject1" if direction == "sales" else "Subject2"
        doc = cls.Document._create_downloaded(cls.buffer, downloaded, subject)
        doc._on_arrival(new=True)  # as the downloader calls it: classified as it was inserted
        return doc

    @classmethod
    def sample(cls, name):
        return cls.store((SAMPLES / f"FA_3_Przyklad_{name}.xml").read_bytes())

    @classmethod
    def generated(cls, **kw):
        kw.setdefault("seller_nip", "7740001454")
        kw.setdefault("buyer_nip", US)
        kw.setdefault("number", f"FV/T/{next(_numbers)}")
        return cls.store(sample_invoice(**kw))

    @classmethod
    def catalog(cls, name, parent=None):
        return cls.env["ksefnet.catalog"].create(
            {"name": name, "buffer_id": cls.buffer.id, "parent_id": parent.id if parent else False}
        )

    @classmethod
    def rule(cls, name, sequence, **values):
        return cls.env["ksefnet.classification.rule"].create(
            {"name": name, "sequence": sequence, "buffer_id": cls.buffer.id, **values}
        )
