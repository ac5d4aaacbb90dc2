"""An actor: a verified waPC module, its claims, and its pool of instances.

:func:`load_actor` reads the module, verifies its claims, compiles it and
creates its first instances (running ``_start`` and ``wapc_init``).
:meth:`Actor.invoke` is the hot path of every call into an actor: take an
instance, run ``__guest_call`` in C, give the instance back, or discard it
when it trapped, timed out or reached its memory cap.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from wascc.engine import ffi
from wascc.engine.ffi import GuestHost, WapcInstance
from wascc.engine.pool import InstancePool
from wascc.engine.runtime import Runtime, WapcModule
from wascc.errors import (
    ActorLoadError,
    ActorTrap,
    GuestError,
    InstantiateError,
    InvocationError,
    InvocationTimeout,
    MemoryLimitExceeded,
    MissingClaims,
)
from wascc.wire import claims as claims_mod
from wascc.wire.capability import canonical_capability
from wascc.wire.claims import Claims
from wascc.wire.keys import KeyPair, KeyType

__all__ = ["Actor", "ActorSettings", "load_actor", "read_module"]

log = logging.getLogger(__name__)

WASM_PAGE = 65536


@dataclass(frozen=True)
class ActorSettings:
    """Per-actor limits.  ``deadline`` is seconds per call (and for the start
    code of each instance); ``memory_limit`` bytes of linear memory per
    instance, which also bounds its tables (see ``wascc_host.h``); the pool
    grows from ``min_instances`` to ``max_instances`` under concurrent load."""

    deadline: float = 10.0
    memory_limit: int = 128 * 1024 * 1024
    min_instances: int = 1
    max_instances: int = 8

    def __post_init__(self) -> None:
        if self.deadline <= 0:
            raise ValueError("deadline must be positive")
        if self.memory_limit < WASM_PAGE:
            raise ValueError("memory_limit must be at least one wasm page (65536 bytes)")
        if not 0 <= self.min_instances <= self.max_instances or self.max_instances < 1:
            raise ValueError("need 0 <= min_instances <= max_instances and max_instances >= 1")


def read_module(source: str | os.PathLike[str] | bytes) -> tuple[bytes, str]:
    """The module bytes and a label for messages (the file name, or a hash)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return data, f"module {hashlib.sha256(data).hexdigest()[:12]}"
    path = Path(source)
    try:
        return path.read_bytes(), path.name
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise ActorLoadError(
            f"cannot read actor {path}: {getattr(exc, 'strerror', None) or exc}"
        ) from exc


def unsigned_claims(wasm: bytes, label: str) -> Claims:
    """An identity for an unsigned module the operator chose to run.

    The module key is derived from the module's hash (so the same file keeps
    its key) and the claims grant nothing.
    """
    digest = hashlib.sha256(wasm).digest()
    key = KeyPair(KeyType.MODULE, Ed25519PrivateKey.from_private_bytes(digest))
    return Claims(
        issuer="",
        subject=key.public_key,
        name=Path(label).stem,
        module_hash=claims_mod.module_hash(wasm),
    )


