"""wascc:blobstore on the filesystem (CONTRACTS section 3), in a temporary ROOT."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from wascc_capabilities import blobstore
from wascc_capabilities.blobstore import NONE_BLOB, FsBlobstoreProvider

from wascc import GuestError, Host, ProviderCallError, ProviderError
from wascc.wire.codec import (
    OP_BIND_ACTOR,
    OP_REMOVE_ACTOR,
    SYSTEM_ACTOR,
    Blob,
    BlobList,
    CapabilityConfiguration,
    Container,
    FileChunk,
    StreamRequest,
)

from conftest import ROOT as REPO
from conftest import build_test_actor, call_payload

CAP = "wascc:blobstore"
ACTOR = "M" + "B" * 55
MIB = 1 << 20


class Chunks:
    """The provider's dispatcher: hashes every ReceiveChunk (keeping the bytes if asked)."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.chunks: list[FileChunk] = []
        self.digest = hashlib.sha256()
        self.size = 0
        self.changed = threading.Condition()

    def dispatch(self, actor: str, operation: str, payload: bytes) -> bytes:
        assert operation == "ReceiveChunk"
        chunk = FileChunk.decode(payload)
        with self.changed:
            self.digest.update(chunk.chunk_bytes)
            self.size += len(chunk.chunk_bytes)
            if not self.keep:
                chunk = FileChunk(sequence_no=chunk.sequence_no, total_bytes=chunk.total_bytes)
            self.chunks.append(chunk)
            self.changed.notify_all()
        return b""

    def wait_until(self, size: int, count: int = 1) -> None:
        deadline = time.monotonic() + 60  # only reached when the download is broken
        with self.changed:
            while (self.size < size or len(self.chunks) < count) and time.monotonic() < deadline:
                self.changed.wait(0.1)

    def data(self) -> bytes:
        return b"".join(c.chunk_bytes for c in self.chunks)


def bind(provider: FsBlobstoreProvider, actor: str = ACTOR, **values: str) -> None:
    config = CapabilityConfiguration(module=actor, values=values)
    provider.handle_call(SYSTEM_ACTOR, OP_BIND_ACTOR, config.encode())


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "blobs"


@pytest.fixture
def received() -> Chunks:
    return Chunks()


@pytest.fixture
def store(root: Path, received: Chunks) -> Iterator[FsBlobstoreProvider]:
    p = FsBlobstoreProvider()
    p.configure_dispatch(received)
    bind(p, ROOT=str(root), MAX_BYTES=str(200 * MIB))
    yield p
    p.stop()


def call(p: FsBlobstoreProvider, operation: str, msg: bytes, actor: str = ACTOR) -> bytes:
    return p.handle_call(actor, operation, msg)


def upload(
    p: FsBlobstoreProvider, container: str, blob: str, data: bytes, chunk: int = 4096
) -> None:
    pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    head = FileChunk(sequence_no=0, container=container, id=blob, total_bytes=len(data))
    call(p, "StartUpload", head.encode())
    for seq, piece in enumerate(pieces):
        chunk_msg = FileChunk(
            sequence_no=seq,
            container=container,
            id=blob,
            total_bytes=len(data),
            chunk_size=chunk,
            chunk_bytes=piece,
        )
        call(p, "UploadChunk", chunk_msg.encode())


def info(p: FsBlobstoreProvider, container: str, blob: str) -> Blob:
    return Blob.decode(call(p, "GetObjectInfo", Blob(id=blob, container=container).encode()))


def download(p: FsBlobstoreProvider, got: Chunks, container: str, blob: str, size: int) -> bytes:
    request = StreamRequest(id=blob, container=container, chunk_size=1000, context="ctx")
    assert call(p, "StartDownload", request.encode()) == b""
    got.wait_until(size)
    return got.data()


def create(p: FsBlobstoreProvider, container: str) -> None:
    call(p, "CreateContainer", Container(id=container).encode())


# ---- containers and blobs ---------------------------------------------------------


