"""``wascc:extras``: GUIDs, random numbers and per-actor sequences.

Built into every host on binding ``default`` and bound automatically to any
actor whose claims list ``wascc:extras``, as the original waSCC host did.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import uuid
from collections.abc import Iterator

from wascc.errors import ProviderCallError
from wascc.hookspecs import hookimpl
from wascc.providers.base import CapabilityProvider
from wascc.wire.codec import (
    CapabilityConfiguration,
    CapabilityDescriptor,
    Direction,
    GeneratorRequest,
    GeneratorResult,
    OperationDescriptor,
)

__all__ = ["CAPABILITY_ID", "ExtrasProvider"]

CAPABILITY_ID = "wascc:extras"
OP_GUID = "RequestGuid"
OP_RANDOM = "RequestRandom"
OP_SEQUENCE = "RequestSequence"


class ExtrasProvider(CapabilityProvider):
    """GUIDs (UUIDv4), random numbers in [min, max), and a sequence per actor from 0."""

    capability_id = CAPABILITY_ID

    def __init__(self) -> None:
        super().__init__()
        self._sequences: dict[str, Iterator[int]] = {}
        self._lock = threading.Lock()

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(
            id=CAPABILITY_ID,
            name="wascc extras",
            version="0.1.0",
            revision=1,
            long_description="GUIDs, random numbers and sequence numbers for actors",
            supported_operations=(
                OperationDescriptor(OP_GUID, Direction.TO_PROVIDER, "a new UUIDv4"),
                OperationDescriptor(OP_RANDOM, Direction.TO_PROVIDER, "a random u32 in [min, max)"),
                OperationDescriptor(OP_SEQUENCE, Direction.TO_PROVIDER, "the actor's next number"),
            ),
        )

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        request = GeneratorRequest.decode(msg) if msg else GeneratorRequest()
        if operation == OP_GUID:
            return GeneratorResult(guid=str(uuid.uuid4())).encode()
        if operation == OP_RANDOM:
            if not 0 <= request.min < request.max <= 2**32:
                raise ProviderCallError(
                    f"RequestRandom needs 0 <= min < max <= 2^32, got [{request.min}, "
                    f"{request.max})"
                )
            value = request.min + secrets.randbelow(request.max - request.min)
            return GeneratorResult(random_number=value).encode()
        if operation == OP_SEQUENCE:
            with self._lock:
                counter = self._sequences.setdefault(actor, itertools.count())
                value = next(counter)
            return GeneratorResult(sequence_number=value).encode()
        raise ProviderCallError(f"{CAPABILITY_ID} has no operation {operation!r}")

    def remove_actor(self, config: CapabilityConfiguration) -> None:
        with self._lock:
            self._sequences.pop(config.module, None)


@hookimpl
def wascc_providers() -> list[type[ExtrasProvider]]:
    return [ExtrasProvider]
