"""One wascc:keyvalue conformance suite, run against both backends of the native provider.

``memory``: a binding without ``URL`` (the in-process store); ``redis``: the same
provider with ``URL=redis://127.0.0.1:PORT`` on the session's real redis-server.
Every call goes actor -> host -> C ABI -> provider (-> Redis) and back, and both
backends must answer with the same bytes and the same errors.  The rules where
CONTRACTS section 3 is loose are the original Redis provider's (Push is LPUSH,
ListItemDelete / SetAdd / SetRemove answer counts, Clear answers {key}, Get of a
non-string answers exists false); the one deliberate difference from it: Set
honours ``expires`` (test_set_honours_expires_unlike_the_original_redis_provider).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
import redis
from test_native_keyvalue import KV, Store, native_keyvalue

from wascc import GuestError, Host
from wascc.wire.codec import (
    AddRequest,
    DelRequest,
    GetRequest,
    GetResponse,
    KeyExistsQuery,
    KeysRequest,
    ListClearRequest,
    ListDelItemRequest,
    ListPushRequest,
    ListRangeRequest,
    Message,
    SetAddRequest,
    SetQueryRequest,
    SetRemoveRequest,
    SetRequest,
    pack,
    unpack,
)

from servers import ServerProcess

BACKENDS = ["memory", "redis"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> dict[str, str]:
    """The binding's values that select the backend (an empty Redis for each test)."""
    if request.param == "memory":
        return {}
    server: ServerProcess = request.getfixturevalue("redis_server")
    redis.Redis(port=server.port).flushall()
    return {"URL": f"redis://127.0.0.1:{server.port}/0"}


@pytest.fixture
def kv(host: Host, start_actor: Callable[..., str], backend: dict[str, str]) -> Store:
    host.add_provider(native_keyvalue())
    actor = start_actor(caps=[KV], name="conformance")
    host.set_binding(actor, KV, values=backend)
    return Store(host, actor)


def raw_unpack(reply: bytes) -> Any:
    """A reply decoded without insisting that strings are UTF-8."""
    return msgpack.unpackb(reply, raw=True)


# ---- strings ---------------------------------------------------------------------------


def test_set_then_get_with_exact_reply_fields(kv: Store) -> None:
    assert kv.raw("Set", SetRequest(key="greeting", value="hello").encode()) == pack(
        {"value": "hello"}
    )
    assert kv.wire("Get", GetRequest(key="greeting")) == {"value": "hello", "exists": True}


def test_get_of_a_missing_key(kv: Store) -> None:
    assert kv.wire("Get", GetRequest(key="nothing")) == {"value": "", "exists": False}


def test_get_of_a_list_or_a_set_answers_exists_false(kv: Store) -> None:
    kv.push("l", "item")
    kv.set_add("t", "item")
    assert kv.wire("Get", GetRequest(key="l")) == {"value": "", "exists": False}
    assert kv.wire("Get", GetRequest(key="t")) == {"value": "", "exists": False}
    assert kv.range("l") == ["item"]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "ünïcødé ✓ 🦀 日本語",
        "nul\x00inside",
        "crlf\r\nin the middle\r\n",
        "*3\r\n$3\r\nSET\r\n",  # looks like RESP: must stay data
        "\x01\x02\x7f control",
        " spaces ",
    ],
)
def test_values_and_keys_are_kept_byte_for_byte(kv: Store, text: str) -> None:
    assert kv.set(f"k:{text}", text).value == text
    assert kv.get(f"k:{text}") == GetResponse(value=text, exists=True)
    kv.push(f"l:{text}", text)
    assert kv.range(f"l:{text}") == [text]
    kv.set_add(f"s:{text}", text)
    assert kv.members(f"s:{text}") == [text]


def test_a_bin_value_that_is_not_utf8_comes_back_as_the_same_bytes(kv: Store) -> None:
    payload = pack({"key": b"bin", "value": b"\xff\xfe\x00\x80"})
    assert raw_unpack(kv.raw("Set", payload)) == {b"value": b"\xff\xfe\x00\x80"}
    assert raw_unpack(kv.raw("Get", pack({"key": "bin"}))) == {
        b"value": b"\xff\xfe\x00\x80",
        b"exists": True,
    }


def test_the_empty_key_is_a_key(kv: Store) -> None:
    kv.set("", "empty key")
    assert kv.get("") == GetResponse(value="empty key", exists=True)
    assert kv.exists("") is True


