"""Native providers over the C ABI: loading, refusals, lifecycle, failures, dispatch floods."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from wascc import GuestError, Host, InvocationTimeout, KeyPair, ProviderError
from wascc.engine.library import provider_abi_layout
from wascc.errors import ProviderCallError
from wascc.providers.native import NativeProvider, load_native_provider

from conftest import ROOT, NativeBuilder, Signer, call_payload

NATIVETEST = "wascc:nativetest"


@pytest.fixture
def lifecycle_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "lifecycle.log"
    monkeypatch.setenv("WASCC_TEST_LOG", str(log))
    return log


def events(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def bound_actor(host: Host, sign: Signer, provider: NativeProvider, **settings: object) -> str:
    host.add_provider(provider)
    signed, _ = sign(caps=[NATIVETEST], name="native-user")
    key = host.add_actor(signed, **settings)
    host.set_binding(key, NATIVETEST)
    return key


def test_cffi_declarations_match_the_header_compiled_by_gcc(tmp_path: Path) -> None:
    """An independent C program reports the header's layout; cffi must agree."""
    layout = provider_abi_layout()
    lines = []
    for name in layout:
        if name.startswith("sizeof "):
            lines.append(f'printf("{name} %zu\\n", sizeof({name[7:]}));')
        elif "." in name:
            struct, field = name.split(".")
            lines.append(f'printf("{name} %zu\\n", offsetof({struct}, {field}));')
        else:
            lines.append(f'printf("{name} %d\\n", {name});')
    source = tmp_path / "layout.c"
    source.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <wascc/provider.h>\n"
        "int main(void) {\n" + "\n".join(lines) + "\nreturn 0;\n}\n"
    )
    exe = tmp_path / "layout"
    subprocess.run(
        ["gcc", f"-I{ROOT / 'native' / 'include'}", "-o", str(exe), str(source)], check=True
    )
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    from_c = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in out.splitlines()}
    assert from_c == layout


@pytest.mark.parametrize(
    "defines, reason",
    [
        (("-DRETURN_NULL",), "returned NULL"),
        (("-DBAD_ABI",), "ABI version 99; this host speaks version 1"),
        (("-DNO_ENTRY",), "does not export __capability_provider_create"),
        (("-DNULL_FN",), "NULL function pointer"),
        (("-DGARBAGE_DESCRIPTOR",), "did not describe itself"),
    ],
)
def test_refused_libraries_name_the_file_and_the_reason(
    host: Host, build_native: NativeBuilder, defines: tuple[str, ...], reason: str
) -> None:
    path = build_native("testprovider", *defines)
    with pytest.raises(ProviderError, match=reason) as info:
        load_native_provider(path)
    assert path.name in str(info.value)
    # the host goes on: a good provider still loads
    host.add_provider(load_native_provider(build_native("testprovider")))
    assert NATIVETEST in {p.capability_id for p in host.providers()}


def test_a_file_that_is_not_a_shared_object_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "libfake.so"
    fake.write_text("#!/bin/sh\necho not a library\n")
    with pytest.raises(ProviderError, match="is not a shared object"):
        load_native_provider(fake)
    with pytest.raises(ProviderError, match="does not exist"):
        load_native_provider(tmp_path / "missing.so")


def test_lifecycle_runs_in_order_and_stop_then_destroy_on_removal(
    host: Host, sign: Signer, build_native: NativeBuilder, lifecycle_log: Path
) -> None:
    key = bound_actor(host, sign, load_native_provider(build_native("testprovider")))
    host.set_binding(key, NATIVETEST)  # BindActor twice: idempotent
    host.remove_binding(key, NATIVETEST)
    host.remove_binding(key, NATIVETEST)  # not bound any more: no second RemoveActor
    host.set_binding(key, NATIVETEST)
    host.remove_provider(NATIVETEST)
    assert events(lifecycle_log) == [
        "create 0.1",
        "configure",
        f"bind {key}",
        f"bind {key}",
        f"remove {key}",
        f"bind {key}",
        f"remove {key}",
        "stop",
        "destroy",
    ]


