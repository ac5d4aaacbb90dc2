"""Manifests: YAML, JSON and TOML bytes through ``load_manifest`` and ``parse_manifest``.

The first byte of an input picks the format (``% 3``: YAML, JSON, TOML); the
rest is the document.  Odd cases are written to a file and read with
``load_manifest`` (bytes that are not UTF-8, ``${VAR}`` expansion), even ones
go to ``parse_manifest`` as text.  Seeds are valid manifests in the three
formats; ``generate`` writes hostile documents: YAML alias bombs ("billion
laughs"), deep nesting in each format, non-string keys, tags such as
``!!python/object``, huge integers, non-finite numbers, dotted TOML keys of
many parts, bytes that are not UTF-8.
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

from wascc.standalone.manifest import load_manifest, parse_manifest
from wascc.wire.keys import KeyPair, KeyType

from fuzz.engine import Target

FORMATS = ("yaml", "json", "toml")
_ACTOR_KEY = KeyPair.generate(KeyType.MODULE).public_key
_ENV = {"PORT": "8080", "NAME": "x"}
_state: dict[str, Path] = {}
_counter = [0]


def setup() -> None:
    base = Path(tempfile.mkdtemp(prefix="wascc-fuzz-manifest-"))
    (base / "echo_s.wasm").write_bytes(b"\0asm\1\0\0\0")
    _state["dir"] = base


def teardown() -> None:
    base = _state.pop("dir", None)
    if base is not None:
        shutil.rmtree(base, ignore_errors=True)


def _base() -> Path:
    if "dir" not in _state:  # atheris runs without setup
        setup()
    return _state["dir"]


def run(data: bytes) -> None:
    if not data:
        return
    fmt = FORMATS[data[0] % 3]
    body = data[1:]
    base = _base()
    _counter[0] += 1
    if _counter[0] % 2:
        path = base / f"m.{fmt}"
        path.write_bytes(body)
        load_manifest(path, expand=_counter[0] % 4 == 1, env=_ENV)
    else:
        text = body.decode("utf-8", "surrogateescape")
        parse_manifest(text, source=f"m.{fmt}", base_dir=base, fmt=fmt)


YAML = f"""labels:
  region: factory-7
  floor: 3
actors:
  - ./echo_s.wasm
capabilities:
  - path: wascc:http_server
  - path: ./libs/libkv.so
    binding_name: cache
bindings:
  - actor: {_ACTOR_KEY}
    capability: wascc:http_server
    values:
      PORT: ${{PORT:8081}}
      VERBOSE: true
      RATIO: 1.5
  - actor: "{_ACTOR_KEY}"
    capability: wasmcloud:keyvalue
    binding: cache
"""
JSON = f"""{{
  "labels": {{"region": "factory-7", "floor": 3}},
  "actors": ["./echo_s.wasm"],
  "capabilities": [{{"path": "wascc:http_server"}},
                   {{"path": "./libs/libkv.so", "binding_name": "cache"}}],
  "bindings": [
    {{"actor": "{_ACTOR_KEY}", "capability": "wascc:http_server",
     "values": {{"PORT": "8080", "VERBOSE": true, "RATIO": 1.5}}}},
    {{"actor": "{_ACTOR_KEY}", "capability": "wasmcloud:keyvalue", "binding": "cache"}}
  ]
}}"""
TOML = f"""actors = ["./echo_s.wasm"]

[labels]
region = "factory-7"
floor = 3

[[capabilities]]
path = "wascc:http_server"

[[capabilities]]
path = "./libs/libkv.so"
binding_name = "cache"

[[bindings]]
actor = "{_ACTOR_KEY}"
capability = "wascc:http_server"
values = {{ PORT = "8080", VERBOSE = true, RATIO = 1.5 }}

