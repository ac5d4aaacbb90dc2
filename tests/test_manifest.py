"""Manifests: the original format in YAML and JSON, the same model in TOML, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from wascc import KeyPair, KeyType
from wascc.manifest import BindingSpec, CapabilitySpec, ManifestError, expand_env, load_manifest

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
            "bindings:\n  - actor: MNOTAKEY\n    capability: wascc:x",
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
        ("actors: [\n", r"m.yaml: not valid YAML"),
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
    with pytest.raises(ManifestError, match=r"bad.json: not valid JSON"):
        load_manifest(site / "bad.json")
    (site / "bad.toml").write_text("[[")
    with pytest.raises(ManifestError, match=r"bad.toml: not valid TOML"):
        load_manifest(site / "bad.toml")


def test_empty_manifest_is_an_empty_host(site: Path) -> None:
    (site / "m.yaml").write_text("")
    m = load_manifest(site / "m.yaml")
    assert (m.actors, m.capabilities, m.bindings) == ((), (), ())
