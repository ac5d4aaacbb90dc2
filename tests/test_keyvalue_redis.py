"""The Redis backend of the native keyvalue provider: binding values, pools, failures.

What the conformance suite cannot say because it is about Redis itself: URLs
refused at BindActor, re-binds as reconfiguration, a pool shared by many
threads, timeouts, a Redis stopped and started again under a running actor,
and the original sample manifest (kvcounter on Redis) under a real `wascc up`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from test_native_keyvalue import KV, Store, native_keyvalue

from wascc import GuestError, Host
from wascc.errors import BindingError
from wascc.wire.claims import extract_claims

from conftest import BuiltExamples
from servers import ServerProcess, free_port, start_redis

Bind = Callable[..., Store]


def redis_url(server: ServerProcess, db: int = 0) -> str:
    return f"redis://127.0.0.1:{server.port}/{db}"


@pytest.fixture
def bind(host: Host, start_actor: Callable[..., str]) -> Bind:
    """bind(values, name=...) -> a Store for a new actor bound with those values."""
    host.add_provider(native_keyvalue())

    def _bind(values: dict[str, str], name: str = "redis-user") -> Store:
        actor = start_actor(caps=[KV], name=name, max_instances=8)
        host.set_binding(actor, KV, values=values)
        return Store(host, actor)

    return _bind


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[ServerProcess]:
    """A redis-server of this test's own (to stop, restart or slow down), with a Unix socket."""
    unix_socket = str(tmp_path / "redis.sock")
    server = start_redis(tmp_path, "--unixsocket", unix_socket, "--enable-debug-command", "yes")
    try:
        yield server
    finally:
        server.stop()


# ---- BindActor ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:6379", "it must start with redis://, redis\\+unix:// or unix://"),
        ("rediss://127.0.0.1:6379", "TLS \\(rediss://\\) is not supported"),
        ("redis://", "it names no host"),
        ("redis://127.0.0.1:0", "the port must be a number from 1 to 65535"),
        ("redis://127.0.0.1:99999", "the port must be a number from 1 to 65535"),
        ("redis://127.0.0.1:63x9", "the port must be a number from 1 to 65535"),
        ("redis://127.0.0.1:6379/x", "the path must be a database number"),
        ("redis://127.0.0.1:6379/0?timeout=1", "query parameters are not supported"),
        ("redis://[::1", "an IPv6 address needs its closing"),
        ("redis://u:p%zz@127.0.0.1", "the password has a bad %-escape"),
        ("unix://relative/path", "a Unix socket URL needs an absolute path"),
    ],
)
def test_an_unparseable_url_is_refused_at_bind_with_the_reason(
    host: Host, bind: Bind, url: str, reason: str
) -> None:
    with pytest.raises(BindingError, match=f"URL '.*' is not a Redis URL: {reason}"):
        bind({"URL": url})


def test_an_unreachable_server_is_refused_at_bind(bind: Bind) -> None:
    port = free_port()
    with pytest.raises(
        BindingError,
        match=f"cannot use Redis at URL 'redis://127.0.0.1:{port}': Connection refused",
    ):
        bind({"URL": f"redis://127.0.0.1:{port}"})


@pytest.mark.parametrize(
    ("auth", "shown"),
    [("alice:s3cret@", "alice:***@"), (":s3cret@", ":***@"), ("alice@", "alice@")],
)
def test_the_password_never_appears_in_a_message(bind: Bind, auth: str, shown: str) -> None:
    port = free_port()
    with pytest.raises(BindingError) as refused:
        bind({"URL": f"redis://{auth}127.0.0.1:{port}/0"})
    assert f"URL 'redis://{shown}127.0.0.1:{port}/0'" in str(refused.value)
    assert "s3cret" not in str(refused.value)


def test_a_user_without_a_password_sends_no_auth(bind: Bind, redis_server: ServerProcess) -> None:
    kv = bind({"URL": f"redis://nobody@127.0.0.1:{redis_server.port}/0"})
    assert kv.set("who", "default user").value == "default user"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"POOL_SIZE": "0"}, "POOL_SIZE '0' must be a number of connections from 1 to 256"),
        ({"POOL_SIZE": "many"}, "POOL_SIZE 'many' must be a number"),
        ({"TIMEOUT_MS": "-5"}, "TIMEOUT_MS '-5' must be a number of milliseconds"),
    ],
)
def test_bad_pool_size_or_timeout_is_refused(
    bind: Bind, redis_server: ServerProcess, values: dict[str, str], message: str
) -> None:
    with pytest.raises(BindingError, match=message):
        bind({"URL": redis_url(redis_server), **values})


def test_a_server_that_never_answers_is_refused_after_timeout_ms(bind: Bind) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(BindingError, match="PING failed: no answer within TIMEOUT_MS"):
            bind({"URL": f"redis://127.0.0.1:{port}", "TIMEOUT_MS": "200"})


