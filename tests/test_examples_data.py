"""The data examples (blobdrop, follows) end to end against the real providers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from wascc_capabilities.blobstore import FsBlobstoreProvider
from wascc_capabilities.graphdb import GraphProvider

from wascc import GuestError, Host
from wascc.standalone.manifest import load_manifest
from wascc.wire.codec import HttpRequest, HttpResponse

from conftest import EXAMPLES, BuiltExamples
from servers import free_port


@pytest.fixture
def host(examples: BuiltExamples) -> Iterator[Host]:
    h = Host(trusted_issuers=[examples.account], health_interval=0, load_entry_points=False)
    yield h
    h.stop()


def http(
    host: Host, actor: str, method: str, path: str, body: bytes = b"", query: str = ""
) -> HttpResponse:
    request = HttpRequest(method=method, path=path, query_string=query, body=body)
    return HttpResponse.decode(host.call_actor(actor, "HandleRequest", request.encode()))


# ---- blobdrop ------------------------------------------------------------------------


@pytest.fixture
def blobdrop(host: Host, examples: BuiltExamples, tmp_path: Path) -> str:
    # One instance: a download's ReceiveChunk calls land in the memory that serves the GET.
    actor = host.add_actor(examples.signed("blobdrop"), max_instances=1)
    host.add_provider(FsBlobstoreProvider())
    host.set_binding(actor, "wascc:blobstore", values={"ROOT": str(tmp_path / "blobs")})
    return actor


def get_when_downloaded(host: Host, actor: str, path: str) -> HttpResponse:
    deadline = time.monotonic() + 30  # only reached when the download never arrives
    while True:
        response = http(host, actor, "GET", path)
        if response.status_code != 202 or time.monotonic() > deadline:
            return response
        time.sleep(0.01)


def test_blobdrop_stores_uploads_and_serves_them_back(
    host: Host, blobdrop: str, tmp_path: Path
) -> None:
    data = os.urandom(300_000)  # five 64 KiB chunks each way
    put = http(host, blobdrop, "PUT", "/photo", data)
    assert put.status_code == 201
    assert json.loads(put.body) == {"stored": "photo", "bytes": len(data)}
    assert (tmp_path / "blobs" / "blobdrop" / "photo").read_bytes() == data
    listed = http(host, blobdrop, "GET", "/")
    assert json.loads(listed.body) == {"blobs": [{"id": "photo", "bytes": len(data)}]}
    first = http(host, blobdrop, "GET", "/photo")
    assert first.status_code == 202  # the download runs as ReceiveChunk calls
    got = get_when_downloaded(host, blobdrop, "/photo")
    assert got.status_code == 200 and got.body == data
    assert http(host, blobdrop, "DELETE", "/photo").status_code == 204
    assert http(host, blobdrop, "GET", "/photo").status_code == 404


def test_blobdrop_serves_an_empty_blob(host: Host, blobdrop: str) -> None:
    assert http(host, blobdrop, "PUT", "/empty").status_code == 201
    http(host, blobdrop, "GET", "/empty")
    got = get_when_downloaded(host, blobdrop, "/empty")
    assert (got.status_code, got.body) == (200, b"")


def test_blobdrop_passes_on_the_blobstores_refusal(host: Host, blobdrop: str) -> None:
    with pytest.raises(GuestError, match="climbs out"):
        http(host, blobdrop, "PUT", "/..", b"x")
    assert http(host, blobdrop, "PUT", "/a/b", b"x").status_code == 400


# ---- follows ------------------------------------------------------------------------


@pytest.fixture
def follows(host: Host, examples: BuiltExamples) -> str:
    actor = host.add_actor(examples.signed("follows"))
    host.add_provider(GraphProvider())  # the embedded FalkorDB
    host.set_binding(actor, "wascc:graphdb")
    return actor


def test_follows_answers_who_follows_whom(host: Host, follows: str) -> None:
    for who, whom in [("Ann", "Bob"), ("Cid", "Bob"), ("Ann", "O%27Brien"), ("Ann", "Bob")]:
        done = http(host, follows, "POST", "/follow", query=f"who={who}&whom={whom}")
        assert done.status_code == 200, done.body
    ann = http(host, follows, "GET", "/follows/Ann")
    assert json.loads(ann.body) == {"name": "Ann", "follows": ["Bob", "O'Brien"]}
    bob = http(host, follows, "GET", "/followers/Bob")
    assert json.loads(bob.body) == {"name": "Bob", "followers": ["Ann", "Cid"]}
    nobody = http(host, follows, "GET", "/follows/Zed")
    assert json.loads(nobody.body) == {"name": "Zed", "follows": []}


def test_follows_names_never_become_cypher(host: Host, follows: str) -> None:
    http(host, follows, "POST", "/follow", query="who=Ann&whom=Bob")
    evil = "x'}) MATCH (n) DETACH DELETE n //"
    got = http(host, follows, "GET", "/follows/" + evil.replace(" ", "%20"))
    assert json.loads(got.body) == {"name": evil, "follows": []}
    assert json.loads(http(host, follows, "GET", "/follows/Ann").body)["follows"] == ["Bob"]


def test_follows_needs_both_names(host: Host, follows: str) -> None:
    assert http(host, follows, "POST", "/follow", query="who=Ann").status_code == 400


# ---- manifests ------------------------------------------------------------------------


def test_the_manifests_name_the_capabilities_and_their_values(examples: BuiltExamples) -> None:
    blob = load_manifest(EXAMPLES / "blobdrop" / "build" / "manifest.yaml")
    assert [c.path for c in blob.capabilities] == ["wascc:http_server", "wascc:blobstore"]
    values = {b.capability: dict(b.values) for b in blob.bindings}
    assert values["wascc:blobstore"]["ROOT"] and values["wascc:http_server"]["PORT"] == "8082"
    graph = load_manifest(EXAMPLES / "follows" / "build" / "manifest.yaml")
    assert [c.path for c in graph.capabilities] == ["wascc:http_server", "wascc:graphdb"]
    assert {b.capability: dict(b.values) for b in graph.bindings}["wascc:graphdb"] == {}


def test_data_example_actors_are_small(examples: BuiltExamples) -> None:
    assert all(len(examples.signed(n)) < 64 * 1024 for n in ("blobdrop", "follows"))


def test_follows_manifest_under_wascc_up_serves_http_and_stops_its_graph_server(
    examples: BuiltExamples, tmp_path: Path
) -> None:
    port = free_port()
    manifest = (EXAMPLES / "follows" / "build" / "manifest.yaml").read_text()
    (tmp_path / "follows_s.wasm").write_bytes(examples.signed("follows"))
    (tmp_path / "follows.yaml").write_text(manifest.replace('"8083"', f'"{port}"'))
    wascc = str(Path(sys.executable).parent / "wascc")
    log = tmp_path / "up.log"
    command = [wascc, "up", "--manifest", str(tmp_path / "follows.yaml")]
    command += ["--control", str(tmp_path / "ctl.sock"), "--trusted-issuer", examples.account]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60  # only reached when the host never comes up
        while True:
            try:
                with urllib.request.urlopen(
                    urllib.request.Request(f"{base}/follow?who=Ann&whom=Bob", method="POST")
                ) as answer:
                    assert answer.status == 200
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        with urllib.request.urlopen(f"{base}/followers/Bob") as answer:
            assert json.loads(answer.read()) == {"name": "Bob", "followers": ["Ann"]}
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, log.read_text()
    found = re.search(r"embedded FalkorDB started \(pid (\d+),", log.read_text())
    assert found, log.read_text()
    with pytest.raises(ProcessLookupError):  # stopped with the host, by its pid
        os.kill(int(found.group(1)), 0)
