"""The data-plane benchmark's C parts: floor.c and the dispatch_bench provider.

No timing is asserted: these check that both build, answer correctly, and
refuse bad input with a message saying what is wrong.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from wascc import Host, ProviderCallError
from wascc._providers import library
from wascc.providers.native import NativeProvider, load_native_provider
from wascc.wire.codec import GetRequest, GetResponse, SetRequest

from conftest import Signer

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_dataplane", BENCHMARKS / "bench_dataplane.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


bench = _load_bench()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("dataplane")
    return bench.build_floor(directory), bench.build_dispatch_bench(directory)


def run_floor(binary: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, timeout=60, check=False
    )


# ---- floor.c -------------------------------------------------------------------


def test_floor_times_echo_and_host_echo_for_both_hosts(built: tuple[Path, Path]) -> None:
    table = bench.run_floor(built[0], calls=200, repeats=1)
    expected = {
        (peer, op, size)
        for peer in ("floor", "wascc-c")
        for op, size in (("Echo", 16), ("Echo", 1024), ("Echo", 65536), ("HostEcho", 16))
    }
    assert set(table) == expected
    assert all(ns > 0 for ns in table.values())


def test_floor_reads_a_compiled_module_too(built: tuple[Path, Path], tmp_path: Path) -> None:
    wasm = tmp_path / "echo.wasm"
    wasm.write_bytes(bench.echo_wasm())
    done = run_floor(built[0], bench.libwasmtime(), str(wasm), "10", "1")
    assert done.returncode == 0, done.stderr
    assert "floor Echo 16 " in done.stdout


def test_floor_names_a_missing_module(built: tuple[Path, Path], tmp_path: Path) -> None:
    missing = tmp_path / "nothing.wat"
    done = run_floor(built[0], bench.libwasmtime(), str(missing))
    assert done.returncode == 1
    assert f"floor: {missing}: No such file or directory" in done.stderr


def test_floor_refuses_text_that_is_not_wat(built: tuple[Path, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad.wat"
    bad.write_text("(module (this is not wat))")
    done = run_floor(built[0], bench.libwasmtime(), str(bad))
    assert done.returncode == 1
    assert done.stderr.startswith(f"floor: {bad}: ")


def test_floor_refuses_a_module_without_guest_call(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    module = tmp_path / "nocall.wat"
    module.write_text('(module (memory (export "memory") 1))')
    done = run_floor(built[0], bench.libwasmtime(), str(module))
    assert done.returncode == 1
    assert "exports no __guest_call" in done.stderr


def test_floor_refuses_a_guest_call_of_another_type(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    module = tmp_path / "wrongtype.wat"
    module.write_text(
        '(module (memory (export "memory") 1) (func (export "__guest_call") (param i32)))'
    )
    done = run_floor(built[0], bench.libwasmtime(), str(module))
    assert done.returncode == 1
    assert "(i32, i32) -> i32" in done.stderr


def test_floor_refuses_counts_that_are_not_positive(built: tuple[Path, Path]) -> None:
    done = run_floor(built[0], bench.libwasmtime(), str(bench.ECHO_WAT), "0")
    assert done.returncode == 1
    assert "CALLS and REPEATS must be positive" in done.stderr


def test_floor_without_arguments_prints_its_usage(built: tuple[Path, Path]) -> None:
    done = run_floor(built[0])
    assert done.returncode == 2
    assert "usage: floor LIBWASMTIME MODULE" in done.stderr


def test_floor_names_a_library_that_is_not_libwasmtime(built: tuple[Path, Path]) -> None:
    done = run_floor(built[0], "/nonexistent/libwasmtime.so", str(bench.ECHO_WAT))
    assert done.returncode == 1
    assert "cannot open libwasmtime at /nonexistent/libwasmtime.so" in done.stderr


# ---- dispatch_bench.c ------------------------------------------------------------


@pytest.fixture
def bench_host(
    built: tuple[Path, Path], host: Host, sign: Signer
) -> Iterator[tuple[NativeProvider, str]]:
    signed, _ = sign(bench.echo_wasm(), caps=[bench.BENCH_CAPABILITY, bench.KEYVALUE], name="echo")
    key = host.add_actor(signed, max_instances=2)
    provider = load_native_provider(built[1])
    keyvalue = load_native_provider(library("keyvalue"))
    host.add_provider(provider)
    host.add_provider(keyvalue)
    host.set_binding(key, bench.BENCH_CAPABILITY)
    host.set_binding(key, bench.KEYVALUE)
    keyvalue.handle_call(key, "Set", SetRequest("k", "v").encode())
    yield provider, key


def test_once_answers_the_actors_reply(bench_host: tuple[NativeProvider, str]) -> None:
    provider, key = bench_host
    assert provider.handle_call("system", "Once", b"Echo " + key.encode() + b"\nhello") == b"hello"


def test_kvget_goes_to_the_native_keyvalue_provider(bench_host: tuple[NativeProvider, str]) -> None:
    provider, key = bench_host
    message = bench.header("KvGet", key) + GetRequest(key="k").encode()
    answer = GetResponse.decode(provider.handle_call("system", "Once", message))
    assert answer == GetResponse(value="v", exists=True)


def test_run_counts_every_dispatch_on_every_thread(bench_host: tuple[NativeProvider, str]) -> None:
    provider, key = bench_host
    run = bench.dispatch_run(provider, key, "Echo", b"x" * 16, threads=2, count=50)
    assert run.calls == 100
    answer = bench.parse_run(provider.handle_call("system", "Run", bench.header(2, 5, "Nope", key)))
    assert answer["ok"] == 0 and answer["bad"] == 0 and answer["err"] == 10  # unknown operation


def test_once_passes_the_actors_error_on(bench_host: tuple[NativeProvider, str]) -> None:
    provider, key = bench_host
    with pytest.raises(ProviderCallError, match="unknown operation"):
        provider.handle_call("system", "Once", bench.header("Nope", key))


@pytest.mark.parametrize(
    ("operation", "message", "error"),
    [
        ("Run", b"1 10 Echo", "must start with one line"),
        ("Run", b"1 10 Echo\n", "cannot read the line '1 10 Echo'"),
        ("Run", b"0 10 Echo M\n", "THREADS is 0; it must be 1 to 64"),
        ("Run", b"65 10 Echo M\n", "THREADS is 65; it must be 1 to 64"),
        ("Run", b"1 0 Echo M\n", "COUNT is 0; it must be at least 1"),
        ("Run", b"1 1 Echo M extra\n", "cannot read the line"),
        ("Once", b"Echo\n", "cannot read the line 'Echo'"),
        ("Once", b"", "must start with one line"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    bench_host: tuple[NativeProvider, str], operation: str, message: bytes, error: str
) -> None:
    provider, _ = bench_host
    with pytest.raises(ProviderCallError, match=error):
        provider.handle_call("system", operation, message)


def test_without_a_dispatcher_it_says_so(built: tuple[Path, Path]) -> None:
    provider = load_native_provider(built[1])  # never added to a host: not configured
    try:
        with pytest.raises(ProviderCallError, match="no dispatcher"):
            provider.handle_call("system", "Once", b"Echo M\n")
    finally:
        provider.stop()