def test_containers_and_blobs_are_directories_and_files(
    store: FsBlobstoreProvider, root: Path
) -> None:
    assert Container.decode(call(store, "CreateContainer", Container(id="c").encode())).id == "c"
    create(store, "c")  # creating it again is fine
    assert (root / "c").is_dir()
    upload(store, "c", "b", b"hello")
    assert (root / "c" / "b").read_bytes() == b"hello"
    listed = BlobList.decode(call(store, "ListObjects", Container(id="c").encode()))
    assert listed.blobs == (Blob(id="b", container="c", byte_size=5),)
    assert info(store, "c", "b") == Blob(id="b", container="c", byte_size=5)
    with pytest.raises(ProviderCallError, match="not empty"):
        call(store, "RemoveContainer", Container(id="c").encode())
    call(store, "RemoveObject", Blob(id="b", container="c").encode())
    with pytest.raises(ProviderCallError, match="no blob"):
        call(store, "RemoveObject", Blob(id="b", container="c").encode())
    call(store, "RemoveContainer", Container(id="c").encode())
    assert not (root / "c").exists()
    with pytest.raises(ProviderCallError, match="no container"):
        call(store, "ListObjects", Container(id="c").encode())


def test_get_object_info_of_a_missing_blob_answers_the_none_blob(
    store: FsBlobstoreProvider,
) -> None:
    create(store, "c")
    assert info(store, "c", "missing") == NONE_BLOB
    assert info(store, "no-such-container", "x") == NONE_BLOB
    assert Blob(id="none", container="none", byte_size=0) == NONE_BLOB


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("../escape", "climbs out"),
        ("a/../../escape", "climbs out"),
        ("..", "climbs out"),
        ("/etc/passwd", "absolute path"),
        ("/", "absolute path"),
        ("a\x00b", "NUL byte"),
        ("", "empty"),
        ("...", "nothing is left"),
    ],
)
def test_ids_that_cannot_be_made_safe_are_refused_with_the_reason(
    store: FsBlobstoreProvider, root: Path, bad: str, reason: str
) -> None:
    create(store, "c")
    with pytest.raises(ProviderCallError, match=reason):
        call(store, "CreateContainer", Container(id=bad).encode())
    head = FileChunk(sequence_no=0, container="c", id=bad, total_bytes=3, chunk_bytes=b"abc")
    with pytest.raises(ProviderCallError, match=reason):
        call(store, "StartUpload", head.encode())
    with pytest.raises(ProviderCallError, match=reason):
        call(store, "StartDownload", StreamRequest(id=bad, container="c").encode())
    with pytest.raises(ProviderCallError, match=reason):
        call(store, "RemoveObject", Blob(id="x", container=bad).encode())
    with pytest.raises(ProviderCallError, match=reason):  # not the "none" blob: the reason
        call(store, "GetObjectInfo", Blob(id=bad, container="c").encode())
    assert sorted(p.name for p in root.parent.iterdir()) == ["blobs"]  # nothing escaped
    assert sorted(p.name for p in root.iterdir()) == ["c"]


def test_other_ids_are_sanitized_as_the_contract_says(
    store: FsBlobstoreProvider, root: Path
) -> None:
    create(store, ".hidden/box")
    upload(store, ".hidden/box", "photos/2020/.cat.png", b"meow")
    assert (root / "hidden_box" / "photos_2020_.cat.png").read_bytes() == b"meow"
    assert info(store, ".hidden/box", "photos/2020/.cat.png").id == "photos_2020_.cat.png"


def test_roots_are_per_binding(tmp_path: Path) -> None:
    p = FsBlobstoreProvider()
    other = "M" + "C" * 55
    bind(p, ROOT=str(tmp_path / "one"))
    bind(p, other, ROOT=str(tmp_path / "two"))
    create(p, "c")
    upload(p, "c", "b", b"first actor's")
    with pytest.raises(ProviderCallError, match="no container"):
        call(p, "ListObjects", Container(id="c").encode(), actor=other)
    assert info(p, "c", "b").byte_size == 13
    p.stop()
    assert (tmp_path / "one" / "c" / "b").exists()
    assert not (tmp_path / "two" / "c").exists()


def test_root_is_required() -> None:
    p = FsBlobstoreProvider()
    with pytest.raises(ProviderError, match="ROOT"):
        bind(p)
    p.stop()


# ---- uploads ---------------------------------------------------------------------------


