"""`wascc up` as a real subprocess: manifests, SIGHUP, directories, SIGTERM, ctl, notify."""

from __future__ import annotations

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

from wascc import Host, KeyPair, KeyType, hookimpl
from wascc.cli import main
from wascc.codec import OP_BIND_ACTOR
from wascc.control import b64, request, unb64
from wascc.daemon import Daemon, Options
from wascc.manifest import BindingSpec

from conftest import NativeBuilder, Signer, build_test_actor, call_payload
from providers import TESTING, RecordingProvider

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

    def ctl(*args: str) -> str:
        result = runner.invoke(main, ["ctl", "--control", str(host.control), *args])
        assert result.exit_code == 0, result.output + result.stderr
        return result.output

    module = KeyPair.generate(KeyType.MODULE)
    v1, key = actor_file("managed", caps=(NATIVETEST,), module=module)
    v2, _ = actor_file("managed", caps=(NATIVETEST,), version="VERSION2", module=module)
    assert ctl("start-actor", str(v1)).strip() == key
    ctl("add-provider", str(build_native("testprovider")), "--binding", "slot")
    ctl("bind", key, NATIVETEST, "--binding", "slot", "-v", "K=V")
    inventory = json.loads(ctl("inventory"))
    assert inventory["bindings"] == [
        {"actor": key, "capability": NATIVETEST, "binding": "slot", "values": {"K": "V"}}
    ]
    assert {p["capability_id"] for p in inventory["providers"]} >= {NATIVETEST}
    assert ctl("call", key, "Version", "--raw") == "VERSION1"
    ctl("replace-actor", key, str(v2))
    assert ctl("call", key, "Version", "--raw") == "VERSION2"
    ctl("unbind", key, NATIVETEST, "--binding", "slot")
    ctl("remove-provider", NATIVETEST, "--binding", "slot")
    ctl("stop-actor", key)
    assert json.loads(ctl("inventory"))["actors"] == []
    result = runner.invoke(main, ["ctl", "--control", str(host.control), "stop-actor", key])
    assert result.exit_code == 1 and result.stderr.startswith("error: no actor")


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
        ("bindings:\n  - actor: MZZZ\n    capability: wascc:x", "not an actor's public key"),
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


def free_port_pair() -> int:
    """A port p with p and p + 1 both free (the demo uses two)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = int(a.getsockname()[1])
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise AssertionError("no two adjacent free ports")


def test_default_demo_answers_http_on_its_ports(up: Starter, tmp_path: Path) -> None:
    import http.client

    port = free_port_pair()
    keys = tmp_path / "demo-keys"
    host = up(env={"WASCC_DEMO_DIR": str(keys), "WASCC_DEMO_PORT": str(port)}, trust=False)
    assert f"http://127.0.0.1:{port}/" in host.output()
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


class _PausingAuthorizer:
    """Holds the first binding it is asked about until ``go`` is set."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.go = threading.Event()

    @hookimpl
    def wascc_authorize_binding(self) -> None:
        if not self.entered.is_set():
            self.entered.set()
            self.go.wait()


class _CountingBinds(RecordingProvider):
    """Counts every BindActor message (the base class absorbs repeats)."""

    def __init__(self) -> None:
        super().__init__()
        self.bind_messages = 0

    def handle_call(self, actor: str, operation: str, msg: bytes) -> bytes:
        if operation == OP_BIND_ACTOR:
            self.bind_messages += 1
        return super().handle_call(actor, operation, msg)


def test_concurrent_reconciles_bind_once(host: Host, sign: Signer) -> None:
    """A watcher and a control client reconciling at once send BindActor once."""
    provider = _CountingBinds()
    host.add_provider(provider)
    signed, _ = sign(caps=[TESTING])
    key = host.add_actor(signed)
    pause = _PausingAuthorizer()
    host.add_plugin(pause)
    daemon = Daemon(Options())
    daemon.host = host
    daemon._desired = {(key, TESTING, "default"): BindingSpec(key, TESTING, "default", {"A": "1"})}
    first = threading.Thread(target=daemon.reconcile_bindings)
    first.start()
    pause.entered.wait()  # the first reconcile is inside set_binding, not yet bound
    second = threading.Thread(target=daemon.reconcile_bindings)
    second.start()
    second.join(0.3)  # before the fix it looked at the bindings now, saw none, and bound again
    pause.go.set()
    first.join()
    second.join()
    assert provider.bind_messages == 1
    assert [c.module for c in provider.binds] == [key]
