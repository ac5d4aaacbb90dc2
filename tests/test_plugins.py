"""Plugins: authorizers can only deny; middleware can rewrite or halt, and fails closed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from wascc import (
    BindingError,
    GuestError,
    Host,
    Invocation,
    InvocationResponse,
    MiddlewareError,
    PluginError,
    Unauthorized,
    hookimpl,
)
from wascc.wire.claims import Claims

from conftest import Signer, call_payload
from providers import TESTING, RecordingProvider


class Recorder:
    """Middleware that records what it sees, in order."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    @hookimpl
    def wascc_before_invoke(self, invocation: Invocation) -> None:
        self.log.append(f"{self.name}:before:{invocation.operation}")

    @hookimpl
    def wascc_after_invoke(self, invocation: Invocation, response: InvocationResponse) -> None:
        assert response.invocation_id == invocation.id
        self.log.append(f"{self.name}:after:{invocation.operation}")


def _actor(host: Host, sign: Signer, caps: list[str] | None = None) -> str:
    signed, _ = sign(caps=caps or [])
    return host.add_actor(signed)


def test_middleware_sees_actor_and_provider_invocations_in_order(host: Host, sign: Signer) -> None:
    log: list[str] = []
    host.add_provider(RecordingProvider())
    key = _actor(host, sign, [TESTING])
    host.set_binding(key, TESTING)
    host.add_plugin(Recorder("first", log))
    host.add_plugin(Recorder("second", log))
    assert host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"x")) == b"x"
    # pluggy order: last registered runs first
    assert log == [
        "second:before:Call",
        "first:before:Call",
        "second:before:Echo",
        "first:before:Echo",
        "second:after:Echo",
        "first:after:Echo",
        "second:after:Call",
        "first:after:Call",
    ]


class Rewriter:
    @hookimpl
    def wascc_before_invoke(self, invocation: Invocation) -> Invocation | None:
        if invocation.operation == "Echo":
            return replace(invocation, msg=invocation.msg.upper())
        return None

    @hookimpl
    def wascc_after_invoke(
        self, invocation: Invocation, response: InvocationResponse
    ) -> InvocationResponse:
        return replace(response, msg=response.msg + b"!")


def test_middleware_rewrites_the_payload_and_the_response(host: Host, sign: Signer) -> None:
    key = _actor(host, sign)
    host.add_plugin(Rewriter())
    assert host.call_actor(key, "Echo", b"quiet") == b"QUIET!"


class Halter:
    def __init__(self) -> None:
        self.seen = 0

    @hookimpl
    def wascc_before_invoke(self, invocation: Invocation) -> InvocationResponse | None:
        self.seen += 1
        if invocation.operation == "Trap":
            return InvocationResponse(invocation.id, msg=b"cached answer")
        if invocation.operation == "Loop":
            return InvocationResponse(invocation.id, error="blocked by policy")
        return None


def test_middleware_halts_with_its_own_response(host: Host, sign: Signer) -> None:
    key = _actor(host, sign)
    host.add_plugin(Halter())
    assert host.call_actor(key, "Trap") == b"cached answer"  # the actor never ran
    with pytest.raises(MiddlewareError, match="blocked by policy"):
        host.call_actor(key, "Loop")
    assert host.call_actor(key, "Echo", b"through") == b"through"


class Exploding:
    def __init__(self, where: str) -> None:
        self.where = where

    @hookimpl
    def wascc_before_invoke(self, invocation: Invocation) -> None:
        if self.where == "before":
            raise RuntimeError("before hook broke")

    @hookimpl
    def wascc_after_invoke(self, invocation: Invocation, response: InvocationResponse) -> None:
        if self.where == "after":
            raise RuntimeError("after hook broke")


def test_middleware_error_before_fails_closed_and_target_is_not_called(
    host: Host, sign: Signer, caplog: pytest.LogCaptureFixture
) -> None:
    provider = RecordingProvider()
    host.add_provider(provider)
    key = _actor(host, sign, [TESTING])
    host.set_binding(key, TESTING)
    host.add_plugin(Exploding("before"), name="exploder")
    with pytest.raises(MiddlewareError, match="exploder raised in wascc_before_invoke"):
        host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"x"))
    assert provider.calls == []
    assert any("before hook broke" in r.getMessage() for r in caplog.records)


def test_middleware_error_after_fails_the_call(host: Host, sign: Signer) -> None:
    key = _actor(host, sign)
    host.add_plugin(Exploding("after"), name="late")
    with pytest.raises(MiddlewareError, match="after hook broke"):
        host.call_actor(key, "Echo", b"x")


