"""Shared fixtures: a local KSeF simulator served over real HTTP on loopback.

Every test that uses ``simulator`` runs with OpenAPI conformance checking on: each request the simulator
receives and each response it sends is validated against the official ``open-api.json``, and any mismatch
fails the test at teardown. Tests that send deliberately malformed requests wrap them in
``simulator.app.conformance.expect_invalid_requests()``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ksefnet_core.simulator.app import Simulator, SimulatorConfig
from ksefnet_core.simulator.server import SimulatorServer

CONFORMANCE = os.environ.get("KSEFNET_CONFORMANCE", "1") != "0"


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    """Override in a test module to change the simulator's behaviour."""
    return SimulatorConfig(conformance=CONFORMANCE)


@pytest.fixture
def simulator(simulator_config: SimulatorConfig) -> Iterator[SimulatorServer]:
    app = Simulator(simulator_config)
    with SimulatorServer(app) as server:
        yield server
    if app.conformance is not None:
        violations = app.conformance.violations
        assert not violations, "OpenAPI conformance violations:\n" + "\n".join(map(str, violations))
