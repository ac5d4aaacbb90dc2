"""Every foreign-function call wascc makes goes through this module.

It wraps ``wascc.engine._wascc_ffi`` (compiled by cffi from ``native/host``):

* the waPC host protocol in C over wasmtime's C API (:class:`WapcLinker`,
  :class:`WapcPre`, :class:`WapcInstance`, :class:`EpochTicker`);
* native capability providers behind ``native/include/wascc/provider.h``
  (:class:`NativeLibrary`).

Nothing outside this module sees a cffi object; the classes here take and
return bytes, strings, ints and wasmtime-py objects.

Callbacks from C into Python (``__host_call``, ``__console_log``, a native
provider's ``dispatch``) never let an exception escape: a failure becomes
the error the guest or the provider reads.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import wasmtime

from wascc.errors import ActorLoadError, InstantiateError, NativeLoadError, WasccError

__all__ = [
    "GUEST_ERROR",
    "HOST_FAILURE",
    "OK",
    "TIMEOUT",
    "TRAP",
    "EpochTicker",
    "GuestHost",
    "InstantiateError",
    "NativeLibrary",
    "NativeLoadError",
    "WapcInstance",
    "WapcLinker",
    "WapcPre",
]

log = logging.getLogger(__name__)

try:
    from wascc.engine._wascc_ffi import ffi as _ffi
    from wascc.engine._wascc_ffi import lib as _lib
except ImportError as exc:  # pragma: no cover - an install problem, not a runtime one
    raise ImportError(
        "wascc's compiled module (wascc.engine._wascc_ffi) is missing: install wascc with "
        "`pip install .` (or run `make`), which builds it with cffi and a C compiler"
    ) from exc

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


class GuestHost(Protocol):
    """What an instance calls back into: the host side of one actor."""

    def host_call(self, binding: str, namespace: str, operation: str, payload: bytes) -> bytes:
        """Serve one ``__host_call``; raise to hand the guest an error."""

    def console_log(self, line: str) -> None:
        """Record one ``__console_log`` line."""


def _error_text(exc: BaseException) -> bytes:
    text = str(exc) or type(exc).__name__
    return text.encode("utf-8", "replace")


@_ffi.def_extern()  # type: ignore[untyped-decorator]
def wh_py_host_call(
    handle: Any,
    inst: Any,
    bd: Any,
    bd_len: int,
    ns: Any,
    ns_len: int,
    op: Any,
    op_len: int,
    msg: Any,
    msg_len: int,
) -> int:
    try:
        host: GuestHost = _from_handle(handle)
        reply = host.host_call(
            _buffer(bd, bd_len)[:].decode("utf-8", "replace"),
            _buffer(ns, ns_len)[:].decode("utf-8", "replace"),
            _buffer(op, op_len)[:].decode("utf-8", "replace"),
            _buffer(msg, msg_len)[:],
        )
    except BaseException as exc:
        text = _error_text(exc)
        _wh_set_host_result(inst, 0, text, len(text))
        return 0
    if not isinstance(reply, bytes):
        reply = bytes(reply)
    _wh_set_host_result(inst, 1, reply, len(reply))
    return 1


@_ffi.def_extern()  # type: ignore[untyped-decorator]
def wh_py_console_log(handle: Any, p: Any, n: int) -> None:
    try:
        host: GuestHost = _from_handle(handle)
        host.console_log(_buffer(p, n)[:].decode("utf-8", "replace"))
    except BaseException:
        log.exception("console log callback failed")


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


def provider_abi_layout() -> dict[str, int]:
    """cffi's view of provider.h: sizes and field offsets (checked by the tests)."""
    layout: dict[str, int] = {}
    for struct, fields in (
        (
            "wascc_provider",
            (
                "abi_version",
                "state",
                "configure_dispatch",
                "handle_call",
                "free_buffer",
                "stop",
                "destroy",
            ),
        ),
        ("wascc_dispatcher", ("abi_version", "host_data", "dispatch", "free_buffer")),
    ):
        layout[f"sizeof {struct}"] = int(_ffi.sizeof(struct))
        for name in fields:
            layout[f"{struct}.{name}"] = int(_ffi.offsetof(struct, name))
    layout["WASCC_PROVIDER_ABI_VERSION"] = int(_lib.WASCC_PROVIDER_ABI_VERSION)
    return layout


