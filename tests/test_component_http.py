"""A WASI 0.2 component exporting wasi:http/incoming-handler, served by wascc:http_server.

The component is ``tests/components/http_echo.wat`` (compiled by wasmtime's
parser): it answers 200 with ``x-wascc-component: http-echo`` and the body
``"<METHOD> <path-with-query>\\n"`` followed by the request body, and
misbehaves on purpose on ``/trap``, ``/noresponse``, ``/error``,
``/unfinished`` and ``/loop``; ``tests/components/http_probe.wat`` runs one
scenario of the host's ``wasi:http/types`` per path.  Requests go through a
real ``wascc:http_server`` on 127.0.0.1 (the Python server, and the native
one when it is built) or straight through :meth:`Host.call_actor` to read
the exact error.
"""

from __future__ import annotations

import http.client
import importlib
import importlib.util
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from wascc_capabilities.http_server import HttpServerProvider

from wascc import (
    ActorLoadError,
    ActorTrap,
    BindingError,
    CapabilityProvider,
    GuestError,
    HashMismatch,
    Host,
    InvocationTimeout,
    KeyPair,
    KeyType,
    MissingClaims,
)
from wascc.engine import wit_http
from wascc.wire.codec import HttpRequest, HttpResponse

from conftest import Signer

HTTP = "wascc:http_server"
COMPONENTS = Path(__file__).parent / "components"
Address = tuple[str, int]


@pytest.fixture(scope="module")
def echo_wasm() -> bytes:
    return wasmtime.wat2wasm((COMPONENTS / "http_echo.wat").read_text())


def _native_server() -> CapabilityProvider:
    if importlib.util.find_spec("wascc_capabilities.http_server.native") is None:
        pytest.skip("the native http_server is not in this tree")
    native = importlib.import_module("wascc_capabilities.http_server.native")

    if native.native_library() is None:
        pytest.skip("the native http_server is not built")
    server: CapabilityProvider = native.NativeHttpServerProvider()
    return server


@pytest.fixture(params=["python", "native"])
def server(request: pytest.FixtureRequest, host: Host) -> CapabilityProvider:
    provider = HttpServerProvider() if request.param == "python" else _native_server()
    host.add_provider(provider)
    return provider


@pytest.fixture
def component(host: Host, sign: Signer, echo_wasm: bytes) -> str:
    signed, _ = sign(echo_wasm, caps=[HTTP], name="http_echo")
    return host.add_actor(signed)


@pytest.fixture
def served(host: Host, server: Any, component: str) -> Address:
    host.set_binding(component, HTTP, values={"PORT": "0"})
    address: Address = server.address(component)
    return address


def fetch(
    address: Address, method: str = "GET", path: str = "/", body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        conn.request(method, path, body=body)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def handle(host: Host, key: str, **request: Any) -> HttpResponse:
    """HandleRequest straight into the component, as the provider sends it."""
    return HttpResponse.decode(
        host.call_actor(key, "HandleRequest", HttpRequest(**request).encode())
    )


# ---- answering through wascc:http_server -------------------------------------------------


def test_component_answers_through_the_http_server(served: Address) -> None:
    status, headers, body = fetch(served, "GET", "/hello?name=wascc")
    assert status == 200
    assert headers["x-wascc-component"] == "http-echo"
    assert body == b"GET /hello?name=wascc\n"


def test_request_body_round_trip(served: Address) -> None:
    payload = bytes(range(256)) * 600  # 150 KiB, not UTF-8: read in several chunks
    status, headers, body = fetch(served, "POST", "/upload", payload)
    assert status == 200
    assert body == b"POST /upload\n" + payload
    assert headers["content-length"] == str(len(body))


def test_methods_reach_the_component_as_wit_variants(host: Host, component: str) -> None:
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"):
        assert handle(host, component, method=method, path="/m").body == f"{method} /m\n".encode()
    assert handle(host, component, method="PURGE", path="/m").body == b"PURGE /m\n"  # other(...)


def test_response_carries_status_header_and_reason(host: Host, component: str) -> None:
    reply = handle(host, component, method="GET", path="/p", query_string="a=1&b=2")
    assert (reply.status_code, reply.status) == (200, "OK")
    assert reply.header == {"x-wascc-component": "http-echo"}
    assert reply.body == b"GET /p?a=1&b=2\n"


def test_concurrent_requests_keep_their_own_state(host: Host, component: str) -> None:
    """Per-call state is per store: eight threads, four instances, every body its own."""

    def one(i: int) -> bytes:
        body = f"request {i} ".encode() * (i + 1)
        return handle(host, component, method="POST", path=f"/{i}", body=body).body

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(64)))
    for i, answer in enumerate(answers):
        assert answer == f"POST /{i}\n".encode() + f"request {i} ".encode() * (i + 1)
    assert not wit_http.calls_in_progress()  # nothing left behind


