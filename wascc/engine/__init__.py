"""The engine: the only code that touches cffi and wasmtime.

wasmtime's engine and module checks (:mod:`~wascc.engine.runtime`), the waPC
call in C (:mod:`~wascc.engine.wapc`), the epoch ticker
(:mod:`~wascc.engine.ticker`), native provider libraries
(:mod:`~wascc.engine.library`), pools of instances
(:mod:`~wascc.engine.pool`) and a compiled guest with its pool
(:mod:`~wascc.engine.guest`).  Nothing here knows about claims, bindings or
the host; everything above sees bytes, strings and these classes, never a
cffi pointer.
"""