def test_password_and_database_in_the_url(bind: Bind, redis_server: ServerProcess) -> None:
    admin = redis.Redis(port=redis_server.port)
    admin.acl_setuser(
        "alice", enabled=True, passwords=["+pa:ss@word"], keys=["*"], commands=["+@all"]
    )
    try:
        url = f"redis://alice:pa%3Ass%40word@127.0.0.1:{redis_server.port}/3"
        kv = bind({"URL": url})
        kv.set("where", "db three")
        assert redis.Redis(port=redis_server.port, db=3).get("where") == b"db three"
        assert redis.Redis(port=redis_server.port, db=0).get("where") is None
        with pytest.raises(BindingError, match="authentication failed: WRONGPASS"):
            bind({"URL": f"redis://alice:wrong@127.0.0.1:{redis_server.port}"}, name="intruder")
    finally:
        admin.acl_deluser("alice")
        redis.Redis(port=redis_server.port, db=3).flushdb()


def test_a_unix_socket_url(bind: Bind, own_redis: ServerProcess, tmp_path: Path) -> None:
    for scheme in ("unix", "redis+unix"):
        kv = bind({"URL": f"{scheme}://{tmp_path / 'redis.sock'}?db=2"}, name=scheme)
        assert kv.add("via-socket", 1) >= 1
    assert redis.Redis(port=own_redis.port, db=2).get("via-socket") == b"2"


# ---- re-binding is reconfiguration -------------------------------------------------------


def test_rebind_switches_backends_and_a_bad_rebind_keeps_the_working_one(
    host: Host, bind: Bind, redis_server: ServerProcess
) -> None:
    redis.Redis(port=redis_server.port, db=5).flushdb()
    redis.Redis(port=redis_server.port, db=6).flushdb()
    kv = bind({"URL": redis_url(redis_server, 5)})
    kv.set("k", "in db 5")
    host.set_binding(kv.actor, KV, values={"URL": redis_url(redis_server, 5)})  # same: no-op
    assert kv.get("k").value == "in db 5"
    with pytest.raises(BindingError, match="cannot use Redis"):
        host.set_binding(kv.actor, KV, values={"URL": f"redis://127.0.0.1:{free_port()}"})
    assert kv.get("k").value == "in db 5"  # the old pool still serves
    host.set_binding(kv.actor, KV, values={"URL": redis_url(redis_server, 6)})
    assert kv.get("k").exists is False
    kv.set("k", "in db 6")
    host.set_binding(kv.actor, KV, values={})  # no URL: the in-memory store
    assert kv.get("k").exists is False
    kv.set("k", "in memory")
    host.set_binding(kv.actor, KV, values={"URL": redis_url(redis_server, 6)})
    assert kv.get("k").value == "in db 6"
    assert redis.Redis(port=redis_server.port, db=5).get("k") == b"in db 5"


def test_actors_of_one_binding_each_use_their_own_backend(
    bind: Bind, redis_server: ServerProcess
) -> None:
    redis.Redis(port=redis_server.port, db=7).flushdb()
    on_redis = bind({"URL": redis_url(redis_server, 7)}, name="on-redis")
    in_memory = bind({}, name="in-memory")
    on_redis.set("k", "redis")
    in_memory.set("k", "memory")
    assert on_redis.get("k").value == "redis"
    assert in_memory.get("k").value == "memory"


# ---- pools, timeouts, failures -------------------------------------------------------------


def test_a_small_pool_serves_many_threads_atomically(
    bind: Bind, redis_server: ServerProcess
) -> None:
    redis.Redis(port=redis_server.port, db=8).flushdb()
    kv = bind({"URL": redis_url(redis_server, 8), "POOL_SIZE": "2"})
    seen: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(200):
                seen.append(kv.add("hits", 1))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(seen) == list(range(1, 1601))
    # eight threads, two connections: the pool never opens more than POOL_SIZE
    clients = redis.Redis(port=redis_server.port).client_list()
    assert len([c for c in clients if c["db"] == "8"]) == 2


def test_a_slow_redis_times_out_and_the_next_call_works(
    bind: Bind, own_redis: ServerProcess
) -> None:
    kv = bind({"URL": redis_url(own_redis), "TIMEOUT_MS": "100", "POOL_SIZE": "1"})
    kv.set("k", "v")
    with socket.create_connection(("127.0.0.1", own_redis.port)) as sleeper:
        # Redis runs one command at a time: DEBUG SLEEP holds every other client
        sleeper.sendall(b"*3\r\n$5\r\nDEBUG\r\n$5\r\nSLEEP\r\n$1\r\n1\r\n")
        time.sleep(0.2)  # let Redis take it up before the Get arrives
        with pytest.raises(
            GuestError, match=r"Get: Redis at '.*' failed: no answer within TIMEOUT_MS"
        ):
            kv.get("k")
        assert sleeper.recv(16) == b"+OK\r\n"  # Redis is awake again
    assert kv.get("k").value == "v"


