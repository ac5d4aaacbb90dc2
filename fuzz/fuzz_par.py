"""Provider archives (PAR): the tar/gzip layer and the signed claims, as a host reads them."""

from __future__ import annotations

import gzip
import io
import random
import tarfile

from wascc.wire.keys import KeyPair, KeyType
from wascc.wire.par import create_archive, verify_archive

from fuzz.engine import Target

_ACCOUNT = KeyPair.generate(KeyType.ACCOUNT)
_SERVICE = KeyPair.generate(KeyType.SERVICE)
_BINARY = b"\x7fELF" + bytes(range(256)) * 4
_PLAIN = create_archive(
    {"x86_64-linux": _BINARY, "aarch64-linux": _BINARY[::-1]},
    issuer=_ACCOUNT,
    subject=_SERVICE,
    name="fuzzed",
    capability_id="acme:fuzz",
    vendor="acme",
    version="1.0",
    revision=3,
)


def run(data: bytes) -> None:
    verify_archive(data, target="x86_64-linux", trusted_issuers=[_ACCOUNT.public_key])


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, body in members:
            tar.addfile(info, io.BytesIO(body) if info.isfile() else None)
    return out.getvalue()


def generate(rng: random.Random) -> bytes:
    """Hostile tars: paths, links, devices, duplicates, many members, odd sizes, gzip."""
    kind = rng.randrange(7)
    if kind == 0:
        info = tarfile.TarInfo(rng.choice(["../x86_64-linux.bin", "/claims.jwt", "a/claims.jwt"]))
        info.size = 3
        data = _tar([(info, b"abc")])
    elif kind == 1:
        info = tarfile.TarInfo("x86_64-linux.bin")
        info.type = rng.choice(
            [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE]
        )
        info.linkname = "/etc/passwd"
        data = _tar([(info, b"")])
    elif kind == 2:
        body = b"x" * rng.randrange(4)
        info = tarfile.TarInfo("claims.jwt")
        info.size = len(body)
        data = _tar([(info, body), (info, body)])
    elif kind == 3:
        members = []
        for i in range(rng.randrange(60, 80)):
            info = tarfile.TarInfo(f"t{i}-linux.bin")
            members.append((info, b""))
        data = _tar(members)
    elif kind == 4:
        header = tarfile.TarInfo(rng.choice(["claims.jwt", "x86_64-linux.bin"]))
        header.size = rng.choice([(8 << 30) - 1, (256 << 20) + 1, 300_000, 5])
        data = header.tobuf(tarfile.USTAR_FORMAT) + b"abc".ljust(1024, b"\0")
    elif kind == 5:
        data = _PLAIN[: rng.randrange(len(_PLAIN))]
    else:
        data = _PLAIN
    return gzip.compress(data, mtime=0) if rng.random() < 0.3 else data


TARGET = Target(
    name="par",
    run=run,
    seeds=[_PLAIN, gzip.compress(_PLAIN, mtime=0)],
    generate=generate,
    deadline=5.0,
    max_size=1 << 18,
)
