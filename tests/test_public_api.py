"""The public surface is exactly what ``wascc.__all__`` says, and every error is a WasccError."""

from __future__ import annotations

import inspect

import wascc
from wascc import errors


def test_all_is_the_public_surface() -> None:
    public = {
        name
        for name, obj in vars(wascc).items()
        if not name.startswith("_") and not inspect.ismodule(obj) and name != "annotations"
    }
    assert set(wascc.__all__) == public | {"__version__"}
    assert len(wascc.__all__) == len(set(wascc.__all__))


def test_every_error_derives_from_wascc_error() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.WasccError), name
        assert getattr(wascc, name) is cls, f"{name} is not exported from wascc"


def test_errors_match_the_builtin_they_mean() -> None:
    assert issubclass(errors.InvocationTimeout, TimeoutError)
    assert issubclass(errors.Unauthorized, PermissionError)
    assert issubclass(errors.NotFound, LookupError)
    assert issubclass(errors.MemoryLimitExceeded, MemoryError)
    assert issubclass(errors.CodecError, ValueError)
