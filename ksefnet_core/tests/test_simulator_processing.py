"""With a processing delay (as on KSeF, invoices take time), a batch session says 150 until every invoice in it
is final, and then lists each one with its KSeF number and its pre-signed UPO link."""

from __future__ import annotations

import time

import pytest
import requests

from ksefnet_core.auth import ContextIdentifier, authenticate_with_ksef_token
from ksefnet_core.client import KsefClient
from ksefnet_core.environments import Environment
from ksefnet_core.sessions import BatchSession, prepare_batch
from ksefnet_core.simulator.app import SimulatorConfig
from ksefnet_core.testing import sample_invoice
from ksefnet_core.throttle import Throttle

NIP = "5265877635"
DELAY = 0.4


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    from .conftest import CONFORMANCE

    return SimulatorConfig(conformance=CONFORMANCE, processing_delay=DELAY)


def test_a_batch_is_processed_when_its_invoices_are(simulator):
    token = requests.post(f"{simulator.base_url}/_simulator/tokens", json={"nip": NIP}, timeout=30).json()[
        "token"
    ]
    client = KsefClient(Environment.custom(simulator.api_base, name="SIM"), timeout=30, throttle=Throttle())
    authenticate_with_ksef_token(client, token, ContextIdentifier.nip(NIP), poll_interval=0.02)
    batch = prepare_batch(
        (f"{i}.xml", sample_invoice(seller_nip=NIP, number=f"FV/DELAY/{time.time_ns()}/{i}"))
        for i in range(3)
    )
    try:
        session = BatchSession(client)
        session.open(batch)
        session.upload(batch)
        session.close()
    finally:
        batch.cleanup()
    first = session.status()
    assert first.code == 150, first  # closed and received, the invoices still being processed
    assert not [i for i in session.invoices() if i.ksef_number]
    deadline = time.monotonic() + 10
    while (status := session.status()).code < 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert status.code == 200, status
    listed = list(session.invoices())
    assert len(listed) == 3 and all(i.ksef_number and i.upo_download_url for i in listed), listed
    upo = client.download_presigned(listed[0].upo_download_url)
    assert listed[0].ksef_number.encode() in upo