def test_a_one_mebibyte_value_round_trips(kv: Store) -> None:
    big = ("0123456789abcdef" * 65536)[: 1 << 20]
    assert len(kv.raw("Set", SetRequest(key="big", value=big).encode())) > 1 << 20
    assert kv.get("big").value == big
    for _ in range(2):
        kv.push("big-list", big)
    assert kv.range("big-list") == [big, big]


def test_set_replaces_a_key_of_any_type(kv: Store) -> None:
    kv.push("l", "a")
    kv.set_add("t", "a")
    kv.set("l", "now a string")
    kv.set("t", "this too")
    assert kv.get("l").value == "now a string"
    assert kv.get("t").value == "this too"


def test_del_answers_the_key_for_any_type_and_a_missing_one(kv: Store) -> None:
    kv.set("s", "x")
    kv.push("l", "x")
    kv.set_add("t", "x")
    for key in ("s", "l", "t", "never"):
        assert kv.wire("Del", DelRequest(key=key)) == {"key": key}
        assert kv.exists(key) is False


def test_key_exists_for_every_type(kv: Store) -> None:
    assert kv.wire("KeyExists", KeyExistsQuery(key="s")) == {"value": "", "exists": False}
    kv.set("s", "v")
    kv.push("l", "a")
    kv.set_add("t", "m")
    for key in ("s", "l", "t"):
        assert kv.wire("KeyExists", KeyExistsQuery(key=key)) == {"value": "", "exists": True}


# ---- Add -------------------------------------------------------------------------------


def test_add_counts_from_zero_and_stores_a_decimal_string(kv: Store) -> None:
    assert kv.wire("Add", AddRequest(key="n", value=5)) == {"value": 5}
    assert kv.add("n", 1) == 6
    assert kv.add("n", -10) == -4
    assert kv.get("n").value == "-4"
    kv.set("m", "41")
    assert kv.add("m", 1) == 42


@pytest.mark.parametrize("text", ["abc", "", " 1", "1 ", "1.5", "+1", "007", "0x10", "-0"])
def test_add_on_a_string_that_is_not_an_integer_fails_and_keeps_it(kv: Store, text: str) -> None:
    kv.set("n", text)
    with pytest.raises(GuestError, match=r"Add: key 'n' holds a string that is not an integer$"):
        kv.add("n", 1)
    assert kv.get("n").value == text


@pytest.mark.parametrize(
    ("start", "add", "base"),
    [(2**31 - 1, 1, "2147483647"), (-(2**31), -1, "-2147483648"), (None, 0, "")],
)
def test_add_refuses_a_result_outside_i32_and_leaves_the_key(
    kv: Store, start: int | None, add: int, base: str
) -> None:
    if start is None:  # a stored integer far beyond i32 (and near the i64 edge)
        kv.set("n", str(2**63 - 1))
        add, base = 1, str(2**63 - 1)
    else:
        kv.add("n", start)
    with pytest.raises(GuestError, match=f"Add: {base} \\+ {add} does not fit an i32; key 'n' is"):
        kv.add("n", add)
    assert kv.get("n").value == base
    with pytest.raises(GuestError, match="does not fit an i32"):
        kv.add("fresh", 2**31 - 1) and kv.add("fresh", 2**31 - 1)
    assert kv.get("fresh").value == str(2**31 - 1)


def test_add_refused_on_a_missing_key_leaves_it_missing(kv: Store) -> None:
    kv.set("big", str(2**40))
    with pytest.raises(GuestError, match="does not fit an i32"):
        kv.add("big", 0)
    assert kv.get("big").value == str(2**40)


# ---- lists -----------------------------------------------------------------------------


def test_push_is_lpush_newest_first(kv: Store) -> None:
    assert kv.wire("Push", ListPushRequest(key="l", value="a")) == {"newCount": 1}
    assert kv.push("l", "b") == 2
    assert kv.push("l", "c") == 3
    assert kv.push("l", "a") == 4
    assert kv.wire("Range", ListRangeRequest(key="l", start=0, stop=-1)) == {
        "values": ["a", "c", "b", "a"]
    }


