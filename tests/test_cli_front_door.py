"""The first hour of a new user: `python -m wascc`, completions, the SDK's flags."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from wascc.cli import main
from wascc.sdk import include_dir

from servers import free_port_pair


def test_python_dash_m_wascc_is_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wascc", "--help"], capture_output=True, text=True, check=True
    )
    assert "Usage: wascc" in done.stdout
    assert "completions" in done.stdout


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F"),
        ("zsh", "#compdef wascc"),
        ("fish", "complete --no-files --command wascc"),
    ],
)
def test_completions_print_a_script_for_each_shell(shell: str, marker: str) -> None:
    result = CliRunner().invoke(main, ["completions", shell])
    assert result.exit_code == 0, result.output
    assert marker in result.output
    assert "_WASCC_COMPLETE" in result.output


def test_completions_refuse_an_unknown_shell() -> None:
    result = CliRunner().invoke(main, ["completions", "tcsh"])
    assert result.exit_code == 2
    assert "'tcsh' is not one of" in result.output


def test_sdk_prints_flags_that_find_the_headers() -> None:
    runner = CliRunner()
    cflags = runner.invoke(main, ["sdk", "--cflags"]).output.split()
    assert cflags[:3] == ["--target=wasm32", "-nostdlib", "-Oz"]
    include = Path(cflags[-1].removeprefix("-I"))
    assert (include / "wascc" / "actor.h").is_file()
    assert include == include_dir()
    assert runner.invoke(main, ["sdk", "--ldflags"]).output.split() == [
        "-Wl,--no-entry",
        "-Wl,--strip-all",
    ]
    summary = runner.invoke(main, ["sdk"]).output
    assert "actor.h" in summary and "provider.h" in summary


def test_log_level_is_case_insensitive() -> None:
    up = main.commands["up"]
    (param,) = [p for p in up.params if p.name == "log_level"]
    ctx = click.Context(up)
    assert param.type_cast_value(ctx, "INFO") == "info"
    assert param.type_cast_value(ctx, "Warning") == "warning"
    with pytest.raises(click.BadParameter):
        param.type_cast_value(ctx, "LOUD")


def _demo(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    env = {**os.environ, "WASCC_DEMO_DIR": str(tmp_path / "keys"), "WASCC_DEMO_PORT": str(port)}
    return subprocess.Popen(
        [sys.executable, "-m", "wascc", "up", "--health-interval", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_demo_prints_its_urls_only_once_they_answer(tmp_path: Path) -> None:
    port = free_port_pair()  # the demo listens on port and port + 1
    demo = _demo(tmp_path, port)
    try:
        assert demo.stdout is not None
        first = demo.stdout.readline()
        if not first:  # it exited: show why
            demo.wait(30)
            raise AssertionError(f"exit {demo.returncode}: {demo.communicate()[1]}")
        assert first.startswith("wascc: starting the built-in demo (its keys are in ")
        urls = demo.stdout.readline()
        assert f"http://127.0.0.1:{port}/" in urls
        # printed after the bind: the port answers at once
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        demo.send_signal(signal.SIGTERM)
        demo.communicate(timeout=30)


def test_demo_port_in_use_is_one_line_naming_wascc_demo_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        demo = _demo(tmp_path, taken.getsockname()[1])
        out, err = demo.communicate(timeout=60)
    assert demo.returncode == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "WASCC_DEMO_PORT" in lines[0] and "cannot listen on 127.0.0.1:" in lines[0]
    assert "Traceback" not in err and out == ""


def test_demo_refuses_a_port_that_is_not_a_number(tmp_path: Path) -> None:
    env = {**os.environ, "WASCC_DEMO_DIR": str(tmp_path), "WASCC_DEMO_PORT": "eighty"}
    done = subprocess.run(
        [sys.executable, "-m", "wascc", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: WASCC_DEMO_PORT='eighty' is not a port number (1-65534)"


def test_claims_sign_warns_on_a_capability_nobody_offers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import wasmtime

    monkeypatch.setenv("WASCC_KEYS", str(tmp_path / "keys"))
    module = tmp_path / "m.wasm"
    module.write_bytes(wasmtime.wat2wasm("(module)"))
    runner = CliRunner()
    sign = ["claims", "sign", str(module), "-n", "m"]
    typo = runner.invoke(main, [*sign, "-c", "wascc:http-server"])
    assert typo.exit_code == 0, typo.output
    assert (
        "warning: no installed provider and no known contract offers 'wascc:http-server' "
        "(did you mean wascc:http_server?)"
    ) in typo.stderr
    good = runner.invoke(main, [*sign, "-c", "wascc:http_server", "-c", "acme:x"])
    assert good.exit_code == 0
    assert "wascc:http_server" not in good.stderr and "'acme:x'" in good.stderr
