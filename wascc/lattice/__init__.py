"""The lattice: many hosts, one system, over NATS (CONTRACTS section 5).

:class:`Lattice` joins a :class:`~wascc.host.Host` to a lattice as its remote
router; :class:`LatticeClient` asks a lattice about its hosts, actors,
providers and bindings, and follows its events, without being a host.
"""

from __future__ import annotations

from wascc.lattice.client import LatticeClient
from wascc.lattice.config import LatticeConfig, Subjects, default_state_dir
from wascc.lattice.member import Lattice, builtin_labels

__all__ = [
    "Lattice",
    "LatticeClient",
    "LatticeConfig",
    "Subjects",
    "builtin_labels",
    "default_state_dir",
]
