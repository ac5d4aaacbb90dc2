"""The C guest SDK (native/include/wascc/*.h) against hostile input, natively and in wasm.

Part 1: tests/native/sdk_fuzz.c includes only the freestanding headers (msgpack.h,
contracts.h, json.h), is built with AddressSanitizer and UndefinedBehaviorSanitizer
(gcc; a second build with clang's trapping UBSan), and runs every decoder over a
corpus made here: valid encodings from ``wascc.wire.codec``, every truncation of them,
single-bit flips, seeded random bytes and mutations, and hand-made hostile values.
Besides "no sanitizer report", its per-payload lines are checked against facts
(valid encodings decode to their fields, no truncation decodes) and against small
Python models of wmp_skip, wjson_str and the HttpRequest decoder.

Part 2: tests/guests/c/sdk_actor.c is an actor written with actor.h, built with
clang for wasm32 and run by the real host: arena growth, the hostile corpus through
DecodeHttp (a response or a GuestError, never a trap), host calls and their errors,
allocation failure under the host's memory cap, unknown operations, console logs.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import random
import shutil
import struct
import subprocess
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import msgpack
import pytest
import wasmtime

from wascc import GuestError, Host
from wascc.wire import codec

from conftest import NATIVE_TESTS, ROOT, Signer
from providers import TESTING, RecordingProvider

INCLUDE = ROOT / "native" / "include"
HARNESS = NATIVE_TESTS / "sdk_fuzz.c"
GUEST = Path(__file__).resolve().parent / "guests" / "c" / "sdk_actor.c"
SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
MIB = 1024 * 1024
DECODERS = ("req", "resp", "kv", "bm", "gen", "tel", "fc", "blob", "bl", "rs")
WMP_MAX_DEPTH = 32


# ---- the corpus ------------------------------------------------------------------------


@dataclass
class Case:
    kind: str  # valid, trunc, flip, random, mutation, hostile
    name: str
    data: bytes
    # for valid and hostile cases: token -> value the harness must print
    expect: dict[str, str] = field(default_factory=dict)


PCT_SAFE = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._~/:-")


def pct(raw: bytes | str) -> str:
    """The harness's percent-encoding of a string."""
    if isinstance(raw, str):
        raw = raw.encode()
    return "".join(chr(b) if b in PCT_SAFE else f"%{b:02X}" for b in raw)


def crc(data: bytes) -> str:
    """The harness's hash: CRC-32 in hex."""
    return f"{zlib.crc32(data):08x}"


def pairs_hash(pairs: dict[str, str] | list[tuple[bytes, bytes]]) -> str:
    items = pairs.items() if isinstance(pairs, dict) else pairs
    raw = b"".join(
        (k.encode() if isinstance(k, str) else k)
        + b"\0"
        + (v.encode() if isinstance(v, str) else v)
        + b"\0"
        for k, v in items
    )
    return crc(raw)


def request_facts(q: codec.HttpRequest) -> dict[str, str]:
    ct = next((v for k, v in q.header.items() if k.lower() == "content-type"), None)
    return {
        "req": "1",
        "rm": pct(q.method),
        "rp": pct(q.path),
        "rq": pct(q.query_string),
        "rh": str(len(q.header)),
        "rhs": pairs_hash(q.header),
        "rct": "-" if ct is None else pct(ct),
        "rbl": str(len(q.body)),
        "rbh": crc(q.body),
        "rrt": "1",
    }


def response_facts(s: codec.HttpResponse) -> dict[str, str]:
    return {
        "resp": "1",
        "sc": str(s.status_code),
        "ss": pct(s.status),
        "sh": str(len(s.header)),
        "shs": pairs_hash(s.header),
        "sbl": str(len(s.body)),
    }


def kv_facts(
    value: str = "", exists: bool = False, number: int = 0, values: tuple[str, ...] = ()
) -> dict[str, str]:
    return {
        "kv": "1",
        "kval": pct(value),
        "kex": str(int(exists)),
        "knum": str(number),
        "kn": str(len(values)),
        "kat": str(len(values)),
        "kvs": crc(b"".join(v.encode() + b"\0" for v in values)),
    }