@pytest.mark.parametrize(
    ("start", "stop", "expected"),
    [
        (0, -1, "abcde"),
        (0, 0, "a"),
        (1, 3, "bcd"),
        (-2, -1, "de"),
        (-3, 3, "cd"),
        (2, 100, "cde"),
        (-100, 1, "ab"),
        (-100, 100, "abcde"),
        (3, 1, ""),
        (5, 10, ""),
        (-1, -2, ""),
        (-100, -50, ""),
        (0, -6, ""),
        (-5, -5, "a"),
        (4, -1, "e"),
        (-1, -1, "e"),
        (2**40, 2**41, ""),
        (-(2**40), 2**40, "abcde"),
    ],
)
def test_range_is_lrange(kv: Store, start: int, stop: int, expected: str) -> None:
    for item in "edcba":
        kv.push("l", item)
    assert kv.range("l", start, stop) == list(expected)


def test_range_defaults_and_missing_lists(kv: Store) -> None:
    kv.push("l", "a")
    kv.push("l", "b")
    assert unpack(kv.raw("Range", pack({"key": "l"}))) == {"values": ["b", "a"]}
    assert kv.wire("Range", ListRangeRequest(key="missing")) == {"values": []}


def test_list_item_delete_answers_how_many_were_removed(kv: Store) -> None:
    for item in ["a", "b", "a", "c", "a"]:
        kv.push("l", item)
    assert kv.wire("ListItemDelete", ListDelItemRequest(key="l", value="a")) == {"newCount": 3}
    assert kv.range("l") == ["c", "b"]
    assert kv.list_delete("l", "zzz") == 0
    assert kv.list_delete("missing", "a") == 0
    assert kv.list_delete("l", "b") == 1
    assert kv.list_delete("l", "c") == 1


def test_a_list_emptied_by_deletes_is_gone(kv: Store) -> None:
    kv.push("l", "x")
    kv.push("l", "x")
    assert kv.list_delete("l", "x") == 2
    assert kv.exists("l") is False
    assert kv.range("l") == []
    assert kv.add("l", 1) == 1  # free for any type again


def test_clear_is_del_and_answers_the_key(kv: Store) -> None:
    kv.push("l", "a")
    assert kv.wire("Clear", ListClearRequest(key="l")) == {"key": "l"}
    assert kv.exists("l") is False
    assert kv.wire("Clear", ListClearRequest(key="never")) == {"key": "never"}
    kv.set("s", "v")
    kv.clear("s")
    assert kv.exists("s") is False


# ---- sets ------------------------------------------------------------------------------


def test_set_add_and_remove_answer_counts(kv: Store) -> None:
    assert kv.wire("SetAdd", SetAddRequest(key="t", value="x")) == {"newCount": 1}
    assert kv.set_add("t", "y") == 1
    assert kv.set_add("t", "x") == 0
    assert kv.wire("SetRemove", SetRemoveRequest(key="t", value="y")) == {"newCount": 1}
    assert kv.set_remove("t", "y") == 0
    assert kv.set_remove("missing", "x") == 0
    assert kv.exists("missing") is False
    assert kv.set_remove("t", "x") == 1
    assert kv.exists("t") is False


def test_set_query_union_and_intersection(kv: Store) -> None:
    for member in "abc":
        kv.set_add("s1", member)
    for member in "bcd":
        kv.set_add("s2", member)
    reply = kv.wire("SetQuery", SetQueryRequest(key="s1"))
    assert list(reply) == ["values"] and sorted(reply["values"]) == ["a", "b", "c"]
    assert kv.members("missing") == []
    reply = kv.wire("SetUnion", KeysRequest(keys=("s1", "s2")))
    assert list(reply) == ["values"] and sorted(reply["values"]) == ["a", "b", "c", "d"]
    reply = kv.wire("SetIntersection", KeysRequest(keys=("s1", "s2")))
    assert list(reply) == ["values"] and sorted(reply["values"]) == ["b", "c"]
    assert sorted(kv.union("s1", "missing")) == ["a", "b", "c"]
    assert kv.intersection("s1", "missing") == []
    assert sorted(kv.intersection("s2")) == ["b", "c", "d"]
    assert sorted(kv.intersection("s1", "s1")) == ["a", "b", "c"]
    assert kv.union() == []
    assert kv.intersection() == []


# ---- expiry ----------------------------------------------------------------------------