class Redirector:
    @hookimpl
    def wascc_before_invoke(self, invocation: Invocation) -> Invocation:
        return replace(invocation, target="M" + "A" * 55)


def test_middleware_may_not_redirect_a_call(host: Host, sign: Signer) -> None:
    key = _actor(host, sign)
    host.add_plugin(Redirector())
    with pytest.raises(MiddlewareError, match="may rewrite the operation and payload only"):
        host.call_actor(key, "Echo", b"x")


def test_errors_pass_through_middleware_unchanged(host: Host, sign: Signer) -> None:
    key = _actor(host, sign)
    host.add_plugin(Recorder("r", []))
    with pytest.raises(GuestError, match="the reason"):
        host.call_actor(key, "Fail", b"the reason")


class DenyOperation:
    def __init__(self, operation: str) -> None:
        self.operation = operation
        self.claims_seen: list[tuple[Claims | None, Claims | None]] = []

    @hookimpl
    def wascc_authorize(
        self, invocation: Invocation, origin_claims: Claims | None, target_claims: Claims | None
    ) -> bool | str:
        self.claims_seen.append((origin_claims, target_claims))
        if invocation.operation == self.operation:
            return f"{self.operation} is closed today"
        return True


def test_authorizer_denies_with_its_reason(host: Host, sign: Signer) -> None:
    key = _actor(host, sign)
    authorizer = DenyOperation("Echo")
    host.add_plugin(authorizer, name="closer")
    with pytest.raises(Unauthorized, match="closer: Echo is closed today"):
        host.call_actor(key, "Echo", b"x")
    assert host.call_actor(key, "Version") == b"VERSION1"
    origin, target = authorizer.claims_seen[-1]
    assert origin is None and target is not None and target.subject == key


def test_authorizer_cannot_grant_what_claims_deny(host: Host, sign: Signer) -> None:
    class AllowAll:
        @hookimpl
        def wascc_authorize(self) -> bool:
            return True

    host.add_provider(RecordingProvider())
    key = _actor(host, sign, [])
    host.add_plugin(AllowAll())
    with pytest.raises(GuestError, match="claims do not list it"):
        host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"x"))


def test_authorizer_denies_provider_calls_too(host: Host, sign: Signer) -> None:
    provider = RecordingProvider()
    host.add_provider(provider)
    key = _actor(host, sign, [TESTING])
    host.set_binding(key, TESTING)
    host.add_plugin(DenyOperation("Echo"))
    with pytest.raises(GuestError, match="closed today"):
        host.call_actor(key, "Call", call_payload(TESTING, "Echo", b"x"))
    assert provider.calls == []


def test_authorizer_that_raises_denies(host: Host, sign: Signer) -> None:
    class Broken:
        @hookimpl
        def wascc_authorize(self, invocation: Invocation) -> bool:
            raise KeyError("policy store offline")

    key = _actor(host, sign)
    host.add_plugin(Broken(), name="broken")
    with pytest.raises(Unauthorized, match="authorizer broken failed"):
        host.call_actor(key, "Echo", b"x")


def test_binding_authorizer_can_deny_a_binding(host: Host, sign: Signer) -> None:
    class NoBackup:
        @hookimpl
        def wascc_authorize_binding(self, capability_id: str, binding: str) -> str | None:
            return "backup is reserved" if binding == "backup" else None

    host.add_provider(RecordingProvider(), binding="backup")
    host.add_provider(RecordingProvider())
    key = _actor(host, sign, [TESTING])
    host.add_plugin(NoBackup())
    host.set_binding(key, TESTING)
    with pytest.raises(BindingError, match="backup is reserved"):
        host.set_binding(key, TESTING, binding="backup")


def test_misspelt_hook_is_refused_loudly(host: Host) -> None:
    class Typo:
        @hookimpl
        def wascc_before_invok(self, invocation: Invocation) -> None:  # sic
            pass

    with pytest.raises(PluginError, match="wascc_before_invok"):
        host.add_plugin(Typo())
    assert not host.plugins.intercepting


def test_removing_middleware_restores_the_fast_path(host: Host, sign: Signer) -> None:
    key = _actor(host, sign)
    plugin = Rewriter()
    host.add_plugin(plugin)
    assert host.call_actor(key, "Echo", b"a") == b"A!"
    host.remove_plugin(plugin)
    assert not host.plugins.intercepting
    assert host.call_actor(key, "Echo", b"a") == b"a"
