"""Watching a directory for files that appear, change and disappear.

Polling, not inotify: a file is reported only once it has *settled* (its
size, mtime and inode unchanged between two scans), so a library or module
still being copied in is never loaded half-written, and the behaviour is the
same on Linux, macOS and network filesystems.  A scan is a ``stat`` per
file; the first scan reports what is already there at once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from pathlib import Path

__all__ = ["DirectoryWatcher", "file_state"]

log = logging.getLogger(__name__)

Callback = Callable[[Path], None]


def file_state(path: Path) -> tuple[int, int, int] | None:
    """(size, mtime_ns, inode) of a file, or None if it is gone."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


class DirectoryWatcher:
    """Reports settled files of ``directory`` accepted by ``accept``.

    ``fingerprint(path)`` says when a file changed (by default its
    :func:`file_state`; include a sidecar's state to reload on its change).
    Callbacks run on the watcher's thread; one that raises is logged and the
    watcher goes on.
    """

    def __init__(
        self,
        directory: Path,
        accept: Callable[[Path], bool],
        *,
        on_added: Callback,
        on_changed: Callback,
        on_removed: Callback,
        fingerprint: Callable[[Path], Hashable] = file_state,
        interval: float = 1.0,
        name: str = "watcher",
    ) -> None:
        self.directory = directory
        self.interval = interval
        self.name = name
        self._accept = accept
        self._fingerprint = fingerprint
        self._on = {"added": on_added, "changed": on_changed, "removed": on_removed}
        self._known: dict[Path, Hashable] = {}
        self._pending: dict[Path, Hashable] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._scan_lock = threading.Lock()

    def _notify(self, event: str, path: Path) -> None:
        try:
            self._on[event](path)
        except Exception:
            log.exception("%s: handling %s %s failed", self.name, event, path)

    def scan(self, *, settle: bool = True) -> None:
        """One pass: report removed files, and added or changed ones that settled."""
        with self._scan_lock:
            try:
                entries = sorted(p for p in self.directory.iterdir() if self._accept(p))
            except OSError as exc:
                log.error("%s: cannot read %s: %s", self.name, self.directory, exc)
                return
            current = {p: self._fingerprint(p) for p in entries}
            current = {p: f for p, f in current.items() if f is not None}
            for path in [p for p in self._known if p not in current]:
                del self._known[path]
                self._notify("removed", path)
            for path in [p for p in self._pending if p not in current]:
                del self._pending[path]
            for path, state in current.items():
                if self._known.get(path) == state:
                    self._pending.pop(path, None)
                    continue
                if settle and self._pending.get(path) != state:
                    self._pending[path] = state  # seen once; report when it holds still
                    continue
                self._pending.pop(path, None)
                event = "changed" if path in self._known else "added"
                self._known[path] = state
                self._notify(event, path)

    def start(self) -> None:
        """Report what is there now, then keep watching on a thread."""
        self.scan(settle=False)
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.scan()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None

    @property
    def known(self) -> list[Path]:
        return sorted(self._known)
