"""How fast is one actor call?  wascc against its floor and its peers, in one run.

Every peer runs the same echo logic and is checked (the response must equal
the payload, at every timed size and a few odd ones) before it is timed:

(a) wascc: ``Host.call_actor(pk, "Echo", payload)`` on a signed waPC actor
    (``echo_actor.wat``, keys generated at run time).
(b) wasmtime-py: the same actor under a minimal waPC host written in Python
    against wasmtime-py's public API (``Linker.define_func``,
    ``Memory.data_ptr`` / ``Memory.data_len``, calling the exported ``Func``).
(c) floor: the same minimal host with every waPC import defined through
    wasmtime's unchecked C API as ``wasmtime._bindings`` exposes it
    (``wasmtime_linker_define_func_unchecked``, ``wasmtime_memory_data(_size)``,
    ``wasmtime_func_call_unchecked``), driven from Python with ctypes: about
    the least work a host whose imports are Python functions can do per call.
(d) extism: the Extism Python SDK calling ``extism_echo.wat``, which copies
    its input to its output through the Extism kernel.
(e) the "host call" row: the actor's ``HostEcho`` operation makes one
    ``__host_call`` (binding ``default``, namespace ``wascc:bench``,
    operation ``Echo``) and answers with the host's response.  In wascc a
    Python ``CapabilityProvider`` bound to the actor echoes the payload; in
    (b) and (c) the host's host-call handler does.

Payloads of 16 B, 1 KiB and 64 KiB (16 B for the host-call row).  For each
row the peers are warmed up, then timed in interleaved repetitions of N calls
each so machine noise hits them alike; a peer's figure is its best
repetition, in microseconds per call.  The targets: (a) within 1.5x of the
floor and faster than Extism at every size, (e) within 1.5x of the floor's
host-call round trip.

Absolute figures move a lot with the machine and the interpreter build (a
Python built without PGO/LTO makes every ctypes call markedly slower); the
ratios between peers timed in the same run are what to compare.

Run it with ``make bench`` (which installs the ``bench`` extra first) or::

    .venv/bin/python benchmarks/bench_invoke.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import ctypes
import functools
import gc
import itertools
import json
import logging
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import extism  # type: ignore[import-untyped]
import wasmtime
from wasmtime import _bindings as capi

import wascc
from wascc import CapabilityProvider, Host, KeyPair, KeyType, sign_module
from wascc.engine.runtime import WAPC_IMPORTS
from wascc.wire.codec import CapabilityDescriptor

HERE = Path(__file__).resolve().parent
BENCH_CAPABILITY = "wascc:bench"
TARGET_RATIO = 1.5

log = logging.getLogger("bench_invoke")

#: One call of one peer: payload in, response out.
Call = Callable[[bytes], bytes]
#: Serves one ``__host_call``: (binding, namespace, operation, payload) -> response.
HostHandler = Callable[[str, str, str, bytes], bytes]

WASCC, PUBLIC_API, FLOOR, EXTISM = "wascc", "wasmtime-py API", "floor (C API)", "extism"
COLUMNS = (WASCC, PUBLIC_API, FLOOR, EXTISM)
HOST_CALL_ROW = "host call 16 B"


# ---- what is measured ------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the table: a payload, the operation, how many calls per repetition."""

    label: str
    size: int
    operation: str
    calls: int


@dataclass(frozen=True)
class Plan:
    rows: tuple[Row, ...]
    repeats: int


def make_plan(quick: bool) -> Plan:
    small, large, repeats = (2_000, 300, 3) if quick else (20_000, 2_000, 7)
    return Plan(
        rows=(
            Row("16 B", 16, "Echo", small),
            Row("1 KiB", 1024, "Echo", small),
            Row("64 KiB", 64 * 1024, "Echo", large),
            Row(HOST_CALL_ROW, 16, "HostEcho", small),
        ),
        repeats=repeats,
    )


