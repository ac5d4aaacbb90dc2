"""Wire structs (CONTRACTS sections 2-3): msgpack maps keyed by the contract's names."""

from __future__ import annotations

import dataclasses
from typing import Any

import msgpack
import pytest

from wascc.errors import CodecError
from wascc.wire import codec
from wascc.wire.codec import (
    AddRequest,
    AddResponse,
    Blob,
    BlobList,
    BrokerMessage,
    CapabilityConfiguration,
    CapabilityDescriptor,
    Column,
    Container,
    DeleteGraphRequest,
    DelRequest,
    DelResponse,
    Direction,
    Event,
    EventAck,
    EventList,
    FileChunk,
    GeneratorRequest,
    GeneratorResult,
    GetRequest,
    GetResponse,
    GraphNode,
    GraphRelation,
    HealthRequest,
    HealthResponse,
    HttpRequest,
    HttpResponse,
    KeyExistsQuery,
    KeysRequest,
    ListClearRequest,
    ListDelItemRequest,
    ListPushRequest,
    ListRangeRequest,
    ListRangeResponse,
    ListResponse,
    LiveUpdate,
    Message,
    OperationDescriptor,
    PortableCall,
    QueryGraphRequest,
    RequestMessage,
    ResultSet,
    SetAddRequest,
    SetQueryRequest,
    SetQueryResponse,
    SetRemoveRequest,
    SetRequest,
    SetResponse,
    StreamQuery,
    StreamRequest,
    TelnetSession,
    TelnetText,
    TimeRange,
    Transfer,
    WriteLogRequest,
)

