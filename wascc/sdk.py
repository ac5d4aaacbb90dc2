"""The C SDK as installed: where its headers are and the flags that build an actor.

The headers (``wascc/actor.h``, ``contracts.h``, ``msgpack.h``, ``json.h`` for
actors; ``provider.h`` for native providers) ship inside the package
(``wascc/_sdk/include``, copied from ``native/include`` at install time), so a
``pip install wascc`` user compiles an actor with::

    clang $(wascc sdk --cflags) $(wascc sdk --ldflags) -o hello.wasm hello.c
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["ACTOR_CFLAGS", "ACTOR_LDFLAGS", "include_dir"]

ACTOR_CFLAGS = ("--target=wasm32", "-nostdlib", "-Oz")
ACTOR_LDFLAGS = ("-Wl,--no-entry", "-Wl,--strip-all")


def include_dir() -> Path | None:
    """The directory holding ``wascc/actor.h``: the installed copy, else the source tree's."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_sdk" / "include", package.parent / "native" / "include"):
        if (candidate / "wascc" / "actor.h").is_file():
            return candidate
    return None
