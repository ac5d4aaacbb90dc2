"""The waPC protocol over wasmtime: engine, compilation, module checks.

A :class:`Runtime` owns one wasmtime engine configured for epoch
interruption, the C thread that advances its epoch, and the linkers that
define the waPC imports.  :meth:`Runtime.load` compiles and checks a module
and returns a :class:`WapcModule` that makes instances.  The call itself
lives in C (``native/host/wascc_host.c``, reached through ``wascc.engine.ffi``).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

from wascc.engine.ticker import EpochTicker
from wascc.engine.wapc import WapcLinker, WapcPre
from wascc.errors import ActorLoadError, ModuleError
from wascc.wire import wasm as wasm_format
from wascc.wire.claims import LEGACY_SECTIONS as CLAIMS_SECTIONS

__all__ = ["CALLED_EXPORTS", "WAPC_IMPORTS", "Runtime", "WapcModule", "wat_to_wasm"]

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

#: Every export the host calls: name -> (parameter types, result types).
#: ``__guest_call`` must exist; the others run at instantiation when present.
CALLED_EXPORTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "__guest_call": (("i32", "i32"), ("i32",)),
    "_start": ((), ()),
    "wapc_init": ((), ()),
}

#: How often the epoch advances; deadlines are rounded up to whole ticks.
DEFAULT_TICK = 0.005


@dataclass(frozen=True)
class WapcModule:
    """A compiled, checked and pre-linked waPC module.

    Loads of the same code (two signed copies differ only in their claims
    section) share one compiled module: :meth:`close` gives this load's share
    back, and the code is freed when the last share is.
    """

    module: wasmtime.Module
    pre: WapcPre
    uses_wasi: bool
    exports: frozenset[str]
    _shared: _Compiled | None = field(default=None, repr=False, compare=False)

    def close(self) -> None:
        """Give this load's share back; the last one frees the code (and its memfd)."""
        if self._shared is not None:
            self._shared.release()
        else:
            self.pre.close()
            self.module.close()


class _Compiled:
    """One compiled module shared by every load of its code, counted."""

    def __init__(self, runtime: Runtime, key: tuple[str, bool], module: WapcModule) -> None:
        self.runtime = runtime
        self.key = key
        self.module = module
        self.users = 0

    def share(self) -> WapcModule:
        self.users += 1  # under the runtime's lock
        m = self.module
        return WapcModule(m.module, m.pre, m.uses_wasi, m.exports, self)

    def release(self) -> None:
        with self.runtime._lock:
            self.users -= 1
            if self.users > 0:
                return
            self.runtime._compiled.pop(self.key, None)
        self.module.close()


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
        # A waPC actor needs none of these proposals, and each brings value
        # types wasmtime's C API cannot describe without aborting the process
        # (GC and typed references, exnref, continuations) and state that the
        # memory and table limits do not count: a module using them is
        # refused as invalid when it compiles.  (The loader reads types from
        # the binary anyway; see wasm.interface.)
        config.wasm_gc = False
        config.wasm_function_references = False
        config.wasm_exceptions = False
        config.wasm_stack_switching = False
        if cache_dir is not None:
            config.cache = _cache_config(Path(cache_dir))
        self.engine = wasmtime.Engine(config)
        self.tick = tick
        self._ticker = EpochTicker(self.engine, tick)
        self._linkers: dict[bool, WapcLinker] = {}
        #: Compiled code by (SHA-256 of the module without its claims, WASI?).
        self._compiled: dict[tuple[str, bool], _Compiled] = {}
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

    def _linker(self, wasi: bool) -> WapcLinker:
        with self._lock:
            linker = self._linkers.get(wasi)
            if linker is None:
                linker = self._linkers[wasi] = WapcLinker(self.engine, wasi=wasi)
            return linker

    def load(self, wasm: bytes, label: str, *, allow_wasi: bool = False) -> WapcModule:
        """Compile ``wasm`` and check it can run as a waPC guest.

        Errors name ``label`` and say what is wrong: not wasm, an import the
        host does not provide (or with the wrong signature), no
        ``__guest_call`` or ``memory`` export.  Code already loaded (the same
        module with other claims: a second signed copy, a re-signed one) is
        compiled and checked once and shared (:class:`WapcModule`).
        """
        if not wasm.startswith(b"\0asm"):
            # wasmtime-py would compile the text format too; actors are binaries
            raise ModuleError(
                f"{label} is not a valid WebAssembly module: expected the binary format"
            )
        try:
            code = wasm_format.strip_custom_sections(bytes(wasm), CLAIMS_SECTIONS)
        except ModuleError as exc:
            raise ModuleError(f"{label} is not a valid WebAssembly module: {exc}") from exc
        key = (hashlib.sha256(code).hexdigest(), allow_wasi)
        with self._lock:
            cached = self._compiled.get(key)
            if cached is not None:
                return cached.share()
        compiled = self._compile(wasm, label, allow_wasi)
        spare = None
        with self._lock:
            found = self._compiled.get(key)
            if found is None:
                found = self._compiled[key] = _Compiled(self, key, compiled)
            else:  # another thread compiled it meanwhile: use theirs
                spare = compiled
            shared = found.share()
        if spare is not None:
            spare.close()
        return shared

    def _compile(self, wasm: bytes, label: str, allow_wasi: bool) -> WapcModule:
        try:
            module = wasmtime.Module(self.engine, wasm)
        except wasmtime.WasmtimeError as exc:
            raise ModuleError(
                f"{label} is not a valid WebAssembly module: {_compile_error(exc)}"
            ) from exc
        # Types come from the binary, never from wasmtime's C API (see wasm.interface).
        try:
            iface = wasm_format.interface(bytes(wasm))
        except ModuleError as exc:
            raise ModuleError(f"{label} is not a valid WebAssembly module: {exc}") from exc
        uses_wasi = False
        for imp in iface.imports:
            if imp.module in WASI_MODULES:
                if not allow_wasi:
                    raise ActorLoadError(
                        f"{label} imports {imp.module}::{imp.name}: WASI is not available "
                        "to actors (only to portable providers)"
                    )
                uses_wasi = True
                continue
            _check_wapc_import(imp, label)
        exports = iface.exports
        guest_call = exports.get("__guest_call")
        if guest_call is None or guest_call.type.kind != "func":
            raise ActorLoadError(f"{label} does not export the function __guest_call")
        for name, expected in CALLED_EXPORTS.items():
            if name in exports:
                _check_called_export(exports[name], expected, label)
        memory = exports.get("memory")
        if memory is None or memory.type.kind != "memory":
            raise ActorLoadError(f"{label} does not export its linear memory as `memory`")
        pre = self._linker(uses_wasi).prepare(module, label)
        return WapcModule(module, pre, uses_wasi, frozenset(exports))

    def close(self) -> None:
        """Stop the epoch thread.  Instances of this runtime must be gone."""
        self._ticker.stop()


