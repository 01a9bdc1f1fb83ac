"""Simulator scenarios: 10 000 purchase invoices over 90 days downloaded incrementally with rate limits on,
and the CLI process keeping its state across a restart."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from ksefnet_core.auth import ContextIdentifier, authenticate_with_ksef_token
from ksefnet_core.client import KsefClient
from ksefnet_core.download import IncrementalDownloader, iter_metadata_pages
from ksefnet_core.environments import Environment
from ksefnet_core.errors import KsefRateLimited
from ksefnet_core.simulator.app import SimulatorConfig
from ksefnet_core.throttle import Throttle

NIP = "5265877635"


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    from .conftest import CONFORMANCE

    # Rate limits ON (the default), as on KSeF TEST. Export packages in parts of 1 MB, and truncated at 2 500
    # invoices (KSeF: 10 000) so that every run also plays the truncation rule several times.
    return SimulatorConfig(conformance=CONFORMANCE, export_part_size=1_000_000, export_max_invoices=2500)


def client_for(base_url: str, api_base: str) -> KsefClient:
    token = requests.post(f"{base_url}/_simulator/tokens", json={"nip": NIP}, timeout=30).json()["token"]
    client = KsefClient(Environment.custom(api_base, name="SIM"), timeout=60, throttle=Throttle())
    authenticate_with_ksef_token(client, token, ContextIdentifier.nip(NIP), poll_interval=0.02)
    return client


def generate(base_url: str, count: int, start: datetime, end: datetime, **extra) -> list[str]:
    resp = requests.post(
        f"{base_url}/_simulator/invoices/generate",
        json={
            "buyerNip": NIP,
            "count": count,
            "dateFrom": start.isoformat(),
            "dateTo": end.isoformat(),
            **extra,
        },
        timeout=600,
    )
    resp.raise_for_status()
    return resp.json()


@pytest.mark.slow
def test_ten_thousand_purchases_over_ninety_days_each_downloaded_exactly_once(simulator):
    client = client_for(simulator.base_url, simulator.api_base)
    # Limits stay on; like on TEST they are shortened through the rate-limit test-data endpoint: exports are
    # allowed a little more often, everything else keeps KSeF's production values.
    limits = client.rate_limits()
    limits["invoiceExport"] = {"perSecond": 8, "perMinute": 60, "perHour": 600}
    limits["invoiceExportStatus"] = {"perSecond": 50, "perMinute": 3000, "perHour": 30000}
    client.set_test_rate_limits(limits)
    client.throttle.update_limits(client.rate_limits())

    now = datetime.now(timezone.utc)
    start = now - timedelta(days=90)
    # 10 000 invoices issued over 90 days, arriving in three waves between download runs; some name a third
    # party, so Subject3 has its own share.
    waves = [(6000, 90, 31), (3000, 30, 1), (1000, 1, 0)]
    seen: dict[str, int] = {}
    resume = start - timedelta(days=1)
    runs = 0
    started = time.perf_counter()
    for count, days_from, days_to in waves:
        generate(
            simulator.base_url,
            count,
            now - timedelta(days=days_from),
            now - timedelta(days=days_to, seconds=1),
            thirdPartyNip="1111111111",
        )
        for _ in range(2):  # the second run of each wave finds nothing new
            runs += 1
            downloader = IncrementalDownloader(client, "Subject2", resume, mode="export", poll_interval=0.02)
            batch_numbers = [inv.ksef_number for inv in downloader]
            assert len(batch_numbers) == len(set(batch_numbers)), "no KSeF number twice in one run"
            for number in batch_numbers:
                seen[number] = seen.get(number, 0) + 1
            resume = downloader.resume_point
    elapsed = time.perf_counter() - started
    assert len(seen) == 10_000
    assert set(seen.values()) == {1}, "every invoice exactly once across all runs"
    exports = simulator.app.store("exports", dict)
    assert sum(1 for e in exports.values() if e.package and e.package["isTruncated"]) >= 3, (
        "truncation played"
    )
    print(f"\n10 000 purchases over 90 days: {runs} incremental runs, {elapsed:.1f} s, rate limits on")


def test_rate_limits_are_enforced_per_group_with_retry_after(simulator):
    client = client_for(simulator.base_url, simulator.api_base)
    client.throttle = None  # a careless client: KSeF answers 429
    limits = client.rate_limits()
    limits["other"] = {"perSecond": 2, "perMinute": 100, "perHour": 1000}
    client.set_test_rate_limits(limits)
    with pytest.raises(KsefRateLimited) as info:
        for _ in range(3):
            client.context_limits()
    assert info.value.retry_after and info.value.retry_after >= 1
    list(
        iter_metadata_pages(
            client,
            {
                "subjectType": "Subject2",
                "dateRange": {"dateType": "PermanentStorage", "from": "2026-11-01T00:00:00Z"},
            },
        )
    )  # another group is unaffected
    time.sleep(info.value.retry_after + 0.3)
    assert client.context_limits()


def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def _start(port: int, state: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "ksefnet_core.simulator", "--port", str(port), "--state", state],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/_simulator/health", timeout=1).raise_for_status()
            return proc
        except requests.RequestException:
            if proc.poll() is not None:
                raise AssertionError(proc.stderr.read().decode() if proc.stderr else "exited") from None
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("the simulator did not start")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_cli_keeps_its_state_across_a_restart(tmp_path):
    state = str(tmp_path / "simulator.state")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(port, state)
    try:
        now = datetime.now(timezone.utc)
        made = generate(base, 5, now - timedelta(days=2), now - timedelta(seconds=1))
        assert made["count"] == 5
    finally:
        _stop(proc)
    assert proc.returncode == 0, "a clean stop on SIGTERM"
    proc = _start(port, state)
    try:
        client = client_for(base, base + "/v2")
        filters = {
            "subjectType": "Subject2",
            "dateRange": {"dateType": "PermanentStorage", "from": (now - timedelta(days=3)).isoformat()},
        }
        numbers = {m["ksefNumber"] for page in iter_metadata_pages(client, filters) for m in page.invoices}
        assert {made["firstKsefNumber"], made["lastKsefNumber"]} <= numbers and len(numbers) == 5
    finally:
        _stop(proc)
