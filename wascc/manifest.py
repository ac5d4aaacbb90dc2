"""Manifests: what a standalone host runs, in the original waSCC format.

YAML or JSON (the original), or the same model in TOML::

    labels:
      region: factory-7
    actors:
      - ./echo_s.wasm                      # files, relative to the manifest
    capabilities:
      - path: wascc:http_server            # a provider: see below
        binding_name: default              # optional
    bindings:
      - actor: MB4OLDIC3TCZ4Q4TGGOVAZC43VXFE2JQVRAXQMQFXUCREOOFEKOKZTY2
        capability: wascc:http_server
        binding: default                   # optional
        values:
          PORT: "8081"

A capability ``path`` names a provider as a file (``.so``/``.dylib`` native
library, ``.wasm`` portable provider), an installed provider by capability
id or entry-point name (``wascc:keyvalue``, ``http_server``), or a Python
module path (``package.module:Class`` or ``package.module``).

With ``expand_env``, ``${VAR}`` and ``${VAR:default}`` in the text are
replaced from the environment before parsing.  A manifest is checked as a
whole before anything starts; each refusal is a :class:`ManifestError`
naming the file, the field and the reason.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wascc.errors import KeyFormatError, WasccError
from wascc.keys import KeyType, decode_public_key
from wascc.routing import DEFAULT_BINDING, canonical_capability, normalize_binding

__all__ = [
    "BindingSpec",
    "CapabilitySpec",
    "Manifest",
    "ManifestError",
    "expand_env",
    "load_manifest",
    "parse_manifest",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
_TOP_LEVEL = {"labels", "actors", "capabilities", "bindings"}


class ManifestError(WasccError, ValueError):
    """A manifest that cannot be run: ``file: field: reason``."""


@dataclass(frozen=True)
class CapabilitySpec:
    """One provider to load: its ``path`` (as written) and binding name."""

    path: str
    binding: str = DEFAULT_BINDING


@dataclass(frozen=True)
class BindingSpec:
    """One binding of an actor (by public key) to a provider."""

    actor: str
    capability: str
    binding: str = DEFAULT_BINDING
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.actor, self.capability, self.binding)


@dataclass(frozen=True)
class Manifest:
    """A validated manifest; actor paths are absolute."""

    source: str
    base_dir: Path
    labels: Mapping[str, str] = field(default_factory=dict)
    actors: tuple[Path, ...] = ()
    capabilities: tuple[CapabilitySpec, ...] = ()
    bindings: tuple[BindingSpec, ...] = ()


def expand_env(text: str, env: Mapping[str, str], source: str) -> str:
    """Replace ``${VAR}`` and ``${VAR:default}``; an unset VAR without default is refused."""

    def sub(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        line = text.count("\n", 0, match.start()) + 1
        raise ManifestError(f"{source}: line {line}: ${{{name}}} is not set and has no default")

    return _VAR.sub(sub, text)


def load_manifest(
    path: str | os.PathLike[str],
    *,
    expand: bool = False,
    env: Mapping[str, str] | None = None,
) -> Manifest:
    """Read, expand (when asked), parse and check a manifest file."""
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ManifestError(f"{file}: cannot read it: {exc.strerror or exc}") from exc
    if expand:
        text = expand_env(text, os.environ if env is None else env, str(file))
    return parse_manifest(
        text, source=str(file), base_dir=file.resolve().parent, fmt=_format_of(file)
    )


def _format_of(file: Path) -> str:
    suffix = file.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return "yaml"
    if suffix == ".json":
        return "json"
    if suffix == ".toml":
        return "toml"
    raise ManifestError(f"{file}: unknown manifest format {suffix!r} (use .yaml, .json or .toml)")


def parse_manifest(text: str, *, source: str, base_dir: Path, fmt: str) -> Manifest:
    """Parse manifest text of format ``yaml``, ``json`` or ``toml`` and check it."""
    try:
        if fmt == "yaml":
            data = yaml.safe_load(text)
        elif fmt == "json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ManifestError(f"{source}: not valid {fmt.upper()}: {reason}") from exc
    return _check(data if data is not None else {}, source, base_dir)


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, reason: str) -> ManifestError:
        return ManifestError(f"{self.source}: {where}: {reason}")

    def mapping(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a map, not {_kind(value)}")
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(
                where, f"unknown key {unknown[0]!r} (allowed: {', '.join(sorted(allowed))})"
            )
        return value

    def items(self, value: Any, where: str) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.fail(where, f"must be a list, not {_kind(value)}")
        return value

    def text(self, value: Any, where: str, *, required: bool = True) -> str:
        if value is None and not required:
            return ""
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(
                where,
                "missing" if value is None else f"must be a non-empty string, not {_kind(value)}",
            )
        return value.strip()

    def strings(self, value: Any, where: str) -> dict[str, str]:
        """A map of config values: scalars are kept as their text."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a map, not {_kind(value)}")
        out: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, bool):
                out[str(k)] = "true" if v else "false"
            elif isinstance(v, (str, int, float)):
                out[str(k)] = str(v)
            else:
                raise self.fail(f"{where}.{k}", f"must be a string, not {_kind(v)}")
        return out