def test_remove_actor_twice_at_the_abi_level_succeeds(
    build_native: NativeBuilder, lifecycle_log: Path
) -> None:
    provider = load_native_provider(build_native("testprovider"))
    config = b"\x82\xa6module\xa4MKEY\xa6values\x80"
    assert provider.handle_call("system", "RemoveActor", config) == b""
    assert provider.handle_call("system", "RemoveActor", config) == b""
    assert provider.handle_call("system", "BindActor", config) == b""
    assert provider.handle_call("system", "BindActor", config) == b""
    provider.stop()
    provider.stop()  # idempotent: destroy runs once
    assert events(lifecycle_log).count("destroy") == 1


def test_host_shutdown_stops_and_destroys_native_providers(
    account: KeyPair, sign: Signer, build_native: NativeBuilder, lifecycle_log: Path
) -> None:
    with Host(
        trusted_issuers=[account.public_key], health_interval=0, load_entry_points=False
    ) as h:
        key = bound_actor(h, sign, load_native_provider(build_native("testprovider")))
    assert events(lifecycle_log)[-3:] == [f"remove {key}", "stop", "destroy"]


def test_actor_gets_the_native_providers_reply_and_error(
    host: Host, sign: Signer, build_native: NativeBuilder
) -> None:
    key = bound_actor(host, sign, load_native_provider(build_native("testprovider")))
    payload = bytes(range(256)) * 40
    assert host.call_actor(key, "Call", call_payload(NATIVETEST, "Echo", payload)) == payload
    with pytest.raises(GuestError, match="failed on purpose: nope"):
        host.call_actor(key, "Call", call_payload(NATIVETEST, "Fail", b"nope"))
    assert host.call_actor(key, "Call", call_payload(NATIVETEST, "Echo", b"after")) == b"after"


def test_garbage_reply_reaches_the_actor_as_bytes_and_is_refused_where_decoded(
    host: Host, sign: Signer, build_native: NativeBuilder
) -> None:
    provider = load_native_provider(build_native("testprovider"))
    key = bound_actor(host, sign, provider)
    # the host passes replies through untouched: the actor decides what they mean
    assert host.call_actor(key, "Call", call_payload(NATIVETEST, "Garbage")) == b"\xc1\xc1\xc1"
    # where the host itself decodes a reply, garbage is an error, not a crash
    with pytest.raises(ProviderCallError, match="no operation Nope"):
        provider.handle_call(key, "Nope", b"")


def test_provider_blocking_past_the_deadline_fails_that_call_only(
    host: Host, sign: Signer, build_native: NativeBuilder
) -> None:
    key = bound_actor(host, sign, load_native_provider(build_native("testprovider")), deadline=0.3)
    signed, _ = sign(name="bystander")
    other = host.add_actor(signed)
    failures: list[BaseException] = []

    def blocked() -> None:
        try:
            host.call_actor(key, "Call", call_payload(NATIVETEST, "Block", b"800"))
        except BaseException as exc:
            failures.append(exc)

    worker = threading.Thread(target=blocked)
    worker.start()
    served = 0
    while worker.is_alive():
        assert host.call_actor(other, "Echo", b"meanwhile") == b"meanwhile"
        served += 1
    worker.join()
    assert served > 0
    assert len(failures) == 1 and isinstance(failures[0], InvocationTimeout)
    assert host.call_actor(key, "Call", call_payload(NATIVETEST, "Echo", b"ok")) == b"ok"


