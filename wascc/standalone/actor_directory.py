"""The actors directory of ``wascc up --actors-dir``: drop a module in to run it.

Every ``.wasm`` file in the directory runs as an actor (verified like any
other); a file removed stops its actor; a file replaced hot-swaps the actor
(:meth:`wascc.Host.replace_actor`: calls in flight finish on the old module,
none fails).  What each file became is its actor's public key.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

from wascc.errors import NotFound
from wascc.host import Host
from wascc.standalone.watcher import WatchedDirectory

__all__ = ["ActorDirectory"]

log = logging.getLogger(__name__)


class ActorDirectory(WatchedDirectory[str]):
    """Keeps the host's actors in step with the modules of one directory."""

    kind = "actor"

    def __init__(self, host: Host, directory: Path, *, interval: float = 1.0) -> None:
        super().__init__(directory, interval=interval)
        self.host = host

    def accept(self, path: Path) -> bool:
        return path.suffix == ".wasm" and path.is_file()

    def load(self, path: Path) -> str:
        return self.host.add_actor(path)

    def reload(self, path: Path, old: str) -> str:
        key = self.host.replace_actor(old, path)
        log.info("actors directory: hot-swapped %s", path.name)
        return key

    def unload(self, path: Path, old: str) -> None:
        with contextlib.suppress(NotFound):
            self.host.remove_actor(old)
