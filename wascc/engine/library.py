"""Native capability provider libraries behind ``native/include/wascc/provider.h``.

:class:`NativeLibrary` is one provider created by a shared object's
``__capability_provider_create``; its dispatcher calls back into Python
through :func:`wh_py_dispatch`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from wascc.engine.ffi import (
    _NULL,
    _bind_wasmtime,
    _buffer,
    _dispatch_error_text,
    _ffi,
    _from_handle,
    _lib,
    _take_error,
)
from wascc.engine.stats import Counters
from wascc.errors import NativeLoadError

__all__ = ["NativeDispatch", "NativeLibrary", "provider_abi_layout"]


NativeDispatch = Callable[[str, str, bytes], bytes]

_native_call = _lib.wh_native_call
_STOPPED: int = _lib.WH_NATIVE_STOPPED
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
        data, ok = _dispatch_error_text(exc), 0
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
        self.native = _lib.wh_native_new(ptr)  # what the data plane calls
        if self.native == _NULL:
            _lib.wh_provider_destroy(ptr)
            raise MemoryError("cannot allocate the provider's call counter")
        #: Calls the data plane ran on this provider, by operation.
        self.stats = Counters(_lib.wh_native_stats(self.native))
        self._dispatcher: Any = None
        self._handle: Any = None
        self._stopped = False

    def configure(self, dispatch: NativeDispatch) -> int:
        """Hand the provider its dispatcher; the provider's status code."""
        self._handle = _ffi.new_handle(dispatch)
        if self._dispatcher is None:
            self._dispatcher = _lib.wh_dispatcher_new(_NULL)
            if self._dispatcher == _NULL:
                raise MemoryError("cannot allocate the provider's dispatcher")
        _lib.wh_dispatcher_python(self._dispatcher, self._handle)
        return int(_lib.wh_provider_configure(self._ptr, self._dispatcher))

    def route(self, router: Any, capability: str, binding: str) -> None:
        """Let the data plane route this provider's dispatches (before :meth:`configure`)."""
        if self._dispatcher is None:
            self._dispatcher = _lib.wh_dispatcher_new(_NULL)
            if self._dispatcher == _NULL:
                raise MemoryError("cannot allocate the provider's dispatcher")
        cap, bd = capability.encode(), binding.encode()
        if _lib.wh_dispatcher_route(self._dispatcher, router, cap, bd) != 0:
            raise MemoryError("cannot allocate the provider's dispatcher")

    @property
    def in_flight(self) -> int:
        """Calls running in the provider now (from Python or from the data plane)."""
        return int(_lib.wh_native_in_flight(self.native))

    def set_active(self, active: bool) -> None:
        """A removed provider's dispatches go to Python, which refuses them."""
        if self._dispatcher is not None:
            _lib.wh_dispatcher_active(self._dispatcher, int(active))

    def call(self, actor: str, operation: str, payload: bytes) -> tuple[bool, bytes]:
        """``handle_call``: (ok, reply or error text)."""
        reply = _thread_reply()
        status = _native_call(
            self.native, actor.encode(), operation.encode(), payload, len(payload), reply
        )
        if status == _STOPPED:
            return False, b"the provider has been stopped"
        n = reply.len
        data = _buffer(reply.data, n)[:] if n else b""
        return status == 0, data

    def stop(self, drain_timeout: float = 30.0) -> bool:
        """``stop``, wait for calls in flight, then ``destroy``; once.

        Returns False when calls were still running after ``drain_timeout``
        seconds: the provider is then left undestroyed (a leak) rather than
        freed under a running call.
        """
        if self._stopped:
            return True
        self._stopped = True
        if not _lib.wh_native_stop(self.native, drain_timeout):
            return False  # left undestroyed rather than freed under a running call
        if self._dispatcher is not None:
            _lib.wh_dispatcher_free(self._dispatcher)  # no provider thread is left to use it
            self._dispatcher = None
        return True
        # the dispatch handle stays referenced: a stray provider thread must
        # find a live Python object, never freed memory


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
