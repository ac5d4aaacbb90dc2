"""docs/first-actor.md works as written: its file, commands and script are run here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
DOC = ROOT / "docs" / "first-actor.md"


def blocks(kind: str) -> list[str]:
    """The fenced code blocks of the doc tagged ``kind`` ("" for untagged), in order."""
    found: list[str] = []
    lang: str | None = None
    lines: list[str] = []
    for line in DOC.read_text().splitlines():
        if line.startswith("```") and lang is None:
            lang, lines = line[3:].strip(), []
        elif line.startswith("```"):
            if lang == kind:
                found.append("\n".join(lines) + "\n")
            lang = None
        elif lang is not None:
            lines.append(line)
    return found


def test_first_actor_walkthrough_runs_as_written(tmp_path: Path) -> None:
    (c_source,) = blocks("c")
    shell = blocks("sh")
    (script,) = blocks("python")
    expected = blocks("")[-1]
    work = tmp_path / "repo"
    work.mkdir()
    (work / "native").symlink_to(ROOT / "native")
    (work / ".venv").mkdir()
    (work / ".venv" / "bin").symlink_to(Path(sys.executable).parent)
    (work / "hello").mkdir()
    (work / "hello" / "hello.c").write_text(c_source)
    env = {**os.environ, "HOME": str(tmp_path)}
    outputs = [
        subprocess.run(
            ["bash", "-euo", "pipefail", "-c", commands],
            cwd=work,
            check=True,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        for commands in shell
    ]
    assert outputs[-1] == expected  # curl, through `wascc up` and the HTTP server
    (work / "hello" / "run.py").write_text(script)
    out = subprocess.run(
        [sys.executable, "hello/run.py"], cwd=work, check=True, capture_output=True, text=True
    )
    assert out.stdout == expected
    assert (work / "hello" / "account.nk").stat().st_mode & 0o777 == 0o600
