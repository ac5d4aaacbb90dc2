"""The msgpack codec: every wire struct of ``wascc.wire.codec`` on hostile msgpack.

Each case goes through every struct's ``decode`` (the generated fast path)
and the generic converter (``_from_wire`` on the unpacked value); the two
must agree.  Whatever decodes must re-encode in every codec era's form
(camelCase map, positional array, snake_case map) and decode back to the
same value (compared by its encoding, so NaN scalars compare equal); a
difference raises AssertionError, which the engine reports as a finding.
"""

from __future__ import annotations

import dataclasses
import random
import struct
import types
import typing
from typing import Any, Union

import msgpack

from wascc.wire import codec
from wascc.wire.codec import FORMS, Column, Message, WireEnum

from fuzz.engine import INTERESTING, Target

STRUCTS: list[type[Message]] = sorted(
    (
        obj
        for obj in vars(codec).values()
        if isinstance(obj, type) and issubclass(obj, Message) and obj is not Message
    ),
    key=lambda c: c.__name__,
)


def _value(tp: Any, name: str) -> Any:
    """A value of type ``tp`` away from any default."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return _value(next(a for a in typing.get_args(tp) if a is not type(None)), name)
    if tp is str:
        return f"{name}-é"
    if tp is bool:
        return True
    if tp is int:
        return 7
    if tp is float:
        return 1.5
    if tp is bytes:
        return b"\x00\xff" + name.encode()
    if tp is Any:
        return 42
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        return {_value(key_type, "k"): _value(value_type, "v")}
    if origin in (list, tuple):
        return (_value(typing.get_args(tp)[0], name),)
    if isinstance(tp, type) and issubclass(tp, WireEnum):
        return list(tp)[-1]
    if isinstance(tp, type) and issubclass(tp, Message):
        return sample(tp)
    raise TypeError(f"no sample value for {tp!r}")


def sample(cls: type[Message]) -> Message:
    """A valid instance of ``cls`` with every field set."""
    if cls is Column:
        return Column(scalars=(None, True, -3, 2.5, "text"))
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(typing.cast(Any, cls))
    return cls(**{f.name: _value(hints[f.name], f.name) for f in fields})


SAMPLES = [sample(cls) for cls in STRUCTS]


def _check(cls: type[Message], value: Message) -> None:
    """Re-encode ``value`` in every form; each must decode back to it."""
    want = value.encode()
    for form in FORMS:
        again = cls.decode(value.encode(form))
        if again.encode() != want:
            raise AssertionError(
                f"{cls.__name__} does not round-trip in the {form} form: "
                f"{value!r} came back as {again!r}"
            )


def run(data: bytes) -> None:
    try:
        obj = codec.unpack(data)
    except codec.CodecError:
        obj = codec.CodecError  # not msgpack: each decode must refuse it too
    decoded = 0
    for cls in STRUCTS:
        try:
            fast: Message | None = cls.decode(data)
        except codec.CodecError:
            fast = None
        if obj is not codec.CodecError and "from_wire" not in cls.__dict__:
            try:
                generic: Message | None = codec._from_wire(cls, obj, cls.__name__)
            except codec.CodecError:
                generic = None
            if (fast is None) != (generic is None) or (
                fast is not None and generic is not None and fast.encode() != generic.encode()
            ):
                raise AssertionError(
                    f"{cls.__name__}: the fast decoder gave {fast!r}, the generic one {generic!r}"
                )
        if fast is not None:
            _check(cls, fast)
            decoded += 1
    if not decoded:
        raise codec.CodecError("no struct decodes this input")  # counted as refused


# ---- hostile msgpack ---------------------------------------------------------------

_BOUNDARIES = sorted(
    {v for i in INTERESTING for v in (i, i - 1, i + 1, -i, -i - 1)}
    | {-(2**63), -(2**63) - 1, 2**64, -(2**31), -(2**15), -(2**7), -33, -32}
)


def _int(rng: random.Random) -> bytes:
    """An integer at a boundary, in a random (also over-wide) encoding."""
    value = rng.choice(_BOUNDARIES)
    try:
        return msgpack.packb(value)  # type: ignore[no-any-return]
    except (OverflowError, ValueError):
        tag, width = rng.choice(((0xCF, 8), (0xD3, 8), (0xCE, 4), (0xD2, 4), (0xCD, 2), (0xCC, 1)))
        return bytes([tag]) + (value & ((1 << (8 * width)) - 1)).to_bytes(width, "big")


def _huge_header(rng: random.Random) -> bytes:
    """A str/bin/array/map/ext header declaring far more than follows."""
    n = rng.choice((2**16 - 1, 2**31, 2**32 - 1, 2**32 - 6))
    tag = rng.choice((0xDB, 0xC6, 0xDD, 0xDF, 0xC9))
    head = bytes([tag]) + struct.pack(">I", n)
    if tag == 0xC9:
        head += bytes([rng.randrange(256)])
    return head + rng.randbytes(rng.randint(0, 16))


def _nested(rng: random.Random) -> bytes:
    depth = rng.choice((50, 500, 1000, 1100, 5000, 100_000))
    opener = rng.choice((b"\x91", b"\x81\xa1k", b"\x81\x00"))
    return opener * depth + rng.choice((b"\xc0", b"\xa1x", b"\xc4\x01\xff", b""))


def _ext(rng: random.Random) -> bytes:
    """An ext value, timestamps (type -1) included, in fixext or ext8 form."""
    code = rng.choice((-1, -1, -128, 0, 5, 127, rng.randrange(-128, 128)))
    size = rng.choice((1, 2, 4, 8, 12, 16, 3))
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    head = bytes([fixed[size]]) if size in fixed else bytes([0xC7, size])
    return head + (code & 0xFF).to_bytes(1, "big") + rng.randbytes(size)


def _wrong_type(rng: random.Random) -> Any:
    return rng.choice(
        (
            None,
            True,
            -1,
            2**64 - 1,
            1.5,
            float("nan"),
            "",
            "x",
            b"\xff\xfe",
            [],
            [1, 2, 300],
            [-1],
            {},
            {1: 2},
            {b"\xff": "v"},
            {"a": None},
            msgpack.ExtType(5, b"ab"),
        )
    )


def _mangled_struct(rng: random.Random) -> bytes:
    """A valid struct in some form with one field of the wrong type or key kind."""
    value = rng.choice(SAMPLES)
    wire = msgpack.unpackb(value.encode(rng.choice(FORMS)), raw=False, strict_map_key=False)
    if isinstance(wire, dict) and wire:
        key = rng.choice(list(wire))
        choice = rng.randrange(4)
        if choice == 0:
            wire[key] = _wrong_type(rng)
        elif choice == 1:  # a non-string key
            wire[rng.choice((1, -1, 2.5, b"\xff", (1, 2), True))] = wire.pop(key)
        elif choice == 2:
            del wire[key]
        else:
            wire[key.encode() if isinstance(key, str) else key] = None
    elif isinstance(wire, list):
        if wire and rng.random() < 0.7:
            wire[rng.randrange(len(wire))] = _wrong_type(rng)
        else:
            wire.append(_wrong_type(rng))
    try:
        return msgpack.packb(wire, use_bin_type=rng.random() < 0.8)  # type: ignore[no-any-return]
    except (TypeError, ValueError, OverflowError):
        return value.encode()


def generate(rng: random.Random) -> bytes:
    kind = rng.randrange(7)
    if kind == 0:
        return _nested(rng)
    if kind == 1:
        return _huge_header(rng)
    if kind == 2:
        return _ext(rng)
    if kind == 3:
        items = [_int(rng) for _ in range(rng.randint(1, 6))]
        return bytes([0x90 | len(items)]) + b"".join(items)
    if kind == 4:  # a map with non-string keys around real field names
        keys = [
            _int(rng),
            b"\xc0",
            b"\xc3",
            b"\xcb" + struct.pack(">d", 1.0),
            b"\x90",
            b"\xa5value",
        ]
        pairs = [
            rng.choice(keys) + msgpack.packb(_wrong_type(rng)) for _ in range(rng.randint(1, 8))
        ]
        return bytes([0x80 | len(pairs)]) + b"".join(pairs)
    if kind == 5:
        return _mangled_struct(rng)
    value = rng.choice(SAMPLES)  # a valid struct followed by garbage
    return value.encode(rng.choice(FORMS)) + rng.randbytes(rng.randint(0, 8))


TARGET = Target(
    name="codec",
    run=run,
    seeds=[value.encode(form) for value in SAMPLES for form in FORMS],
    generate=generate,
    deadline=10.0,
)
