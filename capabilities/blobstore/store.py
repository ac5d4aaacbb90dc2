"""One binding's blobs on the filesystem: names, atomic uploads, chunked reads."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from wascc.errors import ProviderCallError, ProviderError
from wascc.wire.codec import Blob, FileChunk

__all__ = ["TEMP_PREFIX", "FsStore", "safe_name"]

#: Uploads in progress are hidden files with this prefix beside their blob.  No
#: blob name starts with ``.`` (see :func:`safe_name`), so none is ever listed.
TEMP_PREFIX = ".upload-"
_TEMP_SUFFIX = ".part"
#: A temporary file older than this at bind time was left by a crash: removed.
STALE_SECONDS = 3600.0


def safe_name(raw: str, what: str) -> str:
    """The file name for a container or blob id, or a refusal saying why.

    Refused: empty ids, NUL bytes, absolute paths and ``..`` segments (an id
    that is plainly trying to leave ROOT is an error, not silently rewritten).
    Then, as CONTRACTS says: ``/`` becomes ``_`` and leading dots are stripped.
    """
    if not raw:
        raise ProviderCallError(f"{what} is empty")
    if "\x00" in raw:
        raise ProviderCallError(f"{what} {raw!r} is refused: it contains a NUL byte")
    if raw.startswith("/"):
        raise ProviderCallError(f"{what} {raw!r} is refused: it is an absolute path")
    if ".." in raw.split("/"):
        raise ProviderCallError(f"{what} {raw!r} is refused: it climbs out with '..'")
    name = raw.replace("/", "_").lstrip(".")
    if not name:
        raise ProviderCallError(f"{what} {raw!r} is refused: nothing is left once sanitized")
    if len(name.encode("utf-8", "surrogatepass")) > 255:
        raise ProviderCallError(f"{what} {raw[:40]!r}... is refused: longer than 255 bytes")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ProviderCallError(f"{what} {raw!r} is refused: it is not valid Unicode") from None
    return name


@dataclass
class _Upload:
    """A blob being written: chunks in sequence order into a hidden temporary file."""

    temp: Path
    final: Path
    file: BinaryIO
    total: int
    next_seq: int = 0
    written: int = 0
    pending: dict[int, bytes] = field(default_factory=dict)
    pending_bytes: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    last: float = field(default_factory=time.monotonic)  # when a chunk last arrived

    def discard(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            self.temp.unlink()


class FsStore:
    """Containers are directories of ``root``, blobs are files in them."""

    def __init__(
        self, root: Path, max_bytes: int, max_uploads: int = 64, upload_timeout: float = 600.0
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_uploads = max_uploads
        self.upload_timeout = upload_timeout
        self._uploads: dict[Path, _Upload] = {}
        self._lock = threading.Lock()
        self.closed = False
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=root, prefix=TEMP_PREFIX)  # noqa: SIM115
            probe.close()
        except OSError as exc:
            raise ProviderError(
                f"wascc:blobstore: ROOT {str(root)!r} is not usable ({exc})"
            ) from exc
        self._remove_stale()

    def _remove_stale(self) -> None:
        """Temporary files of uploads a crash interrupted (never visible; now gone)."""
        cutoff = time.time() - STALE_SECONDS
        for temp in self.root.glob(f"*/{TEMP_PREFIX}*{_TEMP_SUFFIX}"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()

    def container(self, container_id: str, *, exists: bool = True) -> Path:
        path = self.root / safe_name(container_id, "container id")
        if exists and not path.is_dir():
            raise ProviderCallError(f"no container {container_id!r}")
        return path

    def blob(self, container_id: str, blob_id: str) -> Path:
        return self.container(container_id) / safe_name(blob_id, "blob id")

    # ---- containers and blobs ---------------------------------------------------

    def create_container(self, container_id: str) -> str:
        path = self.container(container_id, exists=False)
        try:
            path.mkdir(exist_ok=True)
        except OSError as exc:
            raise ProviderCallError(f"cannot create container {container_id!r}: {exc}") from exc
        return path.name

    def remove_container(self, container_id: str) -> None:
        path = self.container(container_id)
        with self._lock:
            if any(u.final.parent == path for u in self._uploads.values()):
                raise ProviderCallError(
                    f"container {container_id!r} is not empty (an upload is in progress)"
                )
            entries = list(path.iterdir())
            if any(not e.name.startswith(".") for e in entries):
                raise ProviderCallError(f"container {container_id!r} is not empty")
            try:
                for leftover in entries:  # temporary files of interrupted uploads
                    leftover.unlink()
                path.rmdir()
            except OSError as exc:
                raise ProviderCallError(f"cannot remove container {container_id!r}: {exc}") from exc

    def list_objects(self, container_id: str) -> list[Blob]:
        path = self.container(container_id)
        blobs = []
        for entry in sorted(path.iterdir()):
            if entry.name.startswith("."):
                continue
            with contextlib.suppress(OSError):
                st = entry.stat()
                if entry.is_file():
                    blobs.append(Blob(id=entry.name, container=path.name, byte_size=st.st_size))
        return blobs

    def info(self, container_id: str, blob_id: str) -> Blob | None:
        """The blob's size; None when it (or its container) does not exist.

        An id that cannot be made safe is still refused, with its reason."""
        path = self.container(container_id, exists=False) / safe_name(blob_id, "blob id")
        try:
            st = path.stat()
        except OSError:
            return None
        size = st.st_size if stat.S_ISREG(st.st_mode) else None
        return (
            None if size is None else Blob(id=path.name, container=path.parent.name, byte_size=size)
        )

    def remove_object(self, container_id: str, blob_id: str) -> None:
        path = self.blob(container_id, blob_id)
        try:
            path.unlink()
        except FileNotFoundError:
            raise ProviderCallError(f"no blob {blob_id!r} in container {container_id!r}") from None
        except OSError as exc:
            raise ProviderCallError(f"cannot remove blob {blob_id!r}: {exc}") from exc

    # ---- uploads ---------------------------------------------------------------------

    def start_upload(self, chunk: FileChunk) -> None:
        """Begin (or restart) a blob's upload into a temporary file beside it."""
        final = self.blob(chunk.container, chunk.id)
        if chunk.total_bytes > self.max_bytes:
            raise ProviderCallError(
                f"blob {chunk.id!r} of {chunk.total_bytes} bytes is larger than MAX_BYTES "
                f"({self.max_bytes})"
            )
        with self._lock:
            if final not in self._uploads and len(self._uploads) >= self.max_uploads:
                self._drop_idle()
            if final not in self._uploads and len(self._uploads) >= self.max_uploads:
                # each upload holds an open file (and its early chunks in memory)
                raise ProviderCallError(
                    f"cannot start the upload of {chunk.id!r}: {self.max_uploads} uploads are "
                    "already in progress for this binding (MAX_UPLOADS)"
                )
        try:
            fd, name = tempfile.mkstemp(dir=final.parent, prefix=TEMP_PREFIX, suffix=_TEMP_SUFFIX)
        except OSError as exc:
            raise ProviderCallError(f"cannot start the upload of {chunk.id!r}: {exc}") from exc
        upload = _Upload(
            temp=Path(name), final=final, file=os.fdopen(fd, "wb"), total=chunk.total_bytes
        )
        with self._lock:
            old = self._uploads.pop(final, None)
            self._uploads[final] = upload
        if old is not None:
            with old.lock:
                old.discard()
        if chunk.chunk_bytes:
            self.upload_chunk(chunk)
        elif upload.total == 0:
            # Size unknown or zero: the blob is created empty now (as the original's
            # StartUpload did); chunks that say their totalBytes may still follow.
            self._publish_empty(final)

    def _publish_empty(self, final: Path) -> None:
        try:
            fd, name = tempfile.mkstemp(dir=final.parent, prefix=TEMP_PREFIX, suffix=_TEMP_SUFFIX)
            os.close(fd)
            os.replace(name, final)
        except OSError as exc:
            raise ProviderCallError(f"cannot create blob {final.name!r}: {exc}") from exc

    def _drop_idle(self) -> None:
        """Abandon uploads that got no chunk for ``upload_timeout`` seconds (lock held),
        so an actor that gave up on some cannot lock itself out of MAX_UPLOADS."""
        cutoff = time.monotonic() - self.upload_timeout
        for final, upload in list(self._uploads.items()):
            if upload.last < cutoff and upload.lock.acquire(blocking=False):
                try:
                    del self._uploads[final]
                    upload.discard()
                finally:
                    upload.lock.release()

    def upload_chunk(self, chunk: FileChunk) -> None:
        """Write a chunk in ``sequenceNo`` order (later ones wait); rename when complete."""
        final = self.blob(chunk.container, chunk.id)
        with self._lock:
            upload = self._uploads.get(final)
        if upload is None:
            raise ProviderCallError(
                f"no upload of {chunk.id!r} in {chunk.container!r} is in progress"
                " (StartUpload first)"
            )
        with upload.lock:
            if self._uploads.get(final) is not upload:
                raise ProviderCallError(f"the upload of {chunk.id!r} was restarted or cancelled")
            upload.last = time.monotonic()
            try:
                done = self._accept(upload, chunk)
            except ProviderCallError:
                self._abort(upload)
                raise
            except OSError as exc:
                self._abort(upload)
                raise ProviderCallError(f"cannot write blob {chunk.id!r}: {exc}") from exc
            if done:
                self._finish(upload)

    def _accept(self, upload: _Upload, chunk: FileChunk) -> bool:
        if chunk.total_bytes and not upload.total:
            upload.total = chunk.total_bytes
        limit = min(upload.total or self.max_bytes, self.max_bytes)
        size = len(chunk.chunk_bytes)
        if chunk.sequence_no < upload.next_seq or chunk.sequence_no in upload.pending:
            raise ProviderCallError(f"chunk {chunk.sequence_no} of {chunk.id!r} arrived twice")
        if upload.written + upload.pending_bytes + size > limit:
            which = "MAX_BYTES" if limit == self.max_bytes else "its totalBytes"
            raise ProviderCallError(f"blob {chunk.id!r} grows past {which} ({limit} bytes)")
        if chunk.sequence_no > upload.next_seq:
            upload.pending[chunk.sequence_no] = chunk.chunk_bytes
            upload.pending_bytes += size
            return False
        upload.file.write(chunk.chunk_bytes)
        upload.written += size
        upload.next_seq += 1
        while upload.next_seq in upload.pending:
            data = upload.pending.pop(upload.next_seq)
            upload.pending_bytes -= len(data)
            upload.file.write(data)
            upload.written += len(data)
            upload.next_seq += 1
        return bool(upload.total) and upload.written >= upload.total

    def _finish(self, upload: _Upload) -> None:
        try:
            upload.file.flush()
            os.fsync(upload.file.fileno())
            upload.file.close()
            os.replace(upload.temp, upload.final)  # readers see the old blob or the new one
        except OSError as exc:
            self._abort(upload)
            raise ProviderCallError(f"cannot store blob {upload.final.name!r}: {exc}") from exc
        with self._lock:
            if self._uploads.get(upload.final) is upload:
                del self._uploads[upload.final]

    def _abort(self, upload: _Upload) -> None:
        upload.discard()
        with self._lock:
            if self._uploads.get(upload.final) is upload:
                del self._uploads[upload.final]

    # ---- downloads -------------------------------------------------------------------

    def open_blob(self, container_id: str, blob_id: str) -> tuple[BinaryIO, int]:
        """The blob opened for reading (a later replace does not change what is read)."""
        path = self.blob(container_id, blob_id)
        try:
            file = path.open("rb")
        except FileNotFoundError:
            raise ProviderCallError(f"no blob {blob_id!r} in container {container_id!r}") from None
        except OSError as exc:
            raise ProviderCallError(f"cannot read blob {blob_id!r}: {exc}") from exc
        return file, os.fstat(file.fileno()).st_size

    def close(self) -> None:
        """Cancel the uploads in progress (their temporary files are removed)."""
        self.closed = True
        with self._lock:
            uploads = list(self._uploads.values())
            self._uploads.clear()
        for upload in uploads:
            with upload.lock:
                upload.discard()
