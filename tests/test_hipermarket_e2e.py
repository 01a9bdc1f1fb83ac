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


OFFLINE_CERT = """
import base64
buffer = env["ksefnet.buffer"].search([("nip", "=", "%(nip)s")])
env["ksefnet.credentials.wizard"].create({"buffer_id": buffer.id, "method": "offline_certificate",
    "certificate_file": "%(p12)s", "certificate_password": "%(password)s"}).action_save()
env.cr.commit()
print("OFFLINE=" + str(buffer.offline_certificate_set))
"""
WATCH = """
env["ksefnet.buffer"].search([])._watch_ksef()
env.cr.commit()
print("STATE=" + ",".join(env["ksefnet.buffer"].search([]).mapped("ksef_availability")))
"""


def test_an_outage_over_xml_rpc(tmp_path):
    """KSeF fails (Latarnia announces it, the API answers 503): HiperMarket keeps issuing invoices with
    offline_mode auto and prints KOD I (OFFLINE) and KOD II at once; KSeF comes back, the buffer sends them
    with offlineMode true and the numbers arrive through the change feed."""
    import base64

    import requests

    from ksefnet_core import offline, qr
    from ksefnet_core.certificates import credential_to_pkcs12

    sim = Simulator()
    odoo = None
    try:
        odoo = Odoo("ksefnet_hipermarket", workdir=tmp_path)
        out = odoo.shell(SETUP % {"nip": NIP, "api": sim.api_base, "token": sim.token(NIP)})
        key = next(line[7:] for line in out.splitlines() if line.startswith("APIKEY="))
        credential = offline.generate_offline_credential(NIP, key_type="EC")
        p12 = base64.b64encode(credential_to_pkcs12(credential, "offline-pass")).decode()
        assert "OFFLINE=True" in odoo.shell(
            OFFLINE_CERT % {"nip": NIP, "p12": p12, "password": "offline-pass"}
        )
        # the buffer is "custom" in SETUP: Latarnia is the simulator's own
        odoo.shell(
            f'env["ksefnet.buffer"].search([]).write({{"latarnia_url": "{sim.base_url}"}}); env.cr.commit()'
        )
        hm = HiperMarketClient(odoo.serve(), odoo.db, "hipermarket", key)
        control = f"{sim.base_url}/_simulator/latarnia"
        requests.post(
            control, json={"status": "FAILURE", "message": {"title": "Awaria KSeF"}}, timeout=10
        ).raise_for_status()
        assert "STATE=failure" in odoo.shell(WATCH)
        seen = hm.availability(NIP)
        assert (seen["state"], seen["offline_mode"]) == ("failure", "failure") and "Awaria KSeF" in seen[
            "messages"
        ]
        stamp = uuid.uuid4().hex[:6]
        ids = [f"OUT-{stamp}-{i}" for i in range(3)]
        results = hm.submit(
            NIP,
            [(ref, "SKLEP12", invoice(f"FV/{stamp}/{i}")) for i, ref in enumerate(ids)],
            offline_mode="auto",
        )
        for result in results:
            assert result["ok"], result
            block = result["offline"]
            assert block["mode"] == "failure" and block["deadline"]
            assert block["kod1"]["label"] == "OFFLINE" and block["kod1"]["png"].startswith(b"\x89PNG")
            assert block["kod2"]["label"] == "CERTYFIKAT"
            assert qr.verify_certificate_url(block["kod2"]["url"], credential.certificate)
        time.sleep(3)  # the scheduled sender tries meanwhile: KSeF answers 503
        assert {s["status"] for s in hm.status(NIP, ids)} <= {"waiting", "error"}
        requests.post(control, json={"status": "AVAILABLE"}, timeout=10).raise_for_status()
        assert "STATE=available" in odoo.shell(WATCH)
        numbers: dict[str, str] = {}
        cursor, deadline = 0, time.monotonic() + 180
        while set(ids) - numbers.keys() and time.monotonic() < deadline:
            for position, change in hm.iter_changes(NIP, cursor):
                cursor = position
                if change["status"] == "sent":
                    numbers[change["document_id"]] = change["ksef_number"]
            time.sleep(1)
        assert numbers.keys() == set(ids), f"KSeF numbers received: {numbers}"
        assert all(is_valid_ksef_number(n) for n in numbers.values())
        code = hm.qr(NIP, ids[0])
        assert code["label"] == numbers[ids[0]] and code["kod2"]["label"] == "CERTYFIKAT"
        upo_deadline = time.monotonic() + 120
        while True:  # KSeF's receipt says how the invoice was sent
            try:
                upo = hm.upo(NIP, ids[0])
                break
            except HiperMarketError:
                assert time.monotonic() < upo_deadline, "no UPO"
                time.sleep(1)
        assert b"<TrybWysylki>Offline</TrybWysylki>" in upo
    finally:
        if odoo is not None:
            odoo.drop()
        sim.stop()
