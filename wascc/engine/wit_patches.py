"""What wasmtime-py 50's component bindings need to serve imports from many threads, fast.

Applied once, on import (by :mod:`wascc.engine.wit`); ``setup.cfg`` pins
wasmtime to 50.x, the version these internals are read from.

* **Thread safety.**  wasmtime-py lowers an untagged variant, option or
  result by filling one module-global scratch set
  (``wasmtime.component._types.case_test_cache``) with the case's classes
  and testing the value against it; two threads lowering at once clear each
  other's classes and a valid value fails with "value not valid for this
  variant" (seen with eight threads calling one HTTP component).  A
  per-thread set replaces it.
* **Exceptions reach their own caller.**  A Python exception raised in a
  host function is parked by wasmtime-py in one process-wide slot and
  re-raised by whichever thread next sees a failed call (DESIGN: threads):
  a component's ``Unauthorized`` could surface in another thread's call.
  Here the exception is parked per thread (a host function runs on the
  thread that called into the component) and wasmtime gets a
  ``WasmtimeError`` naming it; :func:`take_pending` hands it back to the
  call that failed.
* **Speed.**  For every call of a host function wasmtime-py reads the
  function's type back from C (``FuncType.params``, ``result``) and, while
  converting each value, each variant's cases, each result's ok and err,
  each option's payload, again (``wasi:http``'s ``error-code`` has 39
  cases): about 70 us of a ~100 us host call.  Here a host function's
  parameter and result types are read once per linker function and kept,
  and the types' reflective properties are computed once per type object.
  A request to the HTTP echo component (15 host calls) went from 1,065 us
  to 341 us.  This relies on what :func:`~wascc.engine.wit.serve_imports`
  guarantees: one linker per component, so a linker function is always
  called with the same type.
* **Bytes in bulk.**  wasmtime's C API holds a ``list<u8>`` as one 32-byte
  value cell per byte, and wasmtime-py converts it cell by cell in Python
  (about 1.4 us a byte: a 1.5 MB blob took 2.2 s each way).  Here the cells
  are written and read with strided slices of one buffer (the kind byte at
  0, the u8 at the payload's offset).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterator
from ctypes import CFUNCTYPE, c_void_p
from typing import Any

from wasmtime import WasmtimeError, _ffi
from wasmtime.component import _linker, _types
from wasmtime.component._enter import catch_exceptions

__all__ = ["take_pending"]


class _ThreadCases(threading.local):
    """A per-thread stand-in for ``_types.case_test_cache`` (see the module docstring)."""

    def __init__(self) -> None:
        self.classes: set[type] = set()

    def clear(self) -> None:
        self.classes.clear()

    def add(self, cls: type) -> None:
        self.classes.add(cls)

    def __iter__(self) -> Iterator[type]:
        return iter(self.classes)

    def __len__(self) -> int:
        return len(self.classes)


_pending = threading.local()


def take_pending() -> BaseException | None:
    """The exception a host function raised during this thread's failed call, if any (once)."""
    exc: BaseException | None = getattr(_pending, "exc", None)
    _pending.exc = None
    return exc


#: Parameter and result types by linker function index, with the function they were read for.
_SIGNATURES: dict[int, tuple[Any, list[Any], Any]] = {}


@_ffi.wasmtime_component_func_callback_t  # type: ignore[untyped-decorator]
def _func_impl(
    idx: Any, context: Any, ty_raw: Any, args: Any, nargs: int, results: Any, _n: int
) -> Any:
    def run(store: Any) -> None:
        func = _linker.FUNCTIONS.get(idx or 0)
        signature = _SIGNATURES.get(idx)
        if signature is None or signature[0] is not func:
            with _types.FuncType._from_ptr(ty_raw, owner=store) as fty:
                signature = (func, [ty for _, ty in fty.params], fty.result)
            _SIGNATURES[idx] = signature
        _, params, result_ty = signature
        try:
            result = func(store, *[params[i].convert_from_c(args[i]) for i in range(nargs)])
            if result_ty is not None:
                result_ty.convert_to_c(store, result, results)
        except WasmtimeError:
            raise
        except Exception as exc:
            _pending.exc = exc
            raise WasmtimeError(f"{type(exc).__name__}: {exc}") from None

    return catch_exceptions(context, run)


_stock_finalize = _linker.func_finalize


@CFUNCTYPE(None, c_void_p)  # type: ignore[untyped-decorator]
def _func_finalize(idx: Any) -> None:
    _SIGNATURES.pop(idx, None)
    _stock_finalize(idx)


_CELL = _ffi.wasmtime_component_val_t
_CELL_SIZE = ctypes.sizeof(_CELL)
_PAYLOAD_AT = _CELL.of.offset
_U8_KIND = bytes([_ffi.WASMTIME_COMPONENT_U8.value])
_stock_list_to_c = _types.ListType.convert_to_c
_stock_list_from_c = _types.ListType.convert_from_c


def _list_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
    if not self._is_bytes():
        _stock_list_to_c(self, store, val, ptr)
        return
    if not isinstance(val, bytes):
        raise TypeError("expected bytes value")
    raw = _ffi.wasmtime_component_vallist_t()
    _ffi.wasmtime_component_vallist_new_uninit(raw, len(val))
    if val:
        cells = bytearray(len(val) * _CELL_SIZE)
        cells[0::_CELL_SIZE] = _U8_KIND * len(val)
        cells[_PAYLOAD_AT::_CELL_SIZE] = val
        ctypes.memmove(raw.data, (ctypes.c_char * len(cells)).from_buffer(cells), len(cells))
    ptr.contents.kind = _ffi.WASMTIME_COMPONENT_LIST
    ptr.contents.of.list = raw


def _list_from_c(self: Any, c: Any) -> Any:
    if not self._is_bytes():
        return _stock_list_from_c(self, c)
    try:
        size = int(c.of.list.size)
        if not size:
            return b""
        return ctypes.string_at(c.of.list.data, size * _CELL_SIZE)[_PAYLOAD_AT::_CELL_SIZE]
    finally:
        _ffi.wasmtime_component_vallist_delete(ctypes.byref(c.of.list))


def _once(cls: type, name: str) -> None:
    """Compute ``cls.name`` (a property or a method without arguments) once per object."""
    stock = getattr(cls, name)
    key = f"_wascc_{name}"
    compute: Callable[[Any], Any] = stock.fget if isinstance(stock, property) else stock  # type: ignore[assignment]

    def cached(self: Any) -> Any:
        found = self.__dict__
        try:
            return found[key]
        except KeyError:
            value = found[key] = compute(self)
            return value

    setattr(cls, name, property(cached) if isinstance(stock, property) else cached)


def _apply() -> None:
    if getattr(_types, "_wascc_patched", False):
        return
    _types.case_test_cache = _ThreadCases()  # type: ignore[assignment]
    _linker.func_impl = _func_impl
    _linker.func_finalize = _func_finalize
    _types.ListType.convert_to_c = _list_to_c  # type: ignore[method-assign]
    _types.ListType.convert_from_c = _list_from_c  # type: ignore[method-assign]
    for cls, names in (
        (_types.VariantType, ("cases", "_tagged")),
        (_types.ResultType, ("ok", "err", "_tagged")),
        (_types.OptionType, ("payload", "_tagged")),
        (_types.ListType, ("element",)),
        (_types.TupleType, ("elements",)),
        (_types.RecordType, ("fields",)),
    ):
        for name in names:
            _once(cls, name)
    _types._wascc_patched = True  # type: ignore[attr-defined]


_apply()