def valid_cases() -> list[Case]:
    many = {f"X-Header-{i:02d}": f"value {i} " + "v" * (i % 7) for i in range(40)}
    many["Content-Type"] = "application/json"
    requests = [
        codec.HttpRequest(),
        codec.HttpRequest(
            method="POST",
            path="/x",
            query_string="a=1&b=2",
            header={"Content-Type": "text/plain", "Accept": "*/*", "Host": "localhost"},
            body=b"hello\x00world",
        ),
        codec.HttpRequest(method="PUT", path="/many", header=many, body=bytes(range(256)) * 2),
        codec.HttpRequest(
            method="DELETE",
            path="/caf\u00e9/\u2603",
            header={"x": "\u00fcber", "CONTENT-type": "\u00e9"},
            body=b"\xff\xfe",
        ),
        codec.HttpRequest(path="/" + "p" * 300, query_string="q" * 40),
    ]
    responses = [
        codec.HttpResponse(),
        codec.HttpResponse(
            status_code=404,
            status="Not Found",
            header={"Content-Type": "text/plain", "Retry-After": "5"},
            body=b"nothing here",
        ),
        codec.HttpResponse(status_code=70000, status="odd", body=b"\x00" * 300),
    ]
    cases = [
        Case("valid", f"request{i}", q.encode(), request_facts(q)) for i, q in enumerate(requests)
    ]
    cases += [
        Case("valid", f"response{i}", s.encode(), response_facts(s))
        for i, s in enumerate(responses)
    ]
    values = tuple(f"item-{i}" * (1 + i % 3) for i in range(20))
    kv = [
        ("get", codec.GetResponse(value="stored", exists=True), kv_facts("stored", True)),
        ("get-missing", codec.GetResponse(), kv_facts()),
        ("set", codec.SetResponse(value="v"), kv_facts("v")),
        ("del", codec.DelResponse(key="gone"), kv_facts("gone")),
        ("add", codec.AddResponse(value=-42), kv_facts(number=-42)),
        ("add-big", codec.AddResponse(value=2**31 - 1), kv_facts(number=2**31 - 1)),
        ("list", codec.ListResponse(new_count=7), kv_facts(number=7)),
        ("range", codec.ListRangeResponse(values=values), kv_facts(values=values)),
        (
            "setquery",
            codec.SetQueryResponse(values=("a", "", "c")),
            kv_facts(values=("a", "", "c")),
        ),
        ("setquery-empty", codec.SetQueryResponse(), kv_facts()),
    ]
    cases += [Case("valid", f"kv-{name}", msg.encode(), facts) for name, msg, facts in kv]
    brokers = [
        codec.BrokerMessage(subject="chat.room", reply_to="_INBOX.1", body=b"\x01\x02\x03"),
        codec.BrokerMessage(subject="s", body=b"b" * 70),
    ]
    cases += [
        Case(
            "valid",
            f"broker{i}",
            m.encode(),
            {"bm": "1", "bs": pct(m.subject), "br": pct(m.reply_to), "bbl": str(len(m.body))},
        )
        for i, m in enumerate(brokers)
    ]
    generators = [
        codec.GeneratorResult(guid="0b0e8a8e-9f2c-4d6c-9d2f-2a6b6f0f3b11"),
        codec.GeneratorResult(sequence_number=2**40 + 1, random_number=4_000_000_000),
        codec.GeneratorResult(sequence_number=2**64 - 1),
    ]
    cases += [
        Case(
            "valid",
            f"generator{i}",
            g.encode(),
            {
                "gen": "1",
                "gg": pct(g.guid or ""),
                "gs": str(g.sequence_number),
                "gr": str(g.random_number),
            },
        )
        for i, g in enumerate(generators)
    ]
    telnets = [
        codec.TelnetText(session="5f6e0a52-1c1b-4a4e-8a53-0e5f0b3c2d11", text="hello\r\n"),
        codec.TelnetText(session="s", text=""),
    ]
    cases += [
        Case(
            "valid", f"telnet{i}", t.encode(), {"tel": "1", "ts": pct(t.session), "tt": pct(t.text)}
        )
        for i, t in enumerate(telnets)
    ]
    session = codec.TelnetSession(session="abc").encode()
    cases.append(Case("valid", "telnet-session", session, {"tel": "1", "ts": "abc", "tt": ""}))
    chunks = [
        codec.FileChunk(
            sequence_no=3,
            container="c/x",
            id="blob",
            total_bytes=2**40,
            chunk_size=65536,
            context="ctx",
            chunk_bytes=bytes(range(200)),
        ),
        codec.FileChunk(sequence_no=2**64 - 1, container="c", id="b"),
    ]
    cases += [
        Case(
            "valid",
            f"file-chunk{i}",
            c.encode(),
            {
                "fc": "1",
                "fseq": str(c.sequence_no),
                "ftot": str(c.total_bytes),
                "fcs": str(c.chunk_size),
                "fcont": pct(c.container),
                "fid": pct(c.id),
                "fctx": pct(c.context or ""),
                "fbl": str(len(c.chunk_bytes)),
                "fbh": crc(c.chunk_bytes),
            },
        )
        for i, c in enumerate(chunks)
    ]
    for i, b in enumerate([codec.Blob("photo", "c", 12345), codec.Blob("none", "none", 0)]):
        expect = {"blob": "1", "bid": pct(b.id), "bcont": pct(b.container)}
        expect |= {"bsz": str(b.byte_size), "bnone": str(int(b.id == "none"))}
        cases.append(Case("valid", f"blob{i}", b.encode(), expect))
    blobs = codec.BlobList(blobs=(codec.Blob("a", "c", 1), codec.Blob("é", "c", 2)))
    cases.append(Case("valid", "blob-list", blobs.encode(), {"bl": "1", "bln": "2", "blat": "2"}))
    result = codec.ResultSet(
        columns=(
            codec.Column(scalars=(None, True, 1985, 2.5, "café")),
            codec.Column(nodes=(codec.GraphNode(labels=("P",), properties={"n": "x"}),)),
        ),
        statistics=("ok",),
    )
    cases.append(Case("valid", "result-set", result.encode(), {"rs": "1", "rsc": "2", "rss": "5"}))
    for case in cases:
        n = len(case.data)
        case.expect |= {"skip": str(n), "seq": f"1:{n}"}  # one whole value, nothing trailing
    return cases


