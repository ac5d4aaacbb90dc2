"""The README's Python tour runs as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BuiltExamples

README = Path(__file__).parent.parent / "README.md"


def test_readme_tour_runs() -> None:
    text = README.read_text()
    tour = text[text.index("## A tour in Python") :]
    block = re.search(r"```python\n(.*?)```", tour, re.S)
    assert block is not None
    namespace: dict[str, object] = {"__name__": "readme_tour"}
    exec(compile(block.group(1), "README.md", "exec"), namespace)
    assert namespace["key"] == namespace["module"].public_key  # type: ignore[attr-defined]


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text()
    assert "make run" in text and "make test" in text


def test_readme_messaging_example_runs(
    examples: BuiltExamples, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = README.read_text()
    section = text[text.index("### Messaging: in-process") :]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    monkeypatch.chdir(README.parent)
    exec(compile(block.group(1), "README.md", "exec"), {"__name__": "readme_messaging"})
    printed = capsys.readouterr().out.splitlines()
    expected = [line.strip().removeprefix("# ") for line in block.group(1).splitlines()[-2:]]
    assert printed == expected


def test_readme_data_capability_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    text = README.read_text()
    section = text[text.index("## Data capabilities") : text.index("## How a call flows")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 3
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme_data"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[1:] == ["[{'sku': '42'}]", "4 meow", "[('Ann',), ('Bob',)]"]
    assert re.fullmatch(r"\d{13}-\d+", printed[0])


def test_readme_trusted_providers_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    text = README.read_text()
    section = text[text.index("### Providers you can trust") :]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    exec(compile(block.group(1), "README.md", "exec"), {"__name__": "readme_trust"})
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == block.group(1).splitlines()[-1].strip().removeprefix("# ")


def test_readme_component_example_runs(tmp_path: Path) -> None:
    """The components section's shell lines, run as written (the host in the background)."""
    text = README.read_text()
    section = text[text.index("## Components: WASI 0.2") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    bindir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bindir}:{os.environ['PATH']}",
        "WASCC_CONTROL": str(tmp_path / "ctl.sock"),
        "WASCC_KEYS": str(tmp_path / "keys"),
    }
    (tmp_path / "tests").symlink_to(README.parent / "tests")
    host: subprocess.Popen[bytes] | None = None
    outputs: list[str] = []
    try:
        for raw in block.group(1).splitlines():
            line = raw.split("  #", 1)[0].strip()
            if line.endswith("&"):
                host = subprocess.Popen(
                    shlex.split(line[:-1]), cwd=tmp_path, env=env, stderr=subprocess.DEVNULL
                )
                deadline = time.monotonic() + 30
                while not (tmp_path / "ctl.sock").exists():
                    assert host.poll() is None and time.monotonic() < deadline
                    time.sleep(0.05)
                time.sleep(0.3)  # the actors directory's first scan
                continue
            for part in line.split("&&"):
                done = subprocess.run(
                    shlex.split(part),
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert done.returncode == 0, f"{part}: {done.stderr}"
                outputs.append(done.stdout)
        assert outputs[-2] == "1"  # Count answered the first visit
        assert "WebAssembly component" in outputs[-1] and "wasi:keyvalue/store" in outputs[-1]
    finally:
        if host is not None:
            host.terminate()
            host.wait(10)
