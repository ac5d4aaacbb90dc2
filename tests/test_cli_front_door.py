"""The first hour of a new user: `python -m wascc`, completions, the SDK's flags."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from wascc.cli import main
from wascc.sdk import include_dir


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