[[bindings]]
actor = "{_ACTOR_KEY}"
capability = "wasmcloud:keyvalue"
binding = "cache"
"""
SEEDS = [bytes([i]) + text.encode() for i, text in enumerate((YAML, JSON, TOML))] + [
    b"\x00labels: &l {a: b}\nbindings:\n  - {actor: " + _ACTOR_KEY.encode() + b", "
    b"capability: wascc:x, values: *l}\n",
    b"\x00",
    b'\x01{"labels": {}}',
    b"\x02[labels]\na.b = 1\n",
]


# ---- hostile documents -------------------------------------------------------------


def _depth(rng: random.Random) -> int:
    return int(10 ** rng.uniform(1, 5))


def _number(rng: random.Random) -> str:
    digits = rng.choice((20, 64, 65, 300, 4300, 4301, 5000))
    return rng.choice(
        (
            "9" * digits,
            "-" + "9" * digits,
            "0x" + "f" * digits,
            "0o" + "7" * digits,
            "0b" + "1" * digits,
            "1_000" * (digits // 5 + 1),
            ":".join(["59"] * (digits // 3 + 1)),
            "1e" + "9" * rng.randint(1, 6),
            "-1e999",
            ".inf",
            "-.inf",
            ".nan",
            "inf",
            "nan",
            "NaN",
            "Infinity",
            "1." + "1" * digits,
        )
    )


def _yaml(rng: random.Random) -> str:
    choice = rng.randrange(9)
    if choice == 0:  # a billion laughs, of random width and height
        width, height = rng.randint(2, 12), rng.randint(2, 12)
        lines = [f"a0: &a0 [{', '.join(['lol'] * width)}]"]
        for i in range(1, height):
            lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * width)}]")
        where = rng.choice(("labels", "actors", "bindings", "x"))
        lines.append(f"{where}: *a{height - 1}")
        return "\n".join(lines) + "\n"
    if choice == 1:  # deep nesting, flow or block
        n = _depth(rng)
        if rng.random() < 0.5:
            return "labels: " + "[" * n + "]" * n * rng.randint(0, 1) + "\n"
        return "".join("  " * i + "a:\n" for i in range(min(n, 2000)))
    if choice == 2:  # keys that are not strings
        key = rng.choice(("1", "~", "null", "true", "2020-01-01", "1.5", "? [a, b]", "? {a: b}"))
        where = rng.choice(("", "labels:\n  ", "bindings:\n  - values:\n      "))
        sep = "" if key.startswith("?") else ": a"
        return f"{where}{key}{sep}\n"
    if choice == 3:  # tags
        tag = rng.choice(
            (
                "!!python/object/apply:os.system ['true']",
                "!!python/name:os.system",
                "!!binary aGVsbG8=",
                "!!set {a, b}",
                "!!omap [a: 1]",
                "!!timestamp 2001-12-14",
                "!!str 1",
                "!!int '12'",
                "!!int ''",
                "!!int 'x'",
                "!!int #1",
                "!!float 'x'",
                "!!bool 'maybe'",
                "!!timestamp 'x'",
                "!!timestamp 2001-99-99",
                "!!null 'x'",
                "!!str [1]",
                "!!map [1]",
                "!!seq {a: 1}",
                "!!float '1e999'",
                "!custom x",
                "!<tag:yaml.org,2002:python/object:os.system> {}",
            )
        )
        return f"labels:\n  a: {tag}\n"
    if choice == 4:
        return f"labels:\n  a: {_number(rng)}\n"
    if choice == 5:  # an alias to itself, merge keys
        return rng.choice(
            (
                "labels: &a [*a]\n",
                "labels: &a {x: *a}\n",
                "base: &b {a: b}\nlabels:\n  <<: *b\n  c: d\n",
                "labels: *nowhere\n",
                "labels: &a {a: b}\nlabels: &a {a: c}\n",
            )
        )
    if choice == 6:  # several documents, odd characters
        return rng.choice(("---\na: 1\n---\nb: 2\n", "\ufefflabels: {}\n", "labels: {a: \x00}\n"))
    if choice == 7:
        return f"actors: [{'x' * rng.randint(1, 5000)}.wasm]\n"
    return "labels:\n" + "".join(f"  k{i}: {rng.random()}\n" for i in range(rng.randint(0, 300)))


def _json(rng: random.Random) -> str:
    choice = rng.randrange(6)
    if choice == 0:
        n = _depth(rng)
        return '{"labels": ' + "[" * n + "]" * n * rng.randint(0, 1) + "}"
    if choice == 1:
        return '{"labels": {"a": ' + _number(rng) + "}}"
    if choice == 2:
        return '{"labels": {}, "labels": {"a": "b"}}'
    if choice == 3:
        return '{"labels": {"a": "\\ud800"}, "actors": ["\\u0000"]}'
    if choice == 4:
        return '{"labels": ' + '{"a":' * _depth(rng) + "1" + "}" * 3 + "}"
    return '{"bindings": [' + ",".join(['{"actor": 1}'] * rng.randint(0, 50)) + "]}"


def _toml(rng: random.Random) -> str:
    choice = rng.randrange(7)
    if choice == 0:
        n = _depth(rng)
        return "labels = " + "[" * n + "]" * n * rng.randint(0, 1) + "\n"
    if choice == 1:
        n = _depth(rng)
        return "labels = " + "{a = " * n + "1" + "}" * n * rng.randint(0, 1) + "\n"
    if choice == 2:  # dotted keys: tomllib's memory grows with the square of the parts
        parts = rng.choice(("a", '"a"', "'a'", "1"))
        sep = rng.choice((".", " . ", "\t.\t"))
        n = _depth(rng)
        key = sep.join([parts] * n)
        return rng.choice((f"{key} = 1\n", f"[{key}]\nx = 1\n", f"[[{key}]]\n"))
    if choice == 3:
        return f"[labels]\na = {_number(rng)}\n"
    if choice == 4:
        return '[labels]\na = """' + "[" * _depth(rng) + '"""\nb = 1\n'
    if choice == 5:
        return "[labels]\na = 1979-05-27T07:32:00Z\nb = 07:32:00\n"
    return "".join(f"[t{i}]\nx = {i}\n" for i in range(rng.randint(0, 500)))


def generate(rng: random.Random) -> bytes:
    index = rng.randrange(3)
    text = (_yaml, _json, _toml)[index](rng)
    data = text.encode("utf-8", "surrogatepass")
    if rng.random() < 0.1:  # bytes that are not UTF-8
        pos = rng.randint(0, len(data))
        data = (
            data[:pos] + rng.choice((b"\xff", b"\xfe\xff", b"\xc3", b"\xed\xa0\x80")) + data[pos:]
        )
    return bytes([index]) + data


TARGET = Target(
    name="manifest",
    run=run,
    seeds=SEEDS,
    generate=generate,
    deadline=10.0,
    setup=setup,
    teardown=teardown,
)
