"""Native capability providers: shared objects behind ``wascc/provider.h``.

:func:`load_native_provider` loads a ``.so`` / ``.dylib`` and returns a
:class:`NativeProvider` ready for ``Host.add_provider``.  Every call,
including the core operations, is forwarded over the C ABI; the provider
answers ``GetCapabilityDescriptor`` itself.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import ClassVar

from wascc.engine.library import NativeLibrary
from wascc.errors import CodecError, NativeLoadError, ProviderCallError, ProviderError
from wascc.providers.base import Dispatcher, ForwardingProvider

__all__ = ["NativeProvider", "load_native_provider"]

log = logging.getLogger(__name__)


class NativeProvider(ForwardingProvider):
    """A provider living in a native library; forwards every call over FFI."""

    native: ClassVar[bool] = True

    def __init__(self, library: NativeLibrary, path: Path) -> None:
        super().__init__()
        self.path = path
        self._lib = library
        self._stop_lock = threading.Lock()

    @property
    def library(self) -> NativeLibrary:
        """The library in this process (the host routes calls to it in C)."""
        return self._lib

    def configure_dispatch(self, dispatcher: Dispatcher) -> None:
        super().configure_dispatch(dispatcher)
        status = self._lib.configure(dispatcher.dispatch)
        if status != 0:
            raise ProviderError(f"{self.path.name}: configure_dispatch returned {status}")

    def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
        ok, data = self._lib.call(actor, operation, msg)
        if not ok:
            raise ProviderCallError(data.decode("utf-8", "replace") or "failed with no message")
        return data

    def stop(self) -> None:
        with self._stop_lock:
            if not self._lib.stop():
                log.error(
                    "%s: calls were still running 30s after stop; not destroying it", self.path.name
                )

    def __repr__(self) -> str:
        return f"NativeProvider({self.path})"


def load_native_provider(path: str | os.PathLike[str]) -> NativeProvider:
    """Load a provider library; refuses files that are not one, with the reason."""
    file = Path(path)
    if not file.is_file():
        raise ProviderError(f"native provider {file} does not exist or is not a file")
    try:
        library = NativeLibrary(str(file.resolve()))
    except NativeLoadError as exc:
        kind = "is not a shared object" if exc.reason == "not loadable" else "was refused"
        raise ProviderError(f"native provider {file} {kind}: {exc}") from exc
    provider = NativeProvider(library, file)
    try:
        provider.descriptor()
    except (ProviderCallError, CodecError) as exc:
        provider.stop()
        raise ProviderError(f"native provider {file} did not describe itself: {exc}") from exc
    return provider