class Actor:
    """A running actor module.  Replacing an actor makes a new :class:`Actor`."""

    def __init__(
        self,
        wasm: bytes,
        claims: Claims,
        label: str,
        runtime: Runtime,
        settings: ActorSettings,
        guest_host: GuestHost,
        signed: bool,
        *,
        wasi: Callable[[], wasmtime.WasiConfig] | None = None,
    ) -> None:
        """``wasi`` makes the WASI context of each instance; given only for
        portable providers (actors get no WASI).  A module that imports WASI
        without it gets an empty context: no files, no environment."""
        self.claims = claims
        self.public_key = claims.subject
        self.name = claims.name or Path(label).stem
        self.label = label
        self.signed = signed
        self.settings = settings
        self.module_hash = claims.module_hash
        self.caps = frozenset(canonical_capability(c) for c in claims.caps)
        #: The codec form (wascc.wire.codec.FORMS) this module reads each request
        #: struct in, by operation, as the host learned it; a replacement
        #: module starts over.
        self.request_forms: dict[str, str] = {}
        self._ticks = runtime.ticks(settings.deadline)
        # An instance above this cannot grow at all: discard it after the call.
        self._cap_floor = settings.memory_limit - WASM_PAGE
        # A failed call that grew memory past half the cap most likely had a
        # growth refused (an allocator doubles its heap when it runs out).
        self._cap_half = settings.memory_limit // 2
        who = f"actor {self.name} ({self.public_key})"
        self.who = who
        compiled = runtime.load(wasm, who, allow_wasi=wasi is not None)
        self.size = len(wasm)
        make_wasi = wasi or wasmtime.WasiConfig

        def create() -> WapcInstance:
            try:
                return compiled.pre.instantiate(
                    guest_host,
                    memory_limit=settings.memory_limit,
                    deadline_ticks=self._ticks,
                    wasi=make_wasi() if compiled.uses_wasi else None,
                )
            except InstantiateError as exc:
                if exc.status == ffi.TIMEOUT:
                    raise ActorLoadError(
                        f"{who} failed to start: its start code (start section, _start or "
                        f"wapc_init) did not finish within the deadline of {settings.deadline:g}s"
                    ) from exc
                raise ActorLoadError(f"{who} failed to start: {exc}") from exc

        #: Calls that failed (guest errors, traps, timeouts, memory cap).
        self.errors = 0
        self._compiled: WapcModule | None = compiled
        self._on_freed: list[Callable[[], None]] = []
        try:
            self._pool = InstancePool(
                create,
                min_size=settings.min_instances,
                max_size=settings.max_instances,
                label=who,
            )
        except BaseException:
            self._free_module()
            raise

    def invoke(self, operation: str, payload: bytes) -> bytes:
        """Run one waPC call; the reply, or an :class:`InvocationError`."""
        pool = self._pool
        inst = pool.acquire(self.settings.deadline)
        try:
            status, data = inst.call(operation.encode(), payload, self._ticks)
        except BaseException:
            pool.discard(inst)
            raise
        if status == ffi.OK:
            if inst.memory_size > self._cap_floor:
                pool.discard(inst)
            else:
                pool.release(inst)
            return data
        raise self._failure(inst, status, operation, data)

    def _failure(
        self, inst: WapcInstance, status: int, operation: str, data: bytes
    ) -> InvocationError:
        self.errors += 1
        text = data.decode("utf-8", "replace")
        size = inst.memory_size
        at_cap = size > self._cap_floor or (inst.memory_grew and size > self._cap_half)
        if status == ffi.GUEST_ERROR and not at_cap:
            self._pool.release(inst)
            return GuestError(f"{self.who} answered {operation} with an error: {text}")
        self._pool.discard(inst)
        if status == ffi.TIMEOUT:
            return InvocationTimeout(
                f"{self.who} did not finish {operation} within its deadline of "
                f"{self.settings.deadline:g}s; the instance was discarded"
            )
        if at_cap:
            return MemoryLimitExceeded(
                f"{self.who} ran into its memory cap of {self.settings.memory_limit} bytes "
                f"during {operation} (it had grown to {size} bytes); the instance was "
                f"discarded ({text})"
            )
        if status == ffi.GUEST_ERROR:
            return GuestError(f"{self.who} answered {operation} with an error: {text}")
        return ActorTrap(
            f"{self.who} trapped during {operation}: {text}; the instance was discarded"
        )

    @property
    def instances(self) -> int:
        return self._pool.size

    @property
    def busy(self) -> int:
        """Calls running on this module now."""
        return self._pool.busy

    def calls(self) -> int:
        return self._pool.calls()

    def retire(self, on_freed: Callable[[], None] | None = None) -> None:
        """Start no new call; close idle instances now and busy ones when their call ends.

        When the last instance has closed, the compiled module is freed and
        ``on_freed`` runs (in the thread that closed it).
        """
        if on_freed is not None:
            if self._compiled is None:
                on_freed()
            else:
                self._on_freed.append(on_freed)
        self._pool.retire(self._free_module)

    @property
    def freed(self) -> bool:
        """Has the compiled module been freed (retired, no instance left)?"""
        return self._compiled is None

    def _free_module(self) -> None:
        compiled, self._compiled = self._compiled, None
        if compiled is not None:
            compiled.close()
            log.debug("freed the module of %s", self.who)
        callbacks, self._on_freed = self._on_freed, []
        for callback in callbacks:
            try:
                callback()
            except Exception:
                log.exception("callback after freeing %s failed", self.who)


def load_actor(
    source: str | os.PathLike[str] | bytes,
    *,
    runtime: Runtime,
    port: Callable[[Claims], GuestHost],
    settings: ActorSettings,
    trusted_issuers: frozenset[str] | None,
    allow_unsigned: bool,
) -> Actor:
    """Read, verify and start an actor; every refusal names the module and why.

    ``port(claims)`` makes the object the actor's instances call back into
    (``__host_call``, ``__console_log``) once its identity is known.
    """
    wasm, label = read_module(source)
    try:
        claims = claims_mod.verify_module(wasm, trusted_issuers=trusted_issuers, label=label)
        signed = True
    except MissingClaims:
        if not allow_unsigned:
            raise
        claims = unsigned_claims(wasm, label)
        signed = False
        log.warning(
            "running UNSIGNED actor %s as %s: it holds no capabilities", label, claims.subject
        )
    return Actor(wasm, claims, label, runtime, settings, port(claims), signed)
