"""Actors of older codec eras behind the real wascc:http_server (CONTRACTS section 2).

tests/guests/c/old_codec_actor.c, built with clang for wasm32 twice, reads
requests only as positional arrays (codec 0.5.x) or only as snake_case maps
(unreleased commits), answers anything else with rmp-serde's de-serialization
error, and replies in its own era's form.  The host must learn the form from
that first error (or take it from the binding value ``WASCC_CODEC``), and the
HTTP provider must read each era's reply.
"""

from __future__ import annotations

import http.client
import logging
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from capabilities.http_server import HttpServerProvider
from wascc import BindingError, GuestError, Host, KeyPair, KeyType, hookimpl
from wascc.wire.codec import CODEC_VALUE, HttpRequest
from wascc.wire.invocation import Invocation

from conftest import ROOT, Signer
from providers import TESTING, RecordingProvider

HTTP = "wascc:http_server"
SOURCE = ROOT / "tests" / "guests" / "c" / "old_codec_actor.c"
ERAS = ("array", "snake")


@pytest.fixture(scope="session")
def old_codec_wasm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The actor built for each era (clang --target=wasm32, as tests/test_sdk.py does)."""
    clang = shutil.which("clang")
    if clang is None or shutil.which("wasm-ld") is None:
        pytest.fail("clang and wasm-ld (lld) are needed to build old_codec_actor.c")
    out = tmp_path_factory.mktemp("old-codec")
    built = {}
    for era in ERAS:
        target = out / f"old_codec_{era}.wasm"
        command = [clang, "--target=wasm32", "-nostdlib", "-Oz", "-Wall", "-Wextra", "-Werror"]
        command += [f"-I{ROOT / 'native' / 'include'}", f"-DERA_{era.upper()}"]
        command += ["-Wl,--no-entry", "-Wl,--strip-all", "-o", str(target), str(SOURCE)]
        done = subprocess.run(command, check=False, capture_output=True, text=True)
        assert done.returncode == 0, f"clang could not build {SOURCE.name}:\n{done.stderr}"
        built[era] = Path(target).read_bytes()
    return built


@pytest.fixture
def server(host: Host) -> Iterator[HttpServerProvider]:
    provider = HttpServerProvider()
    host.add_provider(provider)
    yield provider


class Attempts:
    """Middleware counting the invocations that reach actors, by operation."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, bytes]] = []

    @hookimpl
    def wascc_before_invoke(self, invocation: Invocation) -> None:
        if invocation.target.startswith("M"):
            self.seen.append((invocation.operation, invocation.msg))


def _start(
    host: Host, sign: Signer, wasm: bytes, module: KeyPair | None = None, **values: str
) -> str:
    """An old-era actor bound to the HTTP server (PORT 0) with ``values``."""
    signed, _ = sign(wasm, caps=[HTTP, TESTING], name="old", module=module)
    key = host.add_actor(signed)
    host.set_binding(key, HTTP, values={"PORT": "0", **values})
    return key


def _post(server: HttpServerProvider, actor: str, body: bytes = b"hi") -> tuple[int, str, str]:
    address, port = server.address(actor)
    conn = http.client.HTTPConnection(address, port, timeout=30)
    try:
        conn.request("POST", "/items?a=1", body=body)
        response = conn.getresponse()
        return response.status, response.getheader("X-Era") or "", response.read().decode()
    finally:
        conn.close()


def _info(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "wascc.host"
        and r.levelno == logging.INFO
        and "could not read" in r.getMessage()
    ]


