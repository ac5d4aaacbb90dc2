"""Loading signed provider archives (PAR): verify, extract privately, then ``dlopen``.

:func:`load_provider_archive` reads a ``*.par`` / ``*.par.gz`` file and
checks it with :func:`wascc.wire.par.verify_archive` for this host's target
(signature, issuer against the trusted issuers, the binary's hash) before a
single byte of the binary is written anywhere; the binary is then written
to a private directory (0700, one per process, removed at exit) and loaded
in-process or isolated.  Once loaded, the provider must describe itself
with the capability id its claims name, or it is refused.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path

from wascc.errors import ProviderArchiveError, ProviderError
from wascc.providers.base import CapabilityProvider
from wascc.providers.isolated import IsolationSettings, load_isolated_provider
from wascc.providers.native import load_native_provider
from wascc.wire.capability import canonical_capability
from wascc.wire.par import MAX_ARCHIVE_BYTES, ProviderClaims, host_target, verify_archive

__all__ = ["ARCHIVE_SUFFIXES", "is_archive", "load_provider_archive"]

ARCHIVE_SUFFIXES = (".par", ".par.gz")

_dir_lock = threading.Lock()
_private: Path | None = None


def is_archive(path: str | os.PathLike[str]) -> bool:
    """Whether a file name is a provider archive's (``.par`` or ``.par.gz``)."""
    return str(path).endswith(ARCHIVE_SUFFIXES)


def _private_dir() -> Path:
    """This process's 0700 directory of extracted binaries (removed at exit)."""
    global _private
    with _dir_lock:
        if _private is None or not _private.is_dir():
            _private = Path(tempfile.mkdtemp(prefix="wascc-par-"))  # mode 0700
            atexit.register(shutil.rmtree, _private, True)
        return _private


def _extract(claims: ProviderClaims, target: str, binary: bytes) -> Path:
    digest = claims.target_hashes[target]
    file = _private_dir() / f"{claims.subject[:16]}-{digest[:20]}-{target}.so"
    if not file.exists():
        tmp = file.with_name(f".{file.name}.{os.getpid()}.{threading.get_ident()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o500)
        with os.fdopen(fd, "wb") as f:
            f.write(binary)
        tmp.replace(file)
    return file


def load_provider_archive(
    path: str | os.PathLike[str],
    *,
    trusted_issuers: Iterable[str] | None = None,
    isolate: bool = False,
    isolation: IsolationSettings | None = None,
    target: str | None = None,
) -> CapabilityProvider:
    """Verify a provider archive and load its binary for this host (or ``target``).

    ``trusted_issuers`` are the account keys accepted (None: any valid
    signature).  Every refusal is a :class:`~wascc.errors.WasccError` that
    names the archive: :class:`ProviderArchiveError` for the archive itself,
    a ``ClaimsError`` for its signature, issuer, hash or time window.
    """
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > MAX_ARCHIVE_BYTES:
            raise ProviderArchiveError(f"{file} is {size} bytes, over {MAX_ARCHIVE_BYTES}")
        data = file.read_bytes()
    except OSError as exc:
        raise ProviderError(f"provider archive {file}: cannot read it: {exc}") from exc
    want = target or host_target()
    claims, binary = verify_archive(
        data, target=want, trusted_issuers=trusted_issuers, label=f"provider archive {file.name}"
    )
    library = _extract(claims, want, binary)
    provider: CapabilityProvider = (
        load_isolated_provider(library, isolation) if isolate else load_native_provider(library)
    )
    described = canonical_capability(provider.descriptor().id)
    if described != canonical_capability(claims.capability_id):
        provider.stop()
        raise ProviderArchiveError(
            f"provider archive {file.name} is signed as {claims.capability_id}, but its "
            f"binary describes itself as {described}"
        )
    provider.archive = claims
    return provider
