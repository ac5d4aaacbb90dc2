"""The first-party native wascc:keyvalue provider (C), driven through a real WAT actor.

Every data call goes actor -> ``__host_call`` -> host routing -> C ABI -> provider
and back, so these tests hold the whole path, not the C code alone.  Where the
contract is loose the provider follows the original Redis provider (CONTRACTS
section 3: Push is LPUSH, ListItemDelete / SetAdd / SetRemove answer how many
were removed or added, Clear answers {key}, Get of a list or set answers
exists false) and Redis itself (LRANGE indexes, WRONGTYPE, SET replacing any
type, INCRBY rules); test_keyvalue_conformance.py holds the same rules against
a real Redis.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from wascc import GuestError, Host
from wascc._providers import library
from wascc.errors import ProviderCallError
from wascc.providers.native import NativeProvider, load_native_provider
from wascc.wire.codec import (
    OP_BIND_ACTOR,
    OP_REMOVE_ACTOR,
    SYSTEM_ACTOR,
    AddRequest,
    AddResponse,
    CapabilityConfiguration,
    DelRequest,
    DelResponse,
    Direction,
    GetRequest,
    GetResponse,
    KeyExistsQuery,
    KeysRequest,
    ListClearRequest,
    ListDelItemRequest,
    ListPushRequest,
    ListRangeRequest,
    ListRangeResponse,
    ListResponse,
    Message,
    SetAddRequest,
    SetQueryRequest,
    SetQueryResponse,
    SetRemoveRequest,
    SetRequest,
    SetResponse,
    pack,
    unpack,
)

from conftest import Signer, build_test_actor, call_payload

KV = "wascc:keyvalue"
OPERATIONS = {
    "Get",
    "Set",
    "Del",
    "Add",
    "Push",
    "ListItemDelete",
    "Range",
    "Clear",
    "SetAdd",
    "SetRemove",
    "SetUnion",
    "SetIntersection",
    "SetQuery",
    "KeyExists",
}


def native_keyvalue() -> NativeProvider:
    """A fresh provider: every load is its own store."""
    return load_native_provider(library("keyvalue"))


class Store:
    """One actor's view of one keyvalue binding; every call goes through the actor."""

    def __init__(self, host: Host, actor: str, binding: str = "default") -> None:
        self.host = host
        self.actor = actor
        self.binding = binding

    def raw(self, op: str, payload: bytes) -> bytes:
        """The provider's reply bytes as the actor received them."""
        return self.host.call_actor(
            self.actor, "Call", call_payload(KV, op, payload, binding=self.binding)
        )

    def wire(self, op: str, request: Message) -> Any:
        """The reply as plain msgpack data, to check the exact field names."""
        return unpack(self.raw(op, request.encode()))

    def get(self, key: str) -> GetResponse:
        return GetResponse.decode(self.raw("Get", GetRequest(key=key).encode()))

    def set(self, key: str, value: str, expires: int = 0) -> SetResponse:
        req = SetRequest(key=key, value=value, expires=expires)
        return SetResponse.decode(self.raw("Set", req.encode()))

    def delete(self, key: str) -> DelResponse:
        return DelResponse.decode(self.raw("Del", DelRequest(key=key).encode()))

    def add(self, key: str, value: int) -> int:
        reply = self.raw("Add", AddRequest(key=key, value=value).encode())
        return AddResponse.decode(reply).value

    def push(self, key: str, value: str) -> int:
        reply = self.raw("Push", ListPushRequest(key=key, value=value).encode())
        return ListResponse.decode(reply).new_count

    def list_delete(self, key: str, value: str) -> int:
        reply = self.raw("ListItemDelete", ListDelItemRequest(key=key, value=value).encode())
        return ListResponse.decode(reply).new_count

    def range(self, key: str, start: int = 0, stop: int = -1) -> list[str]:
        reply = self.raw("Range", ListRangeRequest(key=key, start=start, stop=stop).encode())
        return list(ListRangeResponse.decode(reply).values)

    def clear(self, key: str) -> bytes:
        return self.raw("Clear", ListClearRequest(key=key).encode())

    def set_add(self, key: str, value: str) -> int:
        reply = self.raw("SetAdd", SetAddRequest(key=key, value=value).encode())
        return ListResponse.decode(reply).new_count

    def set_remove(self, key: str, value: str) -> int:
        reply = self.raw("SetRemove", SetRemoveRequest(key=key, value=value).encode())
        return ListResponse.decode(reply).new_count

    def union(self, *keys: str) -> list[str]:
        reply = self.raw("SetUnion", KeysRequest(keys=keys).encode())
        return list(SetQueryResponse.decode(reply).values)

    def intersection(self, *keys: str) -> list[str]:
        reply = self.raw("SetIntersection", KeysRequest(keys=keys).encode())
        return list(SetQueryResponse.decode(reply).values)

    def members(self, key: str) -> list[str]:
        reply = self.raw("SetQuery", SetQueryRequest(key=key).encode())
        return list(SetQueryResponse.decode(reply).values)

    def exists(self, key: str) -> bool:
        return GetResponse.decode(self.raw("KeyExists", KeyExistsQuery(key=key).encode())).exists


