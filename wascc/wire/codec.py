"""Wire structs (CONTRACTS sections 2-3) and the only msgpack code in wascc.

Every struct is a frozen dataclass deriving from :class:`Message`, encoded as
a msgpack map keyed by the contract's exact field names.  Decoding accepts
what the original (rmp-serde) accepted:

* unknown keys are ignored, missing optional keys take their defaults;
* a struct may also come as an array of its fields in order;
* a byte field may be msgpack bin, str, or an array of small integers;
* a string field may be bin holding UTF-8;
* bytes after the first msgpack value are ignored (some guests pad buffers).

* a struct may also come as a map keyed by its snake_case field names
  (``status_code``, ``query_string``: unreleased codec commits wrote them);
* a string field that arrives as nil is read as "" (the AssemblyScript SDK
  writes nil for an absent ``replyTo``).

Anything else (wrong types, a missing required field, bytes that are not
msgpack at all) raises :class:`~wascc.errors.CodecError` naming the struct
and the field.

Codec eras (CONTRACTS section 2).  Replies from actors are read in all three
forms above.  Requests the host side sends to actors are written in the form
of the actor's era, one of :data:`FORMS`:

* ``map`` - camelCase maps with bin bytes (codec 0.6-0.8; the default);
* ``array`` - positional arrays in field order, bytes as arrays of ints
  (codec 0.5.x);
* ``snake`` - maps keyed by snake_case names, bin bytes (unreleased commits).

``Message.encode(form)`` writes a struct in any of them and :func:`transcode`
re-writes a request payload by its operation (:data:`REQUEST_STRUCTS`).  An
operator picks a form for one binding with the binding value
``WASCC_CODEC=map|array|snake`` (:data:`CODEC_VALUE`); without it the host
starts with ``map`` and, if an actor's first request fails with a
de-serialization error naming a field or a type (rmp-serde's ``missing field
`queryString```, ``invalid type: map, expected a sequence``), retries it in
the older forms and keeps the one that works for that actor (see
:mod:`wascc.host`).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union, cast

import msgpack

from wascc.errors import CodecError

__all__ = [
    "CODEC_VALUE",
    "FORMS",
    "FORM_ARRAY",
    "FORM_MAP",
    "FORM_SNAKE",
    "OP_BIND_ACTOR",
    "OP_GET_DESCRIPTOR",
    "OP_HEALTH_REQUEST",
    "OP_PERFORM_LIVE_UPDATE",
    "OP_REMOVE_ACTOR",
    "REQUEST_STRUCTS",
    "SYSTEM_ACTOR",
    "AddRequest",
    "AddResponse",
    "Blob",
    "BlobList",
    "BrokerMessage",
    "CapabilityConfiguration",
    "CapabilityDescriptor",
    "Column",
    "Container",
    "DelRequest",
    "DelResponse",
    "DeleteGraphRequest",
    "Direction",
    "Event",
    "EventAck",
    "EventList",
    "FileChunk",
    "GeneratorRequest",
    "GeneratorResult",
    "GetRequest",
    "GetResponse",
    "GraphNode",
    "GraphRelation",
    "HealthRequest",
    "HealthResponse",
    "HttpRequest",
    "HttpResponse",
    "KeyExistsQuery",
    "KeysRequest",
    "ListClearRequest",
    "ListDelItemRequest",
    "ListPushRequest",
    "ListRangeRequest",
    "ListRangeResponse",
    "ListResponse",
    "LiveUpdate",
    "Message",
    "OperationDescriptor",
    "PortableCall",
    "QueryGraphRequest",
    "RequestMessage",
    "ResultSet",
    "SetAddRequest",
    "SetQueryRequest",
    "SetQueryResponse",
    "SetRemoveRequest",
    "SetRequest",
    "SetResponse",
    "StreamQuery",
    "StreamRequest",
    "TelnetSession",
    "TelnetText",
    "TimeRange",
    "Transfer",
    "WriteLogRequest",
    "pack",
    "transcode",
    "unpack",
]

# Core operations (host <-> provider), CONTRACTS section 2.
OP_BIND_ACTOR = "BindActor"
OP_REMOVE_ACTOR = "RemoveActor"
OP_HEALTH_REQUEST = "HealthRequest"
OP_GET_DESCRIPTOR = "GetCapabilityDescriptor"
OP_PERFORM_LIVE_UPDATE = "PerformLiveUpdate"
SYSTEM_ACTOR = "system"

# Wire forms of the codec eras (see the module docstring).
FORM_MAP = "map"
FORM_ARRAY = "array"
FORM_SNAKE = "snake"
FORMS = (FORM_MAP, FORM_ARRAY, FORM_SNAKE)
#: The binding value that picks the request form for the actor of a binding.
CODEC_VALUE = "WASCC_CODEC"

M = TypeVar("M", bound="Message")


def pack(obj: Any) -> bytes:
    """msgpack-encode plain data (bytes as bin, str as str)."""
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes | bytearray | memoryview, what: str = "payload") -> Any:
    """Decode the first msgpack value of ``data``; trailing bytes are ignored."""
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except msgpack.ExtraData as extra:
        return extra.unpacked
    except UnicodeDecodeError:
        # A str that is not UTF-8: decode again keeping raw bytes (map keys
        # back to str), then let the field converters decide.  (Caught before
        # ValueError, of which UnicodeDecodeError is a subclass.)
        try:
            return _str_keys(msgpack.unpackb(data, raw=True, strict_map_key=False))
        except msgpack.ExtraData as extra:
            return _str_keys(extra.unpacked)
        except Exception as exc:
            raise CodecError(f"{what} is not valid msgpack ({exc or type(exc).__name__})") from exc
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise CodecError(f"{what} is not valid msgpack ({exc or type(exc).__name__})") from exc


def _text_key(key: Any) -> Any:
    if isinstance(key, bytes):
        try:
            return key.decode("utf-8")
        except UnicodeDecodeError:
            return key
    return key


#: How deep plain data may nest where a struct does not bound it (a field typed
#: Any, the raw fallback); msgpack itself allows 1024, past Python's stack.
MAX_DEPTH = 100


def _str_keys(obj: Any, depth: int = 0) -> Any:
    """Raw-decoded msgpack with its UTF-8 map keys turned back into str."""
    if isinstance(obj, (dict, list)) and depth >= MAX_DEPTH:
        raise CodecError(f"payload is nested deeper than {MAX_DEPTH} levels")
    if isinstance(obj, dict):
        return {_text_key(k): _str_keys(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_str_keys(v, depth + 1) for v in obj]
    return obj


def _shallow(value: Any, where: str) -> Any:
    """``value`` itself if its arrays and maps nest at most :data:`MAX_DEPTH` deep."""
    level = [value]
    for _ in range(MAX_DEPTH + 1):
        nested = [
            v
            for item in level
            if isinstance(item, (dict, list))
            for v in ([*item.keys(), *item.values()] if isinstance(item, dict) else item)
            if isinstance(v, (dict, list))
        ]
        if not nested:
            return value
        level = nested
    raise CodecError(f"{where} is nested deeper than {MAX_DEPTH} levels")


def wire(name: str, default: Any = dataclasses.MISSING) -> Any:
    """A dataclass field whose msgpack key is ``name`` (the contract's spelling)."""
    return field(default=default, metadata={"wire": name})


_PRIMITIVES = (str, int, bool, bytes, float)


class _Spec:
    """How one dataclass maps to the wire, and its generated fast codec.

    ``fields`` are (attribute, key, type, has_default).  ``to_wire`` and
    ``from_wire`` are compiled from them the first time a struct is used:
    the fast decoder takes fields whose wire values already have the exact
    Python type, and hands anything else (another type the original also
    accepted, a missing required field, garbage) to the generic
    :func:`_from_wire`, which converts or raises the precise ``CodecError``.
    """

    def __init__(self, cls: type[Message]) -> None:
        hints = typing.get_type_hints(cls)
        self.fields: list[tuple[str, str, Any, bool]] = []
        for f in dataclasses.fields(cast(Any, cls)):
            has_default = (
                f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            )
            key = f.metadata.get("wire", f.name)
            self.fields.append((f.name, key, hints[f.name], has_default))
        self.keys = {key: i for i, (_, key, _, _) in enumerate(self.fields)}
        # snake_case spellings (the attribute names) of fields renamed on the wire
        self.aliases = {attr: key for attr, key, _, _ in self.fields if attr != key}
        self.to_wire, self.from_wire = self._compile(cls)

    def _compile(self, cls: type[Message]) -> tuple[Any, Any]:
        env: dict[str, Any] = {
            "_to_wire": _to_wire,
            "_slow": _from_wire,
            "_cls": cls,
            "_MISSING": _MISSING,
            "_name": cls.__name__,
        }
        out = ["def to_wire(self):", "    return {"]
        dec = [
            "def from_wire(obj):",
            "    if type(obj) is not dict:",
            "        return _slow(_cls, obj, _name)",
            "    get = obj.get",
            "    kw = {}",
        ]
        for i, (attr, key, tp, has_default) in enumerate(self.fields):
            plain = tp in _PRIMITIVES or tp == dict[str, str]
            out.append(
                f"        {key!r}: self.{attr},"
                if plain
                else f"        {key!r}: _to_wire(self.{attr}),"
            )
            if tp in _PRIMITIVES or tp in (dict[str, str], tuple[str, ...]):
                dec.append(f"    v = get({key!r}, _MISSING)")
                if attr != key:  # a snake_case map: the generic path reads it
                    dec.append(f"    if v is _MISSING and {attr!r} in obj:")
                    dec.append("        return _slow(_cls, obj, _name)")
                if tp == dict[str, str]:
                    dec.append(
                        "    if type(v) is dict and all(type(a) is str and type(b) is str"
                        " for a, b in v.items()):"
                    )
                    dec.append(f"        kw[{attr!r}] = v")
                elif tp == tuple[str, ...]:
                    dec.append("    if type(v) is list and all(type(a) is str for a in v):")
                    dec.append(f"        kw[{attr!r}] = tuple(v)")
                else:
                    env[f"_t{i}"] = tp
                    dec.append(f"    if type(v) is _t{i}:")
                    dec.append(f"        kw[{attr!r}] = v")
                dec.append("    elif v is not _MISSING or not " + repr(has_default) + ":")
                dec.append("        return _slow(_cls, obj, _name)")
            else:
                present = f"{key!r} in obj" + (f" or {attr!r} in obj" if attr != key else "")
                dec.append(f"    if {present}:")
                dec.append("        return _slow(_cls, obj, _name)")
                if not has_default:
                    dec.append("    else:")
                    dec.append("        return _slow(_cls, obj, _name)")
        out.append("    }")
        dec.append("    return _cls(**kw)")
        exec("\n".join(out) + "\n" + "\n".join(dec), env)  # code generated from the fields
        return env["to_wire"], env["from_wire"]


_MISSING = object()


class Message:
    """Base of every wire struct: ``encode()`` and ``decode()`` as msgpack."""

    __slots__ = ()
    __wascc_spec__: ClassVar[_Spec]

    def to_wire(self) -> dict[Any, Any]:
        """The struct as a plain map keyed by wire names."""
        return cast(dict[Any, Any], _spec(type(self)).to_wire(self))

    def encode(self, form: str = FORM_MAP) -> bytes:
        """msgpack bytes of this struct, in one of :data:`FORMS` (camelCase map by default)."""
        if form == FORM_MAP:
            return pack(self.to_wire())
        return pack(_to_form(self, form))

    @classmethod
    def from_wire(cls: type[M], obj: Any) -> M:
        """Build the struct from decoded msgpack data, checking every field."""
        return cast(M, _spec(cls).from_wire(obj))

    @classmethod
    def decode(cls: type[M], data: bytes | bytearray | memoryview) -> M:
        """Decode msgpack bytes into this struct."""
        return cls.from_wire(unpack(data, cls.__name__))


def _spec(cls: type[Message]) -> _Spec:
    spec = cls.__dict__.get("__wascc_spec__")
    if spec is None:
        spec = _Spec(cls)
        cls.__wascc_spec__ = spec
    return spec


def _to_wire(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_wire()
    if isinstance(value, WireEnum):
        return value.to_wire()
    if isinstance(value, (list, tuple)):
        return [_to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items()}
    return value


def _to_form(value: Any, form: str) -> Any:
    """``value`` as plain data in an older era's form (``array`` or ``snake``)."""
    if isinstance(value, Message):
        if form not in FORMS:
            raise CodecError(f"unknown codec form {form!r} (one of {', '.join(FORMS)})")
        if form == FORM_MAP or "to_wire" in type(value).__dict__:
            return value.to_wire()  # a struct with its own wire form has no eras
        items = [
            # a field typed Any (graph properties) holds plain data, not a Vec<u8>
            (attr, _to_wire(v) if tp is Any or Any in typing.get_args(tp) else _to_form(v, form))
            for attr, _, tp, _ in _spec(type(value)).fields
            for v in (getattr(value, attr),)
        ]
        if form == FORM_ARRAY:
            return [v for _, v in items]
        return dict(items)
    if isinstance(value, bytes):
        return list(value) if form == FORM_ARRAY else value  # Vec<u8> as 0.5.x wrote it
    if isinstance(value, WireEnum):
        return value.to_wire()
    if isinstance(value, (list, tuple)):
        return [_to_form(v, form) for v in value]
    if isinstance(value, dict):
        return {k: _to_form(v, form) for k, v in value.items()}
    return value


def _text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CodecError(f"{where} is not UTF-8") from exc
    raise CodecError(f"{where} must be a string, got {type(value).__name__}")


def _bytes(value: Any, where: str) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, list):
        try:
            return bytes(value)
        except (ValueError, TypeError) as exc:
            raise CodecError(f"{where} must be bytes, got a list that is not bytes") from exc
    raise CodecError(f"{where} must be bytes, got {type(value).__name__}")


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _convert(args[0], value, where)
    if tp is str:
        return _text(value, where)
    if tp is bytes:
        return _bytes(value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise CodecError(f"{where} must be a boolean, got {type(value).__name__}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CodecError(f"{where} must be an integer, got {type(value).__name__}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise CodecError(f"{where} must be a number, got {type(value).__name__}")
        return float(value)
    if tp is Any:
        return _shallow(value, where)
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise CodecError(f"{where} must be a map, got {type(value).__name__}")
        kt, vt = typing.get_args(tp)
        return {
            _convert(kt, k, f"{where} key"): _convert(vt, v, f"{where}[{k!r}]")
            for k, v in value.items()
        }
    if origin in (list, tuple):
        if value is None:
            return ()
        if not isinstance(value, (list, tuple)):
            raise CodecError(f"{where} must be an array, got {type(value).__name__}")
        (et, *_) = typing.get_args(tp)
        return tuple(_convert(et, v, f"{where}[{i}]") for i, v in enumerate(value))
    if isinstance(tp, type) and issubclass(tp, Message):
        if "from_wire" in tp.__dict__:  # a struct with its own wire form
            return tp.from_wire(value)
        return _from_wire(tp, value, where)
    if isinstance(tp, type) and issubclass(tp, WireEnum):
        return tp.from_wire(value, where)
    raise TypeError(f"codec has no converter for {tp!r}")  # a bug in a struct definition


def _from_wire(cls: type[Message], obj: Any, where: str) -> Message:
    spec = _spec(cls)
    if isinstance(obj, (list, tuple)):
        if len(obj) > len(spec.fields):
            raise CodecError(
                f"{where}: array form has {len(obj)} items, expected at most {len(spec.fields)}"
            )
        obj = {spec.fields[i][1]: v for i, v in enumerate(obj)}
    if not isinstance(obj, dict):
        raise CodecError(f"{where} must be a map, got {type(obj).__name__}")
    kwargs: dict[str, Any] = {}
    for attr, key, tp, has_default in spec.fields:
        for name in (key, attr) if attr != key else (key,):  # camelCase, then snake_case
            if name in obj:
                value = obj[name]
                break
            if name.encode() in obj:  # keys decoded raw after a non-UTF-8 value
                value = obj[name.encode()]
                break
        else:
            if has_default:
                continue
            raise CodecError(f"{where} is missing the field `{key}`")
        if value is None:
            if tp is str:
                kwargs[attr] = ""  # nil in a string field (AssemblyScript's absent replyTo)
                continue
            if has_default and typing.get_origin(tp) not in (Union, types.UnionType):
                continue
        kwargs[attr] = _convert(tp, value, f"{where}.{key}")
    return cls(**kwargs)


class WireEnum(enum.Enum):
    """An enum written as rmp-serde wrote Rust enums: ``{index: nil}``.

    Decoding also accepts the variant name as a string or as a map key.
    """

    def to_wire(self) -> Any:
        return {list(type(self)).index(self): None}

    @classmethod
    def from_wire(cls, value: Any, where: str) -> Any:
        members = list(cls)
        key: Any = value
        if isinstance(value, dict) and len(value) == 1:
            (key,) = value.keys()
        if isinstance(key, bytes):
            key = key.decode("utf-8", "replace")
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < len(members):
            return members[key]
        if isinstance(key, str):
            for m in members:
                if key.lower() in (m.value.lower(), m.name.lower()):
                    return m
        raise CodecError(f"{where}: {value!r} is not one of {[m.value for m in members]}")


# ---- core (section 2) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapabilityConfiguration(Message):
    """BindActor / RemoveActor payload: the actor and its binding's values."""

    module: str
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class HealthRequest(Message):
    placeholder: bool = True


@dataclass(frozen=True, slots=True)
class HealthResponse(Message):
    healthy: bool
    message: str = ""


@dataclass(frozen=True, slots=True)
class LiveUpdate(Message):
    new_module: bytes = wire("newModule", b"")


class Direction(WireEnum):
    TO_ACTOR = "to_actor"
    TO_PROVIDER = "to_provider"
    BOTH = "both"


@dataclass(frozen=True, slots=True)
class OperationDescriptor(Message):
    name: str
    direction: Direction
    doctext: str = ""


@dataclass(frozen=True, slots=True)
class CapabilityDescriptor(Message):
    id: str
    name: str = ""
    version: str = ""
    revision: int = 0
    long_description: str = ""
    supported_operations: tuple[OperationDescriptor, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The descriptor as people and tools read it (inventory, ``wascc inspect``)."""
        return {
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "revision": self.revision,
            "description": self.long_description,
            "operations": [
                {"name": o.name, "direction": o.direction.value, "doctext": o.doctext}
                for o in self.supported_operations
            ],
        }


@dataclass(frozen=True, slots=True)
class PortableCall(Message):
    """What the host sends a portable (WASI) provider with every call: the
    calling actor (``system`` for core operations) and the call's payload."""

    actor: str
    msg: bytes = b""


# ---- wascc:http_server / wascc:http_client ---------------------------------


@dataclass(frozen=True, slots=True)
class HttpRequest(Message):
    method: str = "GET"
    path: str = "/"
    query_string: str = wire("queryString", "")
    header: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpResponse(Message):
    status_code: int = wire("statusCode", 200)
    status: str = "OK"
    header: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


# ---- wascc:keyvalue ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GetRequest(Message):
    key: str


@dataclass(frozen=True, slots=True)
class GetResponse(Message):
    value: str = ""
    exists: bool = False


@dataclass(frozen=True, slots=True)
class SetRequest(Message):
    key: str
    value: str
    expires: int = 0


@dataclass(frozen=True, slots=True)
class SetResponse(Message):
    value: str = ""


@dataclass(frozen=True, slots=True)
class DelRequest(Message):
    key: str


@dataclass(frozen=True, slots=True)
class DelResponse(Message):
    key: str = ""


@dataclass(frozen=True, slots=True)
class AddRequest(Message):
    key: str
    value: int


@dataclass(frozen=True, slots=True)
class AddResponse(Message):
    value: int = 0


@dataclass(frozen=True, slots=True)
class ListPushRequest(Message):
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class ListDelItemRequest(Message):
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class ListResponse(Message):
    new_count: int = wire("newCount", 0)


@dataclass(frozen=True, slots=True)
class ListRangeRequest(Message):
    key: str
    start: int = 0
    stop: int = -1


@dataclass(frozen=True, slots=True)
class ListRangeResponse(Message):
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ListClearRequest(Message):
    key: str


@dataclass(frozen=True, slots=True)
class SetAddRequest(Message):
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class SetRemoveRequest(Message):
    key: str
    value: str


@dataclass(frozen=True, slots=True)
class KeysRequest(Message):
    """SetUnion / SetIntersection payload."""

    keys: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SetQueryRequest(Message):
    key: str


@dataclass(frozen=True, slots=True)
class SetQueryResponse(Message):
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class KeyExistsQuery(Message):
    key: str


# ---- wascc:messaging --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BrokerMessage(Message):
    subject: str
    reply_to: str = wire("replyTo", "")
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class RequestMessage(Message):
    subject: str
    body: bytes = b""
    timeout: int = 0


# ---- wascc:logging ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WriteLogRequest(Message):
    level: int
    body: str = ""


# ---- wascc:extras -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GeneratorRequest(Message):
    guid: bool = False
    sequence: bool = False
    random: bool = False
    min: int = 0
    max: int = 0


@dataclass(frozen=True, slots=True)
class GeneratorResult(Message):
    guid: str | None = None
    sequence_number: int = wire("sequenceNumber", 0)
    random_number: int = wire("randomNumber", 0)


# ---- wascc:blobstore --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Container(Message):
    id: str


@dataclass(frozen=True, slots=True)
class Blob(Message):
    id: str = ""
    container: str = ""
    byte_size: int = wire("byteSize", 0)


@dataclass(frozen=True, slots=True)
class BlobList(Message):
    blobs: tuple[Blob, ...] = ()


@dataclass(frozen=True, slots=True)
class FileChunk(Message):
    sequence_no: int = wire("sequenceNo", 0)
    container: str = ""
    id: str = ""
    total_bytes: int = wire("totalBytes", 0)
    chunk_size: int = wire("chunkSize", 0)
    context: str | None = None
    chunk_bytes: bytes = wire("chunkBytes", b"")


@dataclass(frozen=True, slots=True)
class StreamRequest(Message):
    id: str
    container: str
    chunk_size: int = wire("chunkSize", 0)
    context: str | None = None


@dataclass(frozen=True, slots=True)
class Transfer(Message):
    blob_id: str = wire("blobId", "")
    container: str = ""
    chunk_size: int = wire("chunkSize", 0)
    total_size: int = wire("totalSize", 0)
    total_chunks: int = wire("totalChunks", 0)
    context: str | None = None


# ---- wascc:eventstreams -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event(Message):
    event_id: str = wire("eventId", "")
    stream: str = ""
    values: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventAck(Message):
    event_id: str | None = wire("eventId", None)


@dataclass(frozen=True, slots=True)
class TimeRange(Message):
    min_time: int = wire("minTime", 0)
    max_time: int = wire("maxTime", 0)


@dataclass(frozen=True, slots=True)
class StreamQuery(Message):
    stream_id: str = wire("streamId", "")
    range: TimeRange | None = None
    count: int = 0


@dataclass(frozen=True, slots=True)
class EventList(Message):
    events: tuple[Event, ...] = ()


# ---- wascc:telnet -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TelnetSession(Message):
    """SessionStarted payload."""

    session: str


@dataclass(frozen=True, slots=True)
class TelnetText(Message):
    """ReceiveText and SendText payload."""

    session: str
    text: str = ""


# ---- wascc:graphdb ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class QueryGraphRequest(Message):
    query: str
    graph_name: str = ""


@dataclass(frozen=True, slots=True)
class DeleteGraphRequest(Message):
    graph_name: str


_SCALAR_KINDS = ("Nil", "Boolean", "Integer", "Double", "String")


def _scalar_to_wire(value: Any) -> Any:
    """A graph scalar as the contract writes it: ``{kind index: value}``, a string as
    an array of its UTF-8 bytes (the actors' decoder refuses str and bin there)."""
    if value is None:
        return {0: None}
    if isinstance(value, bool):
        return {1: value}
    if isinstance(value, int):
        return {2: value}
    if isinstance(value, float):
        return {3: value}
    if isinstance(value, str):
        return {4: list(value.encode("utf-8", "surrogatepass"))}
    if isinstance(value, (bytes, bytearray)):
        return {4: list(value)}
    return _to_wire(value)  # not a contract scalar: written as plain data


def _property_from_wire(value: Any, where: str) -> Any:
    """A property value: a tagged scalar is read as its plain value, anything else kept."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, _),) = value.items()
        if isinstance(tag, int) and not isinstance(tag, bool) and 0 <= tag < len(_SCALAR_KINDS):
            try:
                return _scalar_from_wire(value, where)
            except CodecError:
                return value
    return value


def _properties_to_wire(properties: dict[str, Any]) -> dict[str, Any]:
    return {k: _scalar_to_wire(v) for k, v in properties.items()}


@dataclass(frozen=True, slots=True)
class GraphNode(Message):
    """A node of a graph result; ``properties`` hold plain values, written as tagged scalars."""

    labels: tuple[str, ...] = ()
    properties: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[Any, Any]:
        return {"labels": list(self.labels), "properties": _properties_to_wire(self.properties)}

    @classmethod
    def from_wire(cls, obj: Any) -> GraphNode:
        node = cast(GraphNode, _from_wire(cls, obj, "GraphNode"))
        props = {
            k: _property_from_wire(v, f"GraphNode.properties[{k!r}]")
            for k, v in node.properties.items()
        }
        return cls(labels=node.labels, properties=props)


@dataclass(frozen=True, slots=True)
class GraphRelation(Message):
    """A relation of a graph result; ``properties`` as in :class:`GraphNode`."""

    type_name: str = ""
    properties: dict[str, Any] = field(default_factory=dict)

    def to_wire(self) -> dict[Any, Any]:
        return {"type_name": self.type_name, "properties": _properties_to_wire(self.properties)}

    @classmethod
    def from_wire(cls, obj: Any) -> GraphRelation:
        rel = cast(GraphRelation, _from_wire(cls, obj, "GraphRelation"))
        props = {
            k: _property_from_wire(v, f"GraphRelation.properties[{k!r}]")
            for k, v in rel.properties.items()
        }
        return cls(type_name=rel.type_name, properties=props)


_SCALAR_TYPES: dict[str, type | tuple[type, ...]] = {
    "Boolean": bool,
    "Integer": int,
    "Double": (float, int),
}


def _scalar_from_wire(value: Any, where: str) -> Any:
    """A graph scalar: plain (nil/bool/int/float/str) or rmp-serde's ``{index: value}``."""
    if isinstance(value, dict) and len(value) == 1:
        ((tag, inner),) = value.items()
        kind = _SCALAR_KINDS[tag] if isinstance(tag, int) and 0 <= tag < 5 else tag
        if kind == "Nil":
            return None
        if kind == "String":  # the graphdb contract writes it as an array of its UTF-8 bytes
            return _text(_bytes(inner, where) if isinstance(inner, list) else inner, where)
        if kind in _SCALAR_TYPES:
            if isinstance(inner, _SCALAR_TYPES[kind]) and not (
                kind != "Boolean" and isinstance(inner, bool)
            ):
                return float(cast(float, inner)) if kind == "Double" else inner
            raise CodecError(f"{where}: a {kind} scalar cannot be {type(inner).__name__}")
        raise CodecError(f"{where}: unknown scalar kind {tag!r}")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, bytes):
        return _text(value, where)
    raise CodecError(f"{where}: {type(value).__name__} is not a graph scalar")


@dataclass(frozen=True, slots=True)
class Column(Message):
    """One result column: exactly one of scalars, nodes or relations is set."""

    scalars: tuple[Any, ...] | None = None
    nodes: tuple[GraphNode, ...] | None = None
    relations: tuple[GraphRelation, ...] | None = None

    _KINDS: ClassVar[tuple[str, ...]] = ("scalars", "nodes", "relations")

    def to_wire(self) -> dict[Any, Any]:
        if self.scalars is not None:
            return {0: [_scalar_to_wire(v) for v in self.scalars]}
        for index, name in enumerate(self._KINDS):
            value = getattr(self, name)
            if value is not None:
                return {index: _to_wire(value)}
        return {0: []}

    @classmethod
    def from_wire(cls, obj: Any) -> Column:
        return _column_from_wire(obj, "Column")


def _column_from_wire(obj: Any, where: str) -> Column:
    if not isinstance(obj, dict) or len(obj) != 1:
        raise CodecError(f"{where} must be a one-entry map (scalars, nodes or relations)")
    ((tag, inner),) = obj.items()
    if isinstance(tag, bytes):
        tag = tag.decode("utf-8", "replace")
    kinds = Column._KINDS
    name = kinds[tag] if isinstance(tag, int) and 0 <= tag < 3 else str(tag).lower()
    if not isinstance(inner, (list, tuple)):
        raise CodecError(f"{where}.{name} must be an array")
    if name == "scalars":
        return Column(scalars=tuple(_scalar_from_wire(v, f"{where}.scalars") for v in inner))
    if name == "nodes":
        return Column(nodes=tuple(GraphNode.from_wire(v) for v in inner))
    if name == "relations":
        return Column(relations=tuple(GraphRelation.from_wire(v) for v in inner))
    raise CodecError(f"{where}: unknown column kind {tag!r}")


@dataclass(frozen=True, slots=True)
class ResultSet(Message):
    columns: tuple[Column, ...] = ()
    statistics: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, obj: Any) -> ResultSet:
        if isinstance(obj, (list, tuple)) and len(obj) <= 2:  # the array form
            obj = dict(zip(("columns", "statistics"), obj, strict=False))
        if not isinstance(obj, dict):
            raise CodecError("ResultSet must be a map or an array of at most 2 items")
        # Keys are bytes when unpack() fell back to raw mode (a non-UTF-8 str inside).
        cols = obj.get("columns", obj.get(b"columns")) or []
        if not isinstance(cols, list):
            raise CodecError("ResultSet.columns must be an array")
        stats = _convert(
            tuple[str, ...], obj.get("statistics", obj.get(b"statistics")), "ResultSet.statistics"
        )
        return cls(
            columns=tuple(
                _column_from_wire(c, f"ResultSet.columns[{i}]") for i, c in enumerate(cols)
            ),
            statistics=stats,
        )


#: The structs the host side sends *to* actors, by operation: the payloads
#: :func:`transcode` may re-write for an actor of an older codec era.
REQUEST_STRUCTS: dict[str, type[Message]] = {
    "HandleRequest": HttpRequest,
    "DeliverMessage": BrokerMessage,
    OP_HEALTH_REQUEST: HealthRequest,
    "SessionStarted": TelnetSession,
    "ReceiveText": TelnetText,
    "ReceiveChunk": FileChunk,
    "DeliverEvent": Event,
}


def transcode(operation: str, payload: bytes, form: str) -> bytes | None:
    """Re-write a request to an actor in ``form``; None if ``operation`` has no
    known request struct or ``payload`` is not one (then nothing can be re-written)."""
    struct = REQUEST_STRUCTS.get(operation)
    if struct is None:
        return None
    try:
        return struct.decode(payload).encode(form)
    except CodecError:
        return None
