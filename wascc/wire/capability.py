"""Capability ids and binding names as they travel: their canonical spelling.

``wasmcloud:`` ids are aliases of the ``wascc:`` ones (CONTRACTS section 3);
an empty or blank binding name means ``default``.
"""

from __future__ import annotations

__all__ = ["CONTRACTS", "DEFAULT_BINDING", "canonical_capability", "normalize_binding"]

DEFAULT_BINDING = "default"
#: The first-party contracts (CONTRACTS section 3), in their canonical spelling.
CONTRACTS = frozenset(
    f"wascc:{name}"
    for name in (
        "blobstore",
        "eventstreams",
        "extras",
        "graphdb",
        "http_client",
        "http_server",
        "keyvalue",
        "logging",
        "messaging",
        "telnet",
    )
)
_ALIASES = {"wasmcloud:": "wascc:"}
_canonical_cache: dict[str, str] = {}


def canonical_capability(capability_id: str) -> str:
    """The contract's spelling of a capability id (``wasmcloud:x`` -> ``wascc:x``)."""
    found = _canonical_cache.get(capability_id)
    if found is not None:
        return found
    result = capability_id.strip()
    for alias, canonical in _ALIASES.items():
        if result.startswith(alias):
            result = canonical + result[len(alias) :]
    if len(_canonical_cache) < 4096:
        _canonical_cache[capability_id] = result
    return result


def normalize_binding(name: str | None) -> str:
    """An empty or blank binding name means ``default``."""
    if name is None:
        return DEFAULT_BINDING
    stripped = name.strip()
    return stripped or DEFAULT_BINDING
