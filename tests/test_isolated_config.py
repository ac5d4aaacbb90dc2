"""Isolation from the operator's side: manifest entries, sidecars, ``wascc up --isolate-providers``.

The daemon tests run real ``wascc up`` processes: a provider isolated there
segfaults, the host process lives on, and ``wascc ctl inventory`` shows the
provider restarting and back with a new child process.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_daemon import Running, Starter, actor_file, up, wait_for  # noqa: F401 (fixtures)

from wascc import Host, ManifestError, ProviderError
from wascc.cli import main
from wascc.providers.isolated import IsolationSettings, Limits, parse_isolation
from wascc.standalone.control import b64, request
from wascc.standalone.manifest import parse_manifest
from wascc.standalone.provider_directory import read_sidecar
from wascc.standalone.resolve import resolve_provider

from conftest import NativeBuilder, call_payload

NATIVETEST = "wascc:nativetest"


def manifest(tmp_path: Path, capability: str) -> str:
    return f"capabilities:\n  - path: wascc:keyvalue\n{capability}"


def test_manifest_capability_entries_carry_isolation_settings(tmp_path: Path) -> None:
    text = (
        "capabilities:\n"
        "  - path: wascc:keyvalue\n"
        "    isolate: true\n"
        "    deadline: 2.5\n"
        "    restart_backoff: 0.5\n"
        "    restart_backoff_max: 8\n"
        "    max_crashes: 3\n"
        "    crash_window: 60\n"
        "    limits: {address_space: 2147483648, cpu_seconds: 600, open_files: 128}\n"
        "  - path: wascc:logging\n"
        "    isolate: false\n"
        "  - path: wascc:telnet\n"
    )
    found = parse_manifest(text, source="host.yaml", base_dir=tmp_path, fmt="yaml")
    kv, logging_, telnet = found.capabilities
    assert kv.isolate is True
    assert kv.isolation == IsolationSettings(
        deadline=2.5,
        backoff=0.5,
        backoff_max=8,
        max_crashes=3,
        crash_window=60,
        limits=Limits(address_space=2147483648, cpu_seconds=600, open_files=128),
    )
    assert (logging_.isolate, logging_.isolation) == (False, None)
    assert (telnet.isolate, telnet.isolation) == (None, None)


@pytest.mark.parametrize(
    "entry, said",
    [
        ("    isolate: yes please\n", "isolate must be true or false"),
        ("    isolate: true\n    deadline: -1\n", "deadline must be at least 0.001"),
        ("    isolate: true\n    max_crashes: 2.5\n", "max_crashes must be a whole number"),
        ("    isolate: true\n    limits: {stack: 1}\n", "limits: unknown key 'stack'"),
        ("    isolate: true\n    limits: 5\n", "limits must be a table"),
        ("    isolate: false\n    deadline: 3\n", "apply to isolated providers only"),
        ("    isolate: true\n    restart: 3\n", "unknown key 'restart'"),
        ("    isolate: true\n    child: java\n", "child must be auto, c or python"),
    ],
)
def test_bad_isolation_settings_are_refused_naming_the_key(
    tmp_path: Path, entry: str, said: str
) -> None:
    with pytest.raises(ManifestError, match=f"capabilities\\[0\\].*{said}"):
        parse_manifest(manifest(tmp_path, entry), source="h.yaml", base_dir=tmp_path, fmt="yaml")


def test_sidecar_says_isolate_and_bad_sidecars_are_refused(tmp_path: Path) -> None:
    lib = tmp_path / "libx.so"
    side = tmp_path / "libx.so.toml"
    side.write_text("isolate = true\ndeadline = 4\n[limits]\nopen_files = 99\n")
    car = read_sidecar(lib)
    assert car.isolate is True
    assert car.isolation == IsolationSettings(deadline=4, limits=Limits(open_files=99))
    side.write_text("isolate = 1\n")
    with pytest.raises(ProviderError, match=r"libx\.so\.toml: isolate must be true or false"):
        read_sidecar(lib)
    assert parse_isolation({}) == (None, None)
    assert parse_isolation({"child": "python"}) == (None, IsolationSettings(child="python"))
    with pytest.raises(ProviderError, match="child must be auto, c or python, not 'jvm'"):
        IsolationSettings(child="jvm").child_argv()


def test_only_native_providers_can_be_isolated(tmp_path: Path) -> None:
    refused = pytest.raises(ProviderError, match=r"only native providers .* a Python provider")
    with Host(health_interval=0) as host, refused:
        resolve_provider("wascc:http_server", host, isolate=True)


def test_isolated_provider_in_wascc_up_crashes_and_comes_back_while_the_host_lives(
    up: Starter,  # noqa: F811
    tmp_path: Path,
    actor_file: Callable[..., tuple[Path, str]],  # noqa: F811
    build_native: NativeBuilder,
) -> None:
    path, key = actor_file(caps=(NATIVETEST,))
    lib = build_native("testprovider")
    (tmp_path / "host.yaml").write_text(
        f"actors: [{path}]\n"
        f"capabilities:\n  - path: {lib}\n    isolate: true\n    restart_backoff: 0.2\n"
        f"bindings:\n  - actor: {key}\n    capability: {NATIVETEST}\n"
    )
    host = up("--manifest", str(tmp_path / "host.yaml"))

    def provider() -> dict[str, object]:
        (p,) = [p for p in host.inventory()["providers"] if p["capability_id"] == NATIVETEST]
        return p

    first = provider()
    assert first["state"] == "running" and first["pid"] not in (None, host.process.pid)
    crash = request(
        host.control,
        "call",
        actor=key,
        operation="Call",
        payload_b64=b64(call_payload(NATIVETEST, "Crash", b"segv")),
    )
    assert not crash["ok"] and "killed by SIGSEGV" in crash["error"]
    wait_for(
        lambda: provider()["state"] == "running" and provider()["pid"] != first["pid"],
        "the provider to come back",
        timeout=10,
    )
    assert host.call(key, "Call", call_payload(NATIVETEST, "Echo", b"again")) == b"again"
    assert host.process.poll() is None
    table = CliRunner().invoke(main, ["ctl", "--control", str(host.control), "inventory"])
    assert f"running (isolated, pid {provider()['pid']})" in table.output
    assert "restarting it in 0.2s" in host.output()


def test_isolate_providers_flag_isolates_a_dropped_in_library(
    up: Starter,  # noqa: F811
    tmp_path: Path,
    build_native: NativeBuilder,
) -> None:
    providers = tmp_path / "providers"
    providers.mkdir()
    host = up("--providers-dir", str(providers), "--isolate-providers")
    shutil.copy(build_native("testprovider"), providers / "libtest.so")
    wait_for(lambda: host.inventory()["providers"][1:] != [], "the provider")
    (p,) = [p for p in host.inventory()["providers"] if p["capability_id"] == NATIVETEST]
    assert p["pid"] is not None and p["pid"] != host.process.pid
    assert os.path.exists(f"/proc/{p['pid']}")
    data = json.loads(
        CliRunner()
        .invoke(main, ["ctl", "--control", str(host.control), "inventory", "--json"])
        .output
    )
    assert any(q.get("pid") == p["pid"] for q in data["providers"])
