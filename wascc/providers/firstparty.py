"""First-party native providers as plugin factories.

Registered through the ``wascc.providers`` entry points so a manifest or
``Host.add_provider("wascc:keyvalue")`` can name a first-party native
provider by its capability id.  Only libraries that were built and installed
(``wascc/_providers``) are offered.
"""

from __future__ import annotations

from wascc._providers import libraries
from wascc.hookspecs import hookimpl
from wascc.providers.base import CapabilityProvider
from wascc.providers.native import load_native_provider

__all__ = ["NativeFactory", "wascc_providers"]

#: library name -> capability id
FIRST_PARTY = {
    "keyvalue": "wascc:keyvalue",
    "logging": "wascc:logging",
    "telnet": "wascc:telnet",
}


class NativeFactory:
    """Makes a new provider from one first-party library."""

    def __init__(self, library: str, capability_id: str) -> None:
        self.library = library
        self.capability_id = capability_id

    def __call__(self) -> CapabilityProvider:
        provider = load_native_provider(libraries()[self.library])
        provider.bundled = True
        return provider

    def __repr__(self) -> str:
        return f"NativeFactory({self.library!r}, {self.capability_id!r})"


@hookimpl
def wascc_providers() -> list[NativeFactory]:
    installed = libraries()
    return [NativeFactory(name, capid) for name, capid in FIRST_PARTY.items() if name in installed]