# One sample per struct, every field away from its default, with the exact wire
# keys the contract names.
SAMPLES: list[tuple[Message, set[str]]] = [
    (
        CapabilityConfiguration(module="Mabc", values={"PORT": "8080", "__wascc_name": "x"}),
        {"module", "values"},
    ),
    (HealthRequest(placeholder=False), {"placeholder"}),
    (HealthResponse(healthy=True, message="fine"), {"healthy", "message"}),
    (LiveUpdate(new_module=b"\x00asm\x01\x00\x00\x00"), {"newModule"}),
    (PortableCall(actor="system", msg=b"\x80"), {"actor", "msg"}),
    (
        OperationDescriptor(name="Get", direction=Direction.TO_PROVIDER, doctext="reads"),
        {"name", "direction", "doctext"},
    ),
    (
        CapabilityDescriptor(
            id="wascc:keyvalue",
            name="KV",
            version="1.0",
            revision=4,
            long_description="a store",
            supported_operations=(
                OperationDescriptor(name="Get", direction=Direction.TO_PROVIDER),
                OperationDescriptor(name="Deliver", direction=Direction.TO_ACTOR, doctext="d"),
                OperationDescriptor(name="Both", direction=Direction.BOTH),
            ),
        ),
        {"id", "name", "version", "revision", "long_description", "supported_operations"},
    ),
    (
        HttpRequest(
            method="POST",
            path="/items",
            query_string="a=1&b=2",
            header={"Content-Type": "text/plain"},
            body=b"\x00\xffhello",
        ),
        {"method", "path", "queryString", "header", "body"},
    ),
    (
        HttpResponse(status_code=404, status="Not Found", header={"X": "y"}, body=b"nope"),
        {"statusCode", "status", "header", "body"},
    ),
    (GetRequest(key="k"), {"key"}),
    (GetResponse(value="v", exists=True), {"value", "exists"}),
    (SetRequest(key="k", value="v", expires=30), {"key", "value", "expires"}),
    (SetResponse(value="v"), {"value"}),
    (DelRequest(key="k"), {"key"}),
    (DelResponse(key="k"), {"key"}),
    (AddRequest(key="k", value=-5), {"key", "value"}),
    (AddResponse(value=12), {"value"}),
    (ListPushRequest(key="k", value="v"), {"key", "value"}),
    (ListDelItemRequest(key="k", value="v"), {"key", "value"}),
    (ListResponse(new_count=3), {"newCount"}),
    (ListRangeRequest(key="k", start=1, stop=5), {"key", "start", "stop"}),
    (ListRangeResponse(values=("a", "b")), {"values"}),
    (ListClearRequest(key="k"), {"key"}),
    (SetAddRequest(key="k", value="v"), {"key", "value"}),
    (SetRemoveRequest(key="k", value="v"), {"key", "value"}),
    (KeysRequest(keys=("a", "b", "c")), {"keys"}),
    (SetQueryRequest(key="k"), {"key"}),
    (SetQueryResponse(values=("x",)), {"values"}),
    (KeyExistsQuery(key="k"), {"key"}),
    (BrokerMessage(subject="s.t", reply_to="inbox.1", body=b"msg"), {"subject", "replyTo", "body"}),
    (RequestMessage(subject="s", body=b"q", timeout=250), {"subject", "body", "timeout"}),
    (WriteLogRequest(level=3, body="hello"), {"level", "body"}),
    (
        GeneratorRequest(guid=True, sequence=True, random=True, min=1, max=10),
        {"guid", "sequence", "random", "min", "max"},
    ),
    (
        GeneratorResult(guid="0f0e", sequence_number=2**40, random_number=7),
        {"guid", "sequenceNumber", "randomNumber"},
    ),
    (Container(id="c"), {"id"}),
    (Blob(id="b", container="c", byte_size=99), {"id", "container", "byteSize"}),
    (
        BlobList(blobs=(Blob(id="a", container="c", byte_size=1), Blob(id="b"))),
        {"blobs"},
    ),
    (
        FileChunk(
            sequence_no=2,
            container="c",
            id="f",
            total_bytes=300,
            chunk_size=100,
            context="ctx",
            chunk_bytes=b"\x01\x02\x03",
        ),
        {"sequenceNo", "container", "id", "totalBytes", "chunkSize", "context", "chunkBytes"},
    ),
    (
        StreamRequest(id="f", container="c", chunk_size=64, context="ctx"),
        {"id", "container", "chunkSize", "context"},
    ),
    (
        Transfer(
            blob_id="f",
            container="c",
            chunk_size=64,
            total_size=1000,
            total_chunks=16,
            context="ctx",
        ),
        {"blobId", "container", "chunkSize", "totalSize", "totalChunks", "context"},
    ),
    (Event(event_id="1-0", stream="s", values={"a": "b"}), {"eventId", "stream", "values"}),
    (EventAck(event_id="1-0"), {"eventId"}),
    (TimeRange(min_time=5, max_time=10), {"minTime", "maxTime"}),
    (
        StreamQuery(stream_id="s", range=TimeRange(min_time=1, max_time=2), count=10),
        {"streamId", "range", "count"},
    ),
    (EventList(events=(Event(event_id="1", stream="s"), Event(event_id="2"))), {"events"}),
    (TelnetSession(session="abc"), {"session"}),
    (TelnetText(session="abc", text="hi"), {"session", "text"}),
    (QueryGraphRequest(query="MATCH (n) RETURN n", graph_name="g"), {"query", "graph_name"}),
    (DeleteGraphRequest(graph_name="g"), {"graph_name"}),
    (GraphNode(labels=("Person",), properties={"age": 3, "name": "x"}), {"labels", "properties"}),
    (GraphRelation(type_name="KNOWS", properties={"since": 2001}), {"type_name", "properties"}),
    (
        ResultSet(
            columns=(
                Column(scalars=(None, True, 3, 1.5, "s")),
                Column(nodes=(GraphNode(labels=("L",), properties={"p": 1}),)),
                Column(relations=(GraphRelation(type_name="R"),)),
            ),
            statistics=("Nodes created: 1",),
        ),
        {"columns", "statistics"},
    ),
]

BYTE_FIELDS: list[tuple[type[Message], str, str]] = [
    (HttpRequest, "body", "body"),
    (HttpResponse, "body", "body"),
    (LiveUpdate, "newModule", "new_module"),
    (BrokerMessage, "body", "body"),
    (RequestMessage, "body", "body"),
    (FileChunk, "chunkBytes", "chunk_bytes"),
]


def _pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def _wire(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def _id(sample: tuple[Message, set[str]]) -> str:
    return type(sample[0]).__name__


def _sample(cls: type[Message]) -> Message:
    return next(m for m, _ in SAMPLES if type(m) is cls)


# ---- round trips and field names ---------------------------------------------


def test_every_wire_struct_has_a_sample() -> None:
    structs = {
        obj
        for name in codec.__all__
        if isinstance(obj := getattr(codec, name), type)
        and issubclass(obj, Message)
        and obj is not Message
    }
    assert structs == {type(m) for m, _ in SAMPLES} | {Column}


@pytest.mark.parametrize("sample", SAMPLES, ids=_id)
def test_struct_round_trips(sample: tuple[Message, set[str]]) -> None:
    message, _ = sample
    assert type(message).decode(message.encode()) == message


def _all_defaulted(cls: type[Message]) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)  # type: ignore[arg-type]
    )


DEFAULTED = [type(m) for m, _ in SAMPLES if _all_defaulted(type(m))]


