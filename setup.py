"""Build hooks.  The metadata lives in setup.cfg; this file adds what setup.cfg
cannot express: the cffi module (wascc._wascc_ffi) and the first-party native
providers (native/, built with make and shipped in wascc/_providers/)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class BuildWithNativeProviders(build_ext):
    """build_ext that also runs `make -C native` and ships the libraries."""

    def run(self) -> None:
        super().run()
        subprocess.run(["make", "-s", "-C", str(ROOT / "native")], check=True)
        base = ROOT if self.inplace else Path(self.build_lib)
        target = base / "wascc" / "_providers"
        target.mkdir(parents=True, exist_ok=True)
        for lib in sorted((ROOT / "native" / "build").glob("libwascc_*")):
            shutil.copy2(lib, target / lib.name)


setup(
    cffi_modules=["wascc/_ffi_build.py:ffibuilder"],
    cmdclass={"build_ext": BuildWithNativeProviders},
)
