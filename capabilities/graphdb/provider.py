"""The ``wascc:graphdb`` provider: QueryGraph and DeleteGraph on FalkorDB."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import redis
from wascc_capabilities._values import binding_values
from wascc_capabilities.graphdb.results import Names, to_result_set
from wascc_capabilities.graphdb.server import EmbeddedFalkorDB

from wascc.errors import BackendUnavailable, ProviderCallError, ProviderError
from wascc.logs import provider_logger
from wascc.providers.base import CapabilityProvider
from wascc.wire.codec import (
    CapabilityConfiguration,
    CapabilityDescriptor,
    DeleteGraphRequest,
    Direction,
    OperationDescriptor,
    QueryGraphRequest,
    ResultSet,
)

__all__ = ["CAPABILITY_ID", "OP_DELETE_GRAPH", "OP_QUERY_GRAPH", "GraphProvider"]

CAPABILITY_ID = "wascc:graphdb"
OP_QUERY_GRAPH = "QueryGraph"
OP_DELETE_GRAPH = "DeleteGraph"
QUERY_FAILURE = "Graph query failure"
DELETE_FAILURE = "Failed to delete graph"

log = provider_logger(__name__, CAPABILITY_ID)


@dataclass
class _Backend:
    """One binding's server: a client for ``URL``, or the embedded server."""

    where: str
    url_client: Any = None
    embedded: EmbeddedFalkorDB | None = None
    #: label / relation type / property key names per graph: ids are a server's
    #: own, so they are dropped when the server may have changed (see forget)
    names: dict[str, Names] = field(default_factory=dict)
    generation: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self) -> Any:
        if self.embedded is not None:
            client = self.embedded.client()
            if self.embedded.generation != self.generation:  # started again: new ids
                self.forget()
                self.generation = self.embedded.generation
            return client
        return self.url_client

    def forget(self, graph: str | None = None) -> None:
        """Drop cached names (of one graph, or of all after a connection failure)."""
        with self.lock:
            if graph is None:
                self.names.clear()
            else:
                self.names.pop(graph, None)

    def names_of(self, graph: str) -> Names:
        with self.lock:
            names = self.names.get(graph)
            if names is None:

                def lookup(procedure: str) -> list[str]:
                    reply = self.client().execute_command(
                        "GRAPH.RO_QUERY", graph, f"CALL {procedure}", "--compact"
                    )
                    return [row[0][1].decode("utf-8", "replace") for row in reply[1]]

                names = self.names[graph] = Names(lookup)
            return names

    def close(self) -> None:
        if self.url_client is not None:
            self.url_client.close()


class GraphProvider(CapabilityProvider):
    """``wascc:graphdb`` on a FalkorDB at ``URL``, or on an embedded one."""

    capability_id = CAPABILITY_ID

    def __init__(self) -> None:
        super().__init__()
        self._backends: dict[str, _Backend] = {}
        self._lock = threading.Lock()
        self._embedded = EmbeddedFalkorDB()

    def descriptor(self) -> CapabilityDescriptor:
        return CapabilityDescriptor(
            id=CAPABILITY_ID,
            name="wascc graph database",
            version="0.1.0",
            revision=1,
            long_description="Cypher on FalkorDB (embedded, or the server at URL)",
            supported_operations=(
                OperationDescriptor(OP_QUERY_GRAPH, Direction.TO_PROVIDER, "run a Cypher query"),
                OperationDescriptor(OP_DELETE_GRAPH, Direction.TO_PROVIDER, "delete a graph"),
            ),
        )

    @property
    def embedded(self) -> EmbeddedFalkorDB:
        """The provider's own server (started when a binding without URL needs it)."""
        return self._embedded

    def bind_actor(self, config: CapabilityConfiguration) -> None:
        url = binding_values(config.values).get("URL", "")
        if url:
            backend = _Backend(where="FalkorDB")

            def connected(connection: Any) -> None:
                # A new connection may reach a restarted server (redis-py reconnects
                # without telling us): its label ids are not the cached ones.
                connection.on_connect()
                backend.forget()

            try:
                client = redis.Redis.from_url(
                    url,
                    socket_connect_timeout=2.0,
                    socket_timeout=60.0,
                    redis_connect_func=connected,
                )
            except (ValueError, redis.RedisError) as exc:
                raise ProviderError(
                    f"{CAPABILITY_ID}: URL {url!r} for actor {config.module} is not a Redis URL"
                    f" ({exc})"
                ) from exc
            kw = client.connection_pool.connection_kwargs
            where = kw.get("path") or f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
            backend.where = f"FalkorDB at {where}"
            backend.url_client = client
        else:
            self._embedded.client()  # start it now: a bind that cannot work fails here
            backend = _Backend(where="the embedded FalkorDB", embedded=self._embedded)
        with self._lock:
            old = self._backends.get(config.module)
            self._backends[config.module] = backend
        if old is not None:
            old.close()
        log.info("bound %s to %s", config.module, backend.where)

    def remove_actor(self, config: CapabilityConfiguration) -> None:
        with self._lock:
            backend = self._backends.pop(config.module, None)
        if backend is not None:
            backend.close()

    def stop(self) -> None:
        with self._lock:
            backends = list(self._backends.values())
            self._backends.clear()
        for backend in backends:
            backend.close()
        self._embedded.stop()

    def _backend(self, actor: str, failure: str) -> _Backend:
        with self._lock:
            backend = self._backends.get(actor)
        if backend is None:
            raise ProviderCallError(f"{failure}: actor {actor} is not bound to {CAPABILITY_ID}")
        return backend

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation == OP_QUERY_GRAPH:
            request = QueryGraphRequest.decode(msg)
            return self.query(actor, request.graph_name, request.query).encode()
        if operation == OP_DELETE_GRAPH:
            self.delete(actor, DeleteGraphRequest.decode(msg).graph_name)
            return b""
        raise ProviderCallError(f"{CAPABILITY_ID} has no operation {operation!r}")

    def query(self, actor: str, graph: str, cypher: str) -> ResultSet:
        """Run ``cypher`` on ``graph``; the ResultSet, or ``Graph query failure: ...``."""
        if not graph:
            raise ProviderCallError(f"{QUERY_FAILURE}: graph_name is empty")
        backend = self._backend(actor, QUERY_FAILURE)
        try:
            reply = backend.client().execute_command("GRAPH.QUERY", graph, cypher, "--compact")
            return to_result_set(reply, backend.names_of(graph))
        except redis.ResponseError as exc:
            raise ProviderCallError(f"{QUERY_FAILURE}: {exc}") from exc
        except redis.RedisError as exc:
            backend.forget()  # the server that comes back may be another one
            raise BackendUnavailable(
                f"{QUERY_FAILURE}: cannot reach {backend.where} ({exc})"
            ) from exc

    def delete(self, actor: str, graph: str) -> None:
        """Delete ``graph`` (a missing one is an error, as on the server)."""
        if not graph:
            raise ProviderCallError(f"{DELETE_FAILURE}: graph_name is empty")
        backend = self._backend(actor, DELETE_FAILURE)
        try:
            backend.client().execute_command("GRAPH.DELETE", graph)
        except redis.ResponseError as exc:
            raise ProviderCallError(f"{DELETE_FAILURE}: {graph!r}: {exc}") from exc
        except redis.RedisError as exc:
            backend.forget()
            raise BackendUnavailable(
                f"{DELETE_FAILURE}: cannot reach {backend.where} ({exc})"
            ) from exc
        finally:
            backend.forget(graph)