@pytest.fixture
def provider(host: Host) -> NativeProvider:
    p = native_keyvalue()
    host.add_provider(p)
    return p


@pytest.fixture
def actor(host: Host, start_actor: Callable[..., str], provider: NativeProvider) -> str:
    key = start_actor(caps=[KV], name="kv-user")
    host.set_binding(key, KV)
    return key


@pytest.fixture
def kv(host: Host, actor: str) -> Store:
    return Store(host, actor)


# ---- every operation and its reply shape -------------------------------------------


def test_set_then_get_with_exact_reply_fields(kv: Store) -> None:
    assert kv.wire("Set", SetRequest(key="greeting", value="hello")) == {"value": "hello"}
    assert kv.wire("Get", GetRequest(key="greeting")) == {"value": "hello", "exists": True}
    assert kv.get("greeting") == GetResponse(value="hello", exists=True)


def test_get_of_a_missing_key_says_it_does_not_exist(kv: Store) -> None:
    assert kv.wire("Get", GetRequest(key="nothing")) == {"value": "", "exists": False}


def test_set_replaces_the_value_and_keeps_bytes_intact(kv: Store) -> None:
    kv.set("k", "first")
    assert kv.set("k", "second\x00with nul and ünïcode").value == "second\x00with nul and ünïcode"
    assert kv.get("k").value == "second\x00with nul and ünïcode"
    kv.set("empty", "")
    assert kv.get("empty") == GetResponse(value="", exists=True)


def test_del_answers_the_key_and_removes_it(kv: Store) -> None:
    kv.set("doomed", "x")
    assert kv.wire("Del", DelRequest(key="doomed")) == {"key": "doomed"}
    assert kv.get("doomed").exists is False
    # deleting a missing key is not an error
    assert kv.delete("doomed") == DelResponse(key="doomed")


def test_key_exists_for_every_type_with_exact_reply_fields(kv: Store) -> None:
    assert kv.wire("KeyExists", KeyExistsQuery(key="s")) == {"value": "", "exists": False}
    kv.set("s", "v")
    kv.push("l", "a")
    kv.set_add("t", "m")
    for key in ("s", "l", "t"):
        assert kv.wire("KeyExists", KeyExistsQuery(key=key)) == {"value": "", "exists": True}


def test_add_starts_a_missing_key_at_zero_and_counts(kv: Store) -> None:
    assert kv.wire("Add", AddRequest(key="n", value=5)) == {"value": 5}
    assert kv.add("n", 1) == 6
    assert kv.add("n", -10) == -4
    assert kv.get("n").value == "-4"  # counters are strings, as in Redis


def test_add_reads_a_string_holding_an_integer(kv: Store) -> None:
    kv.set("n", "41")
    assert kv.add("n", 1) == 42
    kv.set("neg", "-7")
    assert kv.add("neg", 7) == 0


