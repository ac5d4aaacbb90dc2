"""wascc:graphdb on FalkorDB: embedded and at a URL (CONTRACTS section 3)."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import msgpack
import pytest
from wascc_capabilities import graphdb
from wascc_capabilities.graphdb import GraphProvider
from wascc_capabilities.graphdb.results import Names, to_result_set

from wascc import GuestError, Host, ProviderCallError
from wascc.wire.codec import (
    OP_BIND_ACTOR,
    SYSTEM_ACTOR,
    CapabilityConfiguration,
    Column,
    DeleteGraphRequest,
    GraphNode,
    GraphRelation,
    QueryGraphRequest,
    ResultSet,
)

from conftest import build_test_actor, call_payload
from servers import ServerProcess

CAP = "wascc:graphdb"
ACTOR = "M" + "G" * 55


def bind(provider: GraphProvider, values: dict[str, str], actor: str = ACTOR) -> None:
    config = CapabilityConfiguration(module=actor, values=values)
    provider.handle_call(SYSTEM_ACTOR, OP_BIND_ACTOR, config.encode())


@pytest.fixture(scope="module", params=["embedded", "url"])
def provider(request: pytest.FixtureRequest) -> Iterator[GraphProvider]:
    p = GraphProvider()
    if request.param == "url":
        server: ServerProcess = request.getfixturevalue("falkordb_server")
        bind(p, {"URL": f"redis://127.0.0.1:{server.port}"})
    else:
        bind(p, {})
    yield p
    p.stop()


@pytest.fixture
def fresh() -> Iterator[GraphProvider]:
    """A provider of the test's own, stopped however the test ends."""
    p = GraphProvider()
    yield p
    p.stop()


@pytest.fixture
def graph() -> str:
    return f"g{uuid.uuid4().hex[:10]}"


def raw_query(p: GraphProvider, graph: str, query: str) -> bytes:
    request = QueryGraphRequest(query=query, graph_name=graph)
    return p.handle_call(ACTOR, "QueryGraph", request.encode())


def query(p: GraphProvider, graph: str, cypher: str) -> ResultSet:
    return ResultSet.decode(raw_query(p, graph, cypher))


