"""The local KSeF API 2.0 simulator: a development and demo tool that behaves like KSeF TEST. Not KSeF."""

from .app import Simulator, SimulatorConfig
from .server import SimulatorServer

__all__ = ["Simulator", "SimulatorConfig", "SimulatorServer"]