@pytest.mark.parametrize("text", ["abc", "", " 1", "1 ", "1.5", "+1", "007", "0x10", "12abc"])
def test_add_on_a_string_that_is_not_an_integer_fails_and_keeps_it(kv: Store, text: str) -> None:
    kv.set("n", text)
    with pytest.raises(GuestError, match=r"Add: key 'n' holds a string that is not an integer"):
        kv.add("n", 1)
    assert kv.get("n").value == text


def test_add_refuses_a_result_outside_i32_and_leaves_the_key(kv: Store) -> None:
    kv.add("n", 2**31 - 1)
    with pytest.raises(GuestError, match="does not fit an i32; key 'n' is unchanged"):
        kv.add("n", 1)
    assert kv.get("n").value == str(2**31 - 1)
    assert kv.add("n", -(2**31 - 1)) == 0


def test_push_is_lpush_and_answers_the_new_length(kv: Store) -> None:
    assert kv.wire("Push", ListPushRequest(key="l", value="a")) == {"newCount": 1}
    assert kv.push("l", "b") == 2
    assert kv.push("l", "c") == 3
    assert kv.push("l", "a") == 4  # duplicates are kept
    assert kv.range("l") == ["a", "c", "b", "a"]  # newest first, as Redis LPUSH


def test_range_replies_with_values_field(kv: Store) -> None:
    kv.push("l", "x")
    assert kv.wire("Range", ListRangeRequest(key="l", start=0, stop=-1)) == {"values": ["x"]}
    assert kv.wire("Range", ListRangeRequest(key="missing")) == {"values": []}


@pytest.mark.parametrize(
    ("start", "stop", "expected"),
    [
        (0, -1, ["a", "b", "c", "d", "e"]),
        (0, 0, ["a"]),
        (1, 3, ["b", "c", "d"]),  # stop is inclusive
        (-2, -1, ["d", "e"]),
        (-3, 3, ["c", "d"]),
        (2, 100, ["c", "d", "e"]),  # stop past the end is clamped
        (-100, 1, ["a", "b"]),  # start before the beginning is clamped
        (-100, 100, ["a", "b", "c", "d", "e"]),
        (3, 1, []),  # start after stop
        (5, 10, []),  # start at/after the end
        (-1, -2, []),
        (-100, -50, []),  # both before the beginning
        (0, -6, []),
        (-5, -5, ["a"]),
        (4, -1, ["e"]),
    ],
)
def test_range_follows_redis_lrange(kv: Store, start: int, stop: int, expected: list[str]) -> None:
    for item in "edcba":  # LPUSH: the list reads a, b, c, d, e
        kv.push("l", item)
    assert kv.range("l", start, stop) == expected


def test_range_defaults_to_the_whole_list(kv: Store) -> None:
    kv.push("l", "a")
    kv.push("l", "b")
    reply = kv.raw("Range", pack({"key": "l"}))  # start and stop are optional
    assert unpack(reply) == {"values": ["b", "a"]}


def test_list_item_delete_removes_every_occurrence_and_answers_how_many(kv: Store) -> None:
    for item in ["a", "b", "a", "c", "a"]:
        kv.push("l", item)
    assert kv.wire("ListItemDelete", ListDelItemRequest(key="l", value="a")) == {"newCount": 3}
    assert kv.range("l") == ["c", "b"]
    assert kv.list_delete("l", "zzz") == 0  # not there: nothing changes
    assert kv.list_delete("missing", "a") == 0
    assert kv.list_delete("l", "b") == 1
    assert kv.list_delete("l", "c") == 1
    assert kv.exists("l") is False  # an emptied list is gone, as in Redis


def test_clear_deletes_a_list_and_answers_the_key(kv: Store) -> None:
    kv.push("l", "a")
    kv.push("l", "b")
    assert unpack(kv.clear("l")) == {"key": "l"}
    assert kv.exists("l") is False
    assert kv.range("l") == []
    assert unpack(kv.clear("never-there")) == {"key": "never-there"}
    kv.set("s", "v")  # Clear deletes a key of any type
    kv.clear("s")
    assert kv.get("s").exists is False


