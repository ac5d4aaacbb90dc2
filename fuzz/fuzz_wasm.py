"""The wasm loader: mutated modules and hostile WAT through add_actor and a call.

Each case loads its bytes as an (unsigned) actor on one shared host with a
small memory cap and a short deadline, makes one or two calls when it loads,
and removes it.  Hostile modules come from ``generate``: out-of-range
pointers and lengths in every waPC import, exports the host calls with wrong
types (or not functions at all), start sections and init exports that loop,
huge or many memories and tables, deep recursion, table and memory growth.
Every outcome must be the call's answer or a WasccError; the host must stay
up and give the memory back.
"""

from __future__ import annotations

import contextlib
import logging
import random
from pathlib import Path

import wasmtime

from wascc import ActorSettings, Host, InvocationError, ModuleError
from wascc.engine.runtime import WAPC_IMPORTS
from wascc.wire import wasm

from fuzz.engine import INTERESTING, Target

ACTORS = Path(__file__).resolve().parent.parent / "tests" / "actors"
MEMORY_LIMIT = 4 * 1024 * 1024

_host: Host | None = None

IMPORTS = WAPC_IMPORTS
VALTYPES = ("i32", "i64", "f32", "f64")


def setup() -> None:
    global _host
    logging.getLogger("wascc").setLevel(logging.CRITICAL)  # a million refusals is not news
    _host = Host(
        allow_unsigned=True,
        health_interval=0,
        load_entry_points=False,
        actor_settings=ActorSettings(
            deadline=0.02, memory_limit=MEMORY_LIMIT, min_instances=1, max_instances=2
        ),
    )


def teardown() -> None:
    global _host
    if _host is not None:
        _host.stop()
    _host = None


OPERATIONS = ("Echo", "Call", "Version", "GrowOnce", "Fail", "Trap", "Init", "x")


def run(data: bytes) -> None:
    if _host is None:
        setup()
    assert _host is not None
    with contextlib.suppress(ModuleError):
        wasm.interface(data)  # the type reader on unvalidated bytes, on its own
    key = _host.add_actor(data)  # a refusal here is a WasccError: "refused"
    try:
        # a loaded module's calls may fail in any of the ways a call fails
        # (trap, timeout, memory cap, guest error): that is still "ok"
        op = OPERATIONS[len(data) % len(OPERATIONS)]
        with contextlib.suppress(InvocationError):
            _host.call_actor(key, op, data[-16:])
        with contextlib.suppress(InvocationError):
            _host.call_actor(key, "Echo", b"still here")
    finally:
        _host.remove_actor(key)


# ---- hostile modules ----------------------------------------------------------


def _i32(rng: random.Random) -> int:
    value = rng.choice(
        [*INTERESTING, MEMORY_LIMIT, MEMORY_LIMIT - 1, 65535, 65536, rng.randrange(1 << 32)]
    )
    return value & 0xFFFFFFFF


def _signature(rng: random.Random) -> str:
    params = " ".join(rng.choice(VALTYPES) for _ in range(rng.choice((0, 0, 1, 2, 3, 9))))
    results = " ".join(rng.choice(VALTYPES) for _ in range(rng.choice((0, 0, 1, 2, 4))))
    return (f"(param {params})" if params else "") + (f" (result {results})" if results else "")


def _body_for(results: str) -> str:
    """Instructions leaving values of ``results`` on the stack."""
    return " ".join(f"({t}.const 0)" for t in results.split())


def _hostile_calls(rng: random.Random) -> str:
    """Calls into waPC imports with out-of-range pointers and lengths."""
    out = []
    for _ in range(rng.randint(1, 4)):
        name = rng.choice(list(IMPORTS))
        nparams, nresults = IMPORTS[name]
        args = " ".join(f"(i32.const {_i32(rng)})" for _ in range(nparams))
        call = f"(call ${name} {args})"
        out.append(f"(drop {call})" if nresults else call)
    return " ".join(out)


def _module(rng: random.Random) -> str:
    imports = "\n".join(
        f'(import "wapc" "{name}" (func ${name}'
        + (f" (param {' '.join(['i32'] * p)})" if p else "")
        + (" (result i32)" if r else "")
        + "))"
        for name, (p, r) in IMPORTS.items()
    )
    parts = [imports]
    pages = rng.choice((0, 1, 1, 1, 1, 1, 2, 2, 17, 64, 65, 1000, 65536))
    maximum = rng.choice(("", "", f" {pages}", f" {pages + 1}", " 65536"))
    parts.append(f'(memory (export "memory") {pages}{maximum})')
    for _ in range(rng.choice((0,) * 9 + (1, 2))):
        parts.append(f"(memory {rng.choice((0, 1, 100))})")
    tables = rng.choice((0, 1, 1, 1, 1, 2, 4, 5))
    for i in range(tables):
        size = rng.choice((0, 1, 1, 10, 10, 1000, 1000, 16384, 100000, 200_000_000))
        parts.append(f"(table $t{i} {size} funcref)")
    body = []
    kind = rng.randrange(9)
    if kind == 0:
        body.append(_hostile_calls(rng))
    elif kind == 1 and tables:
        n = rng.choice((1, 1000, 1 << 20, 1 << 27, 0xFFFFFFFF))
        body.append(f"(drop (table.grow $t0 (ref.null func) (i32.const {n})))")
    elif kind == 2:
        body.append(f"(drop (memory.grow (i32.const {rng.choice((1, 16, 63, 64, 65536))})))")
    elif kind == 3:
        body.append("(loop $l (br $l))")
    elif kind == 4:
        body.append("(call $recurse)")
    guest_call = f"(func $gc (param i32 i32) (result i32) {' '.join(body)} (i32.const 1))"
    if rng.random() < 0.1:
        sig = _signature(rng)
        results = sig.split("(result ")[1].rstrip(")") if "(result " in sig else ""
        guest_call = f"(func $gc {sig} {_body_for(results)})"
    parts.append(guest_call)
    parts.append('(export "__guest_call" (func $gc))')
    parts.append("(func $recurse (call $recurse))")
    parts.append("(func $spin (loop $l (br $l)))")
    parts.append(f"(func $init {_hostile_calls(rng) if rng.random() < 0.3 else ''})")
    for export in ("_start", "wapc_init"):
        choice = rng.randrange(16)
        if choice == 0:
            sig = _signature(rng)
            results = sig.split("(result ")[1].rstrip(")") if "(result " in sig else ""
            parts.append(f'(func (export "{export}") {sig} {_body_for(results)})')
        elif choice == 1:
            parts.append(f'(global (export "{export}") i32 (i32.const 0))')
        elif choice == 2:
            parts.append(f'(export "{export}" (func $spin))')
        elif choice == 3:
            parts.append(f'(export "{export}" (func $init))')
    start = rng.randrange(10)
    if start == 0:
        parts.append("(start $spin)")
    elif start == 1:
        parts.append("(start $init)")
    return "(module\n" + "\n".join(parts) + ")"


def generate(rng: random.Random) -> bytes:
    text = _module(rng)
    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError:
        return text.encode()  # the text format is refused too: a case of its own


def _seeds() -> list[bytes]:
    seeds = [bytes(wasmtime.wat2wasm((ACTORS / "testactor.wat").read_text()))]
    rng = random.Random(7)
    seeds += [generate(rng) for _ in range(8)]
    return seeds


TARGET = Target(
    name="wasm",
    run=run,
    seeds=_seeds(),
    generate=generate,
    deadline=10.0,
    setup=setup,
    teardown=teardown,
    max_size=1 << 16,
)
