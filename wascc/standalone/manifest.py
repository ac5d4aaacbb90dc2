"""Manifests: what a standalone host runs, in the original waSCC format.

YAML or JSON (the original), or the same model in TOML::

    labels:
      region: factory-7
    require_signed_providers: true         # optional: native providers only as .par
    actors:
      - ./echo_s.wasm                      # files, relative to the manifest
      - path: ./kvcounter_s.wasm           # or with the actor's own limits:
        deadline: 2.5                      #   seconds per call
        memory_limit: 33554432             #   bytes of linear memory per instance
        min_instances: 1                   #   instances kept ready
        max_instances: 4                   #   most under concurrent load
    capabilities:
      - path: wascc:http_server            # a provider: see below
        binding_name: default              # optional
      - path: ./libvendor_cache.so         # a native provider in a child process:
        isolate: true                      #   a crash costs only this provider
        deadline: 5                        #   seconds per call, then killed
        restart_backoff: 1                 #   first restart delay, doubling...
        restart_backoff_max: 30            #   ...up to this
        max_crashes: 5                     #   crashes within crash_window
        crash_window: 300                  #   seconds: then it is given up
        limits: {address_space: 2147483648, cpu_seconds: 3600, open_files: 256}
    bindings:
      - actor: MB4OLDIC3TCZ4Q4TGGOVAZC43VXFE2JQVRAXQMQFXUCREOOFEKOKZTY2   # or its name
        capability: wascc:http_server
        binding: default                   # optional
        values:
          PORT: "8081"
    lattice:                               # optional: join a lattice over NATS
      url: nats://10.0.0.5:4222            #   (wascc.lattice.LatticeConfig's fields;
      namespace: prod                      #   the command line wins key by key)

A capability ``path`` names a provider as a file (``.so``/``.dylib`` native
library, ``.wasm`` portable provider), an installed provider by capability
id or entry-point name (``wascc:keyvalue``, ``http_server``), or a Python
module path (``package.module:Class`` or ``package.module``).

With ``expand_env``, ``${VAR}`` and ``${VAR:default}`` in the text are
replaced from the environment before parsing.  A manifest is checked as a
whole before anything starts; each refusal is a :class:`ManifestError`
naming the file, the line and column where the parser gives one (PyYAML's
marks, JSON's ``lineno``/``colno``, TOML's message), the field and the reason.

A manifest is operator input, but it is read again on every SIGHUP, so no
broken one may take the host down or cost it more than a moment: the text
must be UTF-8 of at most ``MAX_MANIFEST_BYTES``; nested at most
``MAX_DEPTH`` levels (YAML nodes, JSON and TOML brackets, parts of a dotted
TOML key: tomllib's memory grows with the square of a key's parts); a YAML
document at most ``MAX_YAML_NODES`` nodes once its aliases are expanded (a
"billion laughs" is refused while it is composed, before anything is built);
integers at most ``MAX_INT_DIGITS`` digits, numbers finite; and every key of
every map a string.
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wascc._providers import NATIVE_SUFFIXES
from wascc.errors import KeyFormatError, ManifestError
from wascc.providers.isolated import ISOLATION_KEYS, IsolationSettings, parse_isolation
from wascc.wire import boundedjson
from wascc.wire.capability import DEFAULT_BINDING, canonical_capability, normalize_binding
from wascc.wire.keys import KeyType, decode_public_key

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_MANIFEST_BYTES",
    "MAX_YAML_NODES",
    "BindingSpec",
    "CapabilitySpec",
    "Manifest",
    "ManifestError",
    "expand_env",
    "load_manifest",
    "parse_manifest",
]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")
_TOP_LEVEL = {
    "labels",
    "actors",
    "capabilities",
    "bindings",
    "lattice",
    "require_signed_providers",
}

MAX_MANIFEST_BYTES = 1 << 20
"""A manifest larger than this is refused unread (real ones are a few KiB)."""
MAX_DEPTH = 32
"""Deepest nesting of maps and lists (the model's own is 4)."""
MAX_YAML_NODES = 100_000
"""Most YAML nodes in one document, counting each alias as the nodes it repeats."""
MAX_INT_DIGITS = 64
"""Longest integer, in decimal digits, a manifest may hold."""
_INT_LIMIT = 10**MAX_INT_DIGITS


@dataclass(frozen=True)
class CapabilitySpec:
    """One provider to load: its ``path`` (as written) and binding name.

    ``isolate``: run it in a child process (None: as the host decides,
    ``wascc up --isolate-providers``); ``isolation``: how (deadline, restart
    back-off, limits), None for the defaults.
    """

    path: str
    binding: str = DEFAULT_BINDING
    isolate: bool | None = None
    isolation: IsolationSettings | None = None


@dataclass(frozen=True)
class BindingSpec:
    """One binding of an actor (by public key, or by the name of a running actor) to a provider."""

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
    #: Per-actor settings (deadline, memory_limit, min/max_instances) by actor path.
    settings: Mapping[Path, Mapping[str, float | int]] = field(default_factory=dict)
    #: The ``lattice:`` section: LatticeConfig's fields by name (paths absolute).
    lattice: Mapping[str, Any] = field(default_factory=dict)
    #: Refuse native providers that are not signed archives (as --require-signed-providers).
    require_signed_providers: bool = False


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
    fmt = _format_of(file)
    try:
        with file.open("rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ManifestError(f"{file}: cannot read it: {reason}") from exc
    if len(raw) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{file}: larger than {MAX_MANIFEST_BYTES} bytes")
    text = _utf8(raw, str(file))
    if expand:
        text = expand_env(text, os.environ if env is None else env, str(file))
    return parse_manifest(text, source=str(file), base_dir=file.resolve().parent, fmt=fmt)


def _utf8(raw: bytes, source: str) -> str:
    """The text of a manifest; bytes that are not UTF-8 are refused with their place."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ManifestError(
            f"{source}: line {line}, column {column}: not UTF-8 (byte 0x{raw[exc.start]:02x})"
        ) from exc


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
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{source}: larger than {MAX_MANIFEST_BYTES} bytes")
    if fmt == "yaml":
        data = _load_yaml(text, source)
    elif fmt == "json":
        data = boundedjson.loads(
            text,
            what=source,
            error=ManifestError,
            max_bytes=MAX_MANIFEST_BYTES,
            max_depth=MAX_DEPTH,
            max_int_digits=MAX_INT_DIGITS,
        )
    elif fmt == "toml":
        data = _load_toml(text, source)
    else:
        raise ManifestError(f"{source}: unknown manifest format {fmt!r} (yaml, json or toml)")
    return _check(data if data is not None else {}, source, base_dir)


# ---- YAML: PyYAML's safe loader, bounded while it composes ----------------------------


class _BoundedYamlLoader(yaml.SafeLoader):
    """SafeLoader that bounds depth, nodes (aliases expanded) and numbers as it goes.

    PyYAML composes recursively (100,000 levels raise RecursionError) and
    shares aliased nodes, so a "billion laughs" costs little until something
    walks it: both are refused here, with their place in the file.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0
        self._expanded: dict[int, int] = {}  # id(node) -> nodes it stands for

    def _count(self, nodes: int, mark: Any) -> None:
        self._nodes += nodes
        if self._nodes > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"more than {MAX_YAML_NODES} nodes once aliases are expanded", mark
            )

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            anchored = self.anchors.get(event.anchor)
            if anchored is not None:  # an unknown alias is PyYAML's own error
                self._count(self._expanded.get(id(anchored), 1), event.start_mark)
            return super().compose_node(parent, index)
        if self._depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark
            )
        before = self._nodes
        self._count(1, event.start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        self._expanded[id(node)] = self._nodes - before
        return node

    def construct_bounded_int(self, node: Any) -> int:
        """YAML's int, refused past MAX_INT_DIGITS (before Python's 4300-digit limit)."""
        too_long = yaml.constructor.ConstructorError(
            None, None, f"an integer has more than {MAX_INT_DIGITS} digits", node.start_mark
        )
        if len(str(node.value)) > MAX_INT_DIGITS + 8:  # room for a sign, 0x, underscores
            raise too_long
        value = int(super().construct_yaml_int(node))
        if abs(value) >= _INT_LIMIT:
            raise too_long
        return value

    def construct_finite_float(self, node: Any) -> float:
        """YAML's float, refused when it is not a finite number (.inf, .nan, 1e999)."""
        value = float(super().construct_yaml_float(node))
        if not math.isfinite(value):
            raise yaml.constructor.ConstructorError(
                None, None, f"{str(node.value)[:40]!r} is not a finite number", node.start_mark
            )
        return value


def _marked(construct: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    """A scalar constructor whose failures are YAML errors with their place.

    With an explicit tag (``!!int '12'``, ``!!timestamp x``) PyYAML hands any
    text to these constructors, which then raise ValueError, IndexError,
    KeyError, TypeError or AttributeError.
    """

    def construct_or_refuse(loader: Any, node: Any) -> Any:
        try:
            return construct(loader, node)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
            text = str(node.value)[:40]
            kind = str(node.tag).rpartition(":")[2]
            raise yaml.constructor.ConstructorError(
                None, None, f"{text!r} is not a valid {kind}", node.start_mark
            ) from exc

    return construct_or_refuse


for _tag, _construct in (
    ("int", _BoundedYamlLoader.construct_bounded_int),
    ("float", _BoundedYamlLoader.construct_finite_float),
    ("bool", yaml.SafeLoader.construct_yaml_bool),
    ("timestamp", yaml.SafeLoader.construct_yaml_timestamp),
):
    _BoundedYamlLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _marked(_construct))


def _load_yaml(text: str, source: str) -> Any:
    try:
        return yaml.load(text, Loader=_BoundedYamlLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = ", ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid"
        raise ManifestError(f"{source}: {where}not valid YAML: {reason}") from exc
    except yaml.YAMLError as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ManifestError(f"{source}: not valid YAML: {reason}") from exc


# ---- TOML: tomllib, after a scan that bounds depth and dotted keys --------------------

_TOML_TOKENS = re.compile(
    r"""
      (?P<string>
          \"\"\"(?:[^"\\]|\\.?|"(?!""))*(?:"{3,5}|\Z)     # multi-line basic
        | '''(?:[^']|'(?!''))*(?:'{3,5}|\Z)               # multi-line literal
        | "(?:[^"\\\n]|\\.?)*(?:"|(?=\n)|\Z)              # basic
        | '[^'\n]*(?:'|(?=\n)|\Z)                         # literal
      )
    | (?P<comment>\#[^\n]*)
    | (?P<open>[\[{])
    | (?P<close>[\]}])
    | (?P<dot>\.)
    | (?P<bare>[A-Za-z0-9_+-]+)
    | (?P<space>[ \t]+)
    | (?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)
_TOML_PLACE = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at (end of document))\)$")


def _toml_shape(text: str, source: str) -> None:
    """Refuse TOML nested deeper than MAX_DEPTH, or with a dotted key of more parts.

    A linear scan that skips strings and comments; tomllib itself recurses
    on nesting and takes memory in the square of a dotted key's parts.
    """
    depth = dots = 0
    for match in _TOML_TOKENS.finditer(text):
        kind = match.lastgroup
        if kind == "open":
            depth += 1
            if depth > MAX_DEPTH:
                raise ManifestError(
                    f"{source}: line {_line_of(text, match.start())}: not valid TOML: "
                    f"nested deeper than {MAX_DEPTH} levels"
                )
        elif kind == "close":
            depth = max(depth - 1, 0)
        if kind == "dot":
            dots += 1
            if dots >= MAX_DEPTH:
                raise ManifestError(
                    f"{source}: line {_line_of(text, match.start())}: not valid TOML: "
                    f"a dotted key has more than {MAX_DEPTH} parts"
                )
        elif kind not in ("string", "bare", "space"):
            dots = 0


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


class _NotFinite(Exception):
    """A TOML float that is not a finite number (tomllib lets it through)."""


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NotFinite(f"{literal[:40]} is not a finite number")
    return value


def _load_toml(text: str, source: str) -> Any:
    _toml_shape(text, source)
    try:
        return tomllib.loads(text, parse_float=_finite)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        place = _TOML_PLACE.search(message)
        where = ""
        if place is not None:
            message = message[: place.start()]
            if place.group(3):  # at the end of the document
                line = text.count("\n") + 1
                column = len(text) - (text.rfind("\n") + 1) + 1
                where = f"line {line}, column {column}: "
            else:
                where = f"line {place.group(1)}, column {place.group(2)}: "
        raise ManifestError(f"{source}: {where}not valid TOML: {message}") from exc
    except _NotFinite as exc:
        raise ManifestError(f"{source}: not valid TOML: {exc}") from exc
    except ValueError as exc:  # Python's int-string limit, hit inside tomllib
        raise ManifestError(
            f"{source}: not valid TOML: an integer has more than {MAX_INT_DIGITS} digits"
        ) from exc


# ---- the model -------------------------------------------------------------------------


class _Checker:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, reason: str) -> ManifestError:
        return ManifestError(f"{self.source}: {where}: {reason}")

    def keys(self, value: dict[Any, Any], where: str) -> None:
        """Every key of a map is a string (YAML also allows numbers, dates, null...)."""
        for key in value:
            if not isinstance(key, str):
                raise self.fail(where, f"the key {_show(key)} must be a string, not {_kind(key)}")

    def mapping(self, value: Any, where: str, allowed: set[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a map, not {_kind(value)}")
        self.keys(value, where)
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise self.fail(
                where, f"unknown key {_show(unknown[0])} (allowed: {', '.join(sorted(allowed))})"
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
        if "\0" in value:
            raise self.fail(where, "must not contain a NUL character")
        return value.strip()

    def strings(self, value: Any, where: str) -> dict[str, str]:
        """A map of config values: scalars are kept as their text."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a map, not {_kind(value)}")
        self.keys(value, where)
        out: dict[str, str] = {}
        for k, v in value.items():
            if isinstance(v, bool):
                out[k] = "true" if v else "false"
            elif isinstance(v, int) and abs(v) >= _INT_LIMIT:
                raise self.fail(f"{where}.{k}", f"has more than {MAX_INT_DIGITS} digits")
            elif isinstance(v, float) and not math.isfinite(v):
                raise self.fail(f"{where}.{k}", "is not a finite number")
            elif isinstance(v, (str, int, float)):
                out[k] = str(v)
            else:
                raise self.fail(f"{where}.{k}", f"must be a string, not {_kind(v)}")
        return out


def _kind(value: Any) -> str:
    """A parsed value's type in words, for messages."""
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    for kind, words in ((dict, "a map"), (list, "a list"), (str, "a string")):
        if isinstance(value, kind):
            return words
    if isinstance(value, bytes):
        return "binary data"
    if isinstance(value, set):
        return "a set"
    if hasattr(value, "isoformat"):
        return "a date or time"
    return f"a value of type {type(value).__name__}"


def _show(value: Any) -> str:
    """A key for a message: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _reason(exc: OSError | ValueError) -> str:
    """Why a path cannot be used, without repeating the (maybe huge) path."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)[:80]


def _check(data: Any, source: str, base_dir: Path) -> Manifest:
    c = _Checker(source)
    top = c.mapping(data, "top level", _TOP_LEVEL)
    labels = c.strings(top.get("labels"), "labels")
    actors: list[Path] = []
    settings: dict[Path, dict[str, float | int]] = {}
    for i, item in enumerate(c.items(top.get("actors"), "actors")):
        where = f"actors[{i}]"
        given: dict[str, float | int] = {}
        named = item
        if isinstance(item, dict):
            entry = c.mapping(item, where, {"path", *_ACTOR_SETTINGS})
            given = _actor_settings(c, entry, where)
            named = entry.get("path")
            where = f"{where}.path"
        path = Path(c.text(named, where))
        full = path if path.is_absolute() else (base_dir / path)
        try:
            found = full.is_file()
            resolved = full.resolve()
        except (OSError, ValueError) as exc:  # a name too long, a loop, ...
            raise c.fail(where, f"cannot use {_show(str(full))}: {_reason(exc)}") from exc
        if not found:
            raise c.fail(where, f"no such file: {full}")
        actors.append(resolved)
        if given:
            settings[resolved] = given
    capabilities: list[CapabilitySpec] = []
    seen: set[tuple[str, str]] = set()
    for i, item in enumerate(c.items(top.get("capabilities"), "capabilities")):
        where = f"capabilities[{i}]"
        entry = c.mapping(item, where, {"path", "binding_name", *ISOLATION_KEYS})
        spec_path = c.text(entry.get("path"), f"{where}.path")
        try:
            isolate, isolation = parse_isolation(entry)
        except ValueError as exc:
            raise c.fail(where, str(exc)) from exc
        binding = normalize_binding(
            c.text(entry.get("binding_name"), f"{where}.binding_name", required=False)
        )
        if (spec_path, binding) in seen:
            raise c.fail(where, f"{spec_path} is listed twice for binding {binding!r}")
        seen.add((spec_path, binding))
        try:
            anchored = _anchor(spec_path, base_dir)
        except (OSError, ValueError) as exc:
            raise c.fail(f"{where}.path", f"cannot use {_show(spec_path)}: {_reason(exc)}") from exc
        capabilities.append(CapabilitySpec(anchored, binding, isolate, isolation))
    bindings: list[BindingSpec] = []
    keys: set[tuple[str, str, str]] = set()
    for i, item in enumerate(c.items(top.get("bindings"), "bindings")):
        where = f"bindings[{i}]"
        entry = c.mapping(item, where, {"actor", "capability", "binding", "values"})
        actor = c.text(entry.get("actor"), f"{where}.actor")
        if len(actor) == 56 and actor[:1] == "M":  # looks like a key: it must be one
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
    signed_only = top.get("require_signed_providers", False)
    if not isinstance(signed_only, bool):
        raise c.fail("require_signed_providers", f"must be true or false, not {_kind(signed_only)}")
    return Manifest(
        source,
        base_dir,
        labels,
        tuple(actors),
        tuple(capabilities),
        tuple(bindings),
        settings,
        _lattice(c, top.get("lattice"), base_dir),
        signed_only,
    )


#: The ``lattice:`` section's keys: name -> kind (seconds are numbers above 0).
_LATTICE = {
    "url": "text",
    "namespace": "text",
    "creds": "path",
    "state_dir": "path",
    "trusted_hosts": "keys",
    "ephemeral_key": "bool",
    "heartbeat": "seconds",
    "call_timeout": "seconds",
    "rpc_timeout": "seconds",
    "inventory_window": "seconds",
    "lost_after": "count",
}


def _lattice(c: _Checker, value: Any, base_dir: Path) -> dict[str, Any]:
    """The ``lattice:`` section, each value of the right kind (LatticeConfig checks the rest)."""
    if value is None:
        return {}
    entry = c.mapping(value, "lattice", set(_LATTICE))
    out: dict[str, Any] = {}
    for name, kind in _LATTICE.items():
        v = entry.get(name)
        where = f"lattice.{name}"
        if v is None:
            continue
        if kind == "text":
            out[name] = c.text(v, where, required=name == "url")
        elif kind == "path":
            given = Path(c.text(v, where))
            out[name] = given if given.is_absolute() else (base_dir / given)
        elif kind == "keys":
            out[name] = tuple(c.text(k, f"{where}[{i}]") for i, k in enumerate(c.items(v, where)))
        elif kind == "bool":
            if not isinstance(v, bool):
                raise c.fail(where, f"must be true or false, not {_show(v)}")
            out[name] = v
        else:
            numeric = isinstance(v, int | float) and not isinstance(v, bool)
            if not numeric or not math.isfinite(v) or v <= 0 or abs(v) >= _INT_LIMIT:
                raise c.fail(where, f"must be a number above 0, not {_show(v)}")
            if kind == "count" and not isinstance(v, int):
                raise c.fail(where, f"must be a whole number, not {_show(v)}")
            out[name] = v
    if "url" not in out:
        raise c.fail("lattice.url", "missing (nats://HOST:PORT)")
    return out


#: An actor entry's own limits: name -> (type, smallest value).
_ACTOR_SETTINGS: dict[str, tuple[type, float]] = {
    "deadline": (float, 0.001),
    "memory_limit": (int, 65536),
    "min_instances": (int, 0),
    "max_instances": (int, 1),
}


def _actor_settings(c: _Checker, entry: dict[str, Any], where: str) -> dict[str, float | int]:
    """The limits an actor entry sets, each a number of the right kind and range."""
    found: dict[str, float | int] = {}
    for name, (kind, least) in _ACTOR_SETTINGS.items():
        value = entry.get(name)
        if value is None:
            continue
        numeric = isinstance(value, int | float) and not isinstance(value, bool)
        if not numeric or (kind is int and not isinstance(value, int)):
            what = "an integer" if kind is int else "a number of seconds"
            raise c.fail(f"{where}.{name}", f"must be {what}, not {_show(value)}")
        if value < least:
            raise c.fail(f"{where}.{name}", f"must be at least {least:g}, not {value}")
        found[name] = kind(value)
    low, high = found.get("min_instances"), found.get("max_instances")
    if low is not None and high is not None and low > high:
        raise c.fail(where, f"min_instances ({low}) is above max_instances ({high})")
    return found


def _anchor(spec: str, base_dir: Path) -> str:
    """A relative file path in a capability is relative to the manifest."""
    looks_like_file = "/" in spec or spec.endswith((*NATIVE_SUFFIXES, ".wasm"))
    if looks_like_file and not Path(spec).is_absolute():
        return str((base_dir / spec).resolve())
    return spec