def test_set_honours_expires_unlike_the_original_redis_provider(kv: Store) -> None:
    """The original Redis provider ignored `expires`; both backends honour it (on purpose)."""
    kv.set("short", "lived", expires=1)
    kv.set("forever", "here", expires=0)
    kv.set("reprieved", "x", expires=1)
    kv.set("reprieved", "y")  # a plain Set removes the time to live
    kv.set("counter", "1", expires=1)
    assert kv.add("counter", 1) == 2  # Add keeps it
    assert kv.get("short") == GetResponse(value="lived", exists=True)
    time.sleep(1.3)
    assert kv.get("short") == GetResponse(value="", exists=False)
    assert kv.exists("short") is False
    assert kv.exists("counter") is False
    assert kv.get("forever").value == "here"
    assert kv.get("reprieved").value == "y"
    assert kv.push("short", "reused as a list") == 1


# ---- types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "op", "req", "key", "held", "wanted"),
    [
        ("list", "Add", AddRequest(key="k", value=1), "k", "list", "string"),
        ("list", "SetAdd", SetAddRequest(key="k", value="x"), "k", "list", "set"),
        ("list", "SetRemove", SetRemoveRequest(key="k", value="x"), "k", "list", "set"),
        ("list", "SetQuery", SetQueryRequest(key="k"), "k", "list", "set"),
        ("list", "SetUnion", KeysRequest(keys=("other", "k")), "k", "list", "set"),
        ("list", "SetIntersection", KeysRequest(keys=("k",)), "k", "list", "set"),
        ("string", "Push", ListPushRequest(key="k", value="x"), "k", "string", "list"),
        ("string", "Range", ListRangeRequest(key="k"), "k", "string", "list"),
        ("string", "ListItemDelete", ListDelItemRequest(key="k", value="x"), "k", "string", "list"),
        ("string", "SetAdd", SetAddRequest(key="k", value="x"), "k", "string", "set"),
        ("set", "Add", AddRequest(key="k", value=1), "k", "set", "string"),
        ("set", "Push", ListPushRequest(key="k", value="x"), "k", "set", "list"),
        ("set", "Range", ListRangeRequest(key="k"), "k", "set", "list"),
        ("set", "SetUnion", KeysRequest(keys=("t", "k")), "k", "set", "set"),
    ],
)
def test_wrong_type_is_the_same_error_and_changes_nothing(
    kv: Store, setup: str, op: str, req: Message, key: str, held: str, wanted: str
) -> None:
    kv.set_add("t", "member")
    if setup == "list":
        kv.push("k", "item")
    elif setup == "string":
        kv.set("k", "7")
    else:
        kv.set_add("k", "item")
    if (held, wanted) == ("set", "set"):  # a string among the sets of a union
        kv.set("k", "7")
        held = "string"
    pattern = f": WRONGTYPE wascc:keyvalue {op}: key '{key}' holds a {held}, not a {wanted}$"
    with pytest.raises(GuestError, match=pattern):
        kv.raw(op, req.encode())
    if held == "list":
        assert kv.range("k") == ["item"]
    elif held == "string":
        assert kv.get("k").value == "7"
    else:
        assert kv.members("k") == ["item"]


# ---- requests refused before any backend is asked --------------------------------------


@pytest.mark.parametrize(
    ("op", "payload", "message"),
    [
        ("Get", b"\xc1", "Get: payload is not valid msgpack"),
        ("Get", pack({"value": "x"}), "Get: missing field 'key'"),
        ("Add", pack({"key": "k", "value": 2**31}), "Add: field 'value' is out of range"),
        ("Set", pack({"key": "k", "value": "v", "expires": -1}), "field 'expires' is out of"),
        ("SetIntersection", pack({"keys": ["a", 1]}), "element 1 is integer"),
        ("Increment", pack({"key": "k"}), "unknown operation 'Increment'"),
    ],
)
def test_malformed_requests_get_the_same_errors(
    kv: Store, op: str, payload: bytes, message: str
) -> None:
    with pytest.raises(GuestError, match=message):
        kv.raw(op, payload)
    assert kv.set("after", "ok").value == "ok"


def test_many_keys_and_members(kv: Store) -> None:
    keys = [f"key-{i}" for i in range(300)]
    for key in keys:
        kv.set(key, key.upper())
    for key in keys[::2]:
        kv.delete(key)
    assert [kv.exists(key) for key in keys] == [i % 2 == 1 for i in range(len(keys))]
    for member in keys:
        kv.set_add("big-set", member)
    assert sorted(kv.members("big-set")) == sorted(keys)