def test_set_add_and_remove_answer_how_many_were_added_or_removed(kv: Store) -> None:
    assert kv.wire("SetAdd", SetAddRequest(key="t", value="x")) == {"newCount": 1}
    assert kv.set_add("t", "y") == 1
    assert kv.set_add("t", "x") == 0  # already a member
    assert kv.wire("SetRemove", SetRemoveRequest(key="t", value="y")) == {"newCount": 1}
    assert kv.set_remove("t", "not-a-member") == 0
    assert kv.set_remove("missing", "x") == 0
    assert kv.exists("missing") is False  # removing from nothing creates nothing
    assert kv.set_remove("t", "x") == 1
    assert kv.exists("t") is False


def test_set_query_lists_the_members(kv: Store) -> None:
    for member in ["x", "y", "z", "y"]:
        kv.set_add("t", member)
    reply = kv.wire("SetQuery", SetQueryRequest(key="t"))
    assert list(reply) == ["values"]
    assert sorted(reply["values"]) == ["x", "y", "z"]
    assert kv.members("missing") == []


def test_set_union_and_intersection(kv: Store) -> None:
    for member in "abc":
        kv.set_add("s1", member)
    for member in "bcd":
        kv.set_add("s2", member)
    reply = kv.wire("SetUnion", KeysRequest(keys=("s1", "s2")))
    assert list(reply) == ["values"]
    assert sorted(reply["values"]) == ["a", "b", "c", "d"]
    reply = kv.wire("SetIntersection", KeysRequest(keys=("s1", "s2")))
    assert list(reply) == ["values"]
    assert sorted(reply["values"]) == ["b", "c"]
    # a missing key is an empty set
    assert sorted(kv.union("s1", "missing")) == ["a", "b", "c"]
    assert kv.intersection("s1", "missing") == []
    # one key, the same key twice, no keys
    assert sorted(kv.intersection("s2")) == ["b", "c", "d"]
    assert sorted(kv.intersection("s1", "s1")) == ["a", "b", "c"]
    assert kv.union() == []
    assert kv.intersection() == []


def test_many_keys_survive_growth_and_deletion(kv: Store) -> None:
    keys = [f"key-{i}" for i in range(400)]
    for key in keys:
        kv.set(key, key.upper())
    assert all(kv.get(key) == GetResponse(value=key.upper(), exists=True) for key in keys)
    for key in keys[::2]:
        kv.delete(key)
    assert [kv.exists(key) for key in keys] == [i % 2 == 1 for i in range(len(keys))]
    for member in keys:
        kv.set_add("big-set", member)
    assert sorted(kv.members("big-set")) == sorted(keys)
    for member in keys[:-1]:
        kv.set_remove("big-set", member)
    assert kv.members("big-set") == [keys[-1]]


# ---- expiry ----------------------------------------------------------------------------


def test_expired_keys_behave_as_absent(kv: Store) -> None:
    kv.set("short", "lived", expires=1)
    kv.set("forever", "here", expires=0)
    kv.set("reprieved", "x", expires=1)
    kv.set("reprieved", "y", expires=0)  # a plain Set removes the time to live
    kv.set("counter", "1", expires=1)
    assert kv.add("counter", 1) == 2  # Add keeps the time to live
    kv.set("retyped", "x", expires=1)
    assert kv.get("short") == GetResponse(value="lived", exists=True)
    assert kv.exists("short") is True
    time.sleep(1.2)
    assert kv.get("short") == GetResponse(value="", exists=False)
    assert kv.exists("short") is False
    assert kv.exists("counter") is False
    assert kv.get("forever").value == "here"
    assert kv.get("reprieved").value == "y"
    # an expired key can be reused as any type
    assert kv.push("retyped", "a") == 1
    assert kv.add("short", 3) == 3


