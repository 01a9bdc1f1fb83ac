"""End to end: a real Odoo 18 server process with the three addons on a fresh database, the local KSeF
simulator as a separate process, and HiperMarket's reference client over real XML-RPC with an API key.

Needs an Odoo 18 installation (ODOO_PATH, default /opt/odoo) and PostgreSQL (PGHOST, PGPORT, PGUSER, default
127.0.0.1:5432 as ksefnet); skipped, saying so, when Odoo is not there.
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

import pytest
from lxml import etree

from ksefnet_core.ids import is_valid_ksef_number
from ksefnet_core.testing import sample_invoice

ROOT = Path(__file__).resolve().parents[1]
NIP = "5265877635"
sys.path.insert(0, str(ROOT / "tools"))

from hipermarket_client import HiperMarketClient, HiperMarketError  # noqa: E402
from ksefnet_stack import ODOO_PATH, Odoo, Simulator, odoo_available  # noqa: E402

pytestmark = pytest.mark.skipif(
    not odoo_available(), reason=f"no Odoo 18 installation at ODOO_PATH={ODOO_PATH}"
)

SETUP = """
buffer = env["ksefnet.buffer"].create({"name": "Sieć Sklepów", "nip": "%(nip)s", "environment": "custom",
                                       "api_url": "%(api)s"})
env["ksefnet.credentials.wizard"].create({"buffer_id": buffer.id, "method": "token",
                                          "ksef_token": "%(token)s"}).action_save()
user = env["res.users"].create({"name": "HiperMarket", "login": "hipermarket",
    "groups_id": [(6, 0, [env.ref("base.group_user").id, env.ref("ksefnet_hipermarket.group_hipermarket").id])],
    "ksefnet_hm_buffer_ids": [(6, 0, buffer.ids)]})
import datetime
key = env["res.users.apikeys"].with_user(user)._generate(None, "HiperMarket", datetime.datetime.now() + datetime.timedelta(days=1))
env.cr.commit()
print("APIKEY=" + key)
"""


@pytest.fixture
def stack(tmp_path):
    """Simulator + Odoo with the addons on a fresh database; yields (odoo url, db, api key)."""
    sim = Simulator()
    odoo = None
    try:
        odoo = Odoo("ksefnet_hipermarket", workdir=tmp_path)
        out = odoo.shell(SETUP % {"nip": NIP, "api": sim.api_base, "token": sim.token(NIP)})
        key = next((line[7:] for line in out.splitlines() if line.startswith("APIKEY=")), None)
        assert key, out[-2000:]
        yield odoo.serve(), odoo.db, key
    finally:
        if odoo is not None:
            odoo.drop()
        sim.stop()


def invoice(number: str, **kw) -> bytes:
    return sample_invoice(seller_nip=NIP, number=number, **kw)


def test_hipermarket_round_trip_over_xml_rpc(stack):
    url, db, key = stack
    with pytest.raises(HiperMarketError):
        HiperMarketClient(url, db, "hipermarket", "not-the-key")
    hm = HiperMarketClient(url, db, "hipermarket", key)
    stamp = uuid.uuid4().hex[:6]
    results = hm.submit(
        NIP,
        [
            (f"HM-{stamp}-1", "SKLEP12", invoice(f"FV/{stamp}/1")),
            (f"HM-{stamp}-2", "SKLEP12", invoice(f"FV/{stamp}/2")),
            (
                f"HM-{stamp}-2",
                "SKLEP12",
                invoice(f"FV/{stamp}/2", net_amounts=("10.00",)),
            ),  # changed: replaces
            (
                f"HM-{stamp}-3",
                "SKLEP13",
                invoice(f"FV/{stamp}/3").replace(b"<P_15>", b"<P_15>x", 1),
            ),  # invalid
            (f"HM-{stamp}-1", "SKLEP12", invoice(f"FV/{stamp}/1")),  # the same again: the same document
        ],
    )
    first, second, replaced, invalid, again = results
    assert first["ok"] and second["ok"] and replaced["ok"] and replaced.get("replaced")
    assert replaced["id"] == second["id"] and again["id"] == first["id"] and not again["created"]
    assert not invalid["ok"] and invalid["error"]["field"] == "xml" and "P_15" in invalid["error"]["message"]

    wanted = {f"HM-{stamp}-1", f"HM-{stamp}-2"}
    numbers: dict[str, str] = {}
    cursor, deadline = 0, time.monotonic() + 240
    while wanted - numbers.keys() and time.monotonic() < deadline:  # the scheduled actions do the work
        for position, change in hm.iter_changes(NIP, cursor):
            cursor = position
            if change["status"] == "sent":
                numbers[change["document_id"]] = change["ksef_number"]
            assert change["status"] not in ("failure", "error"), change
        time.sleep(1)
    assert numbers.keys() == wanted, f"KSeF numbers received: {numbers}"
    assert all(is_valid_ksef_number(n) for n in numbers.values())
    assert hm.acknowledge(NIP, sorted(numbers)) == 2
    assert all(s["delivered"] for s in hm.status(NIP, sorted(numbers)))
    upo = etree.fromstring(hm.upo(NIP, f"HM-{stamp}-1"))
    assert numbers[f"HM-{stamp}-1"].encode() in etree.tostring(upo)
    code = hm.qr(NIP, f"HM-{stamp}-2")
    assert code["label"] == numbers[f"HM-{stamp}-2"] and code["png"].startswith(b"\x89PNG")
    refused = hm.submit(NIP, [(f"HM-{stamp}-1", "SKLEP12", invoice(f"FV/{stamp}/1", net_amounts=("1.00",)))])[
        0
    ]
    assert not refused["ok"] and refused["error"]["code"] == "already_sent"
