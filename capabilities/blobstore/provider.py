"""The ``wascc:blobstore`` provider over :class:`~wascc_capabilities.blobstore.store.FsStore`."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from wascc_capabilities._values import binding_values, read_int
from wascc_capabilities.blobstore.store import FsStore

from wascc.errors import ProviderCallError, ProviderError, WasccError
from wascc.logs import provider_logger
from wascc.providers.base import CapabilityProvider
from wascc.wire.codec import (
    Blob,
    BlobList,
    CapabilityConfiguration,
    CapabilityDescriptor,
    Container,
    Direction,
    FileChunk,
    OperationDescriptor,
    StreamRequest,
)

__all__ = [
    "CAPABILITY_ID",
    "DEFAULT_CHUNK",
    "DEFAULT_MAX_BYTES",
    "NONE_BLOB",
    "FsBlobstoreProvider",
]

CAPABILITY_ID = "wascc:blobstore"
log = provider_logger(__name__, CAPABILITY_ID)

DEFAULT_MAX_BYTES = 1 << 30
DEFAULT_CHUNK = 512 * 1024
DEFAULT_MAX_UPLOADS = 64
DEFAULT_UPLOAD_TIMEOUT = 600
#: The largest chunk a download sends, whatever the actor asks (bounds memory).
MAX_CHUNK = 16 << 20
#: What GetObjectInfo answers for a blob that does not exist (the original's rule).
NONE_BLOB = Blob(id="none", container="none", byte_size=0)

_OPS = {
    "CreateContainer": "create a container (a directory)",
    "RemoveContainer": "remove an empty container",
    "ListObjects": "the blobs of a container",
    "RemoveObject": "remove a blob",
    "GetObjectInfo": "a blob's size; the 'none' blob if missing",
    "StartUpload": "begin a blob (written to a temporary file)",
    "UploadChunk": "one chunk of a blob, in sequenceNo order",
    "StartDownload": "stream a blob back as ReceiveChunk calls",
}


class FsBlobstoreProvider(CapabilityProvider):
    """``wascc:blobstore`` on the filesystem, one ``ROOT`` per binding."""

    capability_id = CAPABILITY_ID

    def __init__(self, *, download_threads: int = 4) -> None:
        super().__init__()
        self._stores: dict[str, FsStore] = {}
        self._lock = threading.Lock()
        self._downloads = ThreadPoolExecutor(download_threads, thread_name_prefix="blob-download")
        self._stopping = threading.Event()

    def descriptor(self) -> CapabilityDescriptor:
        ops = [OperationDescriptor(n, Direction.TO_PROVIDER, d) for n, d in _OPS.items()]
        ops.append(OperationDescriptor("ReceiveChunk", Direction.TO_ACTOR, "a downloaded chunk"))
        return CapabilityDescriptor(
            id=CAPABILITY_ID,
            name="wascc filesystem blobstore",
            version="0.1.0",
            revision=1,
            long_description="containers as directories and blobs as files under ROOT",
            supported_operations=tuple(ops),
        )

    def bind_actor(self, config: CapabilityConfiguration) -> None:
        values = binding_values(config.values)
        where = f"{CAPABILITY_ID} for actor {config.module}"
        root = values.get("ROOT", "")
        if not root:
            raise ProviderError(f"{where}: ROOT (the directory holding the blobs) is required")
        max_bytes = read_int(values, "MAX_BYTES", DEFAULT_MAX_BYTES, 0, where)
        max_uploads = read_int(values, "MAX_UPLOADS", DEFAULT_MAX_UPLOADS, 1, where)
        timeout = read_int(values, "UPLOAD_TIMEOUT", DEFAULT_UPLOAD_TIMEOUT, 1, where)
        store = FsStore(Path(root).expanduser().resolve(), max_bytes, max_uploads, timeout)
        with self._lock:
            old = self._stores.get(config.module)
            self._stores[config.module] = store
        if old is not None:
            old.close()
        log.info("bound %s to ROOT %s (MAX_BYTES %d)", config.module, store.root, max_bytes)

    def remove_actor(self, config: CapabilityConfiguration) -> None:
        with self._lock:
            store = self._stores.pop(config.module, None)
        if store is not None:
            store.close()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            stores = list(self._stores.values())
            self._stores.clear()
        for store in stores:
            store.close()
        self._downloads.shutdown(wait=True, cancel_futures=True)

    def _store(self, actor: str) -> FsStore:
        with self._lock:
            store = self._stores.get(actor)
        if store is None:
            raise ProviderCallError(f"{CAPABILITY_ID}: actor {actor} is not bound")
        return store

    def handle(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation not in _OPS:
            raise ProviderCallError(f"{CAPABILITY_ID} has no operation {operation!r}")
        store = self._store(actor)
        if operation == "CreateContainer":
            return Container(id=store.create_container(Container.decode(msg).id)).encode()
        if operation == "RemoveContainer":
            store.remove_container(Container.decode(msg).id)
            return b""
        if operation == "ListObjects":
            return BlobList(blobs=tuple(store.list_objects(Container.decode(msg).id))).encode()
        if operation == "GetObjectInfo":
            blob = Blob.decode(msg)
            return (store.info(blob.container, blob.id) or NONE_BLOB).encode()
        if operation == "RemoveObject":
            blob = Blob.decode(msg)
            store.remove_object(blob.container, blob.id)
            return b""
        if operation == "StartUpload":
            store.start_upload(FileChunk.decode(msg))
            return b""
        if operation == "UploadChunk":
            store.upload_chunk(FileChunk.decode(msg))
            return b""
        request = StreamRequest.decode(msg)  # StartDownload
        file, size = store.open_blob(request.container, request.id)
        chunk = min(request.chunk_size or DEFAULT_CHUNK, MAX_CHUNK)
        try:
            self._downloads.submit(self._send, actor, store, request, file, size, chunk)
        except RuntimeError as exc:  # the pool is shut down: the provider is stopping
            file.close()
            raise ProviderCallError(f"{CAPABILITY_ID} is stopping; download refused") from exc
        return b""

    def _send(
        self,
        actor: str,
        store: FsStore,
        request: StreamRequest,
        file: BinaryIO,
        size: int,
        chunk_size: int,
    ) -> None:
        """Dispatch the blob as ReceiveChunk calls, reading one chunk at a time.

        A blob of 0 bytes is sent as one empty chunk, so the actor learns it ended.
        """
        try:
            self._stream(actor, store, request, file, size, chunk_size)
        except Exception:  # nobody waits on this thread's future: say it here
            log.exception("download of %r to %s failed", request.id, actor)

    def _stream(
        self,
        actor: str,
        store: FsStore,
        request: StreamRequest,
        file: BinaryIO,
        size: int,
        chunk_size: int,
    ) -> None:
        with file:
            sequence = 0
            sent = 0
            while not (self._stopping.is_set() or store.closed):
                data = file.read(chunk_size)
                if not data and sequence:
                    return
                chunk = FileChunk(
                    sequence_no=sequence,
                    container=request.container,
                    id=request.id,
                    total_bytes=size,
                    chunk_size=chunk_size,
                    context=request.context,
                    chunk_bytes=data,
                )
                dispatcher = self.dispatcher
                if dispatcher is None:
                    return
                try:
                    dispatcher.dispatch(actor, "ReceiveChunk", chunk.encode())
                except WasccError as exc:
                    log.warning(
                        "download of %r to %s stopped at chunk %d: %s",
                        request.id,
                        actor,
                        sequence,
                        exc,
                    )
                    return
                sequence += 1
                sent += len(data)
                if sent >= size:
                    return
