"""The fuzz smoke pass: every target in fuzz/ for a few thousand cases.

``make fuzz`` runs the same targets for 100,000 cases each; here each gets
``WASCC_FUZZ_CASES`` (default 2,000) so the whole pass stays well under a
minute.  The only acceptable outcomes are the call's result or a WasccError.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fuzz.engine import Target, discover, run_target  # noqa: E402

CASES = int(os.environ.get("WASCC_FUZZ_CASES", "2000"))
TARGETS = discover()


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_fuzz_smoke(target: Target) -> None:
    report = run_target(target, CASES, seed=1)
    print(report.line())
    assert not report.findings, "\n\n".join(
        f"case {f.case}: {f.problem}\ninput: {f.data[:200]!r}" for f in report.findings
    )
    assert report.cases == CASES


def test_the_engine_reports_an_escaping_exception() -> None:
    def run(data: bytes) -> None:
        if data.startswith(b"x"):
            raise KeyError("not a WasccError")

    report = run_target(Target("demo", run, seeds=[b"a", b"x"]), 10)
    assert len(report.findings) == 1
    assert "KeyError" in report.findings[0].problem


def test_the_engine_reports_a_hang() -> None:
    import threading

    release = threading.Event()

    def run(data: bytes) -> None:
        if data == b"hang":
            release.wait(5)

    try:
        report = run_target(Target("demo", run, seeds=[b"ok", b"hang"], deadline=0.2), 5)
    finally:
        release.set()
    assert report.findings and "hang" in report.findings[0].problem


def test_native_http_parser_fuzz_smoke(tmp_path: Path) -> None:
    """The native http_server's parser and response decoder (fuzz/native/fuzz_http_parse.c),
    built with gcc under ASan/UBSan with its own mutator, for 20,000 cases."""
    compiler = shutil.which("gcc") or shutil.which("cc")
    assert compiler, "a C compiler is needed"
    binary = tmp_path / "fuzz_http_parse"
    subprocess.run(
        [
            compiler,
            "-g",
            "-O1",
            "-DHS_FUZZ_MAIN",
            "-fsanitize=address,undefined",
            "-fno-sanitize-recover=all",
            f"-I{ROOT / 'native/include'}",
            f"-I{ROOT / 'native/providers/common'}",
            f"-I{ROOT / 'native/providers/http_server'}",
            "-o",
            str(binary),
            str(ROOT / "fuzz/native/fuzz_http_parse.c"),
            str(ROOT / "native/providers/http_server/parse.c"),
        ],
        check=True,
    )
    done = subprocess.run(
        [str(binary), "20000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "ASAN_OPTIONS": "detect_leaks=1"},
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