# ---- types -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "op", "req", "held", "wanted"),
    [
        ("list", "Add", AddRequest(key="k", value=1), "list", "string"),
        ("list", "SetAdd", SetAddRequest(key="k", value="x"), "list", "set"),
        ("list", "SetRemove", SetRemoveRequest(key="k", value="x"), "list", "set"),
        ("list", "SetQuery", SetQueryRequest(key="k"), "list", "set"),
        ("list", "SetUnion", KeysRequest(keys=("other", "k")), "list", "set"),
        ("list", "SetIntersection", KeysRequest(keys=("k",)), "list", "set"),
        ("string", "Push", ListPushRequest(key="k", value="x"), "string", "list"),
        ("string", "Range", ListRangeRequest(key="k"), "string", "list"),
        ("string", "ListItemDelete", ListDelItemRequest(key="k", value="x"), "string", "list"),
        ("string", "SetAdd", SetAddRequest(key="k", value="x"), "string", "set"),
        ("set", "Add", AddRequest(key="k", value=1), "set", "string"),
        ("set", "Push", ListPushRequest(key="k", value="x"), "set", "list"),
        ("set", "Range", ListRangeRequest(key="k"), "set", "list"),
    ],
)
def test_wrong_type_is_an_error_and_changes_nothing(
    kv: Store, setup: str, op: str, req: Message, held: str, wanted: str
) -> None:
    if setup == "list":
        kv.push("k", "item")
    elif setup == "string":
        kv.set("k", "7")
    else:
        kv.set_add("k", "item")
    pattern = f"WRONGTYPE wascc:keyvalue {op}: key 'k' holds a {held}, not a {wanted}"
    with pytest.raises(GuestError, match=pattern):
        kv.raw(op, req.encode())
    if setup == "list":
        assert kv.range("k") == ["item"]
    elif setup == "string":
        assert kv.get("k").value == "7"
    else:
        assert kv.members("k") == ["item"]


def test_get_of_a_list_or_a_set_answers_exists_false(kv: Store) -> None:
    kv.push("l", "item")
    kv.set_add("t", "item")
    assert kv.wire("Get", GetRequest(key="l")) == {"value": "", "exists": False}
    assert kv.wire("Get", GetRequest(key="t")) == {"value": "", "exists": False}
    assert kv.exists("l") is True


def test_set_replaces_a_key_of_any_type(kv: Store) -> None:
    kv.push("l", "a")
    kv.set_add("t", "a")
    kv.set("l", "now a string")
    kv.set("t", "this too")
    assert kv.get("l").value == "now a string"
    assert kv.get("t").value == "this too"


# ---- refused payloads ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "payload", "message"),
    [
        ("Get", b"\xc1", "Get: payload is not valid msgpack"),
        ("Set", b"\xc1\xc1\xc1", "Set: payload is not valid msgpack"),
        ("Get", b"", "Get: empty payload; expected a msgpack map"),
        ("Get", pack("a string"), "Get: payload must be a msgpack map, got string"),
        ("KeyExists", pack([1, 2]), "KeyExists: payload must be a msgpack map, got array"),
        ("Get", pack({"value": "x"}), "Get: missing field 'key'"),
        ("Del", pack({}), "Del: missing field 'key'"),
        ("Set", pack({"key": "k"}), "Set: missing field 'value'"),
        ("Add", pack({"key": "k"}), "Add: missing field 'value'"),
        ("SetUnion", pack({"key": "k"}), "SetUnion: missing field 'keys'"),
        ("Get", pack({"key": 5}), "Get: field 'key' must be a string, got integer"),
        ("Get", pack({"key": None}), "Get: field 'key' must be a string, got nil"),
        ("Set", pack({"key": "k", "value": 1}), "Set: field 'value' must be a string, got int"),
        ("Push", pack({"key": "k", "value": [1]}), "Push: field 'value' must be a string"),
        ("Add", pack({"key": "k", "value": "1"}), "Add: field 'value' must be an integer"),
        ("Add", pack({"key": "k", "value": 1.5}), "Add: field 'value' must be an integer"),
        ("Add", pack({"key": "k", "value": 2**31}), "Add: field 'value' is out of range"),
        ("Set", pack({"key": "k", "value": "v", "expires": -1}), "field 'expires' is out of"),
        ("Set", pack({"key": "k", "value": "v", "expires": "1"}), "'expires' must be an int"),
        ("Range", pack({"key": "k", "start": "0"}), "Range: field 'start' must be an integer"),
        ("Range", pack({"key": "k", "stop": True}), "field 'stop' must be an integer, got bool"),
        ("SetUnion", pack({"keys": "a"}), "SetUnion: field 'keys' must be an array of strings"),
        ("SetIntersection", pack({"keys": ["a", 1]}), "element 1 is integer"),
        ("Get", b"\x81\xa3key\xa5ab", "Get: payload is not valid msgpack"),  # truncated str
        ("Get", b"\x82\xa3key\xa1k", "Get: payload is not valid msgpack"),  # a field short
        ("SetUnion", b"\x81\xa4keys\xdd\xff\xff\xff\xff", "not valid msgpack"),  # huge count
    ],
)
def test_malformed_payloads_are_refused_and_the_provider_goes_on(
    kv: Store, op: str, payload: bytes, message: str
) -> None:
    kv.set("before", "1")
    with pytest.raises(GuestError, match=message):
        kv.raw(op, payload)
    assert kv.get("before").value == "1"
    assert kv.set("after", "2").value == "2"
    assert kv.get("after").value == "2"


