"""The waPC host protocol, in C, over wasmtime's C API: linker, pre-linked module, instance.

:class:`WapcInstance.call` is one waPC call (``__guest_call``) run in
``native/host/wascc_host.c`` with the GIL released; the imports the guest
calls back (``__host_call``, ``__console_log``) reach a :class:`GuestHost`.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import wasmtime

from wascc.engine.ffi import (
    _NULL,
    _address,
    _bind_wasmtime,
    _buffer,
    _error_text,
    _ffi,
    _from_handle,
    _lib,
    _take_error,
    _wh_call,
    _wh_set_host_result,
)
from wascc.errors import ActorLoadError, InstantiateError, WasccError

__all__ = ["GuestHost", "WapcInstance", "WapcLinker", "WapcPre"]

log = logging.getLogger(__name__)


class GuestHost(Protocol):
    """What an instance calls back into: the host side of one actor."""

    def host_call(self, binding: str, namespace: str, operation: str, payload: bytes) -> bytes:
        """Serve one ``__host_call``; raise to hand the guest an error."""

    def console_log(self, line: str) -> None:
        """Record one ``__console_log`` line."""


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

    __slots__ = ("_handle", "_inst", "_pre")

    def __init__(self, pre: WapcPre, ptr: Any, handle: Any) -> None:
        self._pre = pre
        self._inst = ptr
        self._handle = handle

    def call(self, operation: bytes, payload: bytes, deadline_ticks: int) -> tuple[int, bytes]:
        """Run ``__guest_call``: (status, response or error text)."""
        inst = self._inst
        status = _wh_call(inst, operation, len(operation), payload, len(payload), deadline_ticks)
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
