"""Manifests: the original format in YAML and JSON, the same model in TOML, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from wascc import KeyPair, KeyType
from wascc.standalone.manifest import (
    BindingSpec,
    CapabilitySpec,
    ManifestError,
    expand_env,
    load_manifest,
)

ACTOR = KeyPair.generate(KeyType.MODULE).public_key


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "actors").mkdir()
    (tmp_path / "actors" / "echo_s.wasm").write_bytes(b"\0asm\1\0\0\0")
    return tmp_path


YAML = f"""
labels:
  region: factory-7
  floor: 3
actors:
  - ./actors/echo_s.wasm
capabilities:
  - path: wascc:http_server
  - path: ./libs/libkv.so
    binding_name: cache
bindings:
  - actor: "{ACTOR}"
    capability: wascc:http_server
    values:
      PORT: 8080
      VERBOSE: true
  - actor: "{ACTOR}"
    capability: wasmcloud:keyvalue
    binding: cache
"""

JSON = f"""{{
  "labels": {{"region": "factory-7", "floor": "3"}},
  "actors": ["./actors/echo_s.wasm"],
  "capabilities": [{{"path": "wascc:http_server"}},
                   {{"path": "./libs/libkv.so", "binding_name": "cache"}}],
  "bindings": [
    {{"actor": "{ACTOR}", "capability": "wascc:http_server",
     "values": {{"PORT": "8080", "VERBOSE": "true"}}}},
    {{"actor": "{ACTOR}", "capability": "wasmcloud:keyvalue", "binding": "cache"}}
  ]
}}"""

TOML = f"""
actors = ["./actors/echo_s.wasm"]

[labels]
region = "factory-7"
floor = 3

[[capabilities]]
path = "wascc:http_server"

[[capabilities]]
path = "./libs/libkv.so"
binding_name = "cache"

[[bindings]]
actor = "{ACTOR}"
capability = "wascc:http_server"
values = {{ PORT = 8080, VERBOSE = true }}

