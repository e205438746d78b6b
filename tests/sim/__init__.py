"""Protocol-faithful local exchange simulator (test infrastructure, runnable standalone)."""

from .server import Faults, Simulator

__all__ = ["Faults", "Simulator"]