@pytest.mark.parametrize("cls", DEFAULTED, ids=lambda c: c.__name__)
def test_struct_with_defaults_round_trips(cls: type[Message]) -> None:
    empty = cls()
    assert cls.decode(empty.encode()) == empty
    assert cls.decode(codec.pack({})) == empty


@pytest.mark.parametrize("sample", SAMPLES, ids=_id)
def test_struct_encodes_as_a_map_with_the_contract_field_names(
    sample: tuple[Message, set[str]],
) -> None:
    message, keys = sample
    data = message.encode()
    assert 0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF)  # a msgpack map
    assert set(_wire(data)) == keys


def _byte_id(case: tuple[type[Message], str, str]) -> str:
    return f"{case[0].__name__}.{case[1]}"


@pytest.mark.parametrize(
    ("cls", "key", "attr"), BYTE_FIELDS, ids=[_byte_id(c) for c in BYTE_FIELDS]
)
def test_byte_fields_are_msgpack_bin(cls: type[Message], key: str, attr: str) -> None:
    message = _sample(cls)
    data = message.encode()
    value = getattr(message, attr)
    assert isinstance(_wire(data)[key], bytes)
    # bin 8 header (0xc4) then the length, then the bytes themselves
    assert bytes([0xC4, len(value)]) + value in data


def test_string_fields_are_msgpack_str_not_bin() -> None:
    data = HttpRequest(method="POST", path="/p").encode()
    assert b"\xa4POST" in data
    assert b"\xa2/p" in data
    wire = _wire(data)
    assert isinstance(wire["method"], str)
    assert isinstance(wire["queryString"], str)


def test_encoded_map_values_are_plain_msgpack() -> None:
    wire = _wire(_sample(StreamQuery).encode())
    assert wire == {"streamId": "s", "range": {"minTime": 1, "maxTime": 2}, "count": 10}
    wire = _wire(_sample(BlobList).encode())
    assert wire == {
        "blobs": [
            {"id": "a", "container": "c", "byteSize": 1},
            {"id": "b", "container": "", "byteSize": 0},
        ]
    }


def test_unset_optional_fields_encode_as_nil() -> None:
    assert _wire(GeneratorResult().encode())["guid"] is None
    assert _wire(FileChunk().encode())["context"] is None
    assert _wire(StreamQuery().encode())["range"] is None
    assert GeneratorResult.decode(GeneratorResult().encode()).guid is None


def test_encode_of_a_large_body_uses_bin32() -> None:
    body = b"x" * 70_000
    data = HttpResponse(body=body).encode()
    assert b"\xc6" + len(body).to_bytes(4, "big") + body in data
    assert HttpResponse.decode(data).body == body


# ---- what decoders accept ----------------------------------------------------


def test_decoder_ignores_unknown_keys() -> None:
    data = _pack({"method": "PUT", "unknown": [1, 2, {"x": b"y"}], "another": None, 7: 8})
    assert HttpRequest.decode(data) == HttpRequest(method="PUT")


def test_decoder_ignores_unknown_keys_in_nested_structs() -> None:
    data = _pack({"blobs": [{"id": "a", "extra": True}]})
    assert BlobList.decode(data) == BlobList(blobs=(Blob(id="a"),))


def test_decoder_defaults_missing_optional_keys() -> None:
    assert HttpRequest.decode(_pack({})) == HttpRequest()
    assert HttpResponse.decode(_pack({"body": b"x"})) == HttpResponse(body=b"x")
    assert BrokerMessage.decode(_pack({"subject": "s"})) == BrokerMessage(subject="s")
    assert FileChunk.decode(_pack({"id": "f"})) == FileChunk(id="f")
    assert StreamQuery.decode(_pack({"streamId": "s"})).range is None


def test_decoder_treats_nil_as_the_default_for_a_defaulted_field() -> None:
    assert HttpRequest.decode(_pack({"header": None, "body": None})) == HttpRequest()


@pytest.mark.parametrize(
    ("cls", "key", "attr"), BYTE_FIELDS, ids=[_byte_id(c) for c in BYTE_FIELDS]
)
def test_byte_fields_accept_bin_or_str(cls: type[Message], key: str, attr: str) -> None:
    base = _wire(_sample(cls).encode())
    as_bin = cls.decode(_pack({**base, key: b"\x00\x01payload"}))
    as_str = cls.decode(_pack({**base, key: "payload \u00e9"}))
    assert getattr(as_bin, attr) == b"\x00\x01payload"
    assert getattr(as_str, attr) == "payload \u00e9".encode()


def test_byte_field_accepts_an_array_of_small_integers() -> None:
    assert HttpRequest.decode(_pack({"body": [104, 105]})).body == b"hi"