class WapcLinker:
    """A wasmtime linker defining the waPC imports (and WASI, if asked)."""

    def __init__(self, engine: wasmtime.Engine, *, wasi: bool = False) -> None:
        _bind_wasmtime()
        err = _ffi.new("char **")
        self._engine = engine
        self._ptr = _lib.wh_linker_new(_address(engine.ptr()), 1 if wasi else 0, err)
        if self._ptr == _NULL:
            raise WasccError(f"cannot create the waPC linker: {_take_error(err)}")
        self.wasi = wasi

    def prepare(self, module: wasmtime.Module, label: str) -> WapcPre:
        """Pre-link ``module`` for fast instantiation."""
        err = _ffi.new("char **")
        ptr = _lib.wh_pre_new(self._ptr, _address(module.ptr()), err)
        if ptr == _NULL:
            raise ActorLoadError(f"{label} cannot be linked: {_take_error(err)}")
        return WapcPre(self, module, ptr)

    def close(self) -> None:
        if self._ptr is not None and self._ptr != _NULL:
            _lib.wh_linker_delete(self._ptr)
        self._ptr = None

    def __del__(self) -> None:
        self.close()


class WapcPre:
    """A module pre-linked against a :class:`WapcLinker`; makes instances."""

    def __init__(self, linker: WapcLinker, module: wasmtime.Module, ptr: Any) -> None:
        self._linker = linker  # keeps the linker (and engine) alive
        self._module = module
        self._ptr = ptr
        self._engine_ptr = _address(linker._engine.ptr())

    def instantiate(
        self,
        host: GuestHost,
        *,
        memory_limit: int,
        deadline_ticks: int,
        wasi: wasmtime.WasiConfig | None = None,
    ) -> WapcInstance:
        """A fresh store and instance; runs ``_start`` and ``wapc_init`` if exported."""
        handle = _ffi.new_handle(host)
        status = _ffi.new("int *")
        err = _ffi.new("char **")
        wasi_ptr = _NULL
        if wasi is not None:
            wasi_ptr = _address(wasi._consume())
        ptr = _lib.wh_instance_new(
            self._engine_ptr, self._ptr, handle, memory_limit, wasi_ptr, deadline_ticks, status, err
        )
        if ptr == _NULL:
            raise InstantiateError(_take_error(err), int(status[0]))
        return WapcInstance(self, ptr, handle)

    def close(self) -> None:
        if self._ptr is not None:
            _lib.wh_pre_delete(self._ptr)
        self._ptr = None

    def __del__(self) -> None:
        self.close()


class WapcInstance:
    """One store and instance.  Not thread-safe: one call at a time."""

    __slots__ = ("_handle", "_inst", "_pre", "calls")

    def __init__(self, pre: WapcPre, ptr: Any, handle: Any) -> None:
        self._pre = pre
        self._inst = ptr
        self._handle = handle
        self.calls = 0

    def call(self, operation: bytes, payload: bytes, deadline_ticks: int) -> tuple[int, bytes]:
        """Run ``__guest_call``: (status, response or error text)."""
        inst = self._inst
        status = _wh_call(inst, operation, len(operation), payload, len(payload), deadline_ticks)
        self.calls += 1
        n = inst.result_len
        return status, (_buffer(inst.result, n)[:] if n else b"")

    @property
    def memory_size(self) -> int:
        """Bytes of linear memory after the last call."""
        return int(self._inst.memory_size)

    @property
    def memory_grew(self) -> bool:
        """Did the last call grow linear memory?"""
        return bool(self._inst.memory_grew)

    @property
    def trap_code(self) -> int:
        """wasmtime's trap code of the last trap, or -1."""
        return int(self._inst.trap_code)

    def close(self) -> None:
        """Free the store; the instance must not be in a call."""
        if self._inst is not None:
            _lib.wh_instance_delete(self._inst)
            self._inst = None

    def __del__(self) -> None:
        self.close()


class EpochTicker:
    """A C thread advancing an engine's epoch every ``interval`` seconds."""

    def __init__(self, engine: wasmtime.Engine, interval: float) -> None:
        _bind_wasmtime()
        self._engine = engine
        self._ptr = _lib.wh_ticker_start(_address(engine.ptr()), max(1, int(interval * 1e6)))
        if self._ptr == _NULL:
            raise WasccError("cannot start the epoch ticker thread")

    def stop(self) -> None:
        if self._ptr is not None:
            _lib.wh_ticker_stop(self._ptr)
            self._ptr = None