def test_refusals_and_traps_reach_their_own_callers(
    host: Host, sign: Signer, component: str
) -> None:
    """A host function's exception is parked per thread, not in wasmtime-py's one slot.

    Threads mix an unbound keyvalue call (NotBound, raised inside a host
    function of the kvcounter component) with traps of the HTTP component:
    every caller gets its own error, never the other's or a bare wasmtime one.
    """
    kv_wasm = wasmtime.wat2wasm((COMPONENTS / "kvcounter.wat").read_text())
    counter = host.add_actor(sign(kv_wasm, caps=["wascc:keyvalue"], name="kvc")[0])

    def one(i: int) -> str:
        try:
            if i % 2:
                host.call_actor(counter, "Count", b"k")
            else:
                handle(host, component, path="/trap")
        except BaseException as exc:
            return type(exc).__name__
        return "answered"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(one, range(200)))
    assert outcomes == ["ActorTrap", "NotBound"] * 100


# ---- what the host answers for a component that misbehaves -------------------------------


def test_trap_answers_500_and_the_next_request_is_served(
    host: Host, served: Address, component: str
) -> None:
    assert fetch(served, "GET", "/")[0] == 200
    status, _, _ = fetch(served, "GET", "/trap")
    assert status == 500
    status, _, body = fetch(served, "GET", "/after")
    assert (status, body) == (200, b"GET /after\n")
    info = next(a for a in host.actors() if a.public_key == component)
    assert info.errors == 1


def test_trap_is_an_actor_trap_naming_the_cause(host: Host, component: str) -> None:
    with pytest.raises(ActorTrap, match=r"trapped during HandleRequest: .*unreachable.*discarded"):
        handle(host, component, path="/trap")
    assert handle(host, component, path="/").body == b"GET /\n"


def test_a_loop_is_stopped_at_the_deadline_and_answered_504(
    host: Host, server: Any, sign: Signer, echo_wasm: bytes
) -> None:
    signed, _ = sign(echo_wasm, caps=[HTTP], name="http_echo")
    key = host.add_actor(signed, deadline=0.3)
    host.set_binding(key, HTTP, values={"PORT": "0"})
    address = server.address(key)
    assert fetch(address, "GET", "/loop")[0] == 504
    assert fetch(address, "GET", "/")[0] == 200
    with pytest.raises(InvocationTimeout, match=r"within its deadline of 0\.3s"):
        handle(host, key, path="/loop")


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/noresponse", r"returned without setting a response \(response-outparam\.set\)"),
        ("/error", r"error-code internal-error: echo was asked to fail"),
        ("/unfinished", r"without finishing its outgoing-body \(outgoing-body\.finish\)"),
    ],
)
def test_no_usable_response_is_an_error(host: Host, component: str, path: str, words: str) -> None:
    with pytest.raises(GuestError, match=words):
        handle(host, component, path=path)
    assert handle(host, component, path="/ok").body == b"GET /ok\n"  # the instance is fine


@pytest.mark.parametrize("path", ["/noresponse", "/error", "/unfinished"])
def test_no_usable_response_is_500_over_http(served: Address, path: str) -> None:
    assert fetch(served, "GET", path)[0] == 500
    assert fetch(served, "GET", "/")[0] == 200


def test_a_request_that_is_not_an_http_request_is_refused(host: Host, component: str) -> None:
    with pytest.raises(GuestError, match="HandleRequest did not carry an HttpRequest: "):
        host.call_actor(component, "HandleRequest", b"\xc1 not msgpack")
    assert handle(host, component, path="/").body == b"GET /\n"


def test_other_operations_name_what_the_component_exports(host: Host, component: str) -> None:
    with pytest.raises(GuestError, match=r"wasi:http/incoming-handler@0\.2\.0"):
        host.call_actor(component, "Echo", b"")


# ---- the host's wasi:http/types, probed by a component --------------------------------------


@pytest.fixture
def probe(host: Host, sign: Signer) -> str:
    wasm = wasmtime.wat2wasm((COMPONENTS / "http_probe.wat").read_text())
    signed, _ = sign(wasm, caps=[HTTP], name="http_probe")
    return host.add_actor(signed, max_instances=1)


def test_request_headers_reach_the_component_as_fields(host: Host, probe: str) -> None:
    reply = handle(host, probe, path="/headers", header={"host": "example:80", "x-a": "b\xe9"})
    assert reply.body == b"host: example:80\nx-a: b\xe9\n"  # values as ISO-8859-1 bytes
    assert reply.header == {"content-type": "text/plain"}  # made by fields.from-list


def test_fields_refuse_bad_changes_with_header_errors(host: Host, probe: str) -> None:
    """Request headers are immutable; a bad name, a hop-by-hop name, a bad value refused."""
    assert handle(host, probe, path="/errors").body == b"31211"