def test_byte_field_sent_as_a_non_utf8_str_keeps_its_bytes() -> None:
    # fixmap{"body": fixstr(0xff 0xfe)}: a str holding bytes that are not UTF-8.
    data = b"\x81\xa4body\xa2\xff\xfe"
    assert HttpRequest.decode(data).body == b"\xff\xfe"
    assert HttpRequest.decode(data + b"\x00\x00").body == b"\xff\xfe"


def test_non_utf8_str_in_a_string_field_is_refused_naming_the_field() -> None:
    data = b"\x81\xa6method\xa2\xff\xfe"
    with pytest.raises(CodecError, match=r"HttpRequest\.method"):
        HttpRequest.decode(data)


def test_string_fields_accept_bin_holding_utf8() -> None:
    data = _pack({"method": b"DELETE", "path": "/x", "header": {b"K": b"V"}})
    assert HttpRequest.decode(data) == HttpRequest(method="DELETE", path="/x", header={"K": "V"})
    assert BrokerMessage.decode(_pack({"subject": b"a.b"})).subject == "a.b"


def test_bin_that_is_not_utf8_in_a_string_field_is_refused_naming_the_field() -> None:
    with pytest.raises(CodecError, match=r"BrokerMessage\.subject"):
        BrokerMessage.decode(_pack({"subject": b"\xff"}))


def test_decoder_accepts_the_array_form_of_a_struct() -> None:
    data = _pack(["POST", "/x", "a=1", {"h": "v"}, b"body"])
    assert HttpRequest.decode(data) == HttpRequest(
        method="POST", path="/x", query_string="a=1", header={"h": "v"}, body=b"body"
    )


def test_array_form_may_omit_trailing_defaulted_fields() -> None:
    assert HttpResponse.decode(_pack([201])) == HttpResponse(status_code=201)
    assert SetRequest.decode(_pack(["k", "v"])) == SetRequest(key="k", value="v")


def test_array_form_works_for_nested_structs() -> None:
    data = _pack({"blobs": [["a", "c", 5], ["b"]]})
    assert BlobList.decode(data) == BlobList(
        blobs=(Blob(id="a", container="c", byte_size=5), Blob(id="b"))
    )
    query = StreamQuery.decode(_pack(["s", [1, 2], 3]))
    assert query == StreamQuery(stream_id="s", range=TimeRange(min_time=1, max_time=2), count=3)


def test_array_form_with_too_many_items_is_refused() -> None:
    with pytest.raises(CodecError, match="GetRequest"):
        GetRequest.decode(_pack(["k", "extra"]))


def test_array_form_missing_a_required_field_is_refused() -> None:
    with pytest.raises(CodecError, match=r"SetRequest.*`value`"):
        SetRequest.decode(_pack(["k"]))


@pytest.mark.parametrize("trailer", [b"\x00", b"\x00" * 64, b"\xc1", _pack({"other": 1})], ids=str)
def test_decoder_ignores_bytes_after_the_first_value(trailer: bytes) -> None:
    message = _sample(HttpRequest)
    assert HttpRequest.decode(message.encode() + trailer) == message


def test_decoder_accepts_bytearray_and_memoryview() -> None:
    message = _sample(BrokerMessage)
    data = message.encode()
    assert BrokerMessage.decode(bytearray(data)) == message
    assert BrokerMessage.decode(memoryview(data)) == message


def test_decoder_accepts_wider_integer_encodings() -> None:
    # uint 64 and int 64 encodings of small numbers are still integers.
    data = b"\x81\xaastatusCode\xcf" + (200).to_bytes(8, "big")
    assert HttpResponse.decode(data).status_code == 200
    data = b"\x82\xa3key\xa1k\xa5value\xd3" + (-1).to_bytes(8, "big", signed=True)
    assert AddRequest.decode(data).value == -1


def test_decoder_accepts_map16_keys() -> None:
    # A map16 header (0xde) for a 1-entry map.
    data = b"\xde\x00\x01\xa3key\xa1k"
    assert GetRequest.decode(data) == GetRequest(key="k")


# ---- Direction ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ({0: None}, Direction.TO_ACTOR),
        ({1: None}, Direction.TO_PROVIDER),
        ({2: None}, Direction.BOTH),
        ("to_actor", Direction.TO_ACTOR),
        ("to_provider", Direction.TO_PROVIDER),
        ("both", Direction.BOTH),
        (b"both", Direction.BOTH),
        ({"to_provider": None}, Direction.TO_PROVIDER),
        (1, Direction.TO_PROVIDER),
    ],
    ids=str,
)
def test_direction_decodes_the_index_map_and_the_strings(wire: Any, expected: Direction) -> None:
    data = _pack({"name": "op", "direction": wire})
    assert OperationDescriptor.decode(data).direction is expected