# ---- native capability providers ---------------------------------------------

NativeDispatch = Callable[[str, str, bytes], bytes]

_provider_call = _lib.wh_provider_call
_provider_free = _lib.wh_provider_free
_replies = threading.local()


def _thread_reply() -> Any:
    """This thread's reply struct (one allocation per thread, not per call)."""
    try:
        return _replies.reply
    except AttributeError:
        _replies.reply = _ffi.new("wh_reply *")
        return _replies.reply


@_ffi.def_extern()  # type: ignore[untyped-decorator]
def wh_py_dispatch(handle: Any, reply: Any, actor: Any, op: Any, msg: Any, msg_len: int) -> int:
    try:
        dispatch: NativeDispatch = _from_handle(handle)
        data = dispatch(
            _ffi.string(actor).decode("utf-8", "replace"),
            _ffi.string(op).decode("utf-8", "replace"),
            _buffer(msg, msg_len)[:] if msg_len else b"",
        )
        ok = 1
    except BaseException as exc:
        data, ok = _error_text(exc), 0
    if not isinstance(data, bytes):
        data = bytes(data)
    if _lib.wh_reply_set(reply, data, len(data)) != 0:
        return 0  # the reply holds "host out of memory", not an empty success
    return ok


class NativeLibrary:
    """One provider created by a shared object's ``__capability_provider_create``.

    The library is loaded with RTLD_NODELETE and never unloaded.  ``call`` is
    safe from many threads at once (the provider's own guarantee); the GIL
    is released while the provider runs.  Once :meth:`stop` begins, new calls
    are refused, and ``destroy`` waits for calls in flight: a provider is
    never destroyed under a running call.
    """

    def __init__(self, path: str) -> None:
        _bind_wasmtime()
        why = _ffi.new("int *")
        err = _ffi.new("char **")
        ptr = _lib.wh_provider_open(path.encode(), why, err)
        if ptr == _NULL:
            raise NativeLoadError(_take_error(err), int(why[0]))
        self._ptr = ptr
        self._dispatcher: Any = None
        self._handle: Any = None
        self._stopped = False
        self._in_flight = 0
        self._count_lock = threading.Lock()

    def configure(self, dispatch: NativeDispatch) -> int:
        """Hand the provider its dispatcher; the provider's status code."""
        self._handle = _ffi.new_handle(dispatch)
        self._dispatcher = _lib.wh_dispatcher_new(self._handle)
        if self._dispatcher == _NULL:
            raise MemoryError("cannot allocate the provider's dispatcher")
        return int(_lib.wh_provider_configure(self._ptr, self._dispatcher))

    def call(self, actor: str, operation: str, payload: bytes) -> tuple[bool, bytes]:
        """``handle_call``: (ok, reply or error text)."""
        with self._count_lock:
            if self._stopped:
                return False, b"the provider has been stopped"
            self._in_flight += 1
        try:
            reply = _thread_reply()
            status = _provider_call(
                self._ptr, actor.encode(), operation.encode(), payload, len(payload), reply
            )
            n = reply.len
            if n:
                data = _buffer(reply.data, n)[:]
                _provider_free(self._ptr, reply.data)
            else:
                data = b""
                if reply.data != _NULL:
                    _provider_free(self._ptr, reply.data)
        finally:
            with self._count_lock:
                self._in_flight -= 1
        return status == 0, data

    def stop(self, drain_timeout: float = 30.0) -> bool:
        """``stop``, wait for calls in flight, then ``destroy``; once.

        Returns False when calls were still running after ``drain_timeout``
        seconds: the provider is then left undestroyed (a leak) rather than
        freed under a running call.
        """
        with self._count_lock:
            if self._stopped:
                return True
            self._stopped = True
        _lib.wh_provider_stop(self._ptr)
        deadline = time.monotonic() + drain_timeout
        while self._in_flight:  # stop is rare: polling keeps call() to one plain lock
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)
        _lib.wh_provider_destroy(self._ptr)
        if self._dispatcher is not None:
            _lib.wh_dispatcher_free(self._dispatcher)
            self._dispatcher = None
        return True
        # the dispatch handle stays referenced: a stray provider thread must
        # find a live Python object, never freed memory