def payload_of(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


def wasm_from(wat_file: str) -> bytes:
    return bytes(wasmtime.wat2wasm((HERE / wat_file).read_text()))


def echo_handler(binding: str, namespace: str, operation: str, payload: bytes) -> bytes:
    return payload


# ---- (b) and (c): a minimal waPC host in Python ----------------------------


class WapcCallError(Exception):
    """The guest answered with an error, or broke the protocol."""


def _get(memory: memoryview, ptr: int, length: int) -> bytes:
    if ptr + length > len(memory):
        raise WapcCallError(f"[{ptr}, {ptr + length}) is out of bounds of linear memory")
    return memory[ptr : ptr + length].tobytes()


def _put(memory: memoryview, ptr: int, data: bytes) -> None:
    if ptr + len(data) > len(memory):
        raise WapcCallError(f"[{ptr}, {ptr + len(data)}) is out of bounds of linear memory")
    memory[ptr : ptr + len(data)] = data


class MinimalWapcHost(ABC):
    """The host side of waPC (CONTRACTS section 1), in Python, for one instance.

    Subclasses say how to run ``__guest_call`` and how to find linear memory,
    and hand the import methods below (named after the waPC imports, without
    the leading underscores) to wasmtime.  Memory is reached through a byte
    view that is rebuilt only when the memory's size changes: a wasmtime
    memory moves in the host's address space only when it grows.
    """

    def __init__(self, handler: HostHandler) -> None:
        self.handler = handler
        self._op = self._msg = b""
        self._response: bytes | None = None
        self._error: bytes | None = None
        self._host_response = self._host_error = b""
        self._view = memoryview(b"")

    @abstractmethod
    def guest_call(self, op_len: int, msg_len: int) -> int:
        """Run the guest's ``__guest_call``."""

    @abstractmethod
    def memory_size(self) -> int:
        """The size of linear memory in bytes."""

    @abstractmethod
    def memory_base(self) -> int:
        """The host address of linear memory."""

    def memory(self) -> memoryview:
        """Linear memory as a writable byte view (valid until the guest runs again)."""
        size = self.memory_size()
        if size != len(self._view):
            array = (ctypes.c_ubyte * size).from_address(self.memory_base())
            self._view = memoryview(array).cast("B")
        return self._view

    def call(self, operation: bytes, msg: bytes) -> bytes:
        """One waPC call: the guest's response, or a WapcCallError."""
        self._op, self._msg = operation, msg
        self._response = self._error = None
        self._host_response = self._host_error = b""
        ok = self.guest_call(len(operation), len(msg))
        if ok and self._response is not None:
            return self._response
        if not ok and self._error is None:
            raise WapcCallError("no error message set")
        raise WapcCallError((self._error or b"no response set").decode("utf-8", "replace"))

    # The waPC imports.

    def guest_request(self, op_ptr: int, ptr: int) -> None:
        memory = self.memory()
        _put(memory, op_ptr, self._op)
        _put(memory, ptr, self._msg)

    def guest_response(self, ptr: int, length: int) -> None:
        self._response = _get(self.memory(), ptr, length)

    def guest_error(self, ptr: int, length: int) -> None:
        self._error = _get(self.memory(), ptr, length)

    def host_call(
        self,
        bd_ptr: int,
        bd_len: int,
        ns_ptr: int,
        ns_len: int,
        op_ptr: int,
        op_len: int,
        ptr: int,
        length: int,
    ) -> int:
        self._host_response = self._host_error = b""
        memory = self.memory()
        binding = _get(memory, bd_ptr, bd_len).decode()
        namespace = _get(memory, ns_ptr, ns_len).decode()
        operation = _get(memory, op_ptr, op_len).decode()
        payload = _get(memory, ptr, length)
        try:
            self._host_response = self.handler(binding, namespace, operation, payload)
        except Exception as exc:
            self._host_error = (str(exc) or type(exc).__name__).encode()
            return 0
        return 1

    def host_response_len(self) -> int:
        return len(self._host_response)

    def host_response(self, ptr: int) -> None:
        _put(self.memory(), ptr, self._host_response)

    def host_error_len(self) -> int:
        return len(self._host_error)

    def host_error(self, ptr: int) -> None:
        _put(self.memory(), ptr, self._host_error)

    def console_log(self, ptr: int, length: int) -> None:
        log.info("guest: %s", _get(self.memory(), ptr, length).decode("utf-8", "replace"))

    def imports(self) -> Iterator[tuple[str, Callable[..., Any], wasmtime.FuncType]]:
        """(import name, method, type) for every waPC import."""
        i32 = wasmtime.ValType.i32()
        for name, (params, results) in WAPC_IMPORTS.items():
            method = getattr(self, name.removeprefix("__"))
            yield name, method, wasmtime.FuncType([i32] * params, [i32] * results)


def _instantiate(
    linker: wasmtime.Linker, store: wasmtime.Store, module: wasmtime.Module
) -> tuple[wasmtime.Memory, wasmtime.Func]:
    """Instantiate a waPC module; its memory and its ``__guest_call``."""
    exports = linker.instantiate(store, module).exports(store)
    memory, func = exports["memory"], exports["__guest_call"]
    if not isinstance(memory, wasmtime.Memory) or not isinstance(func, wasmtime.Func):
        raise WapcCallError("the module does not export memory and __guest_call")
    return memory, func


class PublicApiHost(MinimalWapcHost):
    """(b): the minimal host over wasmtime-py's public API."""

    def __init__(self, engine: wasmtime.Engine, module: wasmtime.Module, handler: HostHandler):
        super().__init__(handler)
        self.store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        for name, method, ty in self.imports():
            linker.define_func("wapc", name, ty, method)
        self._memory, self._func = _instantiate(linker, self.store, module)

    def guest_call(self, op_len: int, msg_len: int) -> int:
        return int(self._func(self.store, op_len, msg_len))

    def memory_size(self) -> int:
        return self._memory.data_len(self.store)

    def memory_base(self) -> int:
        return ctypes.addressof(self._memory.data_ptr(self.store).contents)


class FloorHost(MinimalWapcHost):
    """(c): the minimal host over wasmtime's unchecked C API, through ctypes.

    Engine, Store, Linker and Module are wasmtime-py objects; every import is
    defined on the linker's pointer with ``wasmtime_linker_define_func_unchecked``
    and reads its i32 arguments from the ``wasmtime_val_raw_t`` array; memory
    is found with ``wasmtime_memory_data(_size)`` on the store's context (as
    wascc's C shim does); the guest runs through ``wasmtime_func_call_unchecked``.
    """

    def __init__(self, engine: wasmtime.Engine, module: wasmtime.Module, handler: HostHandler):
        super().__init__(handler)
        self.store = wasmtime.Store(engine)
        self._ctx = self.store._context()
        linker = wasmtime.Linker(engine)
        # ctypes frees a callback's thunk when its object dies: keep them.
        self._callbacks = [_define_unchecked(linker, *spec) for spec in self.imports()]
        memory, func = _instantiate(linker, self.store, module)
        self._memory_ref = ctypes.byref(memory._memory)
        self._func_ref = ctypes.byref(func._func)
        self._args = (capi.wasmtime_val_raw_t * 2)()
        self._trap = ctypes.POINTER(capi.wasm_trap_t)()
        self._trap_ref = ctypes.byref(self._trap)

    def guest_call(self, op_len: int, msg_len: int) -> int:
        args = self._args
        args[0].i32, args[1].i32 = op_len, msg_len
        err = _func_call_unchecked(self._ctx, self._func_ref, args, 2, self._trap_ref)
        if err:
            raise wasmtime.WasmtimeError._from_ptr(err)
        if self._trap:
            trap = wasmtime.Trap._from_ptr(self._trap)
            self._trap = ctypes.POINTER(capi.wasm_trap_t)()
            self._trap_ref = ctypes.byref(self._trap)
            raise trap
        return int(args[0].i32)

    def memory_size(self) -> int:
        return int(_memory_data_size(self._ctx, self._memory_ref))

    def memory_base(self) -> int:
        return ctypes.addressof(capi.wasmtime_memory_data(self._ctx, self._memory_ref).contents)


# The floor's hot path calls the C functions without wasmtime-py's Python wrappers.
_func_call_unchecked = capi._wasmtime_func_call_unchecked
_memory_data_size = capi._wasmtime_memory_data_size
_NO_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))
_ARG_INDEXES = tuple(tuple(range(n)) for n in range(9))


