"""``wascc:blobstore`` on the filesystem (CONTRACTS section 3).

Each binding has its own ``ROOT``: a container is a directory of ROOT, a
blob a file in it.  (The original shared one ROOT across every actor, the
last BindActor winning; here two actors bound with different ROOTs never see
each other's blobs.)

Ids.  A container or blob id that is plainly trying to leave ROOT is
refused with the reason: an absolute path (leading ``/``), a ``..``
segment, a NUL byte, an empty id.  Others are sanitized as CONTRACTS says:
``/`` becomes ``_`` and leading dots are stripped, so ``a/b`` is stored as
``a_b`` and replies carry the stored name.

Uploads.  ``StartUpload`` (a FileChunk with ``sequenceNo`` 0 and
``totalBytes``) opens a hidden temporary file beside the blob
(``.upload-*.part``; no blob name starts with a dot, so it is never
listed); ``UploadChunk`` writes chunks in ``sequenceNo`` order from 0
(a chunk that arrives early waits in memory until its turn; a repeated one
is an error); when ``totalBytes`` have been written the file is fsynced
and renamed over the blob.  A reader therefore sees the old blob or the
new one, never half of one, and a crash mid-upload leaves only the hidden
temporary file, removed at the next bind once it is an hour old.  A
StartUpload with ``totalBytes`` 0 creates the blob empty at once (as the
original's did); chunks that then announce a size still complete it.
Uploads of different blobs run concurrently.  Blob files are created
mode 0600 (private to the host's user), as temporary files are.  ``MAX_BYTES`` bounds a
blob: a larger ``totalBytes``, or chunks past it, are refused and the
upload is dropped.

Downloads.  ``StartDownload`` answers empty at once; a provider thread
then reads the blob one chunk at a time (``chunkSize``, 0 = 512 KiB, at
most 16 MiB) and dispatches each as ``ReceiveChunk`` (``sequenceNo`` from
0, ``totalBytes`` the blob's size, the last chunk shorter; an empty blob is
one empty chunk).  The whole blob is never in memory.  An actor error on a
chunk stops that download.

``GetObjectInfo`` of a missing blob answers the "none" blob
``{id: "none", container: "none", byteSize: 0}``, as the original providers
did (the Rust SDK's tests look for ``id == ""``; check ``byteSize`` and the
id against "none").  ``RemoveContainer`` refuses a container that holds a
blob or an upload in progress.

Binding values (keys case-insensitive):

================== ============ =========================================
``ROOT``           (required)   the directory holding this binding's
                                containers (created if missing)
``MAX_BYTES``      1073741824   the largest blob this binding may store
``MAX_UPLOADS``    64           uploads in progress at once (each holds an
                                open file and its early chunks); more are
                                refused
``UPLOAD_TIMEOUT`` 600          seconds without a chunk after which an
                                upload may be dropped to make room for a
                                new one
================== ============ =========================================
"""

from __future__ import annotations

from wascc_capabilities.blobstore.provider import (
    CAPABILITY_ID,
    DEFAULT_CHUNK,
    DEFAULT_MAX_BYTES,
    NONE_BLOB,
    FsBlobstoreProvider,
)
from wascc_capabilities.blobstore.store import FsStore, safe_name

from wascc.hookspecs import hookimpl

__all__ = [
    "CAPABILITY_ID",
    "DEFAULT_CHUNK",
    "DEFAULT_MAX_BYTES",
    "NONE_BLOB",
    "FsBlobstoreProvider",
    "FsStore",
    "safe_name",
    "wascc_providers",
]


@hookimpl
def wascc_providers() -> list[type[FsBlobstoreProvider]]:
    return [FsBlobstoreProvider]
