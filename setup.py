"""Build hooks.  The metadata lives in setup.cfg; this file adds what setup.cfg
cannot express: the cffi module (wascc.engine._wascc_ffi), the first-party native
providers (native/, built with make and shipped in wascc/_providers/) and the
C headers of the actor SDK and provider ABI (native/include, shipped in
wascc/_sdk/include so `wascc sdk --cflags` finds them after a pip install)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


DEMO_ACTORS = ("echo", "kvcounter")


class BuildWithNativeProviders(build_ext):
    """build_ext that also runs `make -C native` and ships the libraries, and
    builds the demo actors (unsigned; keys are made on the user's machine)."""

    def run(self) -> None:
        super().run()
        base = ROOT if self.inplace else Path(self.build_lib)
        subprocess.run(["make", "-s", "-C", str(ROOT / "native")], check=True)
        target = base / "wascc" / "_providers"
        target.mkdir(parents=True, exist_ok=True)
        built = ROOT / "native" / "build"
        for lib in [*sorted(built.glob("libwascc_*")), built / "wascc-provider-child"]:
            shutil.copy2(lib, target / lib.name)
        self._ship_headers(base / "wascc" / "_sdk" / "include" / "wascc")
        self._build_demo(base / "wascc" / "_demo")

    @staticmethod
    def _ship_headers(target: Path) -> None:
        target.mkdir(parents=True, exist_ok=True)
        for header in sorted((ROOT / "native" / "include" / "wascc").glob("*.h")):
            shutil.copy2(header, target / header.name)

    def _build_demo(self, target: Path) -> None:
        if not (shutil.which("clang") and shutil.which("wasm-ld")):
            print("warning: clang/wasm-ld not found: the built-in demo actors are not built")
            return
        subprocess.run(["make", "-s", "-C", str(ROOT / "examples"), "unsigned"], check=True)
        target.mkdir(parents=True, exist_ok=True)
        for name in DEMO_ACTORS:
            built = ROOT / "examples" / name / "build" / "unsigned.wasm"
            shutil.copy2(built, target / f"{name}.wasm")


def _packages() -> tuple[list[str], dict[str, str]]:
    """wascc, and the repo's capabilities/ folder installed as ``wascc_capabilities``
    (a top-level ``capabilities`` package could clash with anyone's)."""
    found = find_packages(include=["wascc", "wascc.*"])
    found += ["wascc_capabilities"] + [
        f"wascc_capabilities.{name}" for name in find_packages(where="capabilities")
    ]
    return found, {"wascc_capabilities": "capabilities"}


PACKAGES, PACKAGE_DIR = _packages()

setup(
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    cffi_modules=["wascc/engine/_ffi_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithNativeProviders},
)