def _define_unchecked(
    linker: wasmtime.Linker, name: str, method: Callable[..., Any], ty: wasmtime.FuncType
) -> Any:
    """Define wapc.``name`` as an unchecked function calling ``method``; the ctypes callback."""
    callback = capi.wasmtime_func_unchecked_callback_t(
        _unchecked(method, len(ty.params), len(ty.results))
    )
    module_name, func_name = b"wapc", name.encode()
    err = capi.wasmtime_linker_define_func_unchecked(
        linker.ptr(),
        module_name,
        len(module_name),
        func_name,
        len(func_name),
        ty.ptr(),
        callback,
        None,
        _NO_FINALIZER,
    )
    if err:
        raise wasmtime.WasmtimeError._from_ptr(err)
    return callback


def _unchecked(method: Callable[..., Any], params: int, results: int) -> Callable[..., int]:
    """``method`` as an unchecked callback: i32 arguments in, an optional i32 result out.

    An exception becomes a trap: a ctypes callback must not raise.
    """
    indexes = _ARG_INDEXES[params]

    def callback(env: Any, caller: Any, args: Any, nargs: int) -> int:
        try:
            result = method(*[args[i].i32 for i in indexes])
            if results:
                args[0].i64 = result
        except Exception as exc:
            text = f"host function failed: {exc}".encode()
            trap = capi.wasmtime_trap_new(text, len(text))
            return ctypes.cast(trap, ctypes.c_void_p).value or 0
        return 0

    return callback


