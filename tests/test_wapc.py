"""The waPC runtime: every export the host calls is type-checked, and each
instance's tables, memories and instances count against its limits."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import wasmtime

from wascc import ActorLoadError, ActorTrap, Host, Runtime
from wascc.errors import InstantiateError

from conftest import ROOT

GUEST_CALL = '(func (export "__guest_call") (param i32 i32) (result i32) i32.const 1)'
MEMORY = '(memory (export "memory") 1)'


def _module(*parts: str) -> bytes:
    return bytes(wasmtime.wat2wasm(f"(module {' '.join(parts)})"))


def _in_subprocess(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter: a regression here kills a process, not pytest."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )


WRONG_TYPES = ["(result i32 i32)", "(param i32 i32)", "(param i64)", "(result i32)", "(param i32)"]


@pytest.mark.parametrize("export", ["_start", "wapc_init"])
@pytest.mark.parametrize("signature", WRONG_TYPES)
def test_init_export_with_a_wrong_signature_is_an_actor_load_error(
    export: str, signature: str
) -> None:
    wasm = _module(MEMORY, GUEST_CALL, f'(func (export "{export}") {signature} unreachable)')
    result = _in_subprocess(
        f"""
        from wascc import ActorLoadError, Host
        host = Host(allow_unsigned=True, health_interval=0, load_entry_points=False)
        try:
            host.add_actor({wasm!r})
        except ActorLoadError as exc:
            print("refused:", exc)
        """
    )
    assert result.returncode == 0, f"the host died ({result.returncode}): {result.stderr[-500:]}"
    assert "refused:" in result.stdout
    assert f"exports {export} with the signature" in result.stdout
    assert "the host calls it as () -> ()" in result.stdout


@pytest.mark.parametrize(
    "export, decl, kind",
    [
        ("_start", '(global (export "_start") i32 (i32.const 0))', "global"),
        ("wapc_init", '(table (export "wapc_init") 1 funcref)', "table"),
        ("__guest_call", '(func (export "__guest_call") (param i32) (result i32) i32.const 1)', ""),
    ],
)
def test_called_export_that_is_not_the_right_function_is_refused(
    export: str, decl: str, kind: str
) -> None:
    parts = [MEMORY, decl] if export == "__guest_call" else [MEMORY, GUEST_CALL, decl]
    with pytest.raises(ActorLoadError, match=export) as info:
        Runtime.default().load(_module(*parts), "odd-module")
    assert "odd-module" in str(info.value)
    if kind:
        assert f"as a {kind}, not a function" in str(info.value)
    else:
        assert "(i32) -> (i32)" in str(info.value) and "(i32, i32) -> (i32)" in str(info.value)


@pytest.mark.parametrize(
    "export, signature",
    [("wapc_init", "(param i32 i32)"), ("_start", "(result i32 i32 i32)")],
)
def test_c_layer_checks_export_types_even_when_python_did_not(export: str, signature: str) -> None:
    """Instantiating through the C module directly (no load-time check) fails cleanly."""
    wasm = _module(MEMORY, GUEST_CALL, f'(func (export "{export}") {signature} unreachable)')
    result = _in_subprocess(
        f"""
        import wasmtime
        from wascc.engine.ffi import InstantiateError
        from wascc.engine.runtime import Runtime

        class Port:
            def host_call(self, *args): return b""
            def console_log(self, line): pass

        runtime = Runtime.default()
        module = wasmtime.Module(runtime.engine, {wasm!r})
        pre = runtime._linker(False).prepare(module, "raw")
        try:
            pre.instantiate(Port(), memory_limit=1 << 20, deadline_ticks=1000)
        except InstantiateError as exc:
            print("refused:", exc)
        """
    )
    assert result.returncode == 0, f"the host died ({result.returncode}): {result.stderr[-500:]}"
    assert f"refused: {export} failed: the export is not a function of type () -> ()" in (
        result.stdout
    )


def test_c_layer_checks_the_type_of_guest_call() -> None:
    runtime = Runtime.default()
    three = '(func (export "__guest_call") (param i32 i32 i32) (result i32) i32.const 1)'
    wasm = _module(MEMORY, three)
    pre = runtime._linker(False).prepare(wasmtime.Module(runtime.engine, wasm), "raw")

    class Port:
        def host_call(self, binding: str, namespace: str, operation: str, payload: bytes) -> bytes:
            return b""

        def console_log(self, line: str) -> None:
            pass

    with pytest.raises(InstantiateError, match="__guest_call with a type other than"):
        pre.instantiate(Port(), memory_limit=1 << 20, deadline_ticks=1000)


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


TABLE_GROW = """
(module
  (import "wapc" "__guest_response" (func $respond (param i32 i32)))
  (memory (export "memory") 1)
  (table $t 1 funcref)
  (func (export "__guest_call") (param i32 i32) (result i32)
    ;; answer the 4-byte result of table.grow by 2^27 elements
    (i32.store (i32.const 0) (table.grow $t (ref.null func) (i32.const 134217728)))
    (call $respond (i32.const 0) (i32.const 4))
    i32.const 1))
