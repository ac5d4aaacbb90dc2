"""wascc:graphdb: any reply a graph server could send -> the contract's ResultSet.

The input is a msgpack value standing for one ``GRAPH.QUERY --compact``
reply; the conversion must give a ResultSet that encodes and decodes again,
or refuse with a WasccError.
"""

from __future__ import annotations

import random
from typing import Any

from wascc_capabilities.graphdb.results import Names, to_result_set

from wascc.wire.codec import ResultSet, pack, unpack

from fuzz.engine import Target

_NAMES = {
    "db.labels()": ["Person", "Admin"],
    "db.relationshipTypes()": ["FOLLOWS"],
    "db.propertyKeys()": ["name", "age", "since"],
}


def _lookup(procedure: str) -> list[str]:
    return _NAMES[procedure]


def run(data: bytes) -> None:
    reply = unpack(data, "graph reply")
    result = to_result_set(reply, Names(_lookup))
    again = ResultSet.decode(result.encode())
    if again.encode() != result.encode():
        raise AssertionError(f"{result!r} does not round-trip: {again!r}")


# Replies FalkorDB gave for real queries (tests/test_graphdb.py's), bytes as bin.
_REAL: list[Any] = [
    [[b"Labels added: 1", b"Nodes created: 2", b"Cached execution: 0"]],
    [
        [[1, b"a"], [1, b"r"], [1, b"b"], [1, b"a.name"], [1, b"1.5"], [1, b"true"], [1, b"null"]],
        [
            [
                [8, [0, [0], [[0, 2, b"Ann"], [1, 3, 3]]]],
                [7, [0, 0, 0, 1, [[2, 3, 1999]]]],
                [8, [1, [0, 1], [[0, 2, b"Bob"]]]],
                [2, b"Ann"],
                [5, b"1.5"],
                [4, b"true"],
                [1, None],
            ]
        ],
        [b"Cached execution: 0"],
    ],
    [
        [[1, b"l"], [1, b"m"], [1, b"p"]],
        [[[6, [[3, 1], [3, 2]]], [10, [b"x", [3, 1]]], [11, [b"1", b"2"]]]],
        [],
    ],
    [[[1, b"n"]], [], [b"Query internal execution time: 0.05 milliseconds"]],
]


def _value(rng: random.Random, depth: int) -> list[Any]:
    kind = rng.randrange(0, 14)
    if depth > 3 or kind in (0, 12, 13):
        return [kind, rng.choice([None, b"x", 1, 2**63, -(2**63), 1.5, [], {}])]
    if kind == 1:
        return [1, None]
    if kind == 2:
        return [2, rng.choice([b"text", b"\xff\xfe", "str", 5])]
    if kind == 3:
        return [3, rng.choice([0, -1, 2**63 - 1, 2**64 - 1, b"12", 1.5])]
    if kind == 4:
        return [4, rng.choice([b"true", b"false", True, 1])]
    if kind == 5:
        return [5, rng.choice([b"1.5", b"nan", b"inf", b"x", 2.5, 3])]
    if kind == 6:
        return [6, [_value(rng, depth + 1) for _ in range(rng.randrange(3))]]
    if kind == 7:
        return [7, [0, rng.randrange(3), 0, 1, [[rng.randrange(4), 3, 1]]]]
    if kind == 8:
        return [8, [0, [rng.randrange(3)], [[rng.randrange(4), 2, b"v"]]]]
    if kind == 9:
        return [9, [[6, [_value(rng, depth + 1)]], [6, []]]]
    if kind == 10:
        return [10, [b"k", _value(rng, depth + 1)]]
    return [11, [b"1", rng.choice([b"2", b"x", 3])]]


def generate(rng: random.Random) -> bytes:
    if rng.random() < 0.1:  # deep nesting: arrays of arrays, written by hand past msgpack's
        depth = rng.choice((50, 400, 900))  # packer limit
        deep = b"\x92\x06\x91" * depth + b"\x92\x03\x01"
        return b"\x93" + pack([[1, b"d"]]) + b"\x91\x91" + deep + pack([])
    if rng.random() < 0.05:  # an integer past i64, as text
        return pack([[[1, b"i"]], [[[3, rng.choice([b"9" * 25, b"-" + b"9" * 25])]]], []])
    width = rng.randrange(1, 4)
    header = [[1, f"c{i}".encode()] for i in range(width)]
    rows = [[_value(rng, 0) for _ in range(width)] for _ in range(rng.randrange(4))]
    return pack([header, rows, [b"stat"]])


TARGET = Target(
    name="graphdb",
    run=run,
    seeds=[pack(r) for r in _REAL],
    generate=generate,
    deadline=10.0,
)
