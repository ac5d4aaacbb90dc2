"""The built wheel is enough for a pip user: it installs into a fresh venv, ships
the SDK headers, and compiles docs/first-actor.md's actor with them."""

from __future__ import annotations

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from test_docs import ROOT, blocks

pytestmark = pytest.mark.slow


def _run(*cmd: str, cwd: Path | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools would pack stale files
    _run(
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "-w", str(out), str(ROOT),
    )  # fmt: skip
    (built,) = out.glob("wascc-*.whl")
    return built


def test_the_wheel_ships_headers_and_no_top_level_name_that_can_clash(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    for header in ("actor.h", "contracts.h", "msgpack.h", "json.h", "provider.h"):
        assert f"wascc/_sdk/include/wascc/{header}" in names
    # the C child of isolated providers, executable once installed
    child = zipfile.ZipFile(wheel).getinfo("wascc/_providers/wascc-provider-child")
    assert (child.external_attr >> 16) & 0o111
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"wascc", "wascc_capabilities"}, top
    assert "wascc_capabilities/http_server.py" in names or any(
        n.startswith("wascc_capabilities/http_server/") for n in names
    )


def test_a_fresh_venv_compiles_the_first_actor_with_the_shipped_headers(
    wheel: Path, tmp_path: Path
) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bindir = env_dir / "bin"
    _run(str(bindir / "python"), "-m", "pip", "install", "--quiet", str(wheel))
    cflags = _run(str(bindir / "wascc"), "sdk", "--cflags").split()
    ldflags = _run(str(bindir / "wascc"), "sdk", "--ldflags").split()
    include = Path(next(f for f in cflags if f.startswith("-I"))[2:])
    assert include.is_relative_to(env_dir), include  # the installed copy, not the repo's
    (c_source,) = blocks("c")
    (tmp_path / "hello.c").write_text(c_source)
    _run("clang", *cflags, *ldflags, "-o", "hello.wasm", "hello.c", cwd=tmp_path)
    _run(str(bindir / "wascc"), "inspect", str(tmp_path / "hello.wasm"))
    assert (tmp_path / "hello.wasm").read_bytes().startswith(b"\0asm")
    _run(str(bindir / "python"), "-m", "wascc", "--version")