"""


def test_table_grow_past_the_memory_cap_is_refused_and_rss_stays_flat() -> None:
    host = Host(allow_unsigned=True, health_interval=0, load_entry_points=False)
    try:
        key = host.add_actor(wasmtime.wat2wasm(TABLE_GROW), memory_limit=16 * 2**20)
        before = _rss_mib()
        reply = host.call_actor(key, "Grow")
        after = _rss_mib()
        assert int.from_bytes(reply, "little", signed=True) == -1  # the growth was refused
        assert after - before < 64, f"RSS went from {before:.0f} to {after:.0f} MiB"
    finally:
        host.stop()


@pytest.mark.parametrize(
    "extra, reason",
    [
        ("(table 200000000 funcref)", "table minimum size"),
        (" ".join(["(table 1 funcref)"] * 5), "table count"),
        ("(memory 1)", "memory count"),
    ],
)
def test_module_needing_more_than_its_limits_is_refused_at_load(extra: str, reason: str) -> None:
    host = Host(allow_unsigned=True, health_interval=0, load_entry_points=False)
    try:
        with pytest.raises(ActorLoadError, match=reason):
            host.add_actor(_module(MEMORY, GUEST_CALL, extra), memory_limit=16 * 2**20)
        assert host.actors() == []
    finally:
        host.stop()


def test_tables_within_the_limits_still_load() -> None:
    host = Host(allow_unsigned=True, health_interval=0, load_entry_points=False)
    try:
        tables = " ".join(["(table 1000 funcref)"] * 4)
        key = host.add_actor(_module(MEMORY, GUEST_CALL, tables), memory_limit=1 << 20)
        assert host.actor(key).instances == 1
    finally:
        host.stop()


@pytest.mark.parametrize(
    "start",
    ["(start $spin)", '(export "_start" (func $spin))', '(export "wapc_init" (func $spin))'],
)
def test_start_code_that_loops_is_stopped_at_the_deadline_and_refused(start: str) -> None:
    host = Host(allow_unsigned=True, health_interval=0, load_entry_points=False)
    try:
        wasm = _module(MEMORY, GUEST_CALL, "(func $spin (loop $l (br $l)))", start)
        with pytest.raises(ActorLoadError, match=r"did not finish within the deadline of 0\.1s"):
            host.add_actor(wasm, deadline=0.1)
        assert host.actors() == []
    finally:
        host.stop()


REFERENCE_TYPES_THE_C_API_CANNOT_DESCRIBE = [
    '(func (export "wapc_init") (param exnref))',
    '(func (export "_start") (param anyref))',
    '(type $t (func)) (func (export "odd") (param (ref $t)))',
    '(import "wapc" "__console_log" (func (param anyref i32)))',
    '(func (export "__guest_call") (param i32 i32) (result i32) (local i31ref) i32.const 1)',
]


@pytest.mark.parametrize("decl", REFERENCE_TYPES_THE_C_API_CANNOT_DESCRIBE)
def test_gc_and_exception_reference_types_are_refused_without_aborting(decl: str) -> None:
    """wasmtime's C API aborts the process when asked about these types: never ask."""
    parts = [decl, MEMORY] if decl.startswith("(import") else [MEMORY, decl]
    if "__guest_call" not in decl:
        parts.append(GUEST_CALL)
    wasm = _module(*parts)
    result = _in_subprocess(
        f"""
        from wascc import Host, ModuleError
        host = Host(allow_unsigned=True, health_interval=0, load_entry_points=False)
        try:
            host.add_actor({wasm!r})
        except ModuleError as exc:
            print("refused:", exc)
        """
    )
    assert result.returncode == 0, f"the host died ({result.returncode}): {result.stderr[-500:]}"
    assert "refused:" in result.stdout and "not a valid WebAssembly module" in result.stdout
    assert "not supported" in result.stdout or "required" in result.stdout


