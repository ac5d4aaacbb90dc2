"""The data plane's tests again, on a build of the C host under AddressSanitizer
and UndefinedBehaviorSanitizer: the pool, every route on both paths, and a
route changed under 8 threads of load, with any memory error or undefined
behaviour fatal.

The compiled module is rebuilt with the sanitizers into a temporary copy of
the package, and a child pytest runs there with libasan preloaded (Python
itself is not instrumented).  wasmtime turns guest traps into signals it
handles itself, so the sanitizers leave those signals alone; leaks are not
checked (CPython keeps its own arenas to the end).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLAGS = ("-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer")


def _runtime(name: str) -> str:
    found = subprocess.run(
        ["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert os.path.isabs(found), f"gcc has no {name}: install its sanitizer runtimes"
    return found


def test_data_plane_tests_pass_under_asan_and_ubsan(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("ffi_build", ROOT / "wascc/engine/_ffi_build.py")
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    built = Path(
        build.builder((*FLAGS, "-g"), ("-fsanitize=address,undefined",)).compile(
            tmpdir=str(tmp_path / "build")
        )
    )
    overlay = tmp_path / "overlay"
    shutil.copytree(
        ROOT / "wascc", overlay / "wascc", ignore=shutil.ignore_patterns("*.so", "__pycache__")
    )
    shutil.copy(built, overlay / "wascc" / "engine" / built.name)
    linked = subprocess.run(["ldd", str(built)], capture_output=True, text=True, check=True).stdout
    assert "libasan" in linked and "libubsan" in linked, linked

    env = {
        **os.environ,
        "PYTHONPATH": str(overlay),
        "LD_PRELOAD": f"{_runtime('libasan.so')}:{_runtime('libubsan.so')}",
        "ASAN_OPTIONS": "detect_leaks=0:handle_segv=0:handle_sigill=0:handle_sigbus=0:"
        "handle_sigfpe=0:allow_user_segv_handler=1:abort_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
    }
    script = (
        "import sys, pytest, wascc.engine.ffi as f\n"
        f"assert f._compiled.__file__.startswith({str(overlay)!r}), f._compiled.__file__\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[1:]]))\n"
    )
    tests = [str(ROOT / "tests" / name) for name in ("test_dataplane.py", "test_pool.py")]
    # run outside the repository: its own wascc/ must not shadow the sanitized copy
    done = subprocess.run(
        [sys.executable, "-c", script, *tests],
        cwd=tmp_path,
        env=env,
        check=False,  # the output says what failed
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "AddressSanitizer" not in output and "runtime error" not in output, output[-6000:]
    assert " passed" in output
