"""FalkorDB's compact result format -> the contract's ResultSet.

``GRAPH.QUERY g q --compact`` answers ``[header, rows, statistics]`` (or just
``[statistics]`` for a query that returns nothing).  Values come as
``[type, value]``; nodes and relations name their labels, relation types and
property keys by index, resolved through ``db.labels()``,
``db.relationshipTypes()`` and ``db.propertyKeys()`` (cached per graph,
refreshed when an index is new).  The original ResultSet is column-major:
each column holds one kind (scalars, nodes or relations) for every row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from wascc.errors import ProviderCallError
from wascc.wire.codec import Column, GraphNode, GraphRelation, ResultSet

__all__ = ["Names", "to_result_set"]

#: How deep arrays and maps may nest in a reply (deeper is refused, not a RecursionError).
MAX_DEPTH = 64
_I64 = range(-(2**63), 2**63)

# FalkorDB's value types in compact replies.
NULL, STRING, INTEGER, BOOLEAN, DOUBLE, ARRAY, EDGE, NODE, PATH, MAP, POINT = range(1, 12)

#: procedure -> the list of names it returns, by index
Lookup = Callable[[str], list[str]]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


class Names:
    """One graph's label, relation type and property key names, by index."""

    PROCEDURES = {
        "labels": "db.labels()",
        "types": "db.relationshipTypes()",
        "keys": "db.propertyKeys()",
    }

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._names: dict[str, list[str]] = {k: [] for k in self.PROCEDURES}

    def get(self, kind: str, index: int) -> str:
        names = self._names[kind]
        if index >= len(names):
            names = self._names[kind] = self._lookup(self.PROCEDURES[kind])
        if not 0 <= index < len(names):
            raise ProviderCallError(
                f"Graph query failure: the server named {kind} #{index}, which it does not list"
            )
        return names[index]


class _Node:
    __slots__ = ("node",)

    def __init__(self, node: GraphNode) -> None:
        self.node = node


class _Relation:
    __slots__ = ("relation",)

    def __init__(self, relation: GraphRelation) -> None:
        self.relation = relation


def _properties(raw: Sequence[Any], names: Names, depth: int) -> dict[str, Any]:
    """A node's or relation's properties as contract scalars (see :func:`_scalar`)."""
    return {names.get("keys", key): _scalar(kind, value, names, depth) for key, kind, value in raw}


def _value(kind: int, value: Any, names: Names) -> Any:
    """A compact value as a plain value, a _Node or a _Relation."""
    if kind == NODE:
        _, labels, props = value
        node = GraphNode(
            labels=tuple(names.get("labels", i) for i in labels),
            properties=_properties(props, names, 1),
        )
        return _Node(node)
    if kind == EDGE:
        _, type_index, _, _, props = value
        relation = GraphRelation(
            type_name=names.get("types", type_index), properties=_properties(props, names, 1)
        )
        return _Relation(relation)
    return _scalar(kind, value, names, 0)


def _scalar(kind: int, value: Any, names: Names, depth: int) -> Any:
    """A plain value; what the contract's Scalar cannot hold becomes its JSON text
    (written once, at the top: nested values are plain data inside that one text)."""
    if kind == NULL:
        return None
    if kind == STRING:
        return _text(value)
    if kind == INTEGER:
        number = int(value)
        if number not in _I64:
            raise ProviderCallError(f"Graph query failure: integer {number} does not fit an i64")
        return number
    if kind == BOOLEAN:
        return _text(value) == "true"
    if kind == DOUBLE:
        return float(value)
    return json.dumps(_plain(kind, value, names, depth), ensure_ascii=False, default=str)


def _plain(kind: int, value: Any, names: Names, depth: int) -> Any:
    """Any compact value as JSON-able data, nested values included."""
    if depth > MAX_DEPTH:
        raise ProviderCallError(
            f"Graph query failure: a value nests deeper than {MAX_DEPTH} levels"
        )
    if kind == ARRAY:
        return [_plain(k, v, names, depth + 1) for k, v in value]
    if kind == MAP:
        pairs = ((value[i], value[i + 1]) for i in range(0, len(value), 2))
        return {_text(key): _plain(k, v, names, depth + 1) for key, (k, v) in pairs}
    if kind == POINT:
        return {"latitude": float(value[0]), "longitude": float(value[1])}
    if kind == PATH:
        (_, nodes), (_, edges) = value
        return {
            "nodes": _plain(ARRAY, nodes, names, depth + 1),
            "relations": _plain(ARRAY, edges, names, depth + 1),
        }
    if kind in (NODE, EDGE):
        props = value[2] if kind == NODE else value[4]
        plain = {names.get("keys", k): _plain(t, v, names, depth + 1) for k, t, v in props}
        if kind == NODE:
            return {"labels": [names.get("labels", i) for i in value[1]], "properties": plain}
        return {"type": names.get("types", value[1]), "properties": plain}
    if kind in (NULL, STRING, INTEGER, BOOLEAN, DOUBLE):
        return _scalar(kind, value, names, depth)
    return _text(value) if isinstance(value, bytes) else value


def _column(name: str, values: list[Any]) -> Column:
    if values and all(isinstance(v, _Node) for v in values):
        return Column(nodes=tuple(v.node for v in values))
    if values and all(isinstance(v, _Relation) for v in values):
        return Column(relations=tuple(v.relation for v in values))
    if any(isinstance(v, (_Node, _Relation)) for v in values):
        raise ProviderCallError(
            f"Graph query failure: column {name!r} mixes nodes or relations with other values "
            "(nulls included), which the ResultSet contract cannot hold"
        )
    return Column(scalars=tuple(values))


def to_result_set(reply: Any, names: Names) -> ResultSet:
    """Convert one ``GRAPH.QUERY --compact`` reply."""
    try:
        if len(reply) == 1:  # no RETURN: statistics only
            return ResultSet(statistics=tuple(_text(s) for s in reply[0]))
        header, rows, stats = reply
        columns = []
        for i, (_, name) in enumerate(header):
            values = [_value(row[i][0], row[i][1], names) for row in rows]
            columns.append(_column(_text(name), values))
        return ResultSet(columns=tuple(columns), statistics=tuple(_text(s) for s in stats))
    except ProviderCallError:
        raise
    except (ValueError, TypeError, IndexError, KeyError) as exc:
        raise ProviderCallError(f"Graph query failure: unexpected reply shape ({exc})") from exc