POINTER_ARGS = {
    "__guest_request": 2,
    "__guest_response": 2,
    "__guest_error": 2,
    "__host_call": 8,
    "__host_response": 1,
    "__host_error": 1,
    "__console_log": 2,
}


@pytest.mark.parametrize("name", sorted(POINTER_ARGS))
@pytest.mark.parametrize(
    "pointer, length", [(0xFFFFFFF0, 0x20), (0, 0xFFFFFFFF), (65536, 1), (0xFFFFFFFF, 0)]
)
def test_out_of_range_pointers_in_every_import_trap_and_the_host_goes_on(
    name: str, pointer: int, length: int
) -> None:
    nargs = POINTER_ARGS[name]
    args = " ".join(f"(i32.const {pointer if i % 2 == 0 else length})" for i in range(nargs))
    params = " ".join(["i32"] * nargs)
    result = " (result i32)" if name == "__host_call" else ""
    call = f"(call $imp {args})"
    wat = f"""
    (module
      (import "wapc" "{name}" (func $imp (param {params}){result}))
      (import "wapc" "__guest_response" (func $respond (param i32 i32)))
      (memory (export "memory") 1)
      (func (export "__guest_call") (param $op i32) (param $msg i32) (result i32)
        (if (i32.eq (local.get $op) (i32.const 3))  ;; "Bad": the hostile call
          (then {f"(drop {call})" if result else call}))
        (call $respond (i32.const 0) (i32.const 2))
        i32.const 1))
    """
    host = Host(allow_unsigned=True, health_interval=0, load_entry_points=False)
    try:
        key = host.add_actor(wasmtime.wat2wasm(wat))
        if nargs == 1 and pointer <= 65536:
            # nothing to copy (no host call yet): an empty range inside memory is fine
            assert host.call_actor(key, "Bad", b"") == b"\0\0"
        else:
            with pytest.raises(ActorTrap, match=f"{name}: pointer out of bounds of linear memory"):
                host.call_actor(key, "Bad", b"")
        assert host.call_actor(key, "Ok", b"") == b"\0\0"
    finally:
        host.stop()


@pytest.mark.parametrize(
    "decl, outcome",
    [
        ('(import "wapc" "__console_log" (func (param v128 i32)))', "wrong type"),
        ('(func (export "wapc_init") (param v128))', "signature (v128) -> ()"),
        ('(func (export "_start") (result v128) (v128.const i64x2 0 0))', "() -> (v128)"),
        ('(func (export "simd") (param v128) (result v128) local.get 0)', "loaded"),
        ('(global (export "g") v128 (v128.const i64x2 1 2))', "loaded"),
    ],
)
def test_v128_in_a_signature_is_checked_without_aborting(decl: str, outcome: str) -> None:
    """wasmtime's C API aborts when asked the kind of a v128: types come from the binary."""
    parts = [decl, MEMORY, GUEST_CALL] if decl.startswith("(import") else [MEMORY, GUEST_CALL, decl]
    wasm = _module(*parts)
    result = _in_subprocess(
        f"""
        from wascc import ActorLoadError, Host
        host = Host(allow_unsigned=True, health_interval=0, load_entry_points=False)
        try:
            host.add_actor({wasm!r})
            print("loaded")
        except ActorLoadError as exc:
            print("refused:", exc)
        """
    )
    assert result.returncode == 0, f"the host died ({result.returncode}): {result.stderr[-500:]}"
    assert outcome in result.stdout
