"""The epoch ticker: a C thread that advances an engine's epoch, so deadlines fire."""

from __future__ import annotations

import wasmtime

from wascc.engine.ffi import _NULL, _address, _bind_wasmtime, _lib
from wascc.errors import WasccError

__all__ = ["EpochTicker"]


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