def wat_to_wasm(text: str, label: str = "the text") -> bytes:
    """The WebAssembly text format (a module or a component) as a binary, by wasmtime's parser."""
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        where = next((line[4:] for line in lines if line.startswith("--> ")), "")
        where = where.replace("<anon>:", "line ", 1) if where else ""
        reason = lines[0] if lines else "invalid text"
        raise ModuleError(
            f"{label} is not valid WebAssembly text: {reason}" + (f" ({where})" if where else "")
        ) from exc


def _compile_error(exc: wasmtime.WasmtimeError) -> str:
    """wasmtime's message in one line: the summary and its innermost cause."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return "invalid module"
    causes = [re.sub(r"^\d+: ", "", line) for line in lines[1:] if line != "Caused by:"]
    return f"{lines[0]} ({causes[-1]})" if causes else lines[0]


def _signature(params: tuple[str, ...], results: tuple[str, ...]) -> str:
    return f"({', '.join(params)}) -> ({', '.join(results)})"


def _check_called_export(
    export: wasm_format.Export,
    expected: tuple[tuple[str, ...], tuple[str, ...]],
    label: str,
) -> None:
    """Refuse an export the host calls unless its type is exactly ``expected``.

    The host calls these through wasmtime's unchecked API, which has no
    room for a different arity: a wrong type must stop the load, not the call.
    """
    name, ty = export.name, export.type
    want = _signature(*expected)
    if ty.func is None or ty.kind != "func":
        raise ActorLoadError(
            f"{label} exports {name} as a {ty.kind}, not a function; the host calls it as {want}"
        )
    found = (ty.func.params, ty.func.results)
    if found != expected:
        raise ActorLoadError(
            f"{label} exports {name} with the signature {_signature(*found)}; "
            f"the host calls it as {want}"
        )


def _check_wapc_import(imp: wasm_format.Import, label: str) -> None:
    where = f"{imp.module}::{imp.name}"
    if imp.module != "wapc" or imp.name not in WAPC_IMPORTS:
        raise ActorLoadError(
            f"{label} imports {where}, which this host does not provide "
            f"(a waPC actor imports only from `wapc`: {', '.join(WAPC_IMPORTS)})"
        )
    ty = imp.type.func
    nparams, nresults = WAPC_IMPORTS[imp.name]
    ok = (
        imp.type.kind == "func"
        and ty is not None
        and ty.params == ("i32",) * nparams
        and ty.results == ("i32",) * nresults
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
