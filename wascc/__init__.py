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
from wascc.claims import Claims, sign_module, verify_module
from wascc.errors import (
    ActorLoadError,
    ActorTrap,
    BackendUnavailable,
    BindingError,
    ClaimsError,
    CodecError,
    GuestError,
    HashMismatch,
    HostStopped,
    InstancesBusy,
    InvalidSignature,
    InvocationError,
    InvocationTimeout,
    KeyFormatError,
    MalformedToken,
    MemoryLimitExceeded,
    MiddlewareError,
    MissingClaims,
    ModuleError,
    NotBound,
    NotFound,
    PluginError,
    ProviderCallError,
    ProviderError,
    TokenExpired,
    TokenNotYetValid,
    Unauthorized,
    UntrustedIssuer,
    WasccError,
)
from wascc.health import HealthReport
from wascc.hookspecs import hookimpl, hookspec
from wascc.host import ActorInfo, Host, ProviderInfo
from wascc.invocation import Invocation, InvocationResponse
from wascc.keys import KeyPair, KeyType
from wascc.providers.base import CapabilityProvider, Dispatcher
from wascc.routing import Binding
from wascc.wapc import Runtime

__version__ = "0.1.0"

__all__ = [
    "ActorInfo",
    "ActorLoadError",
    "ActorSettings",
    "ActorTrap",
    "BackendUnavailable",
    "Binding",
    "BindingError",
    "CapabilityProvider",
    "Claims",
    "ClaimsError",
    "CodecError",
    "Dispatcher",
    "GuestError",
    "HashMismatch",
    "HealthReport",
    "Host",
    "HostStopped",
    "InstancesBusy",
    "InvalidSignature",
    "Invocation",
    "InvocationError",
    "InvocationResponse",
    "InvocationTimeout",
    "KeyFormatError",
    "KeyPair",
    "KeyType",
    "MalformedToken",
    "MemoryLimitExceeded",
    "MiddlewareError",
    "MissingClaims",
    "ModuleError",
    "NotBound",
    "NotFound",
    "PluginError",
    "ProviderCallError",
    "ProviderError",
    "ProviderInfo",
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