@pytest.mark.parametrize("era", ERAS)
def test_http_request_reaches_an_old_era_actor_after_its_first_decode_error(
    host: Host,
    sign: Signer,
    server: HttpServerProvider,
    old_codec_wasm: dict[str, bytes],
    era: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = Attempts()
    host.add_plugin(attempts)
    key = _start(host, sign, old_codec_wasm[era])
    for _ in range(3):
        status, header, body = _post(server, key)
        assert status == 202, body  # the status code from the reply in the era's form
        assert header == era  # the reply in the era's own form was read
        assert body.startswith(f"{era} POST /items?a=1 h=") and body.endswith(" hi")
    learned = _info(caplog)
    assert len(learned) == 1 and key in learned[0]
    assert ("positional arrays" if era == "array" else "snake_case maps") in learned[0]
    # map, (array,) then the era's form once; later requests go straight in that form
    tries = 2 if era == "array" else 3
    assert len(attempts.seen) == tries + 2
    assert [op for op, _ in attempts.seen] == ["HandleRequest"] * (tries + 2)
    assert attempts.seen[-1][1] == attempts.seen[tries - 1][1]
    assert HttpRequest.decode(attempts.seen[-1][1]).body == b"hi"


@pytest.mark.parametrize("era", ERAS)
def test_binding_value_picks_the_request_form(
    host: Host,
    sign: Signer,
    server: HttpServerProvider,
    old_codec_wasm: dict[str, bytes],
    era: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts = Attempts()
    host.add_plugin(attempts)
    key = _start(host, sign, old_codec_wasm[era], **{CODEC_VALUE: era})
    status, header, body = _post(server, key, b"")
    assert (status, header) == (202, era), body
    assert len(attempts.seen) == 1  # no failed first try
    assert _info(caplog) == []


def test_binding_value_that_is_no_codec_form_is_refused(
    host: Host, sign: Signer, server: HttpServerProvider, old_codec_wasm: dict[str, bytes]
) -> None:
    with pytest.raises(BindingError, match=f"{CODEC_VALUE}='yaml'.*map, array, snake"):
        _start(host, sign, old_codec_wasm["array"], **{CODEC_VALUE: "yaml"})


def test_replaced_actor_learns_its_form_again(
    host: Host,
    sign: Signer,
    server: HttpServerProvider,
    old_codec_wasm: dict[str, bytes],
    caplog: pytest.LogCaptureFixture,
) -> None:
    module = KeyPair.generate(KeyType.MODULE)
    key = _start(host, sign, old_codec_wasm["array"], module=module)
    assert _post(server, key)[:2] == (202, "array")
    newer, _ = sign(old_codec_wasm["snake"], caps=[HTTP, TESTING], name="old", module=module)
    host.replace_actor(key, newer)
    assert _post(server, key)[:2] == (202, "snake")
    assert len(_info(caplog)) == 2


def _dispatching(host: Host, sign: Signer, wasm: bytes) -> tuple[str, RecordingProvider]:
    provider = RecordingProvider()
    host.add_provider(provider)
    signed, _ = sign(wasm, caps=[TESTING], name="old")
    key = host.add_actor(signed)
    host.set_binding(key, TESTING)
    return key, provider


def test_operation_without_a_known_request_struct_is_never_retried(
    host: Host, sign: Signer, old_codec_wasm: dict[str, bytes]
) -> None:
    attempts = Attempts()
    host.add_plugin(attempts)
    key, provider = _dispatching(host, sign, old_codec_wasm["array"])
    assert provider.dispatcher is not None
    with pytest.raises(GuestError, match="invalid type: map, expected a sequence"):
        provider.dispatcher.dispatch(key, "Decode", HttpRequest().encode())
    assert len(attempts.seen) == 1


def test_failure_that_is_not_a_decode_error_is_never_retried(
    host: Host, sign: Signer, old_codec_wasm: dict[str, bytes]
) -> None:
    attempts = Attempts()
    host.add_plugin(attempts)
    signed, _ = sign(caps=[TESTING])  # the WAT test actor: no HandleRequest at all
    key = host.add_actor(signed)
    provider = RecordingProvider()
    host.add_provider(provider)
    host.set_binding(key, TESTING)
    assert provider.dispatcher is not None
    with pytest.raises(GuestError, match="unknown operation"):
        provider.dispatcher.dispatch(key, "HandleRequest", HttpRequest().encode())
    assert len(attempts.seen) == 1


def test_request_that_is_not_the_struct_is_not_re_encoded(
    host: Host, sign: Signer, old_codec_wasm: dict[str, bytes]
) -> None:
    attempts = Attempts()
    host.add_plugin(attempts)
    key, provider = _dispatching(host, sign, old_codec_wasm["array"])
    assert provider.dispatcher is not None
    with pytest.raises(GuestError, match="invalid type: string, expected a sequence"):
        provider.dispatcher.dispatch(key, "HandleRequest", b"\xa3not")
    assert len(attempts.seen) == 1


def test_nil_health_answer_of_a_wascc_era_actor_is_healthy(
    host: Host, sign: Signer, old_codec_wasm: dict[str, bytes]
) -> None:
    signed, _ = sign(old_codec_wasm["array"], name="old")
    key = host.add_actor(signed)
    report = host.actor_health(key)
    assert report.healthy, report.message