def test_unknown_operation_is_an_error(kv: Store) -> None:
    with pytest.raises(GuestError, match="wascc:keyvalue: unknown operation 'Increment'"):
        kv.raw("Increment", AddRequest(key="k", value=1).encode())
    assert kv.add("k", 1) == 1


def test_decoder_is_as_lenient_as_the_original(kv: Store) -> None:
    # unknown and non-string map keys are ignored, bin is accepted for str, and
    # bytes after the first msgpack value are ignored
    payload = pack({"extra": [1, {"x": None}], 7: "int key", "key": b"k", "value": b"v"})
    assert unpack(kv.raw("Set", payload + b"\xc1trailing")) == {"value": "v"}
    assert kv.get("k") == GetResponse(value="v", exists=True)
    # a repeated field: the last one wins
    assert unpack(kv.raw("Get", b"\x82\xa3key\xa1x\xa3key\xa1k")) == {"value": "v", "exists": True}


# ---- concurrency and isolation ---------------------------------------------------------


def test_add_is_atomic_under_concurrent_actors_calls(
    host: Host, sign: Signer, provider: NativeProvider
) -> None:
    signed, _ = sign(build_test_actor(), caps=[KV], name="counter")
    key = host.add_actor(signed, max_instances=8)
    host.set_binding(key, KV)
    kv = Store(host, key)
    seen: list[list[int]] = [[] for _ in range(8)]
    errors: list[BaseException] = []

    def worker(mine: list[int]) -> None:
        try:
            for _ in range(500):
                mine.append(kv.add("hits", 1))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seen[i],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert kv.get("hits").value == "4000"
    # every increment saw a distinct value: no lost or doubled updates
    assert sorted(v for mine in seen for v in mine) == list(range(1, 4001))


def test_two_bindings_are_two_independent_stores(
    host: Host, start_actor: Callable[..., str]
) -> None:
    host.add_provider(native_keyvalue(), binding="a")
    host.add_provider(native_keyvalue(), binding="b")
    key = start_actor(caps=[KV])
    host.set_binding(key, KV, binding="a")
    host.set_binding(key, KV, binding="b")
    a, b = Store(host, key, "a"), Store(host, key, "b")
    a.set("k", "in a")
    a.push("l", "x")
    a.set_add("t", "x")
    a.add("n", 5)
    assert b.get("k").exists is False
    assert b.range("l") == []
    assert b.members("t") == []
    assert b.add("n", 1) == 1
    b.set("k", "in b")
    assert a.get("k").value == "in a"
    assert b.get("k").value == "in b"
    b.delete("k")
    assert a.get("k").value == "in a"


