"""Wire formats: what crosses a boundary as bytes.

msgpack structs of every contract (:mod:`~wascc.wire.codec`), signed claims
(:mod:`~wascc.wire.claims`), nkeys (:mod:`~wascc.wire.keys`), wasm custom
sections (:mod:`~wascc.wire.wasm`), invocations
(:mod:`~wascc.wire.invocation`) and capability names
(:mod:`~wascc.wire.capability`).  Everything here is pure data and parsing:
it imports only :mod:`wascc.errors`.
"""