[[bindings]]
actor = "{ACTOR}"
capability = "wasmcloud:keyvalue"
binding = "cache"
"""


@pytest.mark.parametrize("name, text", [("m.yaml", YAML), ("m.json", JSON), ("m.toml", TOML)])
def test_every_format_reads_to_the_same_model(site: Path, name: str, text: str) -> None:
    path = site / name
    path.write_text(text)
    m = load_manifest(path)
    assert m.labels == {"region": "factory-7", "floor": "3"}
    assert m.actors == ((site / "actors" / "echo_s.wasm").resolve(),)
    assert m.capabilities == (
        CapabilitySpec("wascc:http_server", "default"),
        CapabilitySpec(str((site / "libs" / "libkv.so").resolve()), "cache"),
    )
    assert m.bindings == (
        BindingSpec(ACTOR, "wascc:http_server", "default", {"PORT": "8080", "VERBOSE": "true"}),
        BindingSpec(ACTOR, "wascc:keyvalue", "cache", {}),  # alias made canonical
    )


def test_environment_is_expanded_only_when_asked(site: Path) -> None:
    path = site / "m.yaml"
    path.write_text(
        "actors:\n  - ${ACTORS_DIR}/echo_s.wasm\nbindings:\n"
        f"  - actor: {ACTOR}\n    capability: wascc:http_server\n"
        "    values:\n      PORT: ${PORT:9090}\n"
    )
    m = load_manifest(path, expand=True, env={"ACTORS_DIR": str(site / "actors")})
    assert m.bindings[0].values == {"PORT": "9090"}
    with pytest.raises(ManifestError, match=r"no such file: .*\$\{ACTORS_DIR\}"):
        load_manifest(path)  # not expanded: the literal path does not exist
    with pytest.raises(ManifestError, match=r"m.yaml: line 2: \$\{ACTORS_DIR\} is not set"):
        load_manifest(path, expand=True, env={})


def test_expand_env_keeps_defaults_and_values() -> None:
    assert expand_env("${A}-${B:x}-${C:}", {"A": "1"}, "t") == "1-x-"


@pytest.mark.parametrize(
    "text, message",
    [
        ("actors: [./missing.wasm]", r"m.yaml: actors\[0\]: no such file: .*missing.wasm"),
        ("actor:\n  - x", r"m.yaml: top level: unknown key 'actor'"),
        ("actors: ./one.wasm", r"m.yaml: actors: must be a list, not a string"),
        ("capabilities:\n  - binding_name: x", r"m.yaml: capabilities\[0\]\.path: missing"),
        ("capabilities:\n  - path: a\n    bindng: x", r"capabilities\[0\]: unknown key 'bindng'"),
        ("bindings:\n  - capability: wascc:x", r"m.yaml: bindings\[0\]\.actor: missing"),
        (
            "bindings:\n  - actor: M" + "A" * 55 + "\n    capability: wascc:x",
            r"bindings\[0\]\.actor: not an actor's public key",
        ),
        (f"bindings:\n  - actor: {ACTOR}", r"bindings\[0\]\.capability: missing"),
        (
            f"bindings:\n  - actor: {ACTOR}\n    capability: wascc:x\n    values: [1]",
            r"bindings\[0\]\.values: must be a map, not a list",
        ),
        (
            f"bindings:\n  - {{actor: {ACTOR}, capability: wascc:x}}\n"
            f"  - {{actor: {ACTOR}, capability: wascc:x}}",
            r"bindings\[1\]: binds .* twice",
        ),
        ("labels: [a]", r"m.yaml: labels: must be a map"),
        ("actors: [\n", r"m.yaml: line 2, column 1: not valid YAML"),
        ("- just\n- a list", r"m.yaml: top level: must be a map, not a list"),
    ],
)
def test_bad_manifest_names_file_field_and_reason(site: Path, text: str, message: str) -> None:
    path = site / "m.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_unknown_format_and_unreadable_file_are_refused(site: Path) -> None:
    (site / "m.ini").write_text("x")
    with pytest.raises(ManifestError, match=r"m.ini: unknown manifest format '.ini'"):
        load_manifest(site / "m.ini")
    with pytest.raises(ManifestError, match=r"nope.yaml: cannot read it"):
        load_manifest(site / "nope.yaml")
    (site / "bad.json").write_text("{")
    with pytest.raises(ManifestError, match=r"bad.json: line 1, column 2: not valid JSON"):
        load_manifest(site / "bad.json")
    (site / "bad.toml").write_text("[[")
    with pytest.raises(ManifestError, match=r"bad.toml: line 1, column 3: not valid TOML"):
        load_manifest(site / "bad.toml")


def test_empty_manifest_is_an_empty_host(site: Path) -> None:
    (site / "m.yaml").write_text("")
    m = load_manifest(site / "m.yaml")
    assert (m.actors, m.capabilities, m.bindings) == ((), (), ())


# ---- hostile manifests: every failure is one ManifestError with its place ------------

DEEP = 100_000
BOMB = (
    "a: &a [x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "labels: *i\n"
)

# (format, kind) -> (bytes of the file, what the message says)
BROKEN: dict[tuple[str, str], tuple[bytes, str]] = {
    ("yaml", "not-utf8"): (b"labels:\n  a: \xff\xfe\n", r"line 2, column 6: not UTF-8"),
    ("json", "not-utf8"): (b'{"labels": {"a": "\xff"}}', r"line 1, column 19: not UTF-8"),
    ("toml", "not-utf8"): (b'[labels]\na = "\xff"\n', r"line 2, column 6: not UTF-8"),
    ("yaml", "non-string-key"): (b"1: a\n", r"top level: the key 1 must be a string"),
    ("yaml", "non-string-label"): (b"labels:\n  1: a\n", r"labels: the key 1 must be a string"),
    ("yaml", "null-key"): (b"labels:\n  ~: a\n", r"labels: the key None must be a string"),
    ("yaml", "date-key"): (b"labels:\n  2020-01-01: a\n", r"labels: the key .* must be a str"),
    ("yaml", "mixed-keys"): (b"1: a\nfoo: b\n", r"top level: the key 1 must be a string"),
    ("yaml", "list-key"): (b"labels: {[1, 2]: a}\n", r"line 1, column 10: not valid YAML"),
    ("yaml", "huge-int"): (
        b"labels:\n  a: " + b"9" * 5000 + b"\n",
        r"line 2, column 6: not valid YAML: an integer has more than 64 digits",
    ),
    ("yaml", "huge-hex"): (
        b"labels:\n  a: 0x" + b"f" * 5000 + b"\n",
        r"line 2, column 6: not valid YAML: an integer has more than 64 digits",
    ),
    ("json", "huge-int"): (
        b'{"labels": {"a": ' + b"9" * 5000 + b"}}",
        r"an integer has more than 64 digits",
    ),
    ("toml", "huge-int"): (
        b"[labels]\na = " + b"9" * 5000 + b"\n",
        r"not valid TOML: an integer has more than 64 digits",
    ),
    ("toml", "huge-hex"): (
        b"[labels]\na = 0x" + b"f" * 5000 + b"\n",
        r"labels\.a: has more than 64 digits",
    ),
    ("yaml", "deep-flow"): (
        b"labels: " + b"[" * DEEP + b"]" * DEEP + b"\n",
        r"line 1, column 40: not valid YAML: nested deeper than 32 levels",
    ),
    ("yaml", "deep-block"): (
        b"".join(b"  " * i + b"a:\n" for i in range(40)),
        r"line 32, column 63: not valid YAML: nested deeper than 32 levels",
    ),
    ("json", "deep"): (
        b'{"labels": ' + b"[" * DEEP + b"]" * DEEP + b"}",
        r"nested deeper than 32 levels",
    ),
    ("toml", "deep"): (
        b"labels = " + b"[" * DEEP + b"]" * DEEP + b"\n",
        r"line 1: not valid TOML: nested deeper than 32 levels",
    ),
    ("toml", "deep-inline-tables"): (
        b"labels = " + b"{a = " * DEEP + b"1" + b"}" * DEEP + b"\n",
        r"line 1: not valid TOML: nested deeper than 32 levels",
    ),
    ("toml", "dotted-key"): (
        b"a" + b".a" * DEEP + b" = 1\n",
        r"line 1: not valid TOML: a dotted key has more than 32 parts",
    ),
    ("toml", "dotted-table"): (
        b"[a" + b'."a"' * DEEP + b"]\n",
        r"line 1: not valid TOML: a dotted key has more than 32 parts",
    ),
    ("yaml", "alias-bomb"): (BOMB.encode(), r"more than 100000 nodes once aliases are expanded"),
    ("yaml", "python-tag"): (
        b"labels: !!python/object/apply:os.system ['true']\n",
        r"line 1, column 9: not valid YAML: .*python/object/apply:os.system",
    ),
    # Found by the manifest fuzz target: explicit tags hand any text to PyYAML's
    # constructors, which raised IndexError, ValueError, KeyError, TypeError...
    ("yaml", "tagged-empty-int"): (
        b"labels:\n  a: !!int #12'\n",
        r"line 2, column 6: not valid YAML: '' is not a valid int",
    ),
    ("yaml", "tagged-int"): (b"labels:\n  a: !!int 'x'\n", r"'x' is not a valid int"),
    ("yaml", "tagged-float"): (b"labels:\n  a: !!float 'x'\n", r"'x' is not a valid float"),
    ("yaml", "tagged-bool"): (b"labels:\n  a: !!bool 'maybe'\n", r"'maybe' is not a valid bool"),
    ("yaml", "tagged-timestamp"): (
        b"labels:\n  a: !!timestamp 2001-99-99\n",
        r"'2001-99-99' is not a valid timestamp",
    ),
    ("yaml", "infinity"): (b"labels:\n  a: .inf\n", r"'.inf' is not a finite number"),
    ("json", "nan"): (b'{"labels": {"a": NaN}}', r"NaN is not a JSON number"),
    ("toml", "infinity"): (b"[labels]\na = 1e999\n", r"1e999 is not a finite number"),
    ("json", "duplicate-key"): (
        b'{"labels": {}, "labels": {"a": "b"}}',
        r"the key 'labels' appears twice",
    ),
    ("yaml", "nul-in-path"): (b'actors: ["a\\0b.wasm"]\n', r"actors\[0\]: must not contain a NUL"),
    ("yaml", "too-large"): (b"#" * (2 << 20), r"larger than 1048576 bytes"),
    ("json", "syntax"): (b'{\n  "labels": {,}\n}', r"line 2, column 14: not valid JSON"),
    ("toml", "syntax"): (b"[labels]\na = = 1\n", r"line 2, column 5: not valid TOML"),
    ("toml", "syntax-at-end"): (b"[labels]\na = ", r"line 2, column 5: not valid TOML"),
    ("yaml", "date-value"): (b"labels:\n  a: 2020-01-01\n", r"labels\.a: .* a date or time"),
}


@pytest.mark.parametrize(
    ("fmt", "kind"), sorted(BROKEN), ids=[f"{f}-{k}" for f, k in sorted(BROKEN)]
)
def test_hostile_manifest_is_one_manifest_error_naming_file_place_and_reason(
    site: Path, fmt: str, kind: str
) -> None:
    data, message = BROKEN[fmt, kind]
    path = site / f"m.{fmt}"
    path.write_bytes(data)
    with pytest.raises(ManifestError, match=f"^{path}: .*{message}") as info:
        load_manifest(path)
    assert "\n" not in str(info.value)


def test_manifest_error_lives_in_wascc_errors() -> None:
    from wascc import errors
    from wascc.standalone import manifest

    assert manifest.ManifestError is errors.ManifestError
    assert issubclass(errors.ManifestError, errors.WasccError)
    assert issubclass(errors.ManifestError, ValueError)


def test_aliases_within_the_budget_are_read(site: Path) -> None:
    path = site / "m.yaml"
    path.write_text(
        "labels: &common\n  region: factory-7\n"
        f"bindings:\n  - actor: {ACTOR}\n    capability: wascc:x\n    values: *common\n"
    )
    m = load_manifest(path)
    assert m.bindings[0].values == {"region": "factory-7"} == m.labels


def test_nesting_and_numbers_at_the_limits_are_read(site: Path) -> None:
    (site / "m.yaml").write_text("labels:\n  a: " + "9" * 64 + "\n  b: 1.5\n")
    assert load_manifest(site / "m.yaml").labels == {"a": "9" * 64, "b": "1.5"}
    (site / "m.toml").write_text("[labels]\n" + "a" + ".a" * 0 + ' = "x"\n')
    assert load_manifest(site / "m.toml").labels == {"a": "x"}
    deep = "[" * 31 + "]" * 31
    (site / "m.json").write_text('{"labels": {}, "x": ' + deep + "}")
    with pytest.raises(ManifestError, match="unknown key 'x'"):  # parsed, then checked
        load_manifest(site / "m.json")


def test_a_utf8_byte_order_mark_is_allowed(site: Path) -> None:
    (site / "m.json").write_bytes(b'\xef\xbb\xbf{"labels": {"a": "b"}}')
    assert load_manifest(site / "m.json").labels == {"a": "b"}


@pytest.mark.parametrize("name", ["x" * 5000 + ".wasm", "a/" * 3000 + "b.wasm"])
def test_actor_path_the_system_cannot_use_is_a_manifest_error(site: Path, name: str) -> None:
    """Found by the manifest fuzz target: ENAMETOOLONG escaped from Path.is_file()."""
    (site / "m.yaml").write_text(f"actors: [{name}]\n")
    with pytest.raises(ManifestError, match=r"actors\[0\]: (cannot use|no such file)") as info:
        load_manifest(site / "m.yaml")
    assert len(str(info.value)) < 400


# ---- per-actor settings and actors by name -------------------------------------------


@pytest.mark.parametrize(
    ("name", "text"),
    [
        (
            "host.yaml",
            "actors:\n  - path: ./actors/echo_s.wasm\n    deadline: 2.5\n"
            "    memory_limit: 1048576\n    min_instances: 0\n    max_instances: 3\n"
            "bindings:\n  - {actor: echo, capability: wascc:http_server}\n",
        ),
        (
            "host.json",
            '{"actors": [{"path": "./actors/echo_s.wasm", "deadline": 2.5, '
            '"memory_limit": 1048576, "min_instances": 0, "max_instances": 3}], '
            '"bindings": [{"actor": "echo", "capability": "wascc:http_server"}]}',
        ),
        (
            "host.toml",
            '[[actors]]\npath = "./actors/echo_s.wasm"\ndeadline = 2.5\n'
            "memory_limit = 1048576\nmin_instances = 0\nmax_instances = 3\n"
            '[[bindings]]\nactor = "echo"\ncapability = "wascc:http_server"\n',
        ),
    ],
)
def test_actor_entries_carry_their_own_limits_in_every_format(
    site: Path, name: str, text: str
) -> None:
    (site / name).write_text(text)
    manifest = load_manifest(site / name)
    path = (site / "actors" / "echo_s.wasm").resolve()
    assert manifest.actors == (path,)
    assert manifest.settings == {
        path: {"deadline": 2.5, "memory_limit": 1048576, "min_instances": 0, "max_instances": 3}
    }
    assert manifest.bindings[0].actor == "echo"  # a name, resolved when the actor runs


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{path: ./actors/echo_s.wasm, deadline: soon}", "deadline: must be a number of seconds"),
        ("{path: ./actors/echo_s.wasm, deadline: 0}", "deadline: must be at least 0.001"),
        ("{path: ./actors/echo_s.wasm, memory_limit: 1.5}", "memory_limit: must be an integer"),
        ("{path: ./actors/echo_s.wasm, memory_limit: 100}", "must be at least 65536"),
        ("{path: ./actors/echo_s.wasm, max_instances: true}", "max_instances: must be an integer"),
        (
            "{path: ./actors/echo_s.wasm, min_instances: 4, max_instances: 2}",
            "min_instances (4) is above max_instances (2)",
        ),
        ("{path: ./actors/echo_s.wasm, speed: 3}", "speed"),
        ("{deadline: 3}", "actors[0].path"),
    ],
)
def test_bad_actor_settings_are_refused_naming_the_field(
    site: Path, entry: str, message: str
) -> None:
    (site / "host.yaml").write_text(f"actors:\n  - {entry}\n")
    with pytest.raises(ManifestError, match="actors\\[0\\]") as info:
        load_manifest(site / "host.yaml")
    assert message in str(info.value)


def test_a_binding_actor_that_looks_like_a_key_must_be_one(site: Path) -> None:
    broken = "M" + ACTOR[1:-1] + ("A" if ACTOR[-1] != "A" else "B")
    (site / "host.yaml").write_text(f"bindings:\n  - {{actor: {broken}, capability: wascc:x}}\n")
    with pytest.raises(ManifestError, match="not an actor's public key"):
        load_manifest(site / "host.yaml")
