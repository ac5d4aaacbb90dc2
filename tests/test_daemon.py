"""`wascc up` as a real subprocess: manifests, SIGHUP, directories, SIGTERM, ctl, notify."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from wascc import KeyPair, KeyType
from wascc.cli import main
from wascc.errors import ControlError
from wascc.standalone.control import b64, request, unb64
from wascc.standalone.daemon import Daemon, Options
from wascc.standalone.manifest import BindingSpec, Manifest
from wascc.wire.codec import CapabilityConfiguration

from conftest import NativeBuilder, Signer, build_test_actor, call_payload
from providers import TESTING, RecordingProvider
from servers import free_port_pair

WASCC = str(Path(sys.executable).parent / "wascc")
NATIVETEST = "wascc:nativetest"


@dataclass
class Running:
    """A `wascc up` process and its control socket."""

    process: subprocess.Popen[bytes]
    control: Path
    log: Path

    def call(self, actor: str, operation: str, payload: bytes = b"") -> bytes:
        answer = request(
            self.control, "call", actor=actor, operation=operation, payload_b64=b64(payload)
        )
        assert answer["ok"], answer
        return unb64(answer["reply_b64"])

    def inventory(self) -> dict[str, Any]:
        answer = request(self.control, "inventory")
        assert answer["ok"], answer
        return answer

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def output(self) -> str:
        return self.log.read_text()


Starter = Callable[..., Running]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def up(tmp_path: Path, account: KeyPair) -> Iterator[Starter]:
    started: list[Running] = []

    def start(*args: str, env: dict[str, str] | None = None, trust: bool = True) -> Running:
        control = tmp_path / f"ctl{len(started)}.sock"
        log = tmp_path / f"up{len(started)}.log"
        cmd = [
            WASCC,
            "up",
            "--control",
            str(control),
            "--health-interval",
            "0",
            "--poll-interval",
            "0.05",
            *args,
        ]
        if trust:
            cmd += ["--trusted-issuer", account.public_key]
        with log.open("wb") as out:
            process = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
            )
        running = Running(process, control, log)
        started.append(running)
        wait_for(lambda: control.exists() or process.poll() is not None, "the control socket")
        assert process.poll() is None, running.output()
        return running

    yield start
    for running in started:
        if running.process.poll() is None:
            running.process.send_signal(signal.SIGTERM)
            try:
                running.process.wait(30)
            except subprocess.TimeoutExpired:
                running.process.kill()


def write_manifest(
    path: Path, actors: list[Path], capabilities: list[str], bindings: list[tuple[str, str]]
) -> Path:
    """A YAML manifest (the tests write the other formats by hand)."""
    lines = [
        "actors:",
        *[f"  - {a}" for a in actors],
        "capabilities:",
        *[f"  - path: {c}" for c in capabilities],
        "bindings:",
    ]
    for actor, capability in bindings:
        lines += [f"  - actor: {actor}", f"    capability: {capability}"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def actor_file(tmp_path: Path, sign: Signer) -> Callable[..., tuple[Path, str]]:
    def make(
        name: str = "svc",
        caps: tuple[str, ...] = (),
        version: str = "VERSION1",
        module: KeyPair | None = None,
    ) -> tuple[Path, str]:
        signed, key = sign(build_test_actor(version), caps=list(caps), name=name, module=module)
        path = tmp_path / f"{name}-{version}.wasm"
        path.write_bytes(signed)
        return path, key.public_key

    return make


def test_manifest_in_each_format_runs(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
    build_native: NativeBuilder,
) -> None:
    path, key = actor_file(caps=(NATIVETEST,))
    lib = build_native("testprovider")
    manifests = {
        "host.yaml": f"actors: [{path}]\ncapabilities:\n  - path: {lib}\n"
        f"bindings:\n  - actor: {key}\n    capability: {NATIVETEST}\n",
        "host.json": json.dumps(
            {
                "actors": [str(path)],
                "capabilities": [{"path": str(lib)}],
                "bindings": [{"actor": key, "capability": NATIVETEST}],
            }
        ),
        "host.toml": f'actors = ["{path}"]\n[[capabilities]]\npath = "{lib}"\n'
        f'[[bindings]]\nactor = "{key}"\ncapability = "{NATIVETEST}"\n',
    }
    for name, text in manifests.items():
        (tmp_path / name).write_text(text)
        host = up("--manifest", str(tmp_path / name), "--label", f"format={name}")
        payload = call_payload(NATIVETEST, "Echo", name.encode())
        assert host.call(key, "Call", payload) == name.encode()
        assert host.inventory()["labels"] == {"format": name}
        host.signal(signal.SIGTERM)
        assert host.process.wait(30) == 0


def test_sighup_applies_only_what_the_edited_manifest_changed(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
    build_native: NativeBuilder,
) -> None:
    first, first_key = actor_file("first", caps=(NATIVETEST,))
    second, second_key = actor_file("second")
    lib = build_native("testprovider")
    manifest = write_manifest(tmp_path / "host.yaml", [first], [str(lib)], [])
    host = up("--manifest", str(manifest))
    with pytest.raises(AssertionError, match="not bound"):
        host.call(first_key, "Call", call_payload(NATIVETEST, "Echo", b"x"))
    write_manifest(manifest, [first, second], [str(lib)], [(first_key, NATIVETEST)])
    host.signal(signal.SIGHUP)
    wait_for(lambda: len(host.inventory()["actors"]) == 2, "the second actor")
    assert host.call(first_key, "Call", call_payload(NATIVETEST, "Echo", b"x")) == b"x"
    calls_before = {a["name"]: a["calls"] for a in host.inventory()["actors"]}
    write_manifest(manifest, [second], [str(lib)], [])
    host.signal(signal.SIGHUP)
    wait_for(lambda: [a["name"] for a in host.inventory()["actors"]] == ["second"], "removal")
    assert host.call(second_key, "Version") == b"VERSION1"
    assert calls_before["second"] == 0  # the second actor was never restarted
    assert "reloaded" in host.output()


def test_bad_manifest_on_sighup_keeps_the_running_configuration(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
) -> None:
    path, key = actor_file()
    manifest = write_manifest(tmp_path / "host.yaml", [path], [], [])
    host = up("--manifest", str(manifest))
    manifest.write_text("actors: [./gone.wasm]\n")
    host.signal(signal.SIGHUP)
    wait_for(lambda: "reload refused" in host.output(), "the refusal")
    assert "gone.wasm" in host.output()
    assert host.call(key, "Echo", b"still") == b"still"


def test_actor_dropped_in_then_replaced_while_a_client_calls(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
) -> None:
    actors = tmp_path / "actors"
    actors.mkdir()
    module = KeyPair.generate(KeyType.MODULE)
    v1, key = actor_file("swap", version="VERSION1", module=module)
    v2, _ = actor_file("swap", version="VERSION2", module=module)
    host = up("--actors-dir", str(actors))
    shutil.copy(v1, actors / "swap.wasm.part")
    (actors / "swap.wasm.part").rename(actors / "swap.wasm")
    wait_for(lambda: len(host.inventory()["actors"]) == 1, "the dropped-in actor")
    failures: list[BaseException] = []
    versions: set[bytes] = set()
    stop = threading.Event()

    def client() -> None:
        n = 0
        while not stop.is_set():
            try:
                payload = f"request {n}".encode()
                assert host.call(key, "Echo", payload) == payload
                versions.add(host.call(key, "Version"))
            except BaseException as exc:
                failures.append(exc)
            n += 1

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    shutil.copy(v2, actors / "swap.wasm.part")
    (actors / "swap.wasm.part").rename(actors / "swap.wasm")  # atomic replace
    wait_for(lambda: b"VERSION2" in versions, "the hot swap")
    time.sleep(0.2)
    stop.set()
    for t in threads:
        t.join()
    assert failures == []
    assert versions == {b"VERSION1", b"VERSION2"}
    (actors / "swap.wasm").unlink()
    wait_for(lambda: host.inventory()["actors"] == [], "the removal")


def test_sigterm_answers_every_call_in_flight(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
    build_native: NativeBuilder,
) -> None:
    path, key = actor_file(caps=(NATIVETEST,))
    manifest = write_manifest(
        tmp_path / "host.yaml", [path], [str(build_native("testprovider"))], [(key, NATIVETEST)]
    )
    host = up("--manifest", str(manifest), "--grace", "10")
    answers: list[dict[str, Any]] = []

    def slow() -> None:
        answers.append(
            request(
                host.control,
                "call",
                actor=key,
                operation="Call",
                payload_b64=b64(call_payload(NATIVETEST, "Block", b"800")),
            )
        )

    threads = [threading.Thread(target=slow) for _ in range(5)]
    for t in threads:
        t.start()
    time.sleep(0.3)  # the calls are inside the provider now
    host.signal(signal.SIGTERM)
    for t in threads:
        t.join()
    assert host.process.wait(30) == 0
    assert [a.get("ok") for a in answers] == [True] * 5, answers
    assert {unb64(a["reply_b64"]) for a in answers} == {b"done"}
    assert "received SIGTERM" in host.output() and "host stopped" in host.output()


def test_wascc_ctl_manages_a_running_host(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
    build_native: NativeBuilder,
) -> None:
    host = up("--actors-dir", str(tmp_path))  # an empty directory: nothing runs yet
    runner = CliRunner()

    def ctl(*args: str, after: bool = False) -> str:
        where = ["--control", str(host.control)]
        argv = ["ctl", *args, *where] if after else ["ctl", *where, *args]
        result = runner.invoke(main, argv)
        assert result.exit_code == 0, result.output + result.stderr
        return result.output

    module = KeyPair.generate(KeyType.MODULE)
    v1, key = actor_file("managed", caps=(NATIVETEST,), module=module)
    v2, _ = actor_file("managed", caps=(NATIVETEST,), version="VERSION2", module=module)
    assert ctl("start-actor", str(v1), "--deadline", "3") == f"started managed ({key})\n"
    assert ctl("add-provider", str(build_native("testprovider")), "--binding", "slot") == (
        f"added provider {NATIVETEST} on binding slot\n"
    )
    # by name, and with --control after the subcommand
    assert ctl("bind", "managed", NATIVETEST, "--binding", "slot", "-v", "K=V", after=True) == (
        f"bound managed ({key}) to {NATIVETEST} (slot)\n"
    )
    inventory = json.loads(ctl("inventory", "--json"))
    assert inventory["bindings"] == [
        {"actor": key, "capability": NATIVETEST, "binding": "slot", "values": {"K": "V"}}
    ]
    assert {p["capability_id"] for p in inventory["providers"]} >= {NATIVETEST}
    table = ctl("inventory")
    assert "actors" in table and "managed" in table and "K=V" in table and key in table
    assert ctl("call", "managed", "Version", "--raw") == "VERSION1"
    assert ctl("replace-actor", key, str(v2)) == f"replaced managed ({key}) with {v2.name}\n"
    assert ctl("call", key, "Version", "--raw") == "VERSION2"
    assert json.loads(ctl("inventory", "--json"))["actors"][0]["calls"] >= 1
    assert ctl("unbind", key, NATIVETEST, "--binding", "slot") == (
        f"unbound managed ({key}) from {NATIVETEST} (slot)\n"
    )
    assert ctl("remove-provider", NATIVETEST, "--binding", "slot") == (
        f"removed provider {NATIVETEST} from binding slot\n"
    )
    assert ctl("stop-actor", "managed") == f"stopped managed ({key})\n"
    assert json.loads(ctl("inventory", "--json"))["actors"] == []
    result = runner.invoke(main, ["ctl", "--control", str(host.control), "stop-actor", key])
    assert result.exit_code == 1 and result.stderr.startswith("error: no actor named")
    bad = runner.invoke(main, ["ctl", "--control", str(host.control), "bind", key, "x", "-v", "K"])
    assert bad.exit_code == 2 and "'K' is not K=V" in bad.output + bad.stderr


def test_wascc_up_serves_the_default_control_socket(up: Starter, tmp_path: Path) -> None:
    """Without --control, `wascc up` serves $XDG_RUNTIME_DIR/wascc.sock and ctl finds it."""
    runtime = tmp_path / "rt"
    env = {"XDG_RUNTIME_DIR": str(runtime)}
    started = subprocess.Popen(
        [WASCC, "up", "--actors-dir", str(tmp_path), "--health-interval", "0"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for((runtime / "wascc.sock").exists, "the default control socket")
        found = subprocess.run(
            [WASCC, "ctl", "inventory", "--json"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(found.stdout)["actors"] == []
        # a second host finds the default taken: it runs without one, and says so
        log = tmp_path / "second.log"
        with log.open("w") as out:
            second = subprocess.Popen(
                [WASCC, "up", "--actors-dir", str(tmp_path), "--health-interval", "0"],
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=out,
            )
        try:
            wait_for(lambda: "no control socket" in log.read_text(), "the warning")
            assert "another host is listening" in log.read_text()
            assert second.poll() is None  # it runs on without one
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
    finally:
        started.send_signal(signal.SIGTERM)
        started.communicate(timeout=30)
    quiet = subprocess.run(
        [WASCC, "up", "--no-control", "--control", "/tmp/x.sock"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert quiet.returncode == 1 and "contradict" in quiet.stderr


@pytest.mark.parametrize(
    "manifest, message",
    [
        ("actors: [./missing.wasm]", "actors[0]: no such file"),
        (
            "capabilities:\n  - path: wascc:nonexistent",
            "wascc:nonexistent: no installed provider offers this capability id",
        ),
        ("capabilities:\n  - path: ./notalib.so", "notalib.so: is not a shared object"),
        ("capabilities:\n  - path: no.such.module:Provider", "cannot import no.such.module"),
        ("capabilities:\n  - path: .relative.module", "cannot import .relative.module"),
        ("capabilities:\n  - path: ./" + "x" * 5000 + ".so", "cannot use this path"),
        (
            "bindings:\n  - actor: M" + "A" * 55 + "\n    capability: wascc:x",
            "not an actor's public key",
        ),
    ],
)
def test_bad_manifest_is_refused_before_anything_starts(
    tmp_path: Path, manifest: str, message: str
) -> None:
    (tmp_path / "notalib.so").write_text("not an ELF file")
    (tmp_path / "host.yaml").write_text(manifest)
    done = subprocess.run(
        [WASCC, "up", "--manifest", str(tmp_path / "host.yaml")],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and message in last and "host.yaml" in last, done.stderr


def test_actor_refused_at_start_stops_everything(tmp_path: Path, sign: Signer) -> None:
    stranger = KeyPair.generate(KeyType.ACCOUNT)
    signed, _ = sign(name="foreign", issuer=stranger)
    (tmp_path / "a.wasm").write_bytes(signed)
    (tmp_path / "host.yaml").write_text("actors: [./a.wasm]\n")
    done = subprocess.run(
        [
            WASCC,
            "up",
            "--manifest",
            str(tmp_path / "host.yaml"),
            "--trusted-issuer",
            KeyPair.generate(KeyType.ACCOUNT).public_key,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "is not trusted by this host" in done.stderr.strip().splitlines()[-1]
    assert "host stopped" in done.stderr


def test_systemd_notify_protocol(up: Starter, tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(30)
        (tmp_path / "host.yaml").write_text("")
        host = up("--manifest", str(tmp_path / "host.yaml"), env={"NOTIFY_SOCKET": str(path)})
        assert sock.recv(4096).startswith(b"READY=1")
        host.signal(signal.SIGHUP)
        reloading = sock.recv(4096)
        assert reloading.startswith(b"RELOADING=1") and b"MONOTONIC_USEC=" in reloading
        assert sock.recv(4096).startswith(b"READY=1")
        host.signal(signal.SIGTERM)
        assert sock.recv(4096).startswith(b"STOPPING=1")
        assert host.process.wait(30) == 0


def test_json_logs_carry_the_actor_fields(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
) -> None:
    path, key = actor_file("chatty")
    manifest = write_manifest(tmp_path / "host.yaml", [path], [], [])
    host = up("--manifest", str(manifest), "--log-format", "json")
    host.call(key, "Log", b"hello from the actor")
    wait_for(lambda: "hello from the actor" in host.output(), "the console line")
    entries = [json.loads(line) for line in host.output().splitlines() if line.startswith("{")]
    (entry,) = [e for e in entries if "hello from the actor" in e["message"]]
    assert entry["actor"] == key and entry["actor_name"] == "chatty"
    assert entry["logger"] == "wascc.actor" and entry["level"] == "INFO"


def test_json_logs_carry_host_event_fields_and_the_http_access_log(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
) -> None:
    import http.client

    path, key = actor_file("web", caps=("wascc:http_server",))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manifest = tmp_path / "host.yaml"
    manifest.write_text(
        f"actors: [{path}]\n"
        "capabilities:\n  - path: wascc:http_server\n"
        "bindings:\n"
        f"  - {{actor: web, capability: wascc:http_server, "
        f"values: {{PORT: '{port}', ACCESS_LOG: 'true'}}}}\n"
    )
    host = up("--manifest", str(manifest), "--log-format", "json")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/some/path?q=1")
    assert conn.getresponse().status == 500  # the test actor has no HandleRequest
    wait_for(lambda: '"method": "GET"' in host.output(), "the access log line")
    entries = [json.loads(line) for line in host.output().splitlines() if line.startswith("{")]
    bound = [e for e in entries if e.get("outcome") == "bound"]
    assert bound and bound[0]["actor"] == key
    assert bound[0]["capability"] == "wascc:http_server" and bound[0]["binding"] == "default"
    started = [e for e in entries if e.get("outcome") == "started"]
    assert started[0]["actor"] == key
    (access,) = [e for e in entries if e.get("method") == "GET"]
    assert access["path"] == "/some/path" and access["status"] == 500
    assert access["actor"] == key and isinstance(access["duration_us"], int)
    assert access["logger"].endswith("http_server.access")


def test_provider_dropped_in_later_gets_its_pending_binding(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
    build_native: NativeBuilder,
) -> None:
    providers = tmp_path / "providers"
    providers.mkdir()
    path, key = actor_file(caps=(NATIVETEST,))
    manifest = write_manifest(tmp_path / "host.yaml", [path], [], [(key, NATIVETEST)])
    host = up("--manifest", str(manifest), "--providers-dir", str(providers))
    assert host.inventory()["bindings"] == []  # waiting for its provider
    shutil.copy(build_native("testprovider"), providers / "libtest.so")
    wait_for(lambda: host.inventory()["bindings"] != [], "the pending binding")
    assert host.call(key, "Call", call_payload(NATIVETEST, "Echo", b"late")) == b"late"


def test_default_demo_answers_http_on_its_ports(up: Starter, tmp_path: Path) -> None:
    import http.client

    port = free_port_pair()
    keys = tmp_path / "demo-keys"
    host = up(env={"WASCC_DEMO_DIR": str(keys), "WASCC_DEMO_PORT": str(port)}, trust=False)
    wait_for(lambda: "stop it with Ctrl-C" in host.output(), "the demo's URLs")
    assert f"http://127.0.0.1:{port}/" in host.output()
    assert f"its keys are in {keys}" in host.output()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/hello?x=1")
    echo = json.loads(conn.getresponse().read())
    assert echo["path"] == "/hello" and echo["query_string"] == "x=1"
    counter = http.client.HTTPConnection("127.0.0.1", port + 1, timeout=10)
    counts = []
    for _ in range(3):
        counter.request("GET", "/visits")
        counts.append(json.loads(counter.getresponse().read())["counter"])
    assert counts == [1, 2, 3]
    # the keys were generated here, readable by their owner only, and reused
    assert sorted(p.name for p in keys.glob("*.nk")) == [
        "account.nk",
        "echo_module.nk",
        "kvcounter_module.nk",
    ]
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in keys.glob("*.nk"))
    first = {a["name"]: a["public_key"] for a in host.inventory()["actors"]}
    host.signal(signal.SIGTERM)
    assert host.process.wait(30) == 0
    again = up(env={"WASCC_DEMO_DIR": str(keys), "WASCC_DEMO_PORT": str(port)}, trust=False)
    second = {a["name"]: a["public_key"] for a in again.inventory()["actors"]}
    assert set(first) == {"echo", "kvcounter"} and second == first  # same keys reused


def test_python_providers_by_module_path_and_entry_point_name(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
) -> None:
    path, key = actor_file(caps=("wascc:testing", "wascc:http_server"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manifest = tmp_path / "host.yaml"
    manifest.write_text(
        f"actors: [{path}]\n"
        "capabilities:\n"
        "  - path: providers:RecordingProvider\n"  # a module path (tests/providers.py)
        "  - path: http_server\n"  # an entry-point name
        "bindings:\n"
        f"  - {{actor: {key}, capability: wascc:testing}}\n"
        f"  - {{actor: {key}, capability: wascc:http_server, values: {{PORT: '{port}'}}}}\n"
    )
    tests_dir = str(Path(__file__).parent)
    host = up("--manifest", str(manifest), "--log-format", "json", env={"PYTHONPATH": tests_dir})
    providers = {p["capability_id"] for p in host.inventory()["providers"]}
    assert {"wascc:testing", "wascc:http_server"} <= providers
    assert host.call(key, "Call", call_payload("wascc:testing", "Echo", b"py")) == b"py"
    entries = [json.loads(line) for line in host.output().splitlines() if line.startswith("{")]
    assert any(e.get("provider") == "wascc:http_server" for e in entries), host.output()


# ---- reconciling from many threads (in process) ----------------------------------------


class _CountingProvider(RecordingProvider):
    """Counts every BindActor / RemoveActor it is sent; binding takes a moment."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[tuple[str, str], int] = {}

    def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation in ("BindActor", "RemoveActor"):
            module = CapabilityConfiguration.decode(msg).module
            with self.lock:
                self.sent[(operation, module)] = self.sent.get((operation, module), 0) + 1
            if operation == "BindActor":
                time.sleep(0.002)  # a provider opening a listener or a connection
        return super().handle_call(actor, operation, msg)