def test_redis_stopped_mid_run_gives_errors_then_recovers(
    host: Host, bind: Bind, own_redis: ServerProcess
) -> None:
    kv = bind({"URL": redis_url(own_redis), "POOL_SIZE": "3"})
    assert [kv.add("n", 1) for _ in range(3)] == [1, 2, 3]
    own_redis.stop()
    for _ in range(3):  # every call fails with the reason; none hangs or kills anything
        with pytest.raises(GuestError, match=r"wascc:keyvalue Add: .*Redis at 'redis://127\.0\.0"):
            kv.add("n", 1)
    assert host.check_health()[(KV, "default")].healthy is True
    own_redis.start()  # a fresh, empty Redis on the same port
    assert kv.add("n", 1) == 1
    # one call at most may meet a pooled connection the restart broke; then all work
    results = []
    for _ in range(6):
        try:
            results.append(kv.add("n", 1))
        except GuestError:
            results.append(0)
    assert results.count(0) == 0
    assert kv.get("n").value == "7"


def test_redis_restarted_between_calls_costs_at_most_one_error(
    bind: Bind, own_redis: ServerProcess
) -> None:
    kv = bind({"URL": redis_url(own_redis), "POOL_SIZE": "4"})
    threads = [threading.Thread(target=kv.add, args=("warm", 1)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    own_redis.restart()
    failures = 0
    for _ in range(10):
        try:
            kv.set("k", "v")
        except GuestError as exc:
            assert "failed" in str(exc)
            failures += 1
    assert failures <= 1
    assert kv.get("k").value == "v"


# ---- the original sample manifest under `wascc up` ------------------------------------------


def test_kvcounter_on_redis_under_wascc_up_counts_over_http(
    tmp_path: Path, examples: BuiltExamples, redis_server: ServerProcess
) -> None:
    redis.Redis(port=redis_server.port, db=9).flushdb()
    (tmp_path / "kvcounter_s.wasm").write_bytes(examples.signed("kvcounter"))
    http_port = free_port()
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(
        f"""actors:
  - ./kvcounter_s.wasm
capabilities:
  - path: wascc:http_server
  - path: wascc:keyvalue
bindings:
  - actor: "@ACTOR@"
    capability: wascc:http_server
    values:
      PORT: "{http_port}"
  - actor: "@ACTOR@"
    capability: wascc:keyvalue
    values:
      URL: redis://127.0.0.1:{redis_server.port}/9
"""
    )
    found = extract_claims(examples.signed("kvcounter"))
    assert found is not None
    manifest.write_text(manifest.read_text().replace("@ACTOR@", found[0].subject))
    log = tmp_path / "up.log"
    command = [
        str(Path(sys.executable).parent / "wascc"),
        "up",
        "--manifest",
        str(manifest),
        "--control",
        str(tmp_path / "ctl.sock"),
        "--health-interval",
        "0",
        "--trusted-issuer",
        examples.account,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ)
        )
    try:

        def hit(path: str) -> int:
            with urllib.request.urlopen(f"http://127.0.0.1:{http_port}{path}", timeout=10) as r:
                return int(json.loads(r.read())["counter"])

        deadline = time.monotonic() + 60
        while True:
            try:
                first = hit("/hits")
                break
            except OSError:
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
        assert [first, hit("/hits"), hit("/hits"), hit("/other")] == [1, 2, 3, 1]
        counts = redis.Redis(port=redis_server.port, db=9)
        assert counts.get(":hits") == b"3"
        assert counts.get(":other") == b"1"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
    assert process.returncode == 0, log.read_text()


def test_rebind_and_unbind_close_the_old_pools_connections(
    host: Host, bind: Bind, redis_server: ServerProcess
) -> None:
    admin = redis.Redis(port=redis_server.port)

    def connections(db: int, settled: int | None = None) -> int:
        """Clients on that db; with `settled`, once Redis has seen the closes (or 5 s)."""
        for _ in range(500):
            count = len([c for c in admin.client_list() if c["db"] == str(db)])
            if settled is None or count == settled:
                break
            time.sleep(0.01)
        return count

    kv = bind({"URL": redis_url(redis_server, 10), "POOL_SIZE": "3"})
    threads = [threading.Thread(target=kv.add, args=("n", 1)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 1 <= connections(10) <= 3
    host.set_binding(kv.actor, KV, values={"URL": redis_url(redis_server, 11)})
    assert connections(10, settled=0) == 0 and connections(11) == 1
    assert host.remove_binding(kv.actor, KV) is True
    assert connections(11, settled=0) == 0
