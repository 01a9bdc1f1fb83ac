"""Shared fixtures: a local KSeF simulator served over real HTTP on loopback.

Every test that uses ``simulator`` runs with OpenAPI conformance checking on: each request the simulator
receives and each response it sends is validated against the official ``open-api.json``, and any mismatch
fails the test at teardown. Tests that send deliberately malformed requests wrap them in
``simulator.app.conformance.expect_invalid_requests()``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from ksefnet_core.simulator.app import Simulator, SimulatorConfig
from ksefnet_core.simulator.server import SimulatorServer

CONFORMANCE = os.environ.get("KSEFNET_CONFORMANCE", "1") != "0"
#: tools/spec_coverage.py sets this: every test appends the operations its simulator served to that file
COVERAGE_FILE = os.environ.get("KSEFNET_SPEC_COVERAGE")


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    """Override in a test module to change the simulator's behaviour."""
    return SimulatorConfig(conformance=CONFORMANCE)


def _record_coverage(app: Simulator, test_file: str) -> None:
    path = Path(COVERAGE_FILE or "")
    seen = json.loads(path.read_text()) if path.exists() else {}
    for (method, template), senders in app.observed.items():
        entry = seen.setdefault(f"{method} {template}", {"senders": [], "tests": []})
        entry["senders"] = sorted(set(entry["senders"]) | senders)
        entry["tests"] = sorted(set(entry["tests"]) | {test_file})
    path.write_text(json.dumps(seen, indent=1, sort_keys=True))


@pytest.fixture
def simulator(simulator_config: SimulatorConfig, request: pytest.FixtureRequest) -> Iterator[SimulatorServer]:
    app = Simulator(simulator_config)
    with SimulatorServer(app) as server:
        yield server
    if COVERAGE_FILE:
        _record_coverage(app, Path(str(request.node.fspath)).name)
    if app.conformance is not None:
        violations = app.conformance.violations
        assert not violations, "OpenAPI conformance violations:\n" + "\n".join(map(str, violations))
