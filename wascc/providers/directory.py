"""A directory of providers: drop a file in to load it, delete it to unload it.

:class:`ProviderDirectory` (started by :meth:`wascc.Host.watch_providers`)
loads every native library (``.so`` / ``.dylib``) and portable provider
(``.wasm``) in a directory at start, then polls it:

* a file dropped in is loaded once it has settled;
* a file removed stops its provider and drops its bindings;
* a file replaced is reloaded and its bindings re-sent (``BindActor``).

A sidecar ``<file>.toml`` next to a provider names its binding and the
default values merged into every ``BindActor`` for it::

    binding = "cache"            # default: "default"
    [values]
    URL = "redis://127.0.0.1"

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
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from wascc.errors import ProviderError, WasccError
from wascc.providers.base import CapabilityProvider
from wascc.providers.native import load_native_provider
from wascc.providers.portable import WasiGrant, load_portable_provider
from wascc.routing import DEFAULT_BINDING, canonical_capability
from wascc.watch import DirectoryWatcher, file_state

if TYPE_CHECKING:
    from wascc.host import Host

__all__ = ["ProviderDirectory", "Sidecar", "read_sidecar"]

log = logging.getLogger(__name__)

NATIVE_SUFFIXES = (".so", ".dylib")
PORTABLE_SUFFIX = ".wasm"


@dataclass(frozen=True)
class Sidecar:
    """What ``<file>.toml`` says about a provider file."""

    binding: str = DEFAULT_BINDING
    values: dict[str, str] = field(default_factory=dict)


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
    unknown = set(data) - {"binding", "values"}
    if unknown:
        raise ProviderError(f"{side}: unknown keys {sorted(unknown)} (known: binding, values)")
    binding = data.get("binding", DEFAULT_BINDING)
    values = data.get("values", {})
    if not isinstance(binding, str) or not binding.strip():
        raise ProviderError(f"{side}: `binding` must be a non-empty string")
    if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
        raise ProviderError(f"{side}: `values` must be a table of strings")
    return Sidecar(binding.strip(), dict(values))


def _is_provider_file(path: Path) -> bool:
    return path.is_file() and (path.suffix in NATIVE_SUFFIXES or path.suffix == PORTABLE_SUFFIX)


def _fingerprint(path: Path) -> Hashable:
    state = file_state(path)
    return None if state is None else (state, file_state(sidecar_path(path)))


class ProviderDirectory:
    """Keeps the host's providers in step with the files of one directory."""

    def __init__(
        self,
        host: Host,
        directory: str | Path,
        *,
        interval: float = 1.0,
        grant: WasiGrant | None = None,
    ) -> None:
        self.host = host
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise ProviderError(f"provider directory {self.directory} does not exist")
        self.grant = grant or WasiGrant()
        #: Called after every change this directory made to the host.
        self.on_change: Callable[[], None] | None = None
        self._loaded: dict[Path, tuple[str, str]] = {}
        self._copies = Path(tempfile.mkdtemp(prefix="wascc-providers-"))
        self._watcher = DirectoryWatcher(
            self.directory,
            _is_provider_file,
            on_added=self._added,
            on_changed=self._changed,
            on_removed=self._removed,
            fingerprint=_fingerprint,
            interval=interval,
            name=f"wascc-providers {self.directory}",
        )

    def start(self) -> None:
        self._watcher.start()

    def scan(self) -> None:
        """Check the directory now (the watcher also does on its interval)."""
        self._watcher.scan()

    def stop(self) -> None:
        self._watcher.stop()
        shutil.rmtree(self._copies, ignore_errors=True)

    @property
    def loaded(self) -> dict[Path, tuple[str, str]]:
        """File -> (capability id, binding) of every provider loaded from here."""
        return dict(self._loaded)

    # ---- events --------------------------------------------------------------

    def _load(self, path: Path) -> tuple[CapabilityProvider, Sidecar]:
        sidecar = read_sidecar(path)
        if path.suffix == PORTABLE_SUFFIX:
            provider: CapabilityProvider = load_portable_provider(
                path,
                runtime=self.host.runtime,
                grant=self.grant,
                trusted_issuers=self.host.trusted_issuers,
            )
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

    def _guard(self, what: str, path: Path, action: Callable[[], object]) -> None:
        try:
            action()
        except WasccError as exc:
            log.error("provider directory: cannot %s %s: %s", what, path.name, exc)
        if self.on_change is not None:
            self.on_change()

    def _added(self, path: Path) -> None:
        def add() -> None:
            provider, sidecar = self._load(path)
            try:
                descriptor = self.host.add_provider(
                    provider, sidecar.binding, values=sidecar.values
                )
            except BaseException:
                provider.stop()
                raise
            self._loaded[path] = (canonical_capability(descriptor.id), sidecar.binding)
            log.info(
                "provider directory: loaded %s as %s (%s)",
                path.name,
                descriptor.id,
                sidecar.binding,
            )

        self._guard("load", path, add)

    def _changed(self, path: Path) -> None:
        old = self._loaded.get(path)
        if old is None:
            self._added(path)
            return

        def reload() -> None:
            provider, sidecar = self._load(path)
            capability_id = canonical_capability(provider.descriptor().id)
            try:
                if (capability_id, sidecar.binding) == old:
                    self.host.replace_provider(provider, sidecar.binding, values=sidecar.values)
                else:
                    self.host.remove_provider(*old, reason=f"{path.name} changed")
                    del self._loaded[path]
                    self.host.add_provider(provider, sidecar.binding, values=sidecar.values)
            except BaseException:
                provider.stop()
                raise
            self._loaded[path] = (capability_id, sidecar.binding)
            log.info("provider directory: reloaded %s", path.name)

        self._guard("reload", path, reload)

    def _removed(self, path: Path) -> None:
        old = self._loaded.pop(path, None)
        if old is not None:
            self._guard(
                "unload",
                path,
                lambda: self.host.remove_provider(*old, reason=f"{path.name} removed"),
            )
