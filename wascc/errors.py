"""The one error hierarchy of wascc.

Every failure the host reports is a :class:`WasccError`; messages name the
actor, capability, binding and operation involved.  Where a built-in
exception means the same thing, the wascc error also inherits from it (so
``except TimeoutError`` catches an invocation timeout)::

    WasccError
    ├── KeyFormatError (ValueError)          bad nkey: prefix, checksum, length
    ├── ModuleError (ValueError)             not a wasm module / cannot compile
    ├── ClaimsError                          the embedded JWT is refused
    │   ├── MissingClaims                    unsigned module
    │   ├── MalformedToken (ValueError)      not a JWT we can read
    │   ├── InvalidSignature                 signature does not verify
    │   ├── HashMismatch                     module changed after signing
    │   ├── TokenExpired                     past `exp`
    │   ├── TokenNotYetValid                 before `nbf`
    │   └── UntrustedIssuer                  `iss` not on the trusted list
    ├── CodecError (ValueError)              msgpack garbage or wrong shape
    ├── ManifestError (ValueError)           a manifest cannot be read or run
    ├── ControlError                         the control socket is unreachable or refused
    ├── ObserveError                         metrics, dashboard or traces cannot be served
    ├── ActorLoadError                       module cannot run as a waPC actor
    │   └── InstantiateError                 an instance could not be made (status)
    ├── NotFound (LookupError)               no such actor / provider / binding
    │   └── ActorRetired (InvocationError)   the module was replaced or removed
    ├── BindingError                         a binding cannot be set
    ├── ProviderError                        a provider failed (load, call, health)
    │   ├── NativeLoadError                  a native library was refused (reason)
    │   ├── ProviderCrashed                  an isolated provider died or missed a deadline
    │   └── ProviderArchiveError             a provider archive (PAR) is malformed or unfit
    ├── PluginError                          a pluggy plugin is malformed
    ├── HostStopped                          the host is shutting down
    ├── LatticeError                         the lattice cannot be joined or asked
    └── InvocationError                      one call failed
        ├── Unauthorized (PermissionError)   claims or the authorizer said no
        ├── NotBound                         no binding routes this call
        ├── GuestError                       the actor answered with an error
        ├── ActorTrap                        the actor trapped
        ├── InvocationTimeout (TimeoutError) deadline passed
        │   └── InstancesBusy                every instance stayed busy
        ├── MemoryLimitExceeded (MemoryError)  instance reached its memory cap
        ├── ProviderCallError                the provider answered with an error
        │   └── BackendUnavailable (ConnectionError)  its backend cannot be reached
        ├── MiddlewareError                  a middleware hook raised
        ├── AntiforgeryError                 a lattice invocation's signature is refused
        └── RemoteInvocationError            another host answered with an error
"""

from __future__ import annotations

__all__ = [
    "ActorLoadError",
    "ActorRetired",
    "ActorTrap",
    "AntiforgeryError",
    "BackendUnavailable",
    "BindingError",
    "ClaimsError",
    "CodecError",
    "ControlError",
    "GuestError",
    "HashMismatch",
    "HostStopped",
    "InstancesBusy",
    "InstantiateError",
    "InvalidSignature",
    "InvocationError",
    "InvocationTimeout",
    "KeyFormatError",
    "LatticeError",
    "MalformedToken",
    "ManifestError",
    "MemoryLimitExceeded",
    "MiddlewareError",
    "MissingClaims",
    "ModuleError",
    "NativeLoadError",
    "NotBound",
    "NotFound",
    "ObserveError",
    "PluginError",
    "ProviderArchiveError",
    "ProviderCallError",
    "ProviderCrashed",
    "ProviderError",
    "RemoteInvocationError",
    "TokenExpired",
    "TokenNotYetValid",
    "Unauthorized",
    "UntrustedIssuer",
    "WasccError",
]


class WasccError(Exception):
    """Root of every error wascc raises."""


class KeyFormatError(WasccError, ValueError):
    """A string is not a valid nkey (public key or seed) of the expected type."""


class ModuleError(WasccError, ValueError):
    """Bytes that are not a well-formed WebAssembly module."""


class ClaimsError(WasccError):
    """The claims embedded in a module are missing or refused."""


class MissingClaims(ClaimsError):
    """The module carries no `jwt` section (it is unsigned)."""


class MalformedToken(ClaimsError, ValueError):
    """The embedded token is not a JWT this host can read."""


class InvalidSignature(ClaimsError):
    """The token's Ed25519 signature does not verify against its issuer."""


