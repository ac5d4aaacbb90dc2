"""Binding values as the data providers read them (keys case-insensitive)."""

from __future__ import annotations

from collections.abc import Mapping

from wascc.errors import ProviderError

__all__ = ["binding_values", "read_int"]


def binding_values(values: Mapping[str, str]) -> dict[str, str]:
    """The operator's values, upper-cased keys, the host's ``__wascc_*`` keys left out."""
    return {k.upper(): v.strip() for k, v in values.items() if not k.startswith("__wascc_")}


def read_int(values: Mapping[str, str], key: str, default: int, low: int, where: str) -> int:
    """An integer value >= ``low``; a missing or empty one is ``default``."""
    raw = values.get(key, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ProviderError(f"{where}: {key}={raw!r} is not an integer") from None
    if value < low:
        raise ProviderError(f"{where}: {key}={raw!r} must be >= {low}")
    return value
