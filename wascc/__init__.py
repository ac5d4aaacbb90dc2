"""wascc: a WebAssembly actor host in the waSCC tradition.

Actors are signed waPC modules holding business logic; everything else is a
capability provider reached through a named binding, and only if the actor's
signed claims grant it.  Start with :class:`Host`::

    from wascc import Host
    with Host() as host:
        key = host.add_actor("echo.wasm")
        print(host.call_actor(key, "Echo", b"hello"))
"""

from __future__ import annotations

from wascc.actor import ActorSettings
from wascc.bindings import Binding
from wascc.engine.runtime import Runtime
from wascc.errors import (
    ActorLoadError,
    ActorRetired,
    ActorTrap,
    AntiforgeryError,
    BackendUnavailable,
    BindingError,
    ClaimsError,
    CodecError,
    ControlError,
    GuestError,
    HashMismatch,
    HostStopped,
    InstancesBusy,
    InstantiateError,
    InvalidSignature,
    InvocationError,
    InvocationTimeout,
    KeyFormatError,
    LatticeError,
    MalformedToken,
    ManifestError,
    MemoryLimitExceeded,
    MiddlewareError,
    MissingClaims,
    ModuleError,
    NativeLoadError,
    NotBound,
    NotFound,
    ObserveError,
    PluginError,
    ProviderArchiveError,
    ProviderCallError,
    ProviderCrashed,
    ProviderError,
    RemoteInvocationError,
    TokenExpired,
    TokenNotYetValid,
    Unauthorized,
    UntrustedIssuer,
    WasccError,
)
from wascc.health import HealthReport
from wascc.hookspecs import hookimpl, hookspec
from wascc.host import ActorInfo, CallObserver, Host, ProviderInfo
from wascc.providers.base import CapabilityProvider, Dispatcher
from wascc.wire.claims import Claims, sign_module, verify_module
from wascc.wire.invocation import Invocation, InvocationResponse
from wascc.wire.keys import KeyPair, KeyType

__version__ = "0.1.0"

__all__ = [
    "ActorInfo",
    "ActorLoadError",
    "ActorRetired",
    "ActorSettings",
    "ActorTrap",
    "AntiforgeryError",
    "BackendUnavailable",
    "Binding",
    "BindingError",
    "CallObserver",
    "CapabilityProvider",
    "Claims",
    "ClaimsError",
    "CodecError",
    "ControlError",
    "Dispatcher",
    "GuestError",
    "HashMismatch",
    "HealthReport",
    "Host",
    "HostStopped",
    "InstancesBusy",
    "InstantiateError",
    "InvalidSignature",
    "Invocation",
    "InvocationError",
    "InvocationResponse",
    "InvocationTimeout",
    "KeyFormatError",
    "KeyPair",
    "KeyType",
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
    "ProviderInfo",
    "RemoteInvocationError",
    "Runtime",
    "TokenExpired",
    "TokenNotYetValid",
    "Unauthorized",
    "UntrustedIssuer",
    "WasccError",
    "__version__",
    "hookimpl",
    "hookspec",
    "sign_module",
    "verify_module",
]
