"""Watched directories: files that appear, change and disappear, kept in the host.

:class:`DirectoryWatcher` polls one directory and reports settled files;
:class:`WatchedDirectory` is the one mechanism the providers directory and
the actors directory share on top of it (load, reload, unload, log and go on).

Polling, not inotify: a file is reported only once it has *settled* (its
size, mtime and inode unchanged between two scans), so a library or module
still being copied in is never loaded half-written, and the behaviour is the
same on Linux, macOS and network filesystems.  A scan is a ``stat`` per
file; the first scan reports what is already there at once.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Hashable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Generic, TypeVar

from wascc.errors import WasccError

__all__ = ["DirectoryWatcher", "WatchedDirectory", "file_state"]

T = TypeVar("T")

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


class WatchedDirectory(Generic[T]):
    """Keeps the host in step with the files of one directory.

    The one mechanism behind the providers directory and the actors
    directory: a :class:`DirectoryWatcher` reports settled files, and a
    subclass says what a file becomes (:meth:`load`), how a changed file
    replaces what it was (:meth:`reload`) and how a removed one goes
    (:meth:`unload`).  A failure is logged with the file and the host goes
    on; ``on_change`` runs after every event (the daemon reconciles bindings
    there).
    """

    #: What the files are, for log lines ("provider", "actor").
    kind = "file"

    def __init__(self, directory: Path, *, interval: float = 1.0) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise WasccError(f"{self.kind}s directory {self.directory} does not exist")
        #: Called after every change this directory made to the host.
        self.on_change: Callable[[], None] | None = None
        #: Held around each event and its ``on_change`` (the daemon's reconcile lock).
        self.lock: AbstractContextManager[object] = contextlib.nullcontext()
        self._loaded: dict[Path, T] = {}
        self._watcher = DirectoryWatcher(
            self.directory,
            self.accept,
            on_added=self._added,
            on_changed=self._changed,
            on_removed=self._removed,
            fingerprint=self.fingerprint,
            interval=interval,
            name=f"wascc-{self.kind}s {self.directory}",
        )

    # ---- what a subclass says --------------------------------------------------

    def accept(self, path: Path) -> bool:
        """Is ``path`` one of the files this directory manages?"""
        raise NotImplementedError

    def fingerprint(self, path: Path) -> Hashable:
        """When a file changed (by default its :func:`file_state`)."""
        return file_state(path)

    def load(self, path: Path) -> T:
        """Bring a new file into the host; what it became."""
        raise NotImplementedError

    def reload(self, path: Path, old: T) -> T:
        """Replace what ``old`` was with the changed file; what it became."""
        raise NotImplementedError

    def unload(self, path: Path, old: T) -> None:
        """Take a removed file's ``old`` out of the host."""
        raise NotImplementedError

    # ---- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Load what is there now, then follow the directory on a thread."""
        self._watcher.start()

    def scan(self) -> None:
        """Check the directory now (the watcher also does on its interval)."""
        self._watcher.scan()

    def stop(self) -> None:
        self._watcher.stop()

    @property
    def loaded(self) -> dict[Path, T]:
        """What each file in the directory became."""
        return dict(self._loaded)

    # ---- events --------------------------------------------------------------------

    def _guard(self, what: str, path: Path, action: Callable[[], object]) -> None:
        with self.lock:
            try:
                action()
            except WasccError as exc:
                log.error("%ss directory: cannot %s %s: %s", self.kind, what, path.name, exc)
            if self.on_change is not None:
                self.on_change()

    def _added(self, path: Path) -> None:
        def add() -> None:
            self._loaded[path] = self.load(path)

        self._guard("load", path, add)

    def _changed(self, path: Path) -> None:
        old = self._loaded.get(path)
        if old is None:
            self._added(path)
            return

        def change() -> None:
            self._loaded[path] = self.reload(path, old)

        self._guard("reload", path, change)

    def _removed(self, path: Path) -> None:
        old = self._loaded.pop(path, None)
        if old is not None:
            self._guard("unload", path, lambda: self.unload(path, old))