# ---- the peers ----------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """One implementation: how it echoes, and how it does the host-call round trip."""

    column: str
    echo: Call
    host_echo: Call | None

    def for_operation(self, operation: str) -> Call | None:
        return self.echo if operation == "Echo" else self.host_echo


class BenchProvider(CapabilityProvider):
    """The ``wascc:bench`` capability: echoes whatever an actor sends."""

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(id=BENCH_CAPABILITY, name="bench")

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        return msg


def wascc_peer(host: Host, account: KeyPair, wasm: bytes) -> Peer:
    signed = sign_module(
        wasm,
        issuer=account,
        subject=KeyPair.generate(KeyType.MODULE),
        name="echo",
        caps=[BENCH_CAPABILITY],
    )
    key = host.add_actor(signed)
    host.add_provider(BenchProvider())
    host.set_binding(key, BENCH_CAPABILITY)
    return Peer(
        WASCC,
        functools.partial(host.call_actor, key, "Echo"),
        functools.partial(host.call_actor, key, "HostEcho"),
    )


def minimal_peer(column: str, host: MinimalWapcHost) -> Peer:
    return Peer(
        column,
        functools.partial(host.call, b"Echo"),
        functools.partial(host.call, b"HostEcho"),
    )


def extism_peer(wasm: bytes) -> Peer:
    plugin = extism.Plugin(wasm, wasi=False)
    return Peer(EXTISM, functools.partial(plugin.call, "echo"), None)


def make_peers(host: Host, account: KeyPair) -> list[Peer]:
    actor = wasm_from("echo_actor.wat")
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, actor)
    return [
        wascc_peer(host, account, actor),
        minimal_peer(PUBLIC_API, PublicApiHost(engine, module, echo_handler)),
        minimal_peer(FLOOR, FloorHost(engine, module, echo_handler)),
        extism_peer(wasm_from("extism_echo.wat")),
    ]


# ---- timing ------------------------------------------------------------------

#: Microseconds per call, by row label and column (None: the peer has no such call).
Table = dict[str, dict[str, float | None]]

#: Payload sizes every peer is checked at, besides the rows' own: empty, and
#: lengths that are not multiples of 8 (extism_echo copies 8 bytes at a time).
CHECK_SIZES = (0, 13, 1031)


@contextmanager
def no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def us_per_call(call: Call, payload: bytes, calls: int) -> float:
    with no_gc():
        start = time.perf_counter()
        for _ in itertools.repeat(None, calls):
            call(payload)
        elapsed = time.perf_counter() - start
    return elapsed / calls * 1e6


def verify(column: str, call: Call, payload: bytes) -> None:
    response = call(payload)
    if response != payload:
        raise AssertionError(
            f"{column} answered {len(response)} bytes that are not the {len(payload)}-byte payload"
        )


def verify_peers(peers: list[Peer], plan: Plan) -> None:
    """Every call of every peer echoes correctly, at every size that will be timed."""
    sizes = sorted({*CHECK_SIZES, *(row.size for row in plan.rows)})
    for peer in peers:
        for call in filter(None, (peer.echo, peer.host_echo)):
            for size in sizes:
                verify(peer.column, call, payload_of(size))