def _kind(value: Any) -> str:
    return {
        dict: "a map",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "empty",
    }.get(type(value), "a value")


def _check(data: Any, source: str, base_dir: Path) -> Manifest:
    c = _Checker(source)
    top = c.mapping(data, "top level", _TOP_LEVEL)
    labels = c.strings(top.get("labels"), "labels")
    actors: list[Path] = []
    for i, item in enumerate(c.items(top.get("actors"), "actors")):
        where = f"actors[{i}]"
        path = Path(c.text(item, where))
        full = path if path.is_absolute() else (base_dir / path)
        if not full.is_file():
            raise c.fail(where, f"no such file: {full}")
        actors.append(full.resolve())
    capabilities: list[CapabilitySpec] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(c.items(top.get("capabilities"), "capabilities")):
        where = f"capabilities[{i}]"
        entry = c.mapping(item, where, {"path", "binding_name"})
        spec_path = c.text(entry.get("path"), f"{where}.path")
        binding = normalize_binding(
            c.text(entry.get("binding_name"), f"{where}.binding_name", required=False)
        )
        if (spec_path, binding) in seen:
            raise c.fail(where, f"{spec_path} is listed twice for binding {binding!r}")
        seen.add((spec_path, binding))
        capabilities.append(CapabilitySpec(_anchor(spec_path, base_dir), binding))
    bindings: list[BindingSpec] = []
    keys: set[tuple[str, str, str]] = set()
    for i, item in enumerate(c.items(top.get("bindings"), "bindings")):
        where = f"bindings[{i}]"
        entry = c.mapping(item, where, {"actor", "capability", "binding", "values"})
        actor = c.text(entry.get("actor"), f"{where}.actor")
        try:
            decode_public_key(actor, KeyType.MODULE)
        except KeyFormatError as exc:
            raise c.fail(f"{where}.actor", f"not an actor's public key: {exc}") from exc
        spec = BindingSpec(
            actor=actor,
            capability=canonical_capability(c.text(entry.get("capability"), f"{where}.capability")),
            binding=normalize_binding(
                c.text(entry.get("binding"), f"{where}.binding", required=False)
            ),
            values=c.strings(entry.get("values"), f"{where}.values"),
        )
        if spec.key in keys:
            raise c.fail(where, f"binds {actor} to {spec.capability} ({spec.binding}) twice")
        keys.add(spec.key)
        bindings.append(spec)
    return Manifest(source, base_dir, labels, tuple(actors), tuple(capabilities), tuple(bindings))


def _anchor(spec: str, base_dir: Path) -> str:
    """A relative file path in a capability is relative to the manifest."""
    looks_like_file = "/" in spec or spec.endswith((".so", ".dylib", ".wasm"))
    if looks_like_file and not Path(spec).is_absolute():
        return str((base_dir / spec).resolve())
    return spec
