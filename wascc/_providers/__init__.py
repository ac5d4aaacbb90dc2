"""Where the first-party native providers (built from native/) are installed."""

from __future__ import annotations

from pathlib import Path

__all__ = ["NATIVE_SUFFIXES", "child_program", "libraries", "library"]

#: What a native provider library's file name ends with (Linux, macOS).
NATIVE_SUFFIXES = (".so", ".dylib")

_HERE = Path(__file__).resolve().parent


def libraries() -> dict[str, Path]:
    """Short name (``keyvalue``) -> path of each installed first-party library."""
    found: dict[str, Path] = {}
    for path in sorted(_HERE.glob("libwascc_*")):
        if path.suffix in NATIVE_SUFFIXES:
            found[path.stem.removeprefix("libwascc_")] = path
    return found


def library(name: str) -> Path:
    """The path of one first-party library, e.g. ``library("keyvalue")``."""
    libs = libraries()
    if name not in libs:
        raise FileNotFoundError(
            f"no first-party native provider {name!r} is installed "
            f"(have: {', '.join(libs) or 'none'}); reinstall wascc to build native/"
        )
    return libs[name]


def child_program() -> Path | None:
    """The C child of isolated providers (``native/host/wascc_provider_child.c``), if built."""
    path = _HERE / "wascc-provider-child"
    return path if path.is_file() and path.stat().st_mode & 0o111 else None
