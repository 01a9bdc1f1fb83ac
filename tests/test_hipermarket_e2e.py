"""End to end: a real Odoo 18 server process with the three addons on a fresh database, the local KSeF
simulator as a separate process, and HiperMarket's reference client over real XML-RPC with an API key.

Needs an Odoo 18 installation (ODOO_PATH, default /opt/odoo) and PostgreSQL (PGHOST, PGPORT, PGUSER, default
127.0.0.1:5432 as ksefnet); skipped, saying so, when Odoo is not there.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from lxml import etree

from ksefnet_core.ids import is_valid_ksef_number
from ksefnet_core.testing import sample_invoice

ROOT = Path(__file__).resolve().parents[1]
ODOO_PATH = Path(os.environ.get("ODOO_PATH", "/opt/odoo"))
PG = {
    "host": os.environ.get("PGHOST", "127.0.0.1"),
    "port": os.environ.get("PGPORT", "5432"),
    "user": os.environ.get("PGUSER", "ksefnet"),
}
NIP = "5265877635"
sys.path.insert(0, str(ROOT / "tools"))

from hipermarket_client import HiperMarketClient, HiperMarketError  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (ODOO_PATH / "odoo-bin").is_file(), reason=f"no Odoo 18 installation at ODOO_PATH={ODOO_PATH}"
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[:3]} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def stack(tmp_path):
    """Simulator + Odoo with the addons on a fresh database; yields (odoo url, db, api key)."""
    db = f"ksefnet_e2e_{uuid.uuid4().hex[:8]}"
    addons = ",".join(
        str(p) for p in (ODOO_PATH / "odoo" / "addons", ODOO_PATH / "addons", ROOT) if p.is_dir()
    )
    bin_ = [sys.executable, str(ODOO_PATH / "odoo-bin")]
    options = [f"--addons-path={addons}", "-d", db, f"--db_host={PG['host']}", f"--db_port={PG['port']}",
               f"--db_user={PG['user']}", f"--data-dir={tmp_path / 'data'}"]  # fmt: skip
    odoo = [*bin_, *options]
    sim_port, odoo_port = _free_port(), _free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "ksefnet_core.simulator", "--port", str(sim_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = None
    try:
        _wait_http(f"http://127.0.0.1:{sim_port}/_simulator/health", sim)
        token = requests.post(
            f"http://127.0.0.1:{sim_port}/_simulator/tokens", json={"nip": NIP}, timeout=30
        ).json()["token"]
        log = tmp_path / "odoo.log"
        subprocess.run(
            [*odoo, "-i", "ksefnet_hipermarket", "--stop-after-init", "--without-demo=all", "--http-port=0",
             f"--logfile={log}"],
            check=True, timeout=600,
        )  # fmt: skip
        setup = SETUP % {"nip": NIP, "api": f"http://127.0.0.1:{sim_port}/v2", "token": token}
        shell = subprocess.run(
            [*bin_, "shell", *options, "--no-http", f"--logfile={log}"], input=setup, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
        key = next((line[7:] for line in shell.stdout.splitlines() if line.startswith("APIKEY=")), None)
        assert key, shell.stdout[-2000:] + shell.stderr[-2000:]
        server = subprocess.Popen(
            [*odoo, f"--http-port={odoo_port}", "--http-interface=127.0.0.1", "--max-cron-threads=1",
             f"--db-filter=^{db}$", f"--logfile={log}"],
        )  # fmt: skip
        _wait_http(f"http://127.0.0.1:{odoo_port}/web/health", server)
        yield f"http://127.0.0.1:{odoo_port}", db, key
    finally:
        if server is not None:
            _stop(server)
        _stop(sim)
        subprocess.run(
            ["dropdb", "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], "--if-exists", db],
            check=False, capture_output=True,
        )  # fmt: skip


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