def test_actors_bound_to_one_binding_share_its_key_space(
    host: Host, start_actor: Callable[..., str], provider: NativeProvider
) -> None:
    first = start_actor(caps=[KV], name="first")
    second = start_actor(caps=[KV], name="second")
    host.set_binding(first, KV)
    host.set_binding(second, KV)
    Store(host, first).set("shared", "by first")
    assert Store(host, second).get("shared").value == "by first"


# ---- core operations and lifecycle ------------------------------------------------------


@pytest.mark.parametrize(
    "op", ["BindActor", "RemoveActor", "GetCapabilityDescriptor", "HealthRequest"]
)
def test_core_operations_from_an_actor_are_refused(kv: Store, op: str) -> None:
    config = CapabilityConfiguration(kv.actor, {}).encode()
    with pytest.raises(GuestError, match=f"{op} is reserved for the host; actor {kv.actor}"):
        kv.raw(op, config)
    kv.set("still", "serving")
    assert kv.get("still").value == "serving"


def test_bind_and_remove_are_idempotent(
    host: Host, start_actor: Callable[..., str], provider: NativeProvider
) -> None:
    key = start_actor(caps=[KV])
    host.set_binding(key, KV)
    host.set_binding(key, KV)
    host.set_binding(key, KV, values={"CHANGED": "1"})  # RemoveActor + BindActor
    kv = Store(host, key)
    kv.set("k", "v")
    assert host.remove_binding(key, KV) is True
    assert host.remove_binding(key, KV) is False
    with pytest.raises(GuestError, match="not bound"):
        kv.get("k")
    # the provider itself absorbs repeats (host -> provider, origin system)
    config = CapabilityConfiguration(key, {"__wascc_name": "x"}).encode()
    for op in (OP_REMOVE_ACTOR, OP_REMOVE_ACTOR, OP_BIND_ACTOR, OP_BIND_ACTOR, OP_REMOVE_ACTOR):
        assert provider.handle_call(SYSTEM_ACTOR, op, config) == b""
    # the key space belongs to the binding, not to the actor: rebinding finds the data
    host.set_binding(key, KV)
    assert kv.get("k").value == "v"


def test_bind_actor_with_a_malformed_configuration_is_refused(provider: NativeProvider) -> None:
    with pytest.raises(ProviderCallError, match="BindActor: payload is not a CapabilityConfig"):
        provider.handle_call(SYSTEM_ACTOR, OP_BIND_ACTOR, pack({"values": {}}))
    with pytest.raises(ProviderCallError, match="RemoveActor: payload is not a CapabilityConf"):
        provider.handle_call(SYSTEM_ACTOR, OP_REMOVE_ACTOR, b"\xc1")


def test_descriptor_lists_every_operation(host: Host, actor: str) -> None:
    (info,) = [p for p in host.providers() if p.capability_id == KV]
    descriptor = info.descriptor
    assert descriptor.id == KV
    assert "In-Memory" in descriptor.name
    assert descriptor.version and descriptor.long_description
    assert {op.name for op in descriptor.supported_operations} == OPERATIONS
    assert len(descriptor.supported_operations) == len(OPERATIONS)
    for op in descriptor.supported_operations:
        assert op.direction == Direction.TO_PROVIDER
        assert len(op.doctext) > 10, op.name
    assert info.actors == (actor,)


def test_health_check_answers_healthy(host: Host, provider: NativeProvider) -> None:
    report = host.check_health()[(KV, "default")]
    assert report.healthy is True
    assert [p.capability_id for p in host.providers()].count(KV) == 1


def test_removed_provider_is_gone_and_a_new_one_starts_empty(
    host: Host, kv: Store, provider: NativeProvider
) -> None:
    kv.set("k", "v")
    host.remove_provider(KV)
    assert KV not in [p.capability_id for p in host.providers()]
    with pytest.raises(GuestError, match=r"wascc:keyvalue Get on binding 'default'.*no provider"):
        kv.get("k")
    host.add_provider(native_keyvalue())
    host.set_binding(kv.actor, KV)
    assert kv.get("k").exists is False
