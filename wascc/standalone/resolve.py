"""Turning a provider spec (a manifest's capability ``path``) into a provider.

A spec is, in this order:

1. a file: ``.so`` / ``.dylib`` (native, provider.h), ``.par`` / ``.par.gz``
   (a signed provider archive: :mod:`wascc.providers.archive`) or ``.wasm``
   (portable);
2. a capability id or entry-point name offered by an installed plugin
   (``wascc:keyvalue``, ``http_server``);
3. a Python module path: ``package.module:Factory`` (a CapabilityProvider
   subclass or any zero-argument factory) or ``package.module`` (a module
   whose ``wascc_providers`` hook offers exactly one provider).

:func:`check_spec` finds what a spec names without starting it, so a
manifest can be refused before anything runs.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wascc._providers import NATIVE_SUFFIXES, libraries
from wascc.errors import ProviderArchiveError, ProviderError
from wascc.plugins import ENTRY_POINT_GROUP
from wascc.providers.archive import ARCHIVE_SUFFIXES, is_archive, load_provider_archive
from wascc.providers.base import CapabilityProvider
from wascc.providers.firstparty import NativeFactory
from wascc.providers.isolated import IsolationSettings, load_isolated_provider
from wascc.providers.native import load_native_provider
from wascc.providers.portable import WasiGrant, load_portable_provider
from wascc.wire.capability import canonical_capability

if TYPE_CHECKING:
    from wascc.host import Host

__all__ = ["check_spec", "refuse_unsigned", "resolve_provider"]

_MAGIC = (b"\x7fELF", b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xca\xfe\xba\xbe")

Factory = Callable[[], Any]


def _is_file_spec(spec: str) -> bool:
    return "/" in spec or spec.endswith((*NATIVE_SUFFIXES, *ARCHIVE_SUFFIXES, ".wasm"))


def refuse_unsigned(spec: str, host: Host) -> None:
    """Under ``require_signed_providers``, refuse a bare library before it is loaded."""
    if host.require_signed_providers and spec.endswith(NATIVE_SUFFIXES):
        raise ProviderArchiveError(
            f"{spec}: a bare native library, and this host requires signed provider archives "
            "(--require-signed-providers): package it with `wascc par create`"
        )


def _entry_point_names() -> dict[str, str]:
    """Entry-point name -> capability id of each installed plugin factory (best effort)."""
    return {ep.name: ep.value for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _factory_for(spec: str, factories: Mapping[str, Factory]) -> Factory | None:
    found = factories.get(canonical_capability(spec))
    if found is not None:
        return found
    module = _entry_point_names().get(spec)
    if module is not None:
        offered = [f for f in factories.values() if getattr(f, "__module__", "") == module]
        if len(offered) == 1:
            return offered[0]
    return None


def _import_factory(spec: str) -> Factory:
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError; ValueError/TypeError for "" or "..x"; its own
        raise ProviderError(f"{spec}: cannot import {module_name}: {exc}") from exc
    if attr:
        target: Any = module
        for part in attr.split("."):
            target = getattr(target, part, None)
            if target is None:
                raise ProviderError(f"{spec}: {module_name} has no {attr}")
        if not callable(target):
            raise ProviderError(f"{spec}: {attr} is not a provider class or factory")
        return target  # type: ignore[no-any-return]
    hook = getattr(module, "wascc_providers", None)
    offered = list(hook() or []) if callable(hook) else []
    if len(offered) != 1:
        raise ProviderError(
            f"{spec}: a module path must offer exactly one provider through wascc_providers "
            f"(it offers {len(offered)}); name one as {spec}:Class"
        )
    return offered[0]  # type: ignore[no-any-return]


def check_spec(spec: str, factories: Mapping[str, Factory]) -> str:
    """Say what ``spec`` names, or raise :class:`ProviderError` with the reason.

    ``factories`` are the installed plugins' (capability id -> factory), as
    :meth:`wascc.plugins.Plugins.provider_factories` returns them.
    """
    if _is_file_spec(spec):
        path = Path(spec)
        try:
            found = path.is_file()
        except (OSError, ValueError) as exc:  # a name too long, a loop, a NUL
            raise ProviderError(f"{spec[:80]}: cannot use this path: {exc}") from exc
        if not found:
            raise ProviderError(f"{spec}: no such provider file")
        if path.suffix == ".wasm":
            return f"portable provider {path.name}"
        if is_archive(path):
            return f"provider archive {path.name}"
        try:
            with path.open("rb") as f:
                head = f.read(4)
        except OSError as exc:
            raise ProviderError(f"{spec}: cannot read it: {exc.strerror or exc}") from exc
        if head not in _MAGIC:
            raise ProviderError(f"{spec}: is not a shared object (.so / .dylib)")
        return f"native provider {path.name}"
    if _factory_for(spec, factories) is not None:
        return f"installed provider {spec}"
    try:
        _import_factory(spec)
    except ProviderError as exc:
        if ":" in spec and "." not in spec.partition(":")[0]:  # shaped like namespace:name
            known = ", ".join(sorted(factories)) or "none"
            raise ProviderError(
                f"{spec}: no installed provider offers this capability id (installed: {known})"
            ) from exc
        raise
    return f"python provider {spec}"


def resolve_provider(
    spec: str,
    host: Host,
    *,
    grant: WasiGrant | None = None,
    isolate: bool = False,
    isolation: IsolationSettings | None = None,
) -> CapabilityProvider:
    """Load or make the provider ``spec`` names (see the module doc).

    ``isolate`` runs a native provider (a library file or a first-party one
    named by its capability id) in a child process with ``isolation``'s
    settings; other kinds cannot be isolated and are refused.
    """
    factories = host.provider_factories()
    check_spec(spec, factories)
    if _is_file_spec(spec):
        if spec.endswith(".wasm"):
            if isolate:
                raise ProviderError(_not_isolatable(spec, "a portable (wasm) provider"))
            return load_portable_provider(
                spec, runtime=host.runtime, grant=grant, trusted_issuers=host.trusted_issuers
            )
        if is_archive(spec):
            return load_provider_archive(
                spec, trusted_issuers=host.trusted_issuers, isolate=isolate, isolation=isolation
            )
        refuse_unsigned(spec, host)
        if isolate:
            return load_isolated_provider(spec, isolation)
        return load_native_provider(spec)
    factory = _factory_for(spec, factories) or _import_factory(spec)
    if isolate:
        if not isinstance(factory, NativeFactory):
            raise ProviderError(_not_isolatable(spec, "a Python provider"))
        return load_isolated_provider(libraries()[factory.library], isolation)
    provider = factory()
    if not isinstance(provider, CapabilityProvider):
        raise ProviderError(f"{spec}: made {provider!r}, which is not a CapabilityProvider")
    return provider


def _not_isolatable(spec: str, kind: str) -> str:
    return (
        f"{spec}: only native providers (.so / .dylib) run isolated; this is {kind} "
        "(portable providers are sandboxed by wasm already)"
    )