def wire(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def test_scalars_of_every_kind_in_the_exact_encoding(provider: GraphProvider, graph: str) -> None:
    got = wire(raw_query(provider, graph, "RETURN null, true, false, 1985, -7, 2.5, 'café'"))
    assert got["columns"] == [
        {0: [{0: None}]},
        {0: [{1: True}]},
        {0: [{1: False}]},
        {0: [{2: 1985}]},
        {0: [{2: -7}]},
        {0: [{3: 2.5}]},
        {0: [{4: list("café".encode())}]},  # a string is an array of its UTF-8 bytes
    ]
    assert all(isinstance(s, str) for s in got["statistics"])


def test_the_contracts_example_encodes_exactly(provider: GraphProvider, graph: str) -> None:
    got = wire(raw_query(provider, graph, "RETURN 1985"))
    assert got["columns"] == [{0: [{2: 1985}]}]


def test_nodes_and_relations_with_properties(provider: GraphProvider, graph: str) -> None:
    created = query(
        provider,
        graph,
        "CREATE (:Person {name: 'Ann', age: 33})-[:FOLLOWS {since: 1999, close: true}]->"
        "(:Person:Admin {name: 'Bob', score: 0.5})",
    )
    assert created.columns == ()
    assert any(s.startswith("Nodes created: 2") for s in created.statistics)
    got = query(provider, graph, "MATCH (a)-[r:FOLLOWS]->(b) RETURN a, r, b, b.name")
    assert got.columns == (
        Column(nodes=(GraphNode(labels=("Person",), properties={"name": "Ann", "age": 33}),)),
        Column(
            relations=(
                GraphRelation(type_name="FOLLOWS", properties={"since": 1999, "close": True}),
            )
        ),
        Column(
            nodes=(GraphNode(labels=("Person", "Admin"), properties={"name": "Bob", "score": 0.5}),)
        ),
        Column(scalars=("Bob",)),
    )
    raw = wire(raw_query(provider, graph, "MATCH (a {name: 'Ann'}) RETURN a"))
    assert raw["columns"] == [
        {1: [{"labels": ["Person"], "properties": {"name": {4: list(b"Ann")}, "age": {2: 33}}}]}
    ]
    raw = wire(raw_query(provider, graph, "MATCH ()-[r]->() RETURN r"))
    assert raw["columns"] == [
        {2: [{"type_name": "FOLLOWS", "properties": {"since": {2: 1999}, "close": {1: True}}}]}
    ]


def test_columns_hold_every_row(provider: GraphProvider, graph: str) -> None:
    query(provider, graph, "UNWIND range(1, 3) AS i CREATE (:N {i: i})")
    got = query(provider, graph, "MATCH (n:N) RETURN n.i ORDER BY n.i")
    assert got.columns == (Column(scalars=(1, 2, 3)),)


def test_an_empty_result(provider: GraphProvider, graph: str) -> None:
    query(provider, graph, "CREATE (:Person {name: 'Ann'})")
    got = query(provider, graph, "MATCH (n:Nobody) RETURN n, n.name")
    assert got.columns == (Column(scalars=()), Column(scalars=()))


def test_values_without_a_contract_scalar_are_sent_as_json_text(
    provider: GraphProvider, graph: str
) -> None:
    got = query(provider, graph, "RETURN [1, 'a', null], {k: 2.5}")
    assert got.columns == (Column(scalars=('[1, "a", null]',)), Column(scalars=('{"k": 2.5}',)))


def test_a_column_mixing_nodes_and_nulls_is_refused(provider: GraphProvider, graph: str) -> None:
    query(provider, graph, "CREATE (:A), (:A)-[:R]->(:B)")
    with pytest.raises(ProviderCallError, match="Graph query failure: column 'b' mixes"):
        query(provider, graph, "MATCH (a:A) OPTIONAL MATCH (a)-[:R]->(b) RETURN b")


def test_a_cypher_syntax_error(provider: GraphProvider, graph: str) -> None:
    with pytest.raises(ProviderCallError, match=r"^Graph query failure: .*MATCH"):
        query(provider, graph, "MATC (n) RETURN n")


def test_delete_graph(provider: GraphProvider, graph: str) -> None:
    query(provider, graph, "CREATE (:Person {name: 'Ann'})")
    assert provider.handle_call(ACTOR, "DeleteGraph", DeleteGraphRequest(graph).encode()) == b""
    assert query(provider, graph, "MATCH (n) RETURN n").columns == (Column(scalars=()),)


def test_delete_graph_of_a_missing_graph_is_an_error(provider: GraphProvider, graph: str) -> None:
    with pytest.raises(ProviderCallError, match=r"^Failed to delete graph: "):
        provider.handle_call(ACTOR, "DeleteGraph", DeleteGraphRequest(graph).encode())


def test_an_empty_graph_name_is_refused(provider: GraphProvider) -> None:
    with pytest.raises(ProviderCallError, match="graph_name is empty"):
        raw_query(provider, "", "RETURN 1")


# ---- the embedded server ----------------------------------------------------------


def test_the_embedded_server_is_private_and_stops_with_the_provider(
    graph: str, fresh: GraphProvider
) -> None:
    p = fresh
    bind(p, {})
    pid = p.embedded.pid
    assert pid is not None
    sock = p.embedded.socket
    assert stat.S_IMODE(os.stat(sock.parent).st_mode) == 0o700  # mkdtemp's private dir
    assert stat.S_IMODE(os.stat(sock).st_mode) & 0o077 == 0
    assert query(p, graph, "RETURN 1").columns == (Column(scalars=(1,)),)
    p.stop()
    assert not sock.parent.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_the_embedded_server_is_started_again_if_it_dies(graph: str, fresh: GraphProvider) -> None:
    p = fresh
    bind(p, {})
    pid = p.embedded.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    proc = p.embedded._proc
    assert proc is not None
    proc.wait()
    assert query(p, graph, "RETURN 2").columns == (Column(scalars=(2,)),)
    assert p.embedded.pid not in (None, pid)
    p.stop()


# ---- a server stopped mid-run ---------------------------------------------------------


def test_a_server_stopped_mid_run_gives_the_actor_errors_then_recovers(
    host: Host,
    sign: Callable[..., tuple[bytes, object]],
    falkordb_server: ServerProcess,
    graph: str,
) -> None:
    signed, _ = sign(build_test_actor(), caps=[CAP])
    actor = host.add_actor(signed)
    host.add_provider(GraphProvider())
    host.set_binding(actor, CAP, values={"URL": f"redis://127.0.0.1:{falkordb_server.port}"})

    def ask(cypher: str) -> ResultSet:
        payload = QueryGraphRequest(query=cypher, graph_name=graph).encode()
        return ResultSet.decode(
            host.call_actor(actor, "Call", call_payload(CAP, "QueryGraph", payload))
        )

    assert ask("RETURN 'up'").columns == (Column(scalars=("up",)),)
    with pytest.raises(GuestError, match=r"Graph query failure: .*MATC"):
        ask("MATC (n) RETURN n")
    falkordb_server.stop()
    try:
        with pytest.raises(GuestError, match="Graph query failure: cannot reach FalkorDB"):
            ask("RETURN 1")
    finally:
        falkordb_server.start()
    assert ask("RETURN 'back'").columns == (Column(scalars=("back",)),)


def test_registers_through_the_wascc_providers_hook() -> None:
    assert graphdb.wascc_providers() == [GraphProvider]
    with Host(plugins=[graphdb], health_interval=0, load_entry_points=False) as h:
        assert h.provider_factories()[CAP] is GraphProvider


# ---- the reply converter on replies a server should not send ------------------------


def _no_names(procedure: str) -> list[str]:
    return []


def test_a_reply_nested_past_max_depth_is_refused_not_a_recursion_error() -> None:
    deep: Any = [3, 1]
    for _ in range(2000):
        deep = [6, [deep]]
    with pytest.raises(ProviderCallError, match="nests deeper than"):
        to_result_set([[[1, b"d"]], [[deep]], []], Names(_no_names))


def test_an_integer_past_i64_is_refused_not_an_encoding_overflow() -> None:
    reply = [[[1, b"i"]], [[[3, b"9" * 25]]], []]
    with pytest.raises(ProviderCallError, match="does not fit an i64"):
        to_result_set(reply, Names(_no_names))


def _names(procedure: str) -> list[str]:
    return {"db.labels()": ["P"], "db.propertyKeys()": ["p"], "db.relationshipTypes()": ["R"]}[
        procedure
    ]


def test_nodes_nested_in_properties_become_one_json_text_not_json_of_json() -> None:
    # Each level used to be JSON-encoded inside the next (escapes doubling per level).
    inner: Any = [2, b"v"]
    for _ in range(20):
        inner = [8, [0, [0], [[0, *inner]]]]
    got = to_result_set([[[1, b"n"]], [[inner]], []], Names(_names))
    node = got.columns[0].nodes
    assert node is not None
    text = node[0].properties["p"]
    assert len(text) < 2000 and text.count("\\") == 0
    for _ in range(70):
        inner = [8, [0, [0], [[0, *inner]]]]
    with pytest.raises(ProviderCallError, match="nests deeper than"):
        to_result_set([[[1, b"n"]], [[inner]], []], Names(_names))


def test_the_embedded_server_outlives_the_thread_that_started_it(
    graph: str, fresh: GraphProvider
) -> None:
    # PR_SET_PDEATHSIG fires when the *thread* that forked exits, not the process.
    p = fresh
    starter = threading.Thread(target=bind, args=(p, {}))
    starter.start()
    starter.join()
    pid = p.embedded.pid
    time.sleep(0.3)
    assert query(p, graph, "RETURN 3").columns == (Column(scalars=(3,)),)
    assert p.embedded.pid == pid  # the same server, not one started again
    p.stop()


def test_names_are_not_taken_from_a_server_that_was_replaced(
    graph: str, fresh: GraphProvider
) -> None:
    # Label, type and key ids are per server: a restarted (empty) one numbers them anew.
    p = fresh
    bind(p, {})
    query(p, graph, "CREATE (:Person {name: 'Ann'})-[:FOLLOWS]->(:Person)")
    assert query(p, graph, "MATCH (n {name: 'Ann'}) RETURN n").columns[0].nodes == (
        GraphNode(labels=("Person",), properties={"name": "Ann"}),
    )
    proc = p.embedded._proc
    assert proc is not None
    proc.kill()
    proc.wait()
    got = query(p, graph, "CREATE (n:Admin {level: 1})-[r:OWNS {at: 2}]->(:Box) RETURN n, r")
    assert got.columns == (
        Column(nodes=(GraphNode(labels=("Admin",), properties={"level": 1}),)),
        Column(relations=(GraphRelation(type_name="OWNS", properties={"at": 2}),)),
    )
    p.stop()


def test_names_are_not_taken_from_a_url_server_that_restarted(
    falkordb_server: ServerProcess, graph: str, fresh: GraphProvider
) -> None:
    p = fresh
    bind(p, {"URL": f"redis://127.0.0.1:{falkordb_server.port}"})
    query(p, graph, "CREATE (:Person {name: 'Ann'})")
    assert query(p, graph, "MATCH (n) RETURN n").columns[0].nodes == (
        GraphNode(labels=("Person",), properties={"name": "Ann"}),
    )
    falkordb_server.stop()
    falkordb_server.start()  # empty: it numbers labels anew
    got = query(p, graph, "CREATE (n:Admin {level: 1}) RETURN n")
    assert got.columns == (Column(nodes=(GraphNode(labels=("Admin",), properties={"level": 1}),)),)
    p.stop()