def raw_map(*pairs: bytes) -> bytes:
    """A fixmap of already encoded keys and values (alternating)."""
    assert len(pairs) % 2 == 0 and len(pairs) // 2 < 16
    return bytes([0x80 | len(pairs) // 2]) + b"".join(pairs)


def p(value: object) -> bytes:
    return codec.pack(value)


EXT32_WRAP = b"\xc9\xff\xff\xff\xfa\x01"  # ext32, length 2^32 - 6: 6 + length wraps to 0 on wasm32
# hostile cases that meet that wrap on wasm32 (see test_ext32_length_near_4gib_...)


def hostile_cases() -> list[Case]:
    cases: list[Case] = []

    def add(name: str, data: bytes, **expect: str) -> None:
        cases.append(Case("hostile", name, data, dict(expect)))

    refused = {d: "0" for d in DECODERS}
    # lengths near 2^32 (and others far past the end) on every sized type
    for length in (0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFA, 0x80000000, 0x7FFFFFFF, 0x10000, 40):
        for tag, what in ((0xDB, "str32"), (0xC6, "bin32"), (0xDD, "array32"), (0xDF, "map32")):
            head = bytes([tag]) + struct.pack(">I", length)
            add(f"{what}-{length:#x}", head + b"ab", skip="-1", **refused)
            for key in ("method", "path", "header", "body", "values", "subject", "x"):
                add(f"{key}={what}-{length:#x}", raw_map(p(key), head + b"ab"), skip="-1")
        for tag, what in ((0xC7, "ext8"), (0xC8, "ext16"), (0xC9, "ext32")):
            width = {0xC7: 1, 0xC8: 2, 0xC9: 4}[tag]
            size = length & ((1 << (8 * width)) - 1)
            if size < 3:
                continue
            head = bytes([tag]) + size.to_bytes(width, "big") + b"\x05"
            add(f"x={what}-{size:#x}", raw_map(p("method"), p("PUT"), p("x"), head + b"ab"))
    for tag, what in ((0xDA, "str16"), (0xC5, "bin16"), (0xDC, "array16"), (0xDE, "map16")):
        add(f"{what}-ffff", bytes([tag, 0xFF, 0xFF]) + b"\xa1a" * 3, skip="-1", **refused)
    add("header=map32-huge-1-pair", raw_map(p("header"), b"\xdf\xff\xff\xff\xff" + p("a") + p("b")))
    add(
        "header=map16-ffff-1-pair", raw_map(p("header"), b"\xde\xff\xff" + p("a") + p("b")), req="0"
    )
    add("values=array32-huge", raw_map(p("values"), b"\xdd\xff\xff\xff\xff\xa1a"), kv="0")
    add("str8-past-end", b"\xd9\xff" + b"a" * 200, skip="-1")
    add("method=str8-past-end", raw_map(p("method"), b"\xd9\x05abcd"), req="0")
    # deep nesting
    for depth in (WMP_MAX_DEPTH, WMP_MAX_DEPTH + 1, 1000, 100_000):
        arrays = b"\x91" * depth + b"\xc0"
        maps = b"\x81\xa1k" * depth + b"\xc0"
        ok = depth <= WMP_MAX_DEPTH
        add(f"arrays-{depth}", arrays, skip=str(len(arrays)) if ok else "-1")
        add(f"maps-{depth}", maps, skip=str(len(maps)) if ok else "-1")
        add(f"x=arrays-{depth}", raw_map(p("x"), arrays, p("method"), p("GET")), req=str(int(ok)))
        add(f"x=maps-{depth}", raw_map(p("method"), p("GET"), p("x"), maps), req=str(int(ok)))
        add(f"header=arrays-{depth}", raw_map(p("header"), arrays), req="0")
        add(f"values=arrays-{depth}", raw_map(p("values"), arrays), kv="0")
    add("unclosed-arrays", b"\x9f" * 5000, skip="-1", **refused)
    add("unclosed-maps", b"\x8f" * 5000, skip="-1", **refused)
    # negative fixints (and other ints) where lengths, keys and strings go
    add("neg-fixint", b"\xff", skip="1", **refused)
    add("key=neg-fixint", raw_map(b"\xe0", p("x")), skip="4", **refused)
    add("method=neg-fixint", raw_map(p("method"), b"\xff"), req="0")
    add("header=neg-fixint", raw_map(p("header"), b"\xe0"), req="0")
    add("header-key=neg-fixint", raw_map(p("header"), b"\x81\xff\xa1v"), req="0")
    add("body=neg-fixint", raw_map(p("body"), b"\xff"), req="0", bm="0")
    add("values=neg-fixint", raw_map(p("values"), b"\xf0"), kv="0")
    add("values-item=neg-fixint", raw_map(p("values"), b"\x92\xa1a\xff"), kv="0")
    add("kv-value=neg-fixint", raw_map(p("value"), b"\xff"), kv="1", knum="-1", kval="")
    add(
        "kv-value=int64-min",
        raw_map(p("value"), b"\xd3\x80" + b"\0" * 7),
        kv="1",
        knum=str(-(2**63)),
    )
    add("kv-value=uint64-max", raw_map(p("value"), b"\xcf" + b"\xff" * 8), kv="0")
    add("kv-newCount=str", raw_map(p("newCount"), p("7")), kv="0")
    add("statusCode=neg-fixint", raw_map(p("statusCode"), b"\xe0"), resp="0")
    add(
        "statusCode=uint32-max",
        raw_map(p("statusCode"), b"\xce\xff\xff\xff\xff"),
        resp="1",
        sc="4294967295",
    )
    add(
        "statusCode=uint33", raw_map(p("statusCode"), b"\xcf\x00\x00\x00\x01" + b"\0" * 4), resp="0"
    )
    add("statusCode=uint64-max", raw_map(p("statusCode"), b"\xcf" + b"\xff" * 8), resp="0")
    add(
        "sequenceNumber=uint64-max",
        raw_map(p("sequenceNumber"), b"\xcf" + b"\xff" * 8),
        gen="1",
        gs=str(2**64 - 1),
    )
    add("sequenceNumber=neg", raw_map(p("sequenceNumber"), b"\xd0\x80"), gen="0")
    add("randomNumber=float", raw_map(p("randomNumber"), b"\xcb" + b"\0" * 8), gen="0")
    add("exists=int", raw_map(p("exists"), b"\x01"), kv="0")
    # 0xc1, the byte msgpack never uses, everywhere
    add("c1", b"\xc1", skip="-1", **refused)
    add("key=c1", raw_map(b"\xc1", p("x")), skip="-1", **refused)
    add("x=c1", raw_map(p("x"), b"\xc1"), skip="-1", **refused)
    add("method=c1", raw_map(p("method"), b"\xc1"), req="0")
    add("header-value=c1", raw_map(p("header"), b"\x81\xa1k\xc1"), req="0")
    # ext types: skipped as unknown values, refused as fields
    exts = [
        b"\xd4\x01a",
        b"\xd5\x01ab",
        b"\xd6\xffabcd",
        b"\xd7\x00" + b"a" * 8,
        b"\xd8\x07" + b"a" * 16,
    ]
    exts += [
        b"\xc7\x03\x01abc",
        b"\xc8\x00\x02\x01ab",
        b"\xc9\x00\x00\x00\x01\x01a",
        b"\xc7\x00\x01",
    ]
    for i, ext in enumerate(exts):
        add(f"ext{i}", ext, skip=str(len(ext)), **refused)
        add(f"ext{i}-cut", ext[:-1], skip="-1", **refused)
        add(f"x=ext{i}", raw_map(p("x"), ext, p("method"), p("PATCH")), req="1", rm="PATCH")
        add(f"method=ext{i}", raw_map(p("method"), ext), req="0")
        add(f"subject=ext{i}", raw_map(p("subject"), ext), bm="0")
    add("x=ext32-wrap", raw_map(p("method"), p("PUT"), p("x"), EXT32_WRAP), req="0", skip="-1")
    # floats, nils, bools where strings go, and the reverse
    add("x=float32", raw_map(p("x"), b"\xca\0\0\0\0", p("path"), p("/f")), req="1", rp="/f")
    add("x=float64-cut", raw_map(p("x"), b"\xcb\0\0\0"), req="0", skip="-1")
    nils = [(p(k), b"\xc0") for k in ("method", "path", "queryString", "header", "body")]
    add(
        "request-all-nil",
        raw_map(*[x for kv in nils for x in kv]),
        req="1",
        rm="",
        rp="",
        rq="",
        rh="0",
        rbl="0",
    )
    add("session=nil", raw_map(p("session"), b"\xc0"), tel="0")
    add("method=true", raw_map(p("method"), b"\xc3"), req="0")
    add("exists=nil", raw_map(p("exists"), b"\xc0"), kv="0")
    # bin where str goes and str where bin goes, bin keys, duplicate keys, trailing bytes
    add(
        "bin-key-and-values",
        raw_map(b"\xc4\x06method", b"\xc4\x03GET", p("body"), p("text")),
        req="1",
        rm="GET",
        rbl="4",
    )
    add("duplicate-keys", raw_map(p("path"), p("/a"), p("path"), p("/b")), req="1", rp="/b")
    valid = codec.HttpRequest(method="HEAD", path="/t").encode()
    add(
        "trailing-garbage",
        valid + b"\xc1\xdb\xff\xff\xff\xff",
        req="1",
        rm="HEAD",
        skip=str(len(valid)),
    )
    add("two-values", valid + valid, req="1", skip=str(len(valid)), seq=f"2:{2 * len(valid)}")
    add("broker-no-subject", raw_map(p("replyTo"), p("r")), bm="0")
    add("telnet-empty-session", raw_map(p("session"), p("")), tel="0")
    add("empty", b"", skip="-1", json="2:" + crc(b'""'), **refused)
    add(
        "empty-map",
        b"\x80",
        skip="1",
        req="1",
        rm="GET",
        rp="/",
        rh="0",
        resp="1",
        sc="200",
        kv="1",
        bm="0",
        gen="1",
        tel="0",
    )
    # every first byte, followed by 0xff or 0x00 lengths
    for b in range(256):
        add(f"byte-{b:02x}", bytes([b]))
        add(f"byte-{b:02x}-ff", bytes([b]) + b"\xff" * 8)
        add(f"byte-{b:02x}-00", bytes([b]) + b"\x00" * 8)
    # 0xc1 at every position of a small request
    small = codec.HttpRequest(method="GET", path="/c1", header={"a": "b"}).encode()
    for i in range(len(small)):
        add(f"c1-at-{i}", small[:i] + b"\xc1" + small[i + 1 :])  # (in a string: just data)
    return cases


# containers, strings, scalars, sized headers, ext, 0xc1, and lengths near 2^32
HEX_TOKENS = """
    80 81 82 85 8f 90 91 93 9f a0 a161 a3474554 d9026162 c4017a c0 c2 c3 00 7f ff ccff
    cfffffffffffffffff ca00000000 dc0002 dd00000001 de0001 df00000002 d40102 c7010101 c1
    dbffffffff ddffffffff
"""
TOKENS = [
    *(p(k) for k in ("method", "path", "queryString", "header", "body", "statusCode", "status")),
    *(p(k) for k in ("value", "exists", "newCount", "values", "key", "subject", "replyTo")),
    *(p(k) for k in ("guid", "sequenceNumber", "randomNumber", "session", "text", "x")),
    *map(bytes.fromhex, HEX_TOKENS.split()),
]


def generated_cases(valid: list[Case]) -> list[Case]:
    cases: list[Case] = []
    for case in valid:
        cases += [Case("trunc", f"{case.name}[:{n}]", case.data[:n]) for n in range(len(case.data))]
    flipped = [c for c in valid if len(c.data) <= 200]
    for case in flipped:
        for i in range(len(case.data) * 8):
            data = bytearray(case.data)
            data[i // 8] ^= 1 << (i % 8)
            cases.append(Case("flip", f"{case.name}^bit{i}", bytes(data)))
    rng = random.Random(0x5DC0FFEE)
    for i in range(3000):
        data = rng.randbytes(rng.randrange(0, 48))
        cases.append(Case("random", f"random{i}", data))
    for i in range(3000):
        n = rng.randrange(1, 12)
        data = b"".join(rng.choice(TOKENS) for _ in range(n))
        cases.append(Case("random", f"tokens{i}", data))
    for i in range(2000):
        data = bytearray(rng.choice(valid).data)
        for _ in range(rng.randrange(1, 4)):
            op = rng.randrange(4)
            at = rng.randrange(len(data) + 1)
            if op == 0 and at < len(data):
                data[at] = rng.randrange(256)
            elif op == 1:
                data[at:at] = rng.choice(TOKENS)
            elif op == 2:
                del data[at : at + rng.randrange(1, 8)]
            else:
                data[at:at] = rng.choice(valid).data[: rng.randrange(1, 40)]
        cases.append(Case("mutation", f"mutation{i}", bytes(data)))
    return cases


# ---- Python models of what the headers promise ------------------------------------------


class Refused(Exception):
    pass


FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
FIXED |= {0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}
SIZED = {0xC4: (1, "raw"), 0xC5: (2, "raw"), 0xC6: (4, "raw"), 0xD9: (1, "raw")}
SIZED |= {0xDA: (2, "raw"), 0xDB: (4, "raw"), 0xC7: (1, "ext"), 0xC8: (2, "ext"), 0xC9: (4, "ext")}
SIZED |= {0xDC: (2, "array"), 0xDD: (4, "array"), 0xDE: (2, "map"), 0xDF: (4, "map")}


class Model:
    """A msgpack reader with msgpack.h's rules (str and bin interchangeable, depth 32)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def need(self, n: int) -> None:
        if self.pos + n > len(self.data):
            raise Refused

    def byte(self) -> int:
        self.need(1)
        return self.data[self.pos]

    def skip(self, depth: int = 0) -> None:
        if depth > WMP_MAX_DEPTH:
            raise Refused
        b = self.byte()
        if b <= 0x7F or b >= 0xE0:
            self.pos += 1
        elif b <= 0x8F:
            self.pos += 1
            self.items(2 * (b & 15), depth)
        elif b <= 0x9F:
            self.pos += 1
            self.items(b & 15, depth)
        elif b <= 0xBF:
            self.need(1 + (b & 31))
            self.pos += 1 + (b & 31)
        elif b in FIXED:
            self.need(1 + FIXED[b])
            self.pos += 1 + FIXED[b]
        elif b in SIZED:
            width, kind = SIZED[b]
            self.need(1 + width)
            n = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + width], "big")
            self.pos += 1 + width
            if kind == "raw":
                self.need(n)
                self.pos += n
            elif kind == "ext":
                self.need(1 + n)
                self.pos += 1 + n
            else:
                self.items(2 * n if kind == "map" else n, depth)
        else:
            raise Refused  # 0xc1

    def items(self, n: int, depth: int) -> None:
        for _ in range(n):
            self.skip(depth + 1)

    def container(self, fix: int, tags: tuple[int, int]) -> int:
        b = self.byte()
        if fix <= b <= fix + 15:
            self.pos += 1
            return b & 15
        if b in tags:
            width = 2 if b == tags[0] else 4
            self.need(1 + width)
            n = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + width], "big")
            self.pos += 1 + width
            return n
        raise Refused

    def string(self) -> bytes:
        b = self.byte()
        if 0xA0 <= b <= 0xBF:
            width, n = 0, b & 31
        elif b in (0xD9, 0xC4, 0xDA, 0xC5, 0xDB, 0xC6):
            width = SIZED[b][0]
            self.need(1 + width)
            n = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + width], "big")
        else:
            raise Refused
        self.pos += 1 + width
        self.need(n)
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def string_or_nil(self) -> bytes:
        if self.byte() == 0xC0:
            self.pos += 1
            return b""
        return self.string()


def model_skip(data: bytes) -> int:
    m = Model(data)
    try:
        m.skip()
    except Refused:
        return -1
    return m.pos


def model_values(data: bytes) -> str:
    """wmp_skip repeated over the whole input: values skipped and the bytes they take."""
    m = Model(data)
    values = end = 0
    try:
        while m.pos < len(data):
            m.skip()
            values, end = values + 1, m.pos
    except Refused:
        pass
    return f"{values}:{end}"


def model_request(data: bytes) -> dict[str, str] | None:
    """contracts.h's wascc_http_request_decode, as its comments describe it."""
    m = Model(data)
    q = {"method": b"GET", "path": b"/", "queryString": b""}
    headers: list[tuple[bytes, bytes]] = []
    body = b""
    try:
        for _ in range(m.container(0x80, (0xDE, 0xDF))):
            key = m.string()
            if key in (b"method", b"path", b"queryString"):
                q[key.decode()] = m.string_or_nil()
            elif key == b"header":
                headers = []
                if m.byte() == 0xC0:
                    m.pos += 1
                else:
                    for _ in range(m.container(0x80, (0xDE, 0xDF))):
                        headers.append((m.string(), m.string()))
            elif key == b"body":
                if m.byte() == 0xC0:
                    m.pos += 1  # nil keeps the default (or an earlier body)
                else:
                    body = m.string()
            else:
                m.skip()
    except Refused:
        return None
    return {
        "req": "1",
        "rm": pct(q["method"]),
        "rp": pct(q["path"]),
        "rq": pct(q["queryString"]),
        "rh": str(len(headers)),
        "rhs": pairs_hash(headers),
        "rbl": str(len(body)),
        "rbh": crc(body),
    }


def _one_replacement_per_byte(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    return "\ufffd", exc.start + 1


codecs.register_error("wascc-test-fffd-per-byte", _one_replacement_per_byte)
JSON_ESCAPES = {c: f"\\u{c:04x}" for c in range(0x20)}
JSON_ESCAPES |= {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x22: '\\"', 0x5C: "\\\\"}


def model_json(data: bytes) -> bytes:
    """json.h's wjson_str: RFC 8259 escapes; each byte that does not start a valid UTF-8
    sequence becomes U+FFFD (Python's strict UTF-8 rules: no overlongs, no surrogates)."""
    text = data.decode("utf-8", "wascc-test-fffd-per-byte")
    return ('"' + text.translate(JSON_ESCAPES) + '"').encode()


# ---- running the native harness --------------------------------------------------------


@dataclass
class Run:
    returncode: int
    stderr: str
    lines: list[dict[str, str]]
    summary: dict[str, str]
    stdout_tail: str


def frames(payloads: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(x)) + x for x in payloads)


def parse_output(stdout: bytes) -> tuple[list[dict[str, str]], dict[str, str]]:
    lines: list[dict[str, str]] = []
    summary: dict[str, str] = {}
    complete = stdout[: stdout.rfind(b"\n") + 1]  # a crash can cut the last line short
    for raw in complete.decode("ascii").splitlines():
        tokens = raw.split(" ")
        parsed = dict(t.split("=", 1) for t in tokens[1:])
        if tokens[0] == "SUMMARY":
            summary = parsed
        else:
            assert int(tokens[0]) == len(lines), f"line {len(lines)} out of order: {raw[:80]}"
            lines.append(parsed)
    return lines, summary


def compile_harness(out: Path, compiler: str, flags: list[str]) -> Path:
    command = [compiler, *flags, "-g", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{INCLUDE}"]
    done = subprocess.run(
        [*command, "-o", str(out), str(HARNESS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{compiler} could not build {HARNESS.name}:\n{done.stderr}"
    return out


def run_harness(exe: Path, payloads: list[bytes]) -> Run:
    done = subprocess.run(
        [str(exe)],
        input=frames(payloads),
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1", "UBSAN_OPTIONS": "print_stacktrace=1"},
    )
    lines, summary = parse_output(done.stdout)
    tail = done.stdout[-300:].decode("ascii", "replace")
    return Run(done.returncode, done.stderr.decode("utf-8", "replace"), lines, summary, tail)


@pytest.fixture(scope="module")
def corpus() -> list[Case]:
    valid = valid_cases()
    return valid + hostile_cases() + generated_cases(valid)


@pytest.fixture(scope="module")
def asan_run(tmp_path_factory: pytest.TempPathFactory, corpus: list[Case]) -> Run:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.fail("gcc is needed to build tests/native/sdk_fuzz.c with ASan and UBSan")
    exe = compile_harness(tmp_path_factory.mktemp("sdk_fuzz") / "sdk_fuzz", gcc, SANITIZE)
    return run_harness(exe, [c.data for c in corpus])


def results(run: Run, corpus: list[Case]) -> list[tuple[Case, dict[str, str]]]:
    assert run.returncode == 0 and len(run.lines) == len(corpus), (
        f"the harness stopped after {len(run.lines)} of {len(corpus)} payloads "
        f"(exit {run.returncode}):\n{run.stderr[-3000:]}\n...{run.stdout_tail}"
    )
    return list(zip(corpus, run.lines, strict=True))


def check_facts(case: Case, line: dict[str, str], facts: dict[str, str]) -> list[str]:
    return [
        f"{case.kind} {case.name}: {k}={line.get(k)!r}, expected {v!r}"
        for k, v in facts.items()
        if line.get(k) != v
    ]


# ---- part 1: the freestanding headers under the sanitizers ------------------------------


def test_corpus_runs_clean_under_asan_and_ubsan(asan_run: Run, corpus: list[Case]) -> None:
    kinds: dict[str, int] = {}
    for case in corpus:
        kinds[case.kind] = kinds.get(case.kind, 0) + 1
    size = sum(len(c.data) for c in corpus)
    print(f"\nsdk_fuzz corpus: {len(corpus)} payloads, {size} bytes, {kinds}")
    pairs = results(asan_run, corpus)
    assert asan_run.stderr == "", asan_run.stderr[-3000:]
    assert asan_run.summary["payloads"] == str(len(corpus))
    for decoder in (*DECODERS, "skip"):
        count = sum(1 for _, line in pairs if line[decoder] not in ("0", "-1"))
        assert asan_run.summary[decoder] == str(count), decoder
    json_bytes = sum(int(line["json"].split(":")[0]) for _, line in pairs)
    assert asan_run.summary["json_bytes"] == str(json_bytes)
    assert kinds["trunc"] > 3000 and kinds["flip"] > 5000 and kinds["random"] >= 6000
    # and the corpus reaches every decoder's success path
    for decoder in DECODERS:
        assert int(asan_run.summary[decoder]) > 50, asan_run.summary


def test_valid_encodings_decode_to_their_fields(asan_run: Run, corpus: list[Case]) -> None:
    problems = []
    for case, line in results(asan_run, corpus):
        if case.kind == "valid":
            problems += check_facts(case, line, case.expect)
    assert problems == []


def test_no_truncation_of_a_valid_encoding_decodes(asan_run: Run, corpus: list[Case]) -> None:
    """A proper prefix of one msgpack map is never a whole map: every decoder refuses."""
    problems = []
    for case, line in results(asan_run, corpus):
        if case.kind == "trunc":
            problems += check_facts(case, line, {"skip": "-1", **{d: "0" for d in DECODERS}})
    assert problems == []


def test_hostile_values_are_refused_or_read_as_documented(
    asan_run: Run, corpus: list[Case]
) -> None:
    problems = []
    for case, line in results(asan_run, corpus):
        if case.kind == "hostile":
            problems += check_facts(case, line, case.expect)
    assert problems == []


def test_wmp_skip_agrees_with_a_model_of_msgpack(asan_run: Run, corpus: list[Case]) -> None:
    problems = [
        f"{case.kind} {case.name}: skip={line['skip']} model={model_skip(case.data)}"
        for case, line in results(asan_run, corpus)
        if line["skip"] != str(model_skip(case.data))
    ]
    problems += [
        f"{case.kind} {case.name}: seq={line['seq']} model={model_values(case.data)}"
        for case, line in results(asan_run, corpus)
        if line["seq"] != model_values(case.data)
    ]
    assert problems == []
    # and the model agrees with msgpack-python on the valid encodings
    for case in corpus:
        if case.kind == "valid":
            unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
            unpacker.feed(case.data)
            unpacker.unpack()
            assert unpacker.tell() == model_skip(case.data)


def test_request_decoder_agrees_with_a_model(asan_run: Run, corpus: list[Case]) -> None:
    problems = []
    for case, line in results(asan_run, corpus):
        expected = model_request(case.data)
        if expected is None:
            if line["req"] != "0":
                problems.append(f"{case.kind} {case.name}: decoded, the model refuses")
        else:
            problems += check_facts(case, line, expected)
            if line.get("rrt") != "1":
                problems.append(f"{case.kind} {case.name}: encode/decode round trip differs")
    assert problems == []


def test_wjson_str_escapes_every_payload_into_valid_json(asan_run: Run, corpus: list[Case]) -> None:
    problems = []
    for case, line in results(asan_run, corpus):
        expected = model_json(case.data)
        if line["json"] != f"{len(expected)}:{crc(expected)}":
            problems.append(f"{case.kind} {case.name}: json={line['json']}")
        text = json.loads(expected)
        assert isinstance(text, str)  # valid JSON
        text.encode("utf-8")  # of valid UTF-8 (no lone surrogates)
    assert problems == []


def test_clang_trapping_ubsan_build_prints_the_same(
    tmp_path: Path, asan_run: Run, corpus: list[Case]
) -> None:
    """A second compiler's UBSan (trap mode: this clang has no sanitizer runtime),
    including pointer-overflow (wmp_reader_init once computed NULL + 0)."""
    clang = shutil.which("clang")
    if clang is None:
        pytest.fail("clang is needed for the wasm32 actor and the trapping UBSan build")
    flags = ["-fsanitize=undefined", "-fsanitize-trap=all"]
    exe = compile_harness(tmp_path / "sdk_fuzz_clang", clang, flags)
    run = run_harness(exe, [c.data for c in corpus])
    assert run.returncode == 0 and run.stderr == "", (run.returncode, run.stderr[-2000:])
    assert run.lines == asan_run.lines
    assert run.summary == asan_run.summary


# ---- part 2: an actor built on actor.h, in the real host ---------------------------------


@pytest.fixture(scope="module")
def sdk_wasm(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    clang = shutil.which("clang")
    if clang is None or shutil.which("wasm-ld") is None:
        pytest.fail("clang and wasm-ld (lld) are needed to build tests/guests/c/sdk_actor.c")
    out = tmp_path_factory.mktemp("sdk_actor") / "sdk_actor.wasm"
    command = [clang, "--target=wasm32", "-nostdlib", "-Oz", "-Wall", "-Wextra", "-Werror"]
    command += [f"-I{INCLUDE}", "-Wl,--no-entry", "-Wl,--strip-all", "-o", str(out), str(GUEST)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"clang could not build {GUEST.name}:\n{done.stderr}"
    data = out.read_bytes()
    print(f"\nsdk_actor.wasm: {len(data)} bytes")
    return data


@pytest.fixture
def actor(host: Host, sign: Signer, sdk_wasm: bytes) -> str:
    signed, _ = sign(sdk_wasm, caps=[TESTING], name="sdk-actor")
    return host.add_actor(signed)


def test_module_imports_only_wapc(sdk_wasm: bytes) -> None:
    module = wasmtime.Module(wasmtime.Engine(), sdk_wasm)
    assert {imp.module for imp in module.imports} == {"wapc"}
    assert {exp.name for exp in module.exports} >= {"memory", "__guest_call", "wapc_init"}
    assert len(sdk_wasm) < 32 * 1024


@pytest.mark.parametrize("size", [0, 64 * 1024, MIB], ids=["0B", "64KiB", "1MiB"])
def test_echo_grows_the_arena(host: Host, actor: str, size: int) -> None:
    payload = random.Random(size).randbytes(size)
    assert host.call_actor(actor, "Echo", payload) == payload
    # the arena was reset: a short call after a long one sees only its own bytes
    assert host.call_actor(actor, "Echo", b"short") == b"short"


def http_answer(host: Host, actor: str, payload: bytes) -> bytes | None:
    """DecodeHttp's body, or None for a GuestError; anything else fails the test."""
    try:
        reply = host.call_actor(actor, "DecodeHttp", payload)
    except GuestError as exc:
        assert "DecodeHttp: the payload is not an HTTP request" in str(exc)
        return None
    response = codec.HttpResponse.decode(reply)
    assert (response.status_code, response.header) == (200, {"Content-Type": "text/plain"})
    return response.body


def native_answer(line: dict[str, str]) -> str | None:
    """DecodeHttp's body, percent-encoded, from the native harness's line for the payload."""
    if line["req"] != "1":
        return None
    body = f"{line['rm']}%20{line['rp']}%20{line['rh']}"
    if line["rct"] != "-":
        body += f"%20ct%3D{line['rct']}"
    return body


def test_decode_http_answers_valid_requests(
    host: Host, actor: str, asan_run: Run, corpus: list[Case]
) -> None:
    q = codec.HttpRequest(
        method="GET", path="/x", header={"A": "1", "content-TYPE": "t/p", "C": "3"}
    )
    assert http_answer(host, actor, q.encode()) == b"GET /x 3 ct=t/p"
    assert http_answer(host, actor, codec.HttpRequest(method="POST").encode()) == b"POST / 0"
    assert http_answer(host, actor, b"\xc1") is None
    for case, line in results(asan_run, corpus):
        if case.kind == "valid" and case.name.startswith("request"):
            answer = http_answer(host, actor, case.data)
            assert answer is not None and pct(answer) == native_answer(line)


def test_decode_http_survives_the_hostile_corpus(
    host: Host, actor: str, asan_run: Run, corpus: list[Case]
) -> None:
    """Truncations, hostile values, 300 random mutations: a response or a GuestError, as
    natively; never a trap, a memory-limit kill or a host error."""
    pairs = results(asan_run, corpus)
    chosen = [
        (c, line)
        for c, line in pairs
        if (c.kind == "trunc" and c.name.startswith("request1[")) or c.kind == "hostile"
    ]
    mutations = [(c, line) for c, line in pairs if c.kind in ("mutation", "flip")]
    chosen += random.Random(7).sample(mutations, 300)
    answered = refused = 0
    problems = []
    for case, line in chosen:
        got = http_answer(host, actor, case.data)
        want = native_answer(line)
        if got is None:
            refused += 1
        else:
            answered += 1
        if (None if got is None else pct(got)) != want:
            problems.append(f"{case.kind} {case.name}: wasm {got!r}, native {want!r}")
    assert problems == []
    assert answered > 50 and refused > 200, (answered, refused)
    assert host.call_actor(actor, "Echo", b"alive") == b"alive"


def test_ext32_length_near_4gib_is_refused_in_wasm32(host: Host, actor: str) -> None:
    """Regression: head + size once wrapped where size_t is 32 bits."""
    payload = raw_map(p("method"), p("PUT"), p("x"), EXT32_WRAP)
    assert model_request(payload) is None  # natively: refused (see the hostile corpus)
    assert http_answer(host, actor, payload) is None  # wasm32: answers "PUT / 0"


@pytest.fixture
def provider(host: Host) -> RecordingProvider:
    p = RecordingProvider()
    host.add_provider(p)
    return p


@pytest.mark.parametrize("size", [0, 11, 300_000], ids=["empty", "short", "300KB"])
def test_host_echo_through_the_provider(
    host: Host, actor: str, provider: RecordingProvider, size: int
) -> None:
    host.set_binding(actor, TESTING)
    payload = random.Random(size).randbytes(size)
    assert host.call_actor(actor, "HostEcho", payload) == payload
    assert provider.calls == [(actor, "Echo", payload)]


def test_host_call_errors_reach_the_caller(
    host: Host, actor: str, provider: RecordingProvider
) -> None:
    with pytest.raises(GuestError, match=r"HostEcho: host call failed: .*not bound") as info:
        host.call_actor(actor, "HostEcho", b"x")
    assert TESTING in str(info.value) and "Echo" in str(info.value)
    assert provider.calls == []
    host.set_binding(actor, TESTING)
    with pytest.raises(GuestError, match=r"HostFail: host call failed: .*provider refused: no way"):
        host.call_actor(actor, "HostFail", b"no way")
    assert host.call_actor(actor, "HostEcho", b"now bound") == b"now bound"


def test_alloc_failure_under_the_memory_cap_is_a_guest_error(
    host: Host, sign: Signer, sdk_wasm: bytes
) -> None:
    signed, _ = sign(sdk_wasm, caps=[TESTING], name="sdk-capped")
    actor = host.add_actor(signed, memory_limit=16 * MIB)
    assert host.call_actor(actor, "Alloc", b"1") == b"ok"
    with pytest.raises(GuestError, match=r"answered Alloc with an error: out of memory$"):
        host.call_actor(actor, "Alloc", b"200")
    assert host.call_actor(actor, "Alloc", b"1") == b"ok"
    with pytest.raises(GuestError, match=r"out of memory$"):
        host.call_actor(actor, "Alloc", b"4095")
    with pytest.raises(GuestError, match="not a number"):
        host.call_actor(actor, "Alloc", b"12x")
    assert host.call_actor(actor, "Echo", b"next call") == b"next call"


def test_the_arena_is_reset_between_calls(host: Host, sign: Signer, sdk_wasm: bytes) -> None:
    signed, _ = sign(sdk_wasm, name="sdk-arena")
    actor = host.add_actor(signed, memory_limit=16 * MIB, max_instances=1)
    for _ in range(200):  # 800 MiB in all: only a per-call reset fits them under 16 MiB
        assert host.call_actor(actor, "Alloc", b"4") == b"ok"
    assert host.call_actor(actor, "Alloc", b"12") == b"ok"


def test_unknown_operation_is_a_guest_error_naming_it(host: Host, actor: str) -> None:
    with pytest.raises(GuestError, match=r"unknown operation: NoSuchThing$"):
        host.call_actor(actor, "NoSuchThing", b"payload")
    assert host.call_actor(actor, "Echo", b"ok") == b"ok"


def test_json_in_wasm_matches_the_model(host: Host, actor: str) -> None:
    rng = random.Random(11)
    samples = [b"", b'"\\\n\r\t\x00\x1f\x7f', "caf\u00e9 \u2603 \U0001f600".encode()]
    samples += [b"\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82", rng.randbytes(5000)]
    for data in samples:
        reply = host.call_actor(actor, "Json", data)
        assert reply == model_json(data)
        assert isinstance(json.loads(reply), str)


def test_log_reaches_the_actor_logger(
    host: Host, actor: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="wascc.actor"):
        assert host.call_actor(actor, "Log", b"hello from C") == b"logged"
    lines = [r.getMessage() for r in caplog.records if r.name == "wascc.actor"]
    assert len(lines) == 1 and "hello from C" in lines[0] and "sdk-actor" in lines[0]