@pytest.mark.parametrize(
    ("direction", "index"),
    [(Direction.TO_ACTOR, 0), (Direction.TO_PROVIDER, 1), (Direction.BOTH, 2)],
)
def test_direction_encodes_as_index_map_with_nil(direction: Direction, index: int) -> None:
    data = OperationDescriptor(name="op", direction=direction).encode()
    assert _wire(data)["direction"] == {index: None}
    # fixmap of one entry: positive fixint key, nil value
    assert b"\xa9direction\x81" + bytes([index]) + b"\xc0" in data


@pytest.mark.parametrize(
    "wire", [{3: None}, {-1: None}, "sideways", {0: None, 1: None}, True, 3.0, None], ids=str
)
def test_unknown_direction_is_refused_naming_the_field(wire: Any) -> None:
    with pytest.raises(CodecError, match=r"OperationDescriptor\.direction"):
        OperationDescriptor.decode(_pack({"name": "op", "direction": wire}))


def test_capability_descriptor_decodes_rmp_serde_directions() -> None:
    data = _pack(
        {
            "id": "wascc:messaging",
            "name": "NATS",
            "version": "0.1",
            "revision": 2,
            "long_description": "",
            "supported_operations": [
                {"name": "Publish", "direction": {1: None}, "doctext": ""},
                {"name": "DeliverMessage", "direction": {0: None}, "doctext": ""},
            ],
        }
    )
    got = CapabilityDescriptor.decode(data)
    assert [op.direction for op in got.supported_operations] == [
        Direction.TO_PROVIDER,
        Direction.TO_ACTOR,
    ]


# ---- garbage -----------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"\xc1", b"", b"\x81", b"\x82\xa3key", b"\xdc\xff\xff"],
    ids=["reserved-byte", "empty", "map-without-entries", "truncated-map", "truncated-array"],
)
def test_bytes_that_are_not_msgpack_are_refused_naming_the_struct(data: bytes) -> None:
    with pytest.raises(CodecError, match="HttpRequest"):
        HttpRequest.decode(data)


@pytest.mark.parametrize(
    "value", ["a string", 5, True, None, 1.5, b"bin"], ids=["str", "int", "bool", "nil", "f", "b"]
)
def test_a_non_map_where_a_struct_is_expected_is_refused(value: Any) -> None:
    with pytest.raises(CodecError, match="GetRequest must be a map"):
        GetRequest.decode(_pack(value))