def test_reconcile_from_many_threads_binds_each_binding_exactly_once(
    tmp_path: Path, sign: Signer, account: KeyPair
) -> None:
    actors_dir = tmp_path / "actors"
    actors_dir.mkdir()
    files: dict[str, tuple[Path, bytes]] = {}
    keys: dict[str, str] = {}
    for group, count in (("a", 6), ("b", 6), ("c", 4)):
        for i in range(count):
            signed, module = sign(caps=[TESTING], name=f"{group}{i}")
            files[f"{group}{i}"] = (actors_dir / f"{group}{i}.wasm", signed)
            keys[f"{group}{i}"] = module.public_key
    manifest = Manifest(
        source="test",
        base_dir=tmp_path,
        bindings=tuple(BindingSpec(key, TESTING, values={"n": name}) for name, key in keys.items()),
    )
    options = Options(
        actors_dir=actors_dir,
        trusted_issuers=(account.public_key,),
        poll_interval=3600,  # the test scans; the watcher thread stays asleep
        health_interval=0,
        grace=0,
    )
    for name, (path, signed) in files.items():
        if name[0] in "ac":
            path.write_bytes(signed)
    daemon = Daemon(options, manifest=manifest)
    host = daemon.start()
    try:
        provider = _CountingProvider()
        host.add_provider(provider)  # bindings waited for it
        start = threading.Barrier(12)
        errors: list[BaseException] = []

        def run(action: Callable[[], None]) -> None:
            try:
                start.wait(30)
                action()
            except BaseException as exc:
                errors.append(exc)

        def reconcile() -> None:
            for _ in range(4):
                daemon.reconcile_bindings()

        def appear() -> None:  # group b dropped into the actors directory
            for name in (n for n in files if n[0] == "b"):
                path, signed = files[name]
                path.write_bytes(signed)
                daemon.reload()

        def disappear() -> None:  # group c removed from it
            for name in (n for n in files if n[0] == "c"):
                files[name][0].unlink()
                daemon.reload()

        threads = [threading.Thread(target=run, args=(reconcile,)) for _ in range(10)]
        threads += [threading.Thread(target=run, args=(f,)) for f in (appear, disappear)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        daemon.reload()
        daemon.reload()  # files written last settle on the second scan

        bound = {(b.actor, b.capability_id): dict(b.values) for b in host.bindings()}
        for name, key in keys.items():
            binds = provider.sent.get(("BindActor", key), 0)
            if name[0] in "ab":
                assert binds == 1, f"{name}: BindActor sent {binds} times"
                assert bound.get((key, TESTING)) == {"n": name}, f"{name}: binding lost"
            else:
                assert binds <= 1, f"{name}: BindActor sent {binds} times"
                assert (key, TESTING) not in bound
                assert provider.sent.get(("RemoveActor", key), 0) == binds
        assert {a.public_key for a in host.actors()} == {keys[n] for n in keys if n[0] in "ab"}
    finally:
        daemon.stop()


# ---- the control socket under load and abuse ---------------------------------------------


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def test_twenty_concurrent_ctl_clients_all_answered(up: Starter) -> None:
    host = up()
    answers: list[bool] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(25):
            try:
                ok = bool(request(host.control, "inventory", timeout=60)["ok"])
            except ControlError:  # before: the backlog of 5 refused most connections
                ok = False
            with lock:
                answers.append(ok)

    threads = [threading.Thread(target=client) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"ctl 20x25: {answers.count(True)} of {len(answers)} answered")
    assert answers == [True] * 500


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
def test_a_200_mib_control_line_is_refused_with_memory_bounded(up: Starter) -> None:
    host = up()
    pid = host.process.pid
    before = rss_kib(pid)
    peak = before
    chunk = b"x" * (1 << 20)
    sent = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(60)
        s.connect(str(host.control))
        try:
            while sent < 200 << 20:
                s.sendall(chunk)
                sent += len(chunk)
                peak = max(peak, rss_kib(pid))
        except OSError:
            pass  # the host refused the line and closed the connection
        answer = b""
        with contextlib.suppress(OSError):
            while not answer.endswith(b"\n"):
                data = s.recv(65536)
                if not data:
                    break
                answer += data
    peak = max(peak, rss_kib(pid))
    assert sent < 200 << 20, "the whole line was read"
    assert json.loads(answer)["ok"] is False
    assert b"request too large" in answer
    # a line is cut at MAX_LINE (64 MiB); before, the whole 200 MiB was buffered
    assert peak - before < 128 * 1024, f"RSS {before // 1024} -> {peak // 1024} MiB"
    print(f"200 MiB line: daemon RSS {before // 1024} -> peak {peak // 1024} MiB")
    assert host.inventory()["ok"]  # still serving


# ---- a re-bind that fails keeps the working binding ------------------------------------


def test_a_failed_ctl_rebind_keeps_the_working_listener(up: Starter, tmp_path: Path) -> None:
    import http.client

    port = free_port_pair()
    host = up(
        env={"WASCC_DEMO_DIR": str(tmp_path / "keys"), "WASCC_DEMO_PORT": str(port)},
        trust=False,
    )
    echo = next(
        b["actor"]
        for b in host.inventory()["bindings"]
        if b["capability"] == "wascc:http_server" and b["values"].get("PORT") == str(port)
    )
    runner = CliRunner()

    def bind(value: str) -> Any:
        return runner.invoke(
            main,
            ["ctl", "--control", str(host.control), "bind", echo, "wascc:http_server", "-v", value],
        )

    def status(p: int) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", p, timeout=10)
        try:
            conn.request("GET", "/still")
            return conn.getresponse().status
        finally:
            conn.close()

    assert status(port) == 200
    bad = bind("PORT=notaport")
    assert bad.exit_code != 0 and "notaport" in bad.stderr and "not an integer" in bad.stderr
    assert status(port) == 200
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = int(taken.getsockname()[1])
        in_use = bind(f"PORT={busy}")
        assert in_use.exit_code != 0 and "address already in use" in in_use.stderr
        assert status(port) == 200
    wait_for(lambda: "refused to re-bind" in host.output(), "the warning in the log")
    assert "WARNING" in host.output()
    bound = [b for b in host.inventory()["bindings"] if b["actor"] == echo]
    assert bound[0]["values"]["PORT"] == str(port)  # the old configuration stays in force
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        moved = int(probe.getsockname()[1])
    good = bind(f"PORT={moved}")
    assert good.exit_code == 0, good.stderr
    assert status(moved) == 200
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


# One daemon per format; each broken kind is written in turn, then SIGHUP.
BROKEN_ON_SIGHUP: dict[str, list[bytes]] = {
    "yaml": [
        b"labels:\n  a: \xff\xfe\n",  # not UTF-8
        b"1: a\n",  # a key that is not a string
        b"labels:\n  a: " + b"9" * 5000 + b"\n",  # past Python's int-string limit
        b"labels: " + b"[" * 100_000 + b"]" * 100_000 + b"\n",  # deep nesting
        b"a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        b"labels: *f\n",  # an alias bomb
    ],
    "json": [
        b'{"labels": {"a": "\xff"}}',
        b'{"labels": {"a": ' + b"9" * 5000 + b"}}",
        b'{"labels": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        b'{"labels": {"a": NaN}}',
    ],
    "toml": [
        b'[labels]\na = "\xff"\n',
        b"[labels]\na = " + b"9" * 5000 + b"\n",
        b"labels = " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
        b"a" + b".a" * 100_000 + b" = 1\n",  # tomllib's memory grows with parts squared
    ],
}


def _http_manifest(fmt: str, actor: Path, key: str, port: int) -> str:
    values = {"PORT": str(port), "ADDRESS": "127.0.0.1"}
    if fmt == "json":
        return json.dumps(
            {
                "actors": [str(actor)],
                "capabilities": [{"path": "wascc:http_server"}],
                "bindings": [{"actor": key, "capability": "wascc:http_server", "values": values}],
            }
        )
    if fmt == "toml":
        return (
            f'actors = ["{actor}"]\n[[capabilities]]\npath = "wascc:http_server"\n'
            f'[[bindings]]\nactor = "{key}"\ncapability = "wascc:http_server"\n'
            f'[bindings.values]\nPORT = "{port}"\nADDRESS = "127.0.0.1"\n'
        )
    return (
        f"actors: [{actor}]\ncapabilities:\n  - path: wascc:http_server\n"
        f"bindings:\n  - actor: {key}\n    capability: wascc:http_server\n"
        f"    values: {{PORT: '{port}', ADDRESS: 127.0.0.1}}\n"
    )


def _get(port: int, path: str) -> tuple[int, bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("fmt", sorted(BROKEN_ON_SIGHUP))
def test_each_broken_manifest_on_sighup_keeps_the_daemon_serving_http(
    up: Starter, tmp_path: Path, sign: Signer, fmt: str
) -> None:
    from wascc.standalone.demo import BUNDLE

    signed, module = sign((BUNDLE / "echo.wasm").read_bytes(), caps=["wascc:http_server"])
    actor = tmp_path / "echo_s.wasm"
    actor.write_bytes(signed)
    port = free_port_pair()
    manifest = tmp_path / f"host.{fmt}"
    good = _http_manifest(fmt, actor, module.public_key, port)
    manifest.write_text(good)
    host = up("--manifest", str(manifest))
    wait_for(lambda: "PORT" in str(host.inventory()["bindings"]), "the HTTP binding")
    assert _get(port, "/before")[0] == 200
    for i, broken in enumerate(BROKEN_ON_SIGHUP[fmt], start=1):
        manifest.write_bytes(broken)
        host.signal(signal.SIGHUP)
        wait_for(
            lambda i=i: (
                host.output().count("reload refused") == i or host.process.poll() is not None
            ),
            f"refusal {i}",
        )
        assert host.process.poll() is None, host.output()
        status, body = _get(port, f"/after-{i}")
        assert status == 200 and f"/after-{i}".encode() in body
        assert "Traceback" not in host.output()
    assert "reloaded" not in host.output()
    refusals = [line for line in host.output().splitlines() if "reload refused" in line]
    assert all("keeping the running configuration" in line for line in refusals)
    assert all(str(manifest) in line for line in refusals)
    manifest.write_text(good)
    host.signal(signal.SIGHUP)
    wait_for(lambda: "reloaded" in host.output(), "the good manifest")
    assert _get(port, "/good-again")[0] == 200


@pytest.mark.parametrize(
    ("fmt", "index"),
    [(fmt, i) for fmt, kinds in sorted(BROKEN_ON_SIGHUP.items()) for i in range(len(kinds))],
)
def test_each_broken_manifest_at_start_is_one_line(tmp_path: Path, fmt: str, index: int) -> None:
    manifest = tmp_path / f"host.{fmt}"
    manifest.write_bytes(BROKEN_ON_SIGHUP[fmt][index])
    result = CliRunner().invoke(main, ["up", "--manifest", str(manifest)], catch_exceptions=False)
    assert result.exit_code == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {manifest}: "), lines


def test_manifest_actor_limits_and_a_binding_by_name(
    up: Starter,
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],
    build_native: NativeBuilder,
) -> None:
    path, key = actor_file("named", caps=(NATIVETEST,))
    lib = build_native("testprovider")
    manifest = tmp_path / "host.toml"
    manifest.write_text(
        f'[[actors]]\npath = "{path}"\ndeadline = 1.5\nmax_instances = 2\n'
        f'[[capabilities]]\npath = "{lib}"\n'
        f'[[bindings]]\nactor = "named"\ncapability = "{NATIVETEST}"\n'
    )
    host = up("--manifest", str(manifest))
    (actor,) = host.inventory()["actors"]
    assert actor["public_key"] == key
    assert actor["settings"]["deadline"] == 1.5 and actor["settings"]["max_instances"] == 2
    assert [b["actor"] for b in host.inventory()["bindings"]] == [key]
    assert host.call(key, "Call", call_payload(NATIVETEST, "Echo", b"by name")) == b"by name"
