"""The README's Python tour runs as written."""

from __future__ import annotations

import re
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
