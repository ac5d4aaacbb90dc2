"""Portable (WASI) providers and the provider directory (drop in, remove, replace)."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import wasmtime

from wascc import GuestError, Host, KeyPair, ProviderCallError, ProviderError
from wascc.providers.native import NativeProvider
from wascc.providers.portable import WasiGrant, load_portable_provider
from wascc.standalone.provider_directory import ProviderDirectory
from wascc.wire.codec import CapabilityDescriptor, Direction, OperationDescriptor, PortableCall

from conftest import ACTORS, NativeBuilder, Signer, call_payload
from providers import RecordingProvider

PORTABLE = "wascc:portable"
NATIVETEST = "wascc:nativetest"


def portable_wasm(*, strict_descriptor: bool = False) -> bytes:
    descriptor = CapabilityDescriptor(
        id=PORTABLE,
        name="portable test provider",
        version="1.0",
        supported_operations=(OperationDescriptor("Poke", Direction.TO_PROVIDER, "pokes"),),
    ).encode()
    wat = (ACTORS / "portable_provider.wat").read_text()
    wat = wat.replace("@DESCRIPTOR@", "".join(f"\\{b:02x}" for b in descriptor))
    wat = wat.replace("@DESCRIPTOR_LEN@", str(len(descriptor)))
    if strict_descriptor:  # refuse an empty GetCapabilityDescriptor, as the originals do
        wat = wat.replace(
            "(global $strict_descriptor i32 (i32.const 0))",
            "(global $strict_descriptor i32 (i32.const 1))",
        )
    return bytes(wasmtime.wat2wasm(wat))


@pytest.fixture
def portable(sign: Signer) -> bytes:
    signed, _ = sign(portable_wasm(), name="portable", provider=True)
    return signed


def test_portable_provider_serves_actors_and_dispatches_back(
    host: Host, sign: Signer, portable: bytes
) -> None:
    provider = load_portable_provider(portable, trusted_issuers=host.trusted_issuers)
    descriptor = host.add_provider(provider)
    assert descriptor.name == "portable test provider"
    signed, module = sign(caps=[PORTABLE], name="user")
    key = host.add_actor(signed)
    host.set_binding(key, PORTABLE)
    envelope = PortableCall.decode(
        host.call_actor(key, "Call", call_payload(PORTABLE, "EchoEnvelope", b"payload"))
    )
    assert envelope == PortableCall(actor=module.public_key, msg=b"payload")
    assert host.call_actor(key, "Call", call_payload(PORTABLE, "Poke")) == b"poked"
    assert host.check_health()[(PORTABLE, "default")].healthy


def test_portable_provider_is_asked_for_its_descriptor_with_a_health_request(
    host: Host, sign: Signer
) -> None:
    signed, _ = sign(portable_wasm(strict_descriptor=True), name="strict", provider=True)
    provider = load_portable_provider(signed, trusted_issuers=host.trusted_issuers)
    assert provider.descriptor_request == bytes.fromhex("81ab706c616365686f6c646572c2")
    # the host asks again, over handle_call, when the provider is added
    assert host.add_provider(provider).id == PORTABLE
    # the strict module really refuses what native providers get
    with pytest.raises(ProviderCallError, match="failed to fill whole buffer"):
        provider.handle_call("system", "GetCapabilityDescriptor", b"")


def test_native_and_python_providers_get_an_empty_descriptor_request(host: Host) -> None:
    seen: list[bytes] = []

    class Recording(RecordingProvider):
        def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
            if operation == "GetCapabilityDescriptor":
                seen.append(msg)
            return super().handle_call(actor, operation, msg)

    host.add_provider(Recording())
    assert seen == [b""]
    assert NativeProvider.descriptor_request == b""


def test_portable_provider_gets_only_the_wasi_access_granted(
    host: Host, sign: Signer, portable: bytes, tmp_path: Path
) -> None:
    bare = load_portable_provider(portable)
    assert bare.handle_call("system", "Prestat", b"") == bytes([8])  # EBADF: no directory
    assert bare.handle_call("system", "EnvCount", b"") == bytes([0])
    granted = load_portable_provider(
        portable, grant=WasiGrant(dirs={str(tmp_path): "/data"}, env={"A": "1", "B": "2"})
    )
    assert granted.handle_call("system", "Prestat", b"") == bytes([0])
    assert granted.handle_call("system", "EnvCount", b"") == bytes([2])
    bare.stop()
    granted.stop()


def test_module_without_provider_claim_is_refused(sign: Signer) -> None:
    signed, _ = sign(portable_wasm(), name="notprov")
    with pytest.raises(ProviderError, match="prov: true"):
        load_portable_provider(signed)


def test_portable_provider_cannot_call_capabilities(host: Host, portable: bytes) -> None:
    provider = load_portable_provider(portable)
    host.add_provider(provider)
    with pytest.raises(Exception, match="Poke"):
        provider.handle_call("system", "Poke", b"")  # "system" is not an actor key


# ---- the provider directory ----------------------------------------------------


@pytest.fixture
def lifecycle_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "lifecycle.log"
    monkeypatch.setenv("WASCC_TEST_LOG", str(log))
    return log


@pytest.fixture
def provider_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "providers"
    directory.mkdir()
    return directory


_started: list[ProviderDirectory] = []


def watch(host: Host, directory: Path, *, interval: float) -> ProviderDirectory:
    """Load every provider in ``directory`` into ``host`` and follow it (stopped after the test)."""
    watcher = ProviderDirectory(host, directory, interval=interval)
    _started.append(watcher)
    watcher.start()
    return watcher


@pytest.fixture(autouse=True)
def _stop_watchers() -> Iterator[None]:
    yield
    while _started:
        _started.pop().stop()


@pytest.fixture
def watched(host: Host, provider_dir: Path) -> Iterator[ProviderDirectory]:
    # a long interval: the tests drive scans themselves, deterministically
    yield watch(host, provider_dir, interval=3600)


def settle(directory: ProviderDirectory) -> None:
    """Two scans: a changed file is loaded once it held still between them."""
    directory.scan()
    directory.scan()


def load_and_bind(
    host: Host,
    sign: Signer,
    watched: ProviderDirectory,
    path: Path,
    library: Path,
    values: dict[str, str] | None = None,
) -> str:
    """Drop ``library`` in as ``path``, let it load, and bind a new actor to it."""
    shutil.copy(library, path)
    settle(watched)
    signed, _ = sign(caps=[NATIVETEST])
    key = host.add_actor(signed)
    host.set_binding(key, NATIVETEST, values=values)
    return key


def capabilities(host: Host) -> set[tuple[str, str]]:
    return {(p.capability_id, p.binding) for p in host.providers()}


def test_providers_present_at_start_are_loaded(
    host: Host, provider_dir: Path, build_native: NativeBuilder, portable: bytes
) -> None:
    shutil.copy(build_native("testprovider"), provider_dir / "libtest.so")
    (provider_dir / "portable.wasm").write_bytes(portable)
    (provider_dir / "README.txt").write_text("not a provider")
    directory = watch(host, provider_dir, interval=3600)
    assert capabilities(host) >= {(NATIVETEST, "default"), (PORTABLE, "default")}
    assert set(directory.loaded) == {provider_dir / "libtest.so", provider_dir / "portable.wasm"}


def test_file_dropped_in_is_loaded_once_it_settles(
    host: Host, watched: ProviderDirectory, provider_dir: Path, build_native: NativeBuilder
) -> None:
    shutil.copy(build_native("testprovider"), provider_dir / "libtest.so")
    watched.scan()
    assert (NATIVETEST, "default") not in capabilities(host)  # seen once, not yet settled
    watched.scan()
    assert (NATIVETEST, "default") in capabilities(host)


def test_sidecar_names_the_binding_and_default_values(
    host: Host,
    sign: Signer,
    watched: ProviderDirectory,
    provider_dir: Path,
    build_native: NativeBuilder,
    lifecycle_log: Path,
) -> None:
    shutil.copy(build_native("testprovider"), provider_dir / "libtest.so")
    (provider_dir / "libtest.so.toml").write_text('binding = "cache"\n[values]\nPORT = "9"\n')
    settle(watched)
    assert (NATIVETEST, "cache") in capabilities(host)
    signed, _ = sign(caps=[NATIVETEST])
    key = host.add_actor(signed)
    host.set_binding(key, NATIVETEST, "cache", values={"EXTRA": "x"})
    payload = call_payload(NATIVETEST, "Echo", b"via cache", binding="cache")
    assert host.call_actor(key, "Call", payload) == b"via cache"


def test_removed_file_stops_its_provider_and_drops_bindings(
    host: Host,
    sign: Signer,
    watched: ProviderDirectory,
    provider_dir: Path,
    build_native: NativeBuilder,
    lifecycle_log: Path,
) -> None:
    path = provider_dir / "libtest.so"
    key = load_and_bind(host, sign, watched, path, build_native("testprovider"))
    path.unlink()
    watched.scan()
    assert (NATIVETEST, "default") not in capabilities(host)
    assert [b for b in host.bindings() if b.capability_id == NATIVETEST] == []
    assert lifecycle_log.read_text().splitlines()[-3:] == [f"remove {key}", "stop", "destroy"]
    with pytest.raises(GuestError, match="no provider is registered"):
        host.call_actor(key, "Call", call_payload(NATIVETEST, "Echo", b"x"))


def test_replaced_file_is_reloaded_and_bindings_are_resent(
    host: Host,
    sign: Signer,
    watched: ProviderDirectory,
    provider_dir: Path,
    build_native: NativeBuilder,
    lifecycle_log: Path,
) -> None:
    path = provider_dir / "libtest.so"
    key = load_and_bind(host, sign, watched, path, build_native("testprovider"), {"K": "V"})
    # overwrite in place, as `cp new.so providers/` does: the loaded copy is private
    shutil.copyfile(build_native("testprovider", "-DVERSION2"), path)
    settle(watched)
    (provider,) = [p for p in host.providers() if p.capability_id == NATIVETEST]
    assert provider.descriptor.version == "0.2" and provider.actors == (key,)
    # the new build is bound first, then the old one is unbound and stopped
    assert lifecycle_log.read_text().splitlines()[-6:] == [
        "create 0.2",
        "configure",
        f"bind {key}",
        f"remove {key}",
        "stop",
        "destroy",
    ]
    assert host.call_actor(key, "Call", call_payload(NATIVETEST, "Echo", b"v2")) == b"v2"


def test_bad_file_is_logged_and_the_rest_still_load(
    host: Host,
    provider_dir: Path,
    build_native: NativeBuilder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (provider_dir / "libbroken.so").write_text("not an ELF file")
    shutil.copy(build_native("testprovider"), provider_dir / "libtest.so")
    with caplog.at_level(logging.ERROR):
        watch(host, provider_dir, interval=3600)
    assert (NATIVETEST, "default") in capabilities(host)
    assert any(
        "libbroken.so" in r.getMessage() and "not a shared object" in r.getMessage()
        for r in caplog.records
    )


def test_bad_sidecar_is_refused_with_the_reason(
    host: Host,
    provider_dir: Path,
    build_native: NativeBuilder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    shutil.copy(build_native("testprovider"), provider_dir / "libtest.so")
    (provider_dir / "libtest.so.toml").write_text('bindng = "typo"\n')
    with caplog.at_level(logging.ERROR):
        watch(host, provider_dir, interval=3600)
    assert (NATIVETEST, "default") not in capabilities(host)
    assert any("unknown keys ['bindng']" in r.getMessage() for r in caplog.records)


def test_watcher_thread_picks_up_changes_on_its_own(
    account: KeyPair, provider_dir: Path, build_native: NativeBuilder
) -> None:
    with Host(
        trusted_issuers=[account.public_key], health_interval=0, load_entry_points=False
    ) as h:
        watch(h, provider_dir, interval=0.05)
        shutil.copy(build_native("testprovider"), provider_dir / "libtest.so")
        deadline = time.monotonic() + 30
        while (NATIVETEST, "default") not in capabilities(h):
            assert time.monotonic() < deadline, "the watcher never loaded the new file"
            time.sleep(0.02)
        (provider_dir / "libtest.so").unlink()
        while (NATIVETEST, "default") in capabilities(h):
            assert time.monotonic() < deadline, "the watcher never unloaded the file"
            time.sleep(0.02)