@pytest.mark.parametrize(
    ("cls", "wire", "field"),
    [
        (HttpResponse, {"statusCode": "200"}, "HttpResponse.statusCode"),
        (HttpResponse, {"statusCode": 1.0}, "HttpResponse.statusCode"),
        (HttpRequest, {"method": 5}, "HttpRequest.method"),
        (HttpRequest, {"header": ["a"]}, "HttpRequest.header"),
        (HttpRequest, {"header": {"a": 1}}, "HttpRequest.header"),
        (HttpRequest, {"body": 12}, "HttpRequest.body"),
        (HttpRequest, {"body": [1, 300]}, "HttpRequest.body"),
        (ListRangeResponse, {"values": "abc"}, "ListRangeResponse.values"),
        (ListRangeResponse, {"values": ["a", 1]}, "ListRangeResponse.values"),
        (AddRequest, {"key": "k", "value": True}, "AddRequest.value"),
        (SetRequest, {"key": "k", "value": "v", "expires": False}, "SetRequest.expires"),
        (GetResponse, {"exists": 1}, "GetResponse.exists"),
        (HealthRequest, {"placeholder": 0}, "HealthRequest.placeholder"),
        (GeneratorRequest, {"guid": "yes"}, "GeneratorRequest.guid"),
        (StreamQuery, {"range": "all"}, "StreamQuery.range"),
        (StreamQuery, {"range": {"minTime": "x"}}, "StreamQuery.range.minTime"),
        (BlobList, {"blobs": [{"byteSize": "big"}]}, "BlobList.blobs[0].byteSize"),
        (EventList, {"events": {"a": 1}}, "EventList.events"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_wrong_field_type_is_refused_naming_struct_and_field(
    cls: type[Message], wire: dict[str, Any], field: str
) -> None:
    with pytest.raises(CodecError) as info:
        cls.decode(_pack(wire))
    assert field in str(info.value)


@pytest.mark.parametrize(
    ("cls", "wire", "field"),
    [
        (GetRequest, {}, "key"),
        (SetRequest, {"key": "k"}, "value"),
        (AddRequest, {"value": 1}, "key"),
        (HealthResponse, {"message": "m"}, "healthy"),
        (CapabilityConfiguration, {"values": {}}, "module"),
        (OperationDescriptor, {"name": "op"}, "direction"),
        (CapabilityDescriptor, {"name": "n"}, "id"),
        (WriteLogRequest, {"body": "b"}, "level"),
        (StreamRequest, {"id": "f"}, "container"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_missing_required_field_is_refused_naming_struct_and_field(
    cls: type[Message], wire: dict[str, Any], field: str
) -> None:
    with pytest.raises(CodecError) as info:
        cls.decode(_pack(wire))
    message = str(info.value)
    assert cls.__name__ in message
    assert f"`{field}`" in message


def test_nil_for_a_required_field_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(CodecError, match=r"AddRequest\.value"):
        AddRequest.decode(_pack({"key": "k", "value": None}))
    with pytest.raises(CodecError, match=r"HealthResponse\.healthy"):
        HealthResponse.decode(_pack({"healthy": None}))


def test_nil_in_a_string_field_reads_as_empty() -> None:
    """CONTRACTS section 2: nil in a string field is "" here (required or not,
    whatever the field's default); the original refused it."""
    assert GetRequest.decode(_pack({"key": None})) == GetRequest(key="")
    assert BrokerMessage.decode(_pack({"subject": "s", "replyTo": None})).reply_to == ""
    assert HttpResponse.decode(_pack({"statusCode": 204, "status": None})).status == ""
    assert HttpResponse.decode(_pack([204, None, None, None])) == HttpResponse(204, "", {}, b"")
    assert TelnetText.decode(_pack([None, None])) == TelnetText("", "")
    assert GeneratorResult.decode(_pack({"guid": None})).guid is None  # optional stays None


def test_codec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        GetRequest.decode(b"\xc1")


# ---- graph results -------------------------------------------------------------


def test_column_encodes_rmp_serde_style_index_maps() -> None:
    assert _wire(Column(scalars=(1, "a")).encode()) == {0: [{2: 1}, {4: [97]}]}
    assert _wire(Column(nodes=(GraphNode(labels=("L",)),)).encode()) == {
        1: [{"labels": ["L"], "properties": {}}]
    }
    assert _wire(Column(relations=(GraphRelation(type_name="R"),)).encode()) == {
        2: [{"type_name": "R", "properties": {}}]
    }


def test_result_set_encodes_the_contracts_example_exactly() -> None:
    # CONTRACTS section 3: one column holding the integer 1985.
    got = ResultSet(columns=(Column(scalars=(1985,)),)).encode()
    assert got == _pack({"columns": [{0: [{2: 1985}]}], "statistics": []})


def test_graph_scalars_encode_tagged_with_strings_as_utf8_byte_arrays() -> None:
    column = Column(scalars=(None, True, -3, 2.5, "café"))
    assert _wire(column.encode()) == {
        0: [{0: None}, {1: True}, {2: -3}, {3: 2.5}, {4: list("café".encode())}]
    }
    node = GraphNode(labels=("P",), properties={"name": "Ann", "age": 3, "w": 0.5, "ok": False})
    assert _wire(node.encode())["properties"] == {
        "name": {4: list(b"Ann")},
        "age": {2: 3},
        "w": {3: 0.5},
        "ok": {1: False},
    }
    rel = GraphRelation(type_name="FOLLOWS", properties={"since": 1999, "x": None})
    assert _wire(rel.encode()) == {
        "type_name": "FOLLOWS",
        "properties": {"since": {2: 1999}, "x": {0: None}},
    }
    assert GraphNode.decode(node.encode()) == node
    assert GraphRelation.decode(rel.encode()) == rel


def test_result_set_decodes_rmp_serde_style_columns() -> None:
    data = _pack(
        {
            "columns": [
                {0: [None, True, -3, 2.5, "text"]},
                {1: [{"labels": ["Person"], "properties": {"name": "Ann"}}]},
                {2: [{"type_name": "KNOWS", "properties": {"since": 1999}}]},
            ],
            "statistics": ["Query internal execution time: 0.1 ms"],
        }
    )
    got = ResultSet.decode(data)
    assert got == ResultSet(
        columns=(
            Column(scalars=(None, True, -3, 2.5, "text")),
            Column(nodes=(GraphNode(labels=("Person",), properties={"name": "Ann"}),)),
            Column(relations=(GraphRelation(type_name="KNOWS", properties={"since": 1999}),)),
        ),
        statistics=("Query internal execution time: 0.1 ms",),
    )


@pytest.mark.parametrize("kind", ["scalars", "Scalars", "SCALARS"])
def test_result_set_decodes_named_scalar_columns(kind: str) -> None:
    data = _pack({"columns": [{kind: [1, "x"]}], "statistics": []})
    assert ResultSet.decode(data).columns == (Column(scalars=(1, "x")),)


def test_result_set_decodes_named_node_and_relation_columns() -> None:
    data = _pack(
        {
            "columns": [
                {"Nodes": [{"labels": ["A"], "properties": {}}]},
                {"relations": [["T", {"w": 1}]]},
            ]
        }
    )
    got = ResultSet.decode(data)
    assert got.columns == (
        Column(nodes=(GraphNode(labels=("A",)),)),
        Column(relations=(GraphRelation(type_name="T", properties={"w": 1}),)),
    )
    assert got.statistics == ()


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        ({0: None}, None),
        ({1: True}, True),
        ({2: 42}, 42),
        ({3: 0.25}, 0.25),
        ({4: "s"}, "s"),
        ({"Nil": None}, None),
        ({"Boolean": False}, False),
        ({"Integer": 7}, 7),
        ({"Double": 1.5}, 1.5),
        ({"String": b"bytes-as-text"}, "bytes-as-text"),
        (b"bin-text", "bin-text"),
    ],
    ids=str,
)
def test_graph_scalars_decode_tagged_and_plain_forms(wire: Any, expected: Any) -> None:
    got = ResultSet.decode(_pack({"columns": [{0: [wire]}]}))
    assert got.columns[0].scalars == (expected,)


def test_result_set_with_a_non_utf8_property_still_decodes_its_columns() -> None:
    # A non-UTF-8 str inside forces raw decoding; the columns must not vanish.
    node = b"\x82\xa6labels\x91\xa1L\xaaproperties\x81\xa1p\xa1\xff"
    data = b"\x82\xa7columns\x91\x81\x01\x91" + node + b"\xaastatistics\x91\xa2ok"
    got = ResultSet.decode(data)
    assert got.statistics == ("ok",)
    assert len(got.columns) == 1
    nodes = got.columns[0].nodes
    assert nodes is not None
    assert nodes[0].labels == ("L",)
    assert nodes[0].properties == {"p": b"\xff"}


def test_column_decodes_on_its_own() -> None:
    assert Column.decode(_pack({1: []})) == Column(nodes=())
    assert Column.decode(Column(scalars=("a",)).encode()) == Column(scalars=("a",))


def test_empty_column_encodes_as_empty_scalars() -> None:
    assert _wire(Column().encode()) == {0: []}


@pytest.mark.parametrize(
    "column",
    [
        {5: []},
        {"tables": []},
        {0: "not-an-array"},
        {0: [], 1: []},
        {},
        ["scalars"],
        "scalars",
        {0: [[1, 2]]},
        {0: [{9: 1}]},
        {0: [{"Matrix": 1}]},
        {1: [{"labels": 5}]},
    ],
    ids=str,
)
def test_malformed_column_is_refused(column: Any) -> None:
    with pytest.raises(CodecError, match=r"ResultSet\.columns\[0\]|GraphNode"):
        ResultSet.decode(_pack({"columns": [column]}))


@pytest.mark.parametrize(
    "wire",
    [[[], [], []], ["x"], "text", 5, {"columns": "x"}, {"columns": [], "statistics": [1]}],
    ids=str,
)
def test_malformed_result_set_is_refused(wire: Any) -> None:
    with pytest.raises(CodecError, match="ResultSet"):
        ResultSet.decode(_pack(wire))


def test_result_set_ignores_trailing_bytes_and_unknown_keys() -> None:
    message = _sample(ResultSet)
    wire = {**_wire(message.encode()), "extra": 1}
    assert ResultSet.decode(_pack(wire) + b"\x00\x00") == message


# ---- helpers and constants -------------------------------------------------------


def test_core_operation_names_match_the_contract() -> None:
    assert codec.OP_BIND_ACTOR == "BindActor"
    assert codec.OP_REMOVE_ACTOR == "RemoveActor"
    assert codec.OP_HEALTH_REQUEST == "HealthRequest"
    assert codec.OP_GET_DESCRIPTOR == "GetCapabilityDescriptor"
    assert codec.OP_PERFORM_LIVE_UPDATE == "PerformLiveUpdate"
    assert codec.SYSTEM_ACTOR == "system"


def test_pack_writes_bytes_as_bin_and_text_as_str() -> None:
    assert codec.pack(b"ab") == b"\xc4\x02ab"
    assert codec.pack("ab") == b"\xa2ab"


def test_unpack_returns_the_first_value_and_refuses_garbage() -> None:
    assert codec.unpack(_pack({"a": 1}) + b"\x01") == {"a": 1}
    with pytest.raises(CodecError, match="thing"):
        codec.unpack(b"\xc1", "thing")


# ---- codec eras (CONTRACTS section 2): map, positional array, snake_case map ----------


@pytest.mark.parametrize("form", codec.FORMS)
@pytest.mark.parametrize("sample", SAMPLES, ids=_id)
def test_struct_decodes_from_every_era_form(sample: tuple[Message, set[str]], form: str) -> None:
    message, _ = sample
    assert type(message).decode(message.encode(form)) == message


@pytest.mark.parametrize(
    ("wire", "expected"),
    [
        (
            {"statusCode": 404, "status": "Not Found", "header": {"X": "y"}, "body": b"no"},
            HttpResponse(404, "Not Found", {"X": "y"}, b"no"),
        ),
        (  # 0.5.x: positional, the body an array of ints
            [404, "Not Found", {"X": "y"}, [110, 111]],
            HttpResponse(404, "Not Found", {"X": "y"}, b"no"),
        ),
        (  # unreleased commits: snake_case keys
            {"status_code": 404, "status": "Not Found", "header": {"X": "y"}, "body": b"no"},
            HttpResponse(404, "Not Found", {"X": "y"}, b"no"),
        ),
        ({"status_code": 500, "status": None}, HttpResponse(500, "", {}, b"")),
        ([True, "fine"], HealthResponse(True, "fine")),
        ({"healthy": False, "message": None}, HealthResponse(False, "")),
        (["s", None, [1, 2]], BrokerMessage("s", "", b"\x01\x02")),
        ({"subject": "s", "reply_to": "inbox"}, BrokerMessage("s", "inbox")),
        (
            {"method": "GET", "path": "/", "query_string": "a=1"},
            HttpRequest("GET", "/", "a=1"),
        ),
        ({"sequence_no": 3, "chunk_bytes": b"x"}, FileChunk(sequence_no=3, chunk_bytes=b"x")),
    ],
    ids=lambda v: type(v).__name__ + ("" if isinstance(v, Message) else f"-{len(v)}"),
)
def test_replies_decode_in_every_era_form(wire: Any, expected: Message) -> None:
    assert type(expected).decode(_pack(wire)) == expected


def test_camel_case_key_wins_over_its_snake_case_twin() -> None:
    wire = {"statusCode": 201, "status_code": 500}
    assert HttpResponse.decode(_pack(wire)).status_code == 201


def test_older_forms_are_written_as_their_era_wrote_them() -> None:
    request = HttpRequest("POST", "/p", "a=1", {"h": "v"}, b"hi")
    assert _wire(request.encode(codec.FORM_ARRAY)) == ["POST", "/p", "a=1", {"h": "v"}, [104, 105]]
    assert _wire(request.encode(codec.FORM_SNAKE)) == {
        "method": "POST",
        "path": "/p",
        "query_string": "a=1",
        "header": {"h": "v"},
        "body": b"hi",
    }
    assert request.encode(codec.FORM_MAP) == request.encode()
    with pytest.raises(CodecError, match="unknown codec form"):
        request.encode("yaml")


def test_transcode_rewrites_known_requests_only() -> None:
    request = HttpRequest("GET", "/x", "q", {}, b"b")
    assert codec.transcode("HandleRequest", request.encode(), codec.FORM_ARRAY) == request.encode(
        codec.FORM_ARRAY
    )
    message = BrokerMessage("s", "r", b"m")
    assert codec.transcode("DeliverMessage", message.encode(), codec.FORM_SNAKE) == message.encode(
        codec.FORM_SNAKE
    )
    assert codec.transcode("Echo", b"\x80", codec.FORM_ARRAY) is None  # not a known struct
    assert codec.transcode("HandleRequest", b"\xc1", codec.FORM_ARRAY) is None  # not msgpack


def test_deep_nesting_in_plain_data_is_refused() -> None:
    deep: Any = None
    for _ in range(codec.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(CodecError, match="nested deeper"):
        GraphNode.decode(_pack({"labels": [], "properties": {"p": deep}}))
    # the raw fallback (a str that is not UTF-8) walks the value too
    raw = b"\x91" * 900 + b"\xa1\xff"
    with pytest.raises(CodecError):
        HttpRequest.decode(raw)


def test_graph_scalar_kinds_are_checked() -> None:
    assert Column.from_wire({0: [{4: list(b"caf\xc3\xa9")}]}) == Column(scalars=("café",))
    with pytest.raises(CodecError, match="Integer scalar"):
        Column.from_wire({0: [{2: [1, 2]}]})