def test_unhealthy_native_provider_is_removed_and_the_host_goes_on(
    fast_host: Host, sign: Signer, build_native: NativeBuilder, lifecycle_log: Path
) -> None:
    key = bound_actor(
        fast_host, sign, load_native_provider(build_native("testprovider", "-DUNHEALTHY"))
    )
    report = fast_host.check_health()[(NATIVETEST, "default")]
    assert not report.healthy and report.message == "unhealthy on purpose"
    assert NATIVETEST not in {p.capability_id for p in fast_host.providers()}
    assert events(lifecycle_log)[-3:] == [f"remove {key}", "stop", "destroy"]
    assert fast_host.call_actor(key, "Echo", b"still") == b"still"


def test_same_library_under_two_bindings_makes_two_providers(
    host: Host, build_native: NativeBuilder, lifecycle_log: Path
) -> None:
    path = build_native("testprovider")
    host.add_provider(load_native_provider(path), binding="one")
    host.add_provider(load_native_provider(path), binding="two")
    assert events(lifecycle_log).count("create 0.1") == 2
    assert {(p.capability_id, p.binding) for p in host.providers()} >= {
        (NATIVETEST, "one"),
        (NATIVETEST, "two"),
    }


@pytest.mark.slow
def test_eight_provider_threads_ten_thousand_dispatches_each_all_matched(
    host: Host, sign: Signer, build_native: NativeBuilder
) -> None:
    provider = load_native_provider(build_native("testprovider"))
    key = bound_actor(host, sign, provider, max_instances=8)
    started = time.monotonic()
    result = provider.handle_call("system", "Flood", b"8 10000")
    elapsed = time.monotonic() - started
    assert result == b"ok=80000 bad=0 err=0"
    assert host.actor(key).calls >= 80000
    print(f"80,000 dispatches from 8 provider threads in {elapsed:.2f}s")


def test_dispatch_to_an_unbound_actor_is_refused_to_the_provider(
    host: Host, sign: Signer, build_native: NativeBuilder
) -> None:
    provider = load_native_provider(build_native("testprovider"))
    key = bound_actor(host, sign, provider)
    signed, stranger = sign(name="stranger", caps=[NATIVETEST])
    host.add_actor(signed)  # running, but not bound to this provider
    target = stranger.public_key.encode()
    assert provider.handle_call("system", "Flood", b"2 5 " + target) == b"ok=0 bad=0 err=10"
    assert provider.handle_call("system", "Flood", b"2 5 " + key.encode()) == (b"ok=10 bad=0 err=0")
    host.remove_binding(key, NATIVETEST)
    assert provider.handle_call("system", "Flood", b"1 3 " + key.encode()) == b"ok=0 bad=0 err=3"


def test_calls_after_stop_are_refused_and_destroy_waits_for_calls_in_flight(
    build_native: NativeBuilder, lifecycle_log: Path
) -> None:
    provider = load_native_provider(build_native("testprovider"))
    results: list[bytes] = []
    worker = threading.Thread(
        target=lambda: results.append(provider.handle_call("M" * 56, "Block", b"300"))
    )
    worker.start()
    while provider._lib.in_flight == 0:  # wait until the call is inside the provider
        time.sleep(0.001)
    provider.stop()  # must not destroy under the running call
    worker.join()
    assert results == [b"done"]
    assert events(lifecycle_log)[-2:] == ["stop", "destroy"]
    with pytest.raises(ProviderCallError, match="has been stopped"):
        provider.handle_call("M" * 56, "Echo", b"late")


def test_a_reply_the_host_cannot_copy_is_a_failure_not_an_empty_success() -> None:
    from wascc.engine.ffi import _ffi, _lib

    reply = _ffi.new("wh_reply *")
    # a length no malloc can satisfy (the data is never read when the copy fails)
    assert _lib.wh_reply_set(reply, b"x", 2**62) == -1
    text = _ffi.buffer(reply.data, reply.len)[:]
    assert text.startswith(b"host out of memory")
    _lib.wh_free(_ffi.cast("char *", reply.data))
    assert _lib.wh_reply_set(reply, b"fine", 4) == 0
    assert _ffi.buffer(reply.data, reply.len)[:] == b"fine"
    _lib.wh_free(_ffi.cast("char *", reply.data))
