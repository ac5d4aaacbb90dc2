"""wascc:blobstore: an actor's payloads (hostile ids, chunks in any order) on a real ROOT.

Beyond "return or raise a WasccError", each case checks that nothing was
created outside ROOT (the directory beside it must hold ROOT alone).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

from wascc_capabilities.blobstore import FsBlobstoreProvider

from wascc.wire.codec import (
    Blob,
    CapabilityConfiguration,
    Container,
    FileChunk,
    StreamRequest,
    pack,
)

from fuzz.engine import Target

ACTOR = "M" + "F" * 55
OPS = [
    "CreateContainer",
    "RemoveContainer",
    "ListObjects",
    "RemoveObject",
    "GetObjectInfo",
    "StartUpload",
    "UploadChunk",
    "StartDownload",
]
_state: dict[str, object] = {}


class _Sink:
    def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        return b""


def setup() -> None:
    outer = Path(tempfile.mkdtemp(prefix="wascc-fuzz-blob-"))
    provider = FsBlobstoreProvider()
    provider.configure_dispatch(_Sink())
    values = {"ROOT": str(outer / "root"), "MAX_BYTES": "65536", "MAX_UPLOADS": "16"}
    config = CapabilityConfiguration(module=ACTOR, values=values)
    provider.handle_call("system", "BindActor", config.encode())
    provider.handle(ACTOR, "CreateContainer", Container(id="c").encode())
    _state.update(outer=outer, provider=provider)


def teardown() -> None:
    provider = _state.pop("provider")
    assert isinstance(provider, FsBlobstoreProvider)
    provider.stop()
    shutil.rmtree(str(_state.pop("outer")), ignore_errors=True)


def run(data: bytes) -> None:
    provider = _state["provider"]
    outer = _state["outer"]
    assert isinstance(provider, FsBlobstoreProvider) and isinstance(outer, Path)
    if not data:
        return
    try:
        provider.handle(ACTOR, OPS[data[0] % len(OPS)], data[1:])
    finally:
        escaped = [p.name for p in outer.iterdir() if p.name != "root"]
        if escaped:
            raise AssertionError(f"created outside ROOT: {escaped}")


_NAMES = [
    "c",
    "b",
    "../x",
    "a/../../x",
    "/etc/x",
    "..",
    ".",
    "",
    "a\x00b",
    "a/b/c",
    ".hidden",
    "x" * 300,
    "é/../",
    "./..",
]


def generate(rng: random.Random) -> bytes:
    op = rng.randrange(len(OPS))
    name, container = rng.choice(_NAMES), rng.choice(_NAMES)
    if OPS[op] in ("StartUpload", "UploadChunk"):
        msg = FileChunk(
            sequence_no=rng.choice((0, 1, 2, 2**63, 2**64 - 1)),
            container=container,
            id=name,
            total_bytes=rng.choice((0, 3, 10, 65536, 2**64 - 1)),
            chunk_bytes=rng.randbytes(rng.choice((0, 3, 7, 100))),
        ).encode()
    elif OPS[op] == "StartDownload":
        msg = StreamRequest(
            id=name, container=container, chunk_size=rng.choice((0, 1, 2**64 - 1))
        ).encode()
    elif OPS[op] in ("CreateContainer", "RemoveContainer", "ListObjects"):
        msg = Container(id=container).encode()
    else:
        msg = pack({"id": name, "container": container, "byteSize": rng.randrange(2**64)})
    return bytes([op]) + msg


SEEDS = [
    bytes([0]) + Container(id="d").encode(),
    bytes([5]) + FileChunk(container="c", id="b", total_bytes=6).encode(),
    bytes([6])
    + FileChunk(sequence_no=1, container="c", id="b", total_bytes=6, chunk_bytes=b"def").encode(),
    bytes([6])
    + FileChunk(sequence_no=0, container="c", id="b", total_bytes=6, chunk_bytes=b"abc").encode(),
    bytes([4]) + Blob(id="b", container="c").encode(),
    bytes([7]) + StreamRequest(id="b", container="c", chunk_size=2).encode(),
    bytes([2]) + Container(id="c").encode(),
    bytes([3]) + Blob(id="b", container="c").encode(),
]

TARGET = Target(
    name="blobstore",
    run=run,
    seeds=SEEDS,
    generate=generate,
    deadline=10.0,
    setup=setup,
    teardown=teardown,
)