def chunk(seq: int, data: bytes, total: int, blob: str = "b") -> bytes:
    return FileChunk(
        sequence_no=seq, container="c", id=blob, total_bytes=total, chunk_bytes=data
    ).encode()


def test_out_of_order_chunks_wait_for_their_turn(store: FsBlobstoreProvider, root: Path) -> None:
    create(store, "c")
    call(store, "StartUpload", FileChunk(container="c", id="b", total_bytes=9).encode())
    call(store, "UploadChunk", chunk(2, b"ghi", 9))
    call(store, "UploadChunk", chunk(0, b"abc", 9))
    assert info(store, "c", "b") == NONE_BLOB  # incomplete: not visible
    call(store, "UploadChunk", chunk(1, b"def", 9))
    assert (root / "c" / "b").read_bytes() == b"abcdefghi"
    assert [p.name for p in (root / "c").iterdir()] == ["b"]  # no temporary file left


def test_a_reader_sees_the_old_blob_until_the_new_one_is_complete(
    store: FsBlobstoreProvider, received: Chunks
) -> None:
    create(store, "c")
    upload(store, "c", "b", b"old!")
    call(store, "StartUpload", FileChunk(container="c", id="b", total_bytes=8).encode())
    call(store, "UploadChunk", chunk(0, b"new-", 8))
    assert info(store, "c", "b").byte_size == 4
    assert download(store, received, "c", "b", 4) == b"old!"
    call(store, "UploadChunk", chunk(1, b"blob", 8))
    assert info(store, "c", "b").byte_size == 8


def test_a_repeated_chunk_is_an_error_and_drops_the_upload(store: FsBlobstoreProvider) -> None:
    create(store, "c")
    call(store, "StartUpload", FileChunk(container="c", id="b", total_bytes=6).encode())
    call(store, "UploadChunk", chunk(0, b"abc", 6))
    with pytest.raises(ProviderCallError, match="arrived twice"):
        call(store, "UploadChunk", chunk(0, b"abc", 6))
    with pytest.raises(ProviderCallError, match="StartUpload first"):
        call(store, "UploadChunk", chunk(1, b"def", 6))
    assert info(store, "c", "b") == NONE_BLOB


def test_max_bytes_is_enforced_per_binding(tmp_path: Path) -> None:
    p = FsBlobstoreProvider()
    bind(p, ROOT=str(tmp_path), MAX_BYTES="10")
    create(p, "c")
    with pytest.raises(ProviderCallError, match="larger than MAX_BYTES"):
        call(p, "StartUpload", FileChunk(container="c", id="b", total_bytes=11).encode())
    call(p, "StartUpload", FileChunk(container="c", id="b", total_bytes=6).encode())
    with pytest.raises(ProviderCallError, match="totalBytes"):
        call(p, "UploadChunk", chunk(0, b"1234567", 6))
    call(p, "StartUpload", FileChunk(container="c", id="b").encode())  # size unknown
    with pytest.raises(ProviderCallError, match="MAX_BYTES"):
        call(p, "UploadChunk", chunk(0, b"12345678901", 0))
    assert info(p, "c", "b").byte_size == 0  # StartUpload of unknown size created it empty
    p.stop()


def test_two_uploads_at_once(store: FsBlobstoreProvider, root: Path) -> None:
    create(store, "c")
    blobs = {name: os.urandom(300_000) for name in ("one", "two")}
    errors: list[BaseException] = []

    def send(name: str) -> None:
        try:
            upload(store, "c", name, blobs[name], chunk=1000)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in blobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for name, data in blobs.items():
        assert (root / "c" / name).read_bytes() == data


def test_remove_actor_cancels_its_uploads(store: FsBlobstoreProvider, root: Path) -> None:
    create(store, "c")
    call(store, "StartUpload", FileChunk(container="c", id="b", total_bytes=6).encode())
    call(store, "UploadChunk", chunk(0, b"abc", 6))
    assert len(list((root / "c").iterdir())) == 1  # the hidden temporary file
    config = CapabilityConfiguration(module=ACTOR, values={})
    store.handle_call(SYSTEM_ACTOR, OP_REMOVE_ACTOR, config.encode())
    assert list((root / "c").iterdir()) == []