def measure(calls: dict[str, Call], row: Row, repeats: int) -> dict[str, float]:
    """Best us/call of each peer, timed in interleaved repetitions after a warm-up."""
    payload = payload_of(row.size)
    for call in calls.values():
        us_per_call(call, payload, max(row.calls // 10, 10))
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats):
        for column, call in calls.items():
            best[column] = min(best[column], us_per_call(call, payload, row.calls))
    return best


def run(peers: list[Peer], plan: Plan, progress: bool) -> Table:
    table: Table = {}
    for row in plan.rows:
        calls = {p.column: c for p in peers if (c := p.for_operation(row.operation))}
        if progress:
            print(f"timing {row.label}: {plan.repeats} x {row.calls} calls", file=sys.stderr)
        best = measure(calls, row, plan.repeats)
        table[row.label] = {column: best.get(column) for column in COLUMNS}
    return table


# ---- report ------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """wascc/floor and wascc/extism per row, and whether the targets are met."""

    ratios: dict[str, dict[str, float]]
    within_floor: bool
    faster_than_extism: bool
    host_call_within_floor: bool


def ratio(table: Table, row: str, num: str, den: str) -> float:
    a, b = table[row][num], table[row][den]
    assert a is not None and b is not None
    return a / b


def judge(table: Table) -> Verdict:
    sizes = [row for row in table if row != HOST_CALL_ROW]
    ratios = {
        row: {"wascc/floor": ratio(table, row, WASCC, FLOOR)}
        | ({} if row == HOST_CALL_ROW else {"wascc/extism": ratio(table, row, WASCC, EXTISM)})
        for row in table
    }
    return Verdict(
        ratios=ratios,
        within_floor=all(ratios[row]["wascc/floor"] <= TARGET_RATIO for row in sizes),
        faster_than_extism=all(ratios[row]["wascc/extism"] < 1.0 for row in sizes),
        host_call_within_floor=ratios[HOST_CALL_ROW]["wascc/floor"] <= TARGET_RATIO,
    )


def environment() -> dict[str, str]:
    return {
        "wascc": wascc.__version__,
        "wasmtime-py": version("wasmtime"),
        "extism": version("extism"),
        "python": sys.version.split()[0],
        "executable": sys.executable,
    }


def print_columns(first: str, cells: list[str]) -> None:
    print(first.ljust(16) + "".join(c.rjust(20) for c in cells))


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_report(table: Table, verdict: Verdict, plan: Plan) -> None:
    print(", ".join(f"{k} {v}" for k, v in environment().items() if k != "executable"))
    print(f"microseconds per call, best of {plan.repeats} repetitions\n")
    print_columns(
        "payload", ["(a) wascc", "(b) wasmtime-py API", "(c) floor (C API)", "(d) extism"]
    )
    for label, values in table.items():
        print_columns(label, [cell(values[c]) for c in COLUMNS])
    print("\n(host call row: (a) is (e), the wascc actor -> provider -> actor round trip)\n")
    print_columns("ratio", ["(a)/(c)", "(a)/(d)"])
    for label, r in verdict.ratios.items():
        print_columns(label, [cell(r["wascc/floor"]), cell(r.get("wascc/extism"))])
    print()
    for met, text in (
        (verdict.within_floor, f"(a) within {TARGET_RATIO}x of the floor at every size"),
        (verdict.faster_than_extism, "(a) faster than Extism at every size"),
        (
            verdict.host_call_within_floor,
            f"(e) within {TARGET_RATIO}x of the floor's host-call round trip",
        ),
    ):
        print(f"[{'met' if met else 'MISSED'}] {text}")


def print_json(table: Table, verdict: Verdict, plan: Plan) -> None:
    report = {
        "environment": environment(),
        "repeats": plan.repeats,
        "calls_per_repeat": {row.label: row.calls for row in plan.rows},
        "us_per_call": table,
        **asdict(verdict),
    }
    print(json.dumps(report, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    plan = make_plan(args.quick)
    account = KeyPair.generate(KeyType.ACCOUNT)
    with Host(
        trusted_issuers=[account.public_key], health_interval=0, load_entry_points=False
    ) as host:
        peers = make_peers(host, account)
        verify_peers(peers, plan)
        table = run(peers, plan, progress=not args.json)
    verdict = judge(table)
    (print_json if args.json else print_report)(table, verdict, plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