def test_fields_set_get_has_delete_clone_entries(host: Host, probe: str) -> None:
    assert handle(host, probe, path="/fields").body == b"1212012"


def test_body_is_consumed_once_and_its_stream_handed_out_once(host: Host, probe: str) -> None:
    assert handle(host, probe, path="/consume").body == b"01"
    assert handle(host, probe, path="/write-twice").body == b"01"


def test_status_code_outside_http_is_refused(host: Host, probe: str) -> None:
    reply = handle(host, probe, path="/status")
    assert (reply.status_code, reply.status, reply.body) == (201, "Created", b"10")


def test_a_handle_kept_from_an_earlier_request_traps(host: Host, probe: str) -> None:
    handle(host, probe, path="/keep")
    with pytest.raises(ActorTrap, match="not one of this call's"):
        handle(host, probe, path="/stale")
    assert handle(host, probe, path="/status").status_code == 201  # a new instance serves


def test_finishing_a_body_whose_stream_is_open_traps(host: Host, probe: str) -> None:
    with pytest.raises(
        ActorTrap, match=r"outgoing-body\.finish while its output-stream is still open"
    ):
        handle(host, probe, path="/open-finish")


def test_an_unserved_wasi_http_function_refuses_the_component(host: Host, sign: Signer) -> None:
    wasm = wasmtime.wat2wasm(
        """(component
          (import "wasi:http/types@0.2.0" (instance
            (export "fields" (type $fields (sub resource)))
            (export "outgoing-request" (type $r (sub resource)))
            (export "[constructor]outgoing-request"
              (func (param "headers" (own $fields)) (result (own $r)))))))"""
    )
    signed, _ = sign(wasm, caps=[HTTP], name="client")
    with pytest.raises(ActorLoadError, match=r"wasi:http/types@0\.2\.0.*outgoing-request"):
        host.add_actor(signed)


# ---- claims and bindings, as for an actor ---------------------------------------------------


def test_component_without_the_http_claim_cannot_be_bound(
    host: Host, server: Any, sign: Signer, echo_wasm: bytes
) -> None:
    signed, _ = sign(echo_wasm, caps=["wascc:keyvalue"], name="no_http")
    key = host.add_actor(signed)
    with pytest.raises(BindingError, match=HTTP):
        host.set_binding(key, HTTP, values={"PORT": "0"})


def test_unsigned_component_is_refused(host: Host, echo_wasm: bytes) -> None:
    with pytest.raises(MissingClaims):
        host.add_actor(echo_wasm)


def test_component_changed_after_signing_is_refused(
    host: Host, sign: Signer, echo_wasm: bytes
) -> None:
    signed, _ = sign(echo_wasm, caps=[HTTP], name="http_echo")
    marker = b"echo was asked to fail"
    assert marker in signed
    tampered = signed.replace(marker, b"echo was asked to FAIL")
    with pytest.raises(HashMismatch):
        host.add_actor(tampered)


def test_signed_component_shows_its_claims(host: Host, sign: Signer, echo_wasm: bytes) -> None:
    signed, module = sign(echo_wasm, caps=[HTTP], name="http_echo")
    key = host.add_actor(signed)
    assert key == module.public_key
    info = next(a for a in host.actors() if a.public_key == key)
    assert info.kind == "component"
    assert HTTP in info.claims.caps and info.signed


@pytest.fixture(autouse=True)
def _no_leftover_calls() -> Iterator[None]:
    yield
    assert not wit_http.calls_in_progress()


def test_hot_swap_under_http_load_loses_no_request(
    host: Host, server: Any, sign: Signer, echo_wasm: bytes
) -> None:
    """Clients keep requesting while the component is replaced twice: every request is a 200."""
    module = KeyPair.generate(KeyType.MODULE)
    first, _ = sign(echo_wasm, caps=[HTTP], name="swap", module=module)
    key = host.add_actor(first)
    host.set_binding(key, HTTP, values={"PORT": "0"})
    address: Address = server.address(key)
    stop = threading.Event()
    seen: set[str] = set()
    failures: list[object] = []

    def client() -> None:
        while not stop.is_set():
            try:
                status, headers, _ = fetch(address, "GET", "/swap")
            except Exception as exc:
                failures.append(exc)
                continue
            if status != 200:
                failures.append(status)
            seen.add(headers["x-wascc-component"])

    clients = [threading.Thread(target=client) for _ in range(4)]
    for c in clients:
        c.start()
    try:
        for tag in (b"http-ech2", b"http-ech3"):
            time.sleep(0.3)
            newer, _ = sign(
                bytes(echo_wasm).replace(b"http-echo", tag), caps=[HTTP], name="swap", module=module
            )
            host.replace_actor(key, newer)
        time.sleep(0.3)
    finally:
        stop.set()
        for c in clients:
            c.join(30)
    assert failures == []
    assert {"http-echo", "http-ech3"} <= seen
