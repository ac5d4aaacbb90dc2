"""The engine's one door to C: the compiled module and what every part of it shares.

``wascc.engine._wascc_ffi`` is compiled by cffi from ``native/host`` (see
``_ffi_build.py``).  This module loads it, binds wasmtime's C API from the
library wasmtime-py ships, and holds the helpers the engine's other modules
use; each concept has its own module on top of it: the waPC instance and call
(:mod:`~wascc.engine.wapc`), the epoch ticker (:mod:`~wascc.engine.ticker`)
and native provider libraries (:mod:`~wascc.engine.library`).  Nothing
outside ``wascc.engine`` sees a cffi object.

Callbacks from C into Python (``__host_call``, ``__console_log``, a native
provider's ``dispatch``) never let an exception escape: a failure becomes
the error the guest or the provider reads.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any

import wasmtime

from wascc.errors import WasccError, failure_kind

__all__ = ["GUEST_ERROR", "HOST_FAILURE", "OK", "TIMEOUT", "TRAP", "struct_layout"]


try:
    import wascc.engine._wascc_ffi as _compiled
except ImportError as exc:  # pragma: no cover - an install problem, not a runtime one
    raise ImportError(
        "wascc's compiled module (wascc.engine._wascc_ffi) is missing: install wascc with "
        "`pip install .` (or run `make`), which builds it with cffi and a C compiler"
    ) from exc

# Private to wascc.engine: its modules share these; nothing above sees cdata.
_ffi: Any = _compiled.ffi
_lib: Any = _compiled.lib

OK: int = _lib.WH_OK
GUEST_ERROR: int = _lib.WH_GUEST_ERROR
TRAP: int = _lib.WH_TRAP
TIMEOUT: int = _lib.WH_TIMEOUT
HOST_FAILURE: int = _lib.WH_HOST_FAILURE

_NULL = _ffi.NULL
_buffer = _ffi.buffer
_from_handle = _ffi.from_handle
_wh_call = _lib.wh_call
_wh_set_host_result = _lib.wh_set_host_result

_init_lock = threading.Lock()
_initialized = False


def _bind_wasmtime() -> None:
    """Resolve wasmtime's C API from the library wasmtime-py loaded (once)."""
    global _initialized
    with _init_lock:
        if _initialized:
            return
        path = str(wasmtime._ffi.dll._name).encode()
        err = _ffi.new("char[1024]")
        if _lib.wh_init(path, err, len(err)) != 0:
            raise WasccError(_ffi.string(err).decode(errors="replace"))
        _initialized = True


def _address(ctypes_ptr: Any) -> Any:
    """A wasmtime-py ctypes pointer as a cffi ``void *``."""
    return _ffi.cast("void *", ctypes.cast(ctypes_ptr, ctypes.c_void_p).value)


def _take_error(err: Any) -> str:
    if err[0] == _NULL:
        return "unknown error"
    text = str(_ffi.string(err[0]).decode("utf-8", "replace"))
    _lib.wh_free(err[0])
    return text


def _error_text(exc: BaseException) -> bytes:
    text = str(exc) or type(exc).__name__
    return text.encode("utf-8", "replace")


def _dispatch_error_text(exc: BaseException) -> bytes:
    """A failed dispatch as a native provider reads it: ``<kind>: <message>`` (provider.h)."""
    return f"{failure_kind(exc)}: {exc}".encode("utf-8", "replace")


def struct_layout() -> dict[str, int]:
    """Sizes of the wasmtime structs the C module mirrors (checked by the tests)."""
    out = _ffi.new("size_t[6]")
    _lib.wh_layout(out)
    names = (
        "wasmtime_func_t",
        "wasmtime_instance_t",
        "wasmtime_memory_t",
        "wasmtime_extern_t",
        "wasmtime_val_raw_t",
        "wasm_byte_vec_t",
    )
    return {name: int(out[i]) for i, name in enumerate(names)}
