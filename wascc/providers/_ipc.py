"""The frames an isolated provider's child and its host exchange over a socketpair.

One frame is a fixed header and three byte strings::

    u32 length of the rest | u8 kind | u64 id | u8 ok | u16 len(actor) | u16 len(op)
    | actor | op | payload

all integers big-endian.  ``id`` matches a reply to its call: the host
numbers its calls, the child numbers its dispatches, each side from 1.
``ok`` is 1 for a success, 0 when the payload is an error text.

The child is code the host does not trust to behave: a frame that is too
short, too long or of an unknown kind is a :class:`FrameError`, and the host
treats it like a crash (it kills the child).
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Protocol

__all__ = [
    "CALL",
    "DISPATCH",
    "DISPATCH_REPLY",
    "HEADER",
    "KINDS",
    "MAX_FRAME",
    "READY",
    "REPLY",
    "STOP",
    "Frame",
    "FrameError",
    "Readable",
    "encode",
    "read_frame",
]

#: host -> child: one handle_call.
CALL = 1
#: child -> host: the answer to a CALL.
REPLY = 2
#: child -> host: the provider dispatches to an actor.
DISPATCH = 3
#: host -> child: the actor's answer to a DISPATCH.
DISPATCH_REPLY = 4
#: child -> host: loaded and configured (ok = 1), or refused (ok = 0, payload = why).
READY = 5
#: host -> child: stop the provider and exit.
STOP = 6
KINDS = frozenset({CALL, REPLY, DISPATCH, DISPATCH_REPLY, READY, STOP})

HEADER = struct.Struct(">IBQBHH")
_REST = HEADER.size - 4
#: The largest frame either side accepts (a payload of 64 MiB is far past any real call).
MAX_FRAME = 64 << 20


class Readable(Protocol):
    """What frames are read from: a buffered file, or exact reads on a socket."""

    def read(self, n: int, /) -> bytes: ...


class FrameError(Exception):
    """A frame that breaks the format (the peer is not speaking it, or is broken)."""


class Frame(NamedTuple):
    kind: int
    id: int
    ok: bool
    actor: str
    op: str
    payload: bytes


def encode(kind: int, ident: int, ok: bool, actor: str, op: str, payload: bytes) -> bytes:
    """One frame, ready for ``sendall``."""
    a = actor.encode()
    o = op.encode()
    size = _REST + len(a) + len(o) + len(payload)
    if size > MAX_FRAME or len(a) > 0xFFFF or len(o) > 0xFFFF:
        raise FrameError(f"a frame of {size} bytes is over the {MAX_FRAME}-byte limit")
    return b"".join((HEADER.pack(size, kind, ident, 1 if ok else 0, len(a), len(o)), a, o, payload))


def read_frame(stream: Readable) -> Frame | None:
    """The next frame from a buffered stream; None at a clean end of stream."""
    head = stream.read(HEADER.size)
    if not head:
        return None
    if len(head) < HEADER.size:
        raise FrameError(f"the stream ended inside a frame header ({len(head)} bytes)")
    size, kind, ident, ok, alen, olen = HEADER.unpack(head)
    if kind not in KINDS:
        raise FrameError(f"unknown frame kind {kind}")
    if size > MAX_FRAME or size < _REST + alen + olen:
        raise FrameError(f"a frame header announces {size} bytes, which cannot be")
    body = stream.read(size - _REST)
    if len(body) != size - _REST:
        raise FrameError("the stream ended inside a frame")
    try:
        actor = body[:alen].decode()
        op = body[alen : alen + olen].decode()
    except UnicodeDecodeError as exc:
        raise FrameError(f"a frame's actor or operation is not UTF-8: {exc}") from exc
    return Frame(kind, ident, ok == 1, actor, op, body[alen + olen :])