class HashMismatch(ClaimsError):
    """The module's bytes changed after it was signed."""


class TokenExpired(ClaimsError):
    """The token's `exp` is in the past."""


class TokenNotYetValid(ClaimsError):
    """The token's `nbf` is in the future."""


class UntrustedIssuer(ClaimsError):
    """The token was issued by an account the host does not trust."""


class CodecError(WasccError, ValueError):
    """A payload is not the msgpack structure the contract requires."""


class ManifestError(WasccError, ValueError):
    """A manifest that cannot be read or run: ``file: [line L, column C:] field: reason``."""


class ActorLoadError(WasccError):
    """A module cannot run as a waPC actor (missing export, unknown import, ...)."""


class NotFound(WasccError, LookupError):
    """No actor, provider or binding by that name."""


class BindingError(WasccError):
    """A binding between an actor and a provider cannot be set."""


class ProviderError(WasccError):
    """A capability provider failed to load, start, answer or stay healthy."""


class PluginError(WasccError):
    """A plugin registered with the host is malformed."""


class HostStopped(WasccError):
    """The host is shutting down and takes no new work."""


class InvocationError(WasccError):
    """One invocation failed; the message says which and why."""


class Unauthorized(InvocationError, PermissionError):
    """The caller's claims (or an authorizer hook) do not allow this call."""


class NotBound(InvocationError):
    """No binding routes this call: the actor is not bound, or no provider is."""


class GuestError(InvocationError):
    """The actor answered the call with an error of its own."""


class ActorTrap(InvocationError):
    """The actor trapped; its instance was discarded."""


class InvocationTimeout(InvocationError, TimeoutError):
    """The call did not finish before its deadline."""


class InstancesBusy(InvocationTimeout):
    """No instance of the actor became free before the call's deadline."""


class MemoryLimitExceeded(InvocationError, MemoryError):
    """The instance reached its memory cap; it was discarded."""


class ProviderCallError(InvocationError):
    """A capability provider answered an operation with an error."""


class BackendUnavailable(ProviderCallError, ConnectionError):
    """The provider's backend (a Redis, a graph server) cannot be reached right now."""


class MiddlewareError(InvocationError):
    """A middleware hook raised; the invocation fails closed."""


class ActorRetired(NotFound, InvocationError):
    """A call reached a module after it was replaced or removed (no new call starts there)."""


class ControlError(WasccError):
    """The control socket could not be reached, or it refused a request."""


class ObserveError(WasccError):
    """The metrics endpoint, the dashboard or the trace exporter cannot be set up
    (a bad address, a port in use, a missing optional package)."""


class InstantiateError(ActorLoadError):
    """An instance could not be made; ``status`` is the engine's TRAP, TIMEOUT or HOST_FAILURE."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class NativeLoadError(ProviderError):
    """A native provider library was refused; ``reason`` says which check failed."""

    REASONS = {
        1: "not loadable",
        2: "no entry point",
        3: "returned NULL",
        4: "unknown ABI version",
        5: "incomplete",
    }

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.reason = self.REASONS.get(code, "unknown")


class LatticeError(WasccError):
    """The lattice cannot be joined (URL, namespace, credentials, NATS) or asked."""


class AntiforgeryError(InvocationError):
    """A lattice invocation's anti-forgery token is refused ("Antiforgery check failure: ...")."""


class RemoteInvocationError(InvocationError):
    """The host that ran a lattice invocation answered with an error ("Invocation failure: ...")."""


class ProviderCrashed(ProviderError):
    """An isolated provider's process died or missed a deadline: the call got no answer.

    The provider is being restarted (or was given up after crashing too often).
    """


class ProviderArchiveError(ProviderError):
    """A provider archive (PAR) is malformed (its tar, a member), has no binary for
    this host's target, or is refused as unsigned (``--require-signed-providers``)."""


#: The kinds of failure a native provider is told, most specific first: the
#: error text of a failed dispatch starts with one of these names (or the
#: error's own class name) and ": " (provider.h, section 4).
FAILURE_KINDS: tuple[type[BaseException], ...] = (
    HostStopped,
    InstancesBusy,
    InvocationTimeout,
    NotFound,
    NotBound,
    ProviderError,
)


def failure_kind(exc: BaseException) -> str:
    """The kind a failed dispatch is named by (see :data:`FAILURE_KINDS`)."""
    for kind in FAILURE_KINDS:
        if isinstance(exc, kind):
            return kind.__name__
    return type(exc).__name__
