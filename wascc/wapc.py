"""The waPC protocol over wasmtime: engine, compilation, module checks.

A :class:`Runtime` owns one wasmtime engine configured for epoch
interruption, the C thread that advances its epoch, and the linkers that
define the waPC imports.  :meth:`Runtime.load` compiles and checks a module
and returns a :class:`WapcModule` that makes instances.  The call itself
lives in C (``native/host/wascc_host.c``, reached through ``wascc.ffi``).
"""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import wasmtime

from wascc import ffi
from wascc.errors import ActorLoadError, ModuleError

__all__ = ["WAPC_IMPORTS", "Runtime", "WapcModule"]

#: Every import a waPC actor may use: name -> (parameter count, result count).
WAPC_IMPORTS: dict[str, tuple[int, int]] = {
    "__guest_request": (2, 0),
    "__guest_response": (2, 0),
    "__guest_error": (2, 0),
    "__host_call": (8, 1),
    "__host_response_len": (0, 1),
    "__host_response": (1, 0),
    "__host_error_len": (0, 1),
    "__host_error": (1, 0),
    "__console_log": (2, 0),
}
WASI_MODULES = ("wasi_snapshot_preview1", "wasi_unstable")

#: How often the epoch advances; deadlines are rounded up to whole ticks.
DEFAULT_TICK = 0.005


@dataclass(frozen=True)
class WapcModule:
    """A compiled, checked and pre-linked waPC module."""

    module: wasmtime.Module
    pre: ffi.WapcPre
    uses_wasi: bool
    exports: frozenset[str]


class Runtime:
    """One wasmtime engine with epoch deadlines, shared by every actor of a host.

    ``cache_dir`` turns on wasmtime's on-disk compilation cache (keyed by
    module and engine configuration), so a restart does not recompile.
    """

    _default: Runtime | None = None
    _default_lock = threading.Lock()

    def __init__(
        self, *, tick: float = DEFAULT_TICK, cache_dir: str | os.PathLike[str] | None = None
    ):
        config = wasmtime.Config()
        config.epoch_interruption = True
        if cache_dir is not None:
            config.cache = _cache_config(Path(cache_dir))
        self.engine = wasmtime.Engine(config)
        self.tick = tick
        self._ticker = ffi.EpochTicker(self.engine, tick)
        self._linkers: dict[bool, ffi.WapcLinker] = {}
        self._lock = threading.Lock()

    @classmethod
    def default(cls) -> Runtime:
        """The process-wide runtime (created on first use)."""
        with cls._default_lock:
            if cls._default is None:
                cls._default = cls()
            return cls._default

    def ticks(self, seconds: float) -> int:
        """Epoch ticks that cover at least ``seconds`` from now."""
        return max(1, math.ceil(seconds / self.tick)) + 1

    def _linker(self, wasi: bool) -> ffi.WapcLinker:
        with self._lock:
            linker = self._linkers.get(wasi)
            if linker is None:
                linker = self._linkers[wasi] = ffi.WapcLinker(self.engine, wasi=wasi)
            return linker

    def load(self, wasm: bytes, label: str, *, allow_wasi: bool = False) -> WapcModule:
        """Compile ``wasm`` and check it can run as a waPC guest.

        Errors name ``label`` and say what is wrong: not wasm, an import the
        host does not provide (or with the wrong signature), no
        ``__guest_call`` or ``memory`` export.
        """
        if not wasm.startswith(b"\0asm"):
            # wasmtime-py would compile the text format too; actors are binaries
            raise ModuleError(
                f"{label} is not a valid WebAssembly module: expected the binary format"
            )
        try:
            module = wasmtime.Module(self.engine, wasm)
        except wasmtime.WasmtimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid module"
            raise ModuleError(f"{label} is not a valid WebAssembly module: {first}") from exc
        uses_wasi = False
        for imp in module.imports:
            if imp.module in WASI_MODULES:
                if not allow_wasi:
                    raise ActorLoadError(
                        f"{label} imports {imp.module}::{imp.name}: WASI is not available "
                        "to actors (only to portable providers)"
                    )
                uses_wasi = True
                continue
            _check_wapc_import(imp, label)
        exports = {e.name: e.type for e in module.exports}
        call = exports.get("__guest_call")
        if not isinstance(call, wasmtime.FuncType):
            raise ActorLoadError(f"{label} does not export the function __guest_call")
        if [str(p) for p in call.params] != ["i32", "i32"] or [str(r) for r in call.results] != [
            "i32"
        ]:
            raise ActorLoadError(
                f"{label} exports __guest_call with the wrong signature "
                "(expected (i32, i32) -> i32)"
            )
        if not isinstance(exports.get("memory"), wasmtime.MemoryType):
            raise ActorLoadError(f"{label} does not export its linear memory as `memory`")
        pre = self._linker(uses_wasi).prepare(module, label)
        return WapcModule(module, pre, uses_wasi, frozenset(exports))

    def close(self) -> None:
        """Stop the epoch thread.  Instances of this runtime must be gone."""
        self._ticker.stop()


def _check_wapc_import(imp: wasmtime.ImportType, label: str) -> None:
    where = f"{imp.module}::{imp.name}"
    if imp.module != "wapc" or imp.name not in WAPC_IMPORTS:
        raise ActorLoadError(
            f"{label} imports {where}, which this host does not provide "
            f"(a waPC actor imports only from `wapc`: {', '.join(WAPC_IMPORTS)})"
        )
    ty = imp.type
    nparams, nresults = WAPC_IMPORTS[imp.name]
    ok = (
        isinstance(ty, wasmtime.FuncType)
        and [str(p) for p in ty.params] == ["i32"] * nparams
        and [str(r) for r in ty.results] == ["i32"] * nresults
    )
    if not ok:
        raise ActorLoadError(
            f"{label} imports {where} with the wrong type "
            f"(expected {nparams} i32 parameters and {nresults} i32 results)"
        )


def _cache_config(directory: Path) -> str:
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    config = directory / "wasmtime-cache.toml"
    text = f'[cache]\ndirectory = "{directory.resolve().as_posix()}"\n'
    if not config.exists() or config.read_text() != text:
        config.write_text(text)
    return str(config)
