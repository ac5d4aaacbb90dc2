"""A directory of providers: drop a file in to load it, delete it to unload it.

:class:`ProviderDirectory` (started by ``wascc up --providers-dir``)
loads every native library (``.so`` / ``.dylib``), signed provider archive
(``.par`` / ``.par.gz``) and portable provider (``.wasm``) in a directory at
start, then polls it:

* a file dropped in is loaded once it has settled;
* a file removed stops its provider and drops its bindings;
* a file replaced is reloaded and its bindings re-sent (``BindActor``).

A sidecar ``<file>.toml`` next to a provider names its binding and the
default values merged into every ``BindActor`` for it::

    binding = "cache"            # default: "default"
    isolate = true               # native only: run it in a child process
    deadline = 5                 # and the other isolation keys of a manifest entry
    [values]
    URL = "redis://127.0.0.1"
    [limits]
    open_files = 256

Native libraries are loaded from a private, content-addressed copy: the
file in the directory can be overwritten at any time without touching code
that is already mapped, and a changed file is really reloaded (``dlopen``
would hand back the old library for the same path).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import tomllib
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wascc._providers import NATIVE_SUFFIXES
from wascc.errors import ProviderArchiveError, ProviderError
from wascc.providers.archive import is_archive, load_provider_archive
from wascc.providers.base import CapabilityProvider
from wascc.providers.isolated import (
    ISOLATION_KEYS,
    IsolationSettings,
    load_isolated_provider,
    parse_isolation,
)
from wascc.providers.native import load_native_provider
from wascc.providers.portable import WasiGrant, load_portable_provider
from wascc.standalone.watcher import WatchedDirectory, file_state
from wascc.wire.capability import DEFAULT_BINDING, canonical_capability

if TYPE_CHECKING:
    from wascc.host import Host

__all__ = ["ProviderDirectory", "Sidecar", "read_sidecar"]

log = logging.getLogger(__name__)

PORTABLE_SUFFIX = ".wasm"


@dataclass(frozen=True)
class Sidecar:
    """What ``<file>.toml`` says about a provider file."""

    binding: str = DEFAULT_BINDING
    values: dict[str, str] = field(default_factory=dict)
    isolate: bool | None = None
    isolation: IsolationSettings | None = None


def sidecar_path(path: Path) -> Path:
    return path.with_name(path.name + ".toml")


def read_sidecar(path: Path) -> Sidecar:
    """The sidecar of a provider file (defaults when there is none)."""
    side = sidecar_path(path)
    if not side.exists():
        return Sidecar()
    try:
        data = tomllib.loads(side.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProviderError(f"{side}: cannot read it: {exc}") from exc
    known = {"binding", "values", *ISOLATION_KEYS}
    unknown = set(data) - known
    if unknown:
        raise ProviderError(
            f"{side}: unknown keys {sorted(unknown)} (known: {', '.join(sorted(known))})"
        )
    try:
        isolate, isolation = parse_isolation(data)
    except ValueError as exc:
        raise ProviderError(f"{side}: {exc}") from exc
    binding = data.get("binding", DEFAULT_BINDING)
    values = data.get("values", {})
    if not isinstance(binding, str) or not binding.strip():
        raise ProviderError(f"{side}: `binding` must be a non-empty string")
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise ProviderError(f"{side}: `values` must be a table of strings")
    return Sidecar(binding.strip(), dict(values), isolate, isolation)


class ProviderDirectory(WatchedDirectory[tuple[str, str]]):
    """Keeps the host's providers in step with the files of one directory.

    What each file became is its provider's (capability id, binding).
    """

    kind = "provider"

    def __init__(
        self,
        host: Host,
        directory: str | Path,
        *,
        interval: float = 1.0,
        grant: WasiGrant | None = None,
        isolate_providers: bool = False,
    ) -> None:
        super().__init__(Path(directory), interval=interval)
        self.host = host
        self.grant = grant or WasiGrant()
        #: Run native libraries isolated unless their sidecar says ``isolate = false``.
        self.isolate_providers = isolate_providers
        self._copies = Path(tempfile.mkdtemp(prefix="wascc-providers-"))

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self._copies, ignore_errors=True)

    def accept(self, path: Path) -> bool:
        return path.is_file() and (
            path.suffix in NATIVE_SUFFIXES or path.suffix == PORTABLE_SUFFIX or is_archive(path)
        )

    def fingerprint(self, path: Path) -> Hashable:
        """A provider changes with its file or its sidecar."""
        state = file_state(path)
        return None if state is None else (state, file_state(sidecar_path(path)))

    def _provider(self, path: Path) -> tuple[CapabilityProvider, Sidecar]:
        sidecar = read_sidecar(path)
        if path.suffix == PORTABLE_SUFFIX:
            if sidecar.isolate:
                raise ProviderError(
                    f"{sidecar_path(path)}: isolate = true, but only native providers run "
                    "isolated (portable ones are sandboxed by wasm already)"
                )
            provider: CapabilityProvider = load_portable_provider(
                path,
                runtime=self.host.runtime,
                grant=self.grant,
                trusted_issuers=self.host.trusted_issuers,
            )
        elif is_archive(path):
            provider = load_provider_archive(
                path,
                trusted_issuers=self.host.trusted_issuers,
                isolate=bool(
                    sidecar.isolate or (sidecar.isolate is None and self.isolate_providers)
                ),
                isolation=sidecar.isolation,
            )
        elif self.host.require_signed_providers:
            raise ProviderArchiveError(
                f"{path.name}: a bare native library, and this host requires signed provider "
                "archives (--require-signed-providers): package it with `wascc par create`"
            )
        elif sidecar.isolate or (sidecar.isolate is None and self.isolate_providers):
            provider = load_isolated_provider(self._private_copy(path), sidecar.isolation)
        else:
            provider = load_native_provider(self._private_copy(path))
        return provider, sidecar

    def _private_copy(self, path: Path) -> Path:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:20]
        copy = self._copies / f"{digest}-{path.name}"
        if not copy.exists():
            tmp = copy.with_suffix(copy.suffix + ".part")
            shutil.copyfile(path, tmp)
            tmp.replace(copy)
        return copy

    def load(self, path: Path) -> tuple[str, str]:
        provider, sidecar = self._provider(path)
        try:
            descriptor = self.host.add_provider(provider, sidecar.binding, values=sidecar.values)
        except BaseException:
            provider.stop()
            raise
        log.info(
            "providers directory: loaded %s as %s (%s)", path.name, descriptor.id, sidecar.binding
        )
        return canonical_capability(descriptor.id), sidecar.binding

    def reload(self, path: Path, old: tuple[str, str]) -> tuple[str, str]:
        provider, sidecar = self._provider(path)
        capability_id = canonical_capability(provider.descriptor().id)
        try:
            if (capability_id, sidecar.binding) == old:
                self.host.replace_provider(provider, sidecar.binding, values=sidecar.values)
            else:
                self.host.remove_provider(*old, reason=f"{path.name} changed")
                self._loaded.pop(path, None)
                self.host.add_provider(provider, sidecar.binding, values=sidecar.values)
        except BaseException:
            provider.stop()
            raise
        log.info("providers directory: reloaded %s", path.name)
        return capability_id, sidecar.binding

    def unload(self, path: Path, old: tuple[str, str]) -> None:
        self.host.remove_provider(*old, reason=f"{path.name} removed")