CRASH = """
import os, signal, sys
from wascc_capabilities.blobstore import FsBlobstoreProvider
from wascc.wire.codec import CapabilityConfiguration, Container, FileChunk
p = FsBlobstoreProvider()
actor = "M" + "B" * 55
p.handle_call("system", "BindActor",
              CapabilityConfiguration(module=actor, values={"ROOT": sys.argv[1]}).encode())
total = 10 * 1024 * 1024
p.handle_call(actor, "StartUpload", FileChunk(container="c", id="b", total_bytes=total).encode())
for seq in range(3):
    p.handle_call(actor, "UploadChunk", FileChunk(
        sequence_no=seq, container="c", id="b", total_bytes=total, chunk_bytes=b"x" * 1048576
    ).encode())
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_crash_mid_upload_leaves_no_partial_blob_visible(
    store: FsBlobstoreProvider, root: Path
) -> None:
    create(store, "c")
    upload(store, "c", "b", b"the previous version")
    done = subprocess.run(
        [sys.executable, "-c", CRASH, str(root)], cwd=REPO, capture_output=True, check=False
    )
    assert done.returncode == -9, done.stderr.decode()
    leftovers = [p for p in (root / "c").iterdir() if p.name != "b"]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".upload-")
    assert leftovers[0].stat().st_size == 3 * MIB  # it did crash mid-upload
    assert info(store, "c", "b").byte_size == len(b"the previous version")
    listed = BlobList.decode(call(store, "ListObjects", Container(id="c").encode()))
    assert [b.id for b in listed.blobs] == ["b"]
    # A new binding removes it once it is stale.
    os.utime(leftovers[0], (0, 0))
    fresh = FsBlobstoreProvider()
    bind(fresh, ROOT=str(root))
    fresh.stop()
    assert [p.name for p in (root / "c").iterdir()] == ["b"]


# ---- downloads ----------------------------------------------------------------------


def test_download_streams_receive_chunks_in_order(
    store: FsBlobstoreProvider, received: Chunks
) -> None:
    create(store, "c")
    data = os.urandom(2500)
    upload(store, "c", "b", data)
    assert download(store, received, "c", "b", len(data)) == data
    assert [c.sequence_no for c in received.chunks] == [0, 1, 2]
    assert [len(c.chunk_bytes) for c in received.chunks] == [1000, 1000, 500]
    assert {
        (c.total_bytes, c.chunk_size, c.context, c.id, c.container) for c in received.chunks
    } == {(2500, 1000, "ctx", "b", "c")}


def test_an_empty_blob_downloads_as_one_empty_chunk(
    store: FsBlobstoreProvider, received: Chunks
) -> None:
    create(store, "c")
    call(store, "StartUpload", FileChunk(container="c", id="e", total_bytes=0).encode())
    assert info(store, "c", "e").byte_size == 0
    download(store, received, "c", "e", 0)
    received.wait_until(0, count=1)
    assert [(c.sequence_no, c.chunk_bytes, c.total_bytes) for c in received.chunks] == [(0, b"", 0)]


def test_download_of_a_missing_blob_is_an_error(store: FsBlobstoreProvider) -> None:
    create(store, "c")
    with pytest.raises(ProviderCallError, match="no blob"):
        call(store, "StartDownload", StreamRequest(id="nope", container="c").encode())


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_100_mib_blob_round_trips_in_chunks_with_little_memory(root: Path) -> None:
    size = 100 * MIB
    got = Chunks(keep=False)
    p = FsBlobstoreProvider()
    p.configure_dispatch(got)
    bind(p, ROOT=str(root), MAX_BYTES=str(size))
    create(p, "big")
    peak = [_rss()]
    base = peak[0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], _rss())

    sampler = threading.Thread(target=sample)
    sampler.start()
    sent = hashlib.sha256()
    call(p, "StartUpload", FileChunk(container="big", id="b", total_bytes=size).encode())
    for seq in range(100):
        piece = seq.to_bytes(4, "big") * (MIB // 4)
        sent.update(piece)
        msg = FileChunk(
            sequence_no=seq, container="big", id="b", total_bytes=size, chunk_bytes=piece
        ).encode()
        call(p, "UploadChunk", msg)
    assert info(p, "big", "b").byte_size == size
    request = StreamRequest(id="b", container="big", chunk_size=MIB)
    call(p, "StartDownload", request.encode())
    got.wait_until(size)
    stop.set()
    sampler.join()
    p.stop()
    assert got.size == size
    assert got.digest.hexdigest() == sent.hexdigest()
    assert len(got.chunks) == 100
    growth = peak[0] - base
    assert growth < 24 * MIB, f"RSS grew by {growth / MIB:.1f} MiB for a 100 MiB blob"


# ---- through an actor --------------------------------------------------------------


def test_errors_reach_the_actor_and_a_lost_root_recovers(
    host: Host, sign: Callable[..., tuple[bytes, object]], tmp_path: Path
) -> None:
    signed, _ = sign(build_test_actor(), caps=[CAP])
    actor = host.add_actor(signed)
    host.add_provider(FsBlobstoreProvider())
    root = tmp_path / "root"
    host.set_binding(actor, CAP, values={"ROOT": str(root)})

    def actor_call(operation: str, payload: bytes) -> bytes:
        return host.call_actor(actor, "Call", call_payload(CAP, operation, payload))

    assert Container.decode(actor_call("CreateContainer", Container(id="c").encode())).id == "c"
    with pytest.raises(GuestError, match="climbs out"):
        actor_call("CreateContainer", Container(id="../up").encode())
    # The backend goes away mid-run: errors, no crash; it comes back: it works.
    (root / "c").rmdir()
    root.rmdir()
    with pytest.raises(GuestError, match="cannot create container"):
        actor_call("CreateContainer", Container(id="d").encode())
    with pytest.raises(GuestError, match="no container"):
        actor_call("ListObjects", Container(id="c").encode())
    root.mkdir()
    assert Container.decode(actor_call("CreateContainer", Container(id="d").encode())).id == "d"
    got = BlobList.decode(actor_call("ListObjects", Container(id="d").encode()))
    assert got.blobs == ()


def test_registers_through_the_wascc_providers_hook() -> None:
    assert blobstore.wascc_providers() == [FsBlobstoreProvider]
    with Host(plugins=[blobstore], health_interval=0, load_entry_points=False) as h:
        assert h.provider_factories()[CAP] is FsBlobstoreProvider


def test_uploads_in_progress_are_bounded_by_max_uploads(tmp_path: Path) -> None:
    p = FsBlobstoreProvider()
    bind(p, ROOT=str(tmp_path), MAX_UPLOADS="2")
    create(p, "c")
    for name in ("a", "b"):
        call(p, "StartUpload", FileChunk(container="c", id=name, total_bytes=5).encode())
    call(p, "StartUpload", FileChunk(container="c", id="a", total_bytes=5).encode())  # a restart
    with pytest.raises(ProviderCallError, match="MAX_UPLOADS"):
        call(p, "StartUpload", FileChunk(container="c", id="third", total_bytes=5).encode())
    call(p, "UploadChunk", chunk(0, b"12345", 5, blob="a"))  # completing one frees a place
    call(p, "StartUpload", FileChunk(container="c", id="third", total_bytes=5).encode())
    p.stop()


def test_an_abandoned_upload_gives_its_place_to_a_new_one(tmp_path: Path) -> None:
    p = FsBlobstoreProvider()
    bind(p, ROOT=str(tmp_path), MAX_UPLOADS="1", UPLOAD_TIMEOUT="1")
    create(p, "c")
    call(p, "StartUpload", FileChunk(container="c", id="left", total_bytes=5).encode())
    call(p, "UploadChunk", chunk(0, b"12", 5, blob="left"))
    with pytest.raises(ProviderCallError, match="MAX_UPLOADS"):  # still fresh
        call(p, "StartUpload", FileChunk(container="c", id="new", total_bytes=5).encode())
    time.sleep(1.1)  # UPLOAD_TIMEOUT passes without a chunk
    call(p, "StartUpload", FileChunk(container="c", id="new", total_bytes=5).encode())
    with pytest.raises(ProviderCallError, match="StartUpload first"):
        call(p, "UploadChunk", chunk(1, b"345", 5, blob="left"))
    assert sorted(x.name for x in (tmp_path / "c").iterdir() if not x.name.startswith(".")) == []
    assert len(list((tmp_path / "c").iterdir())) == 1  # only the new upload's temporary file
    p.stop()
