"""Signed provider archives (PAR): create, inspect, insert, load, and every refusal.

The binaries are the test provider built with gcc; the hosts load them for
real (in-process and isolated), and ``wascc up --require-signed-providers``
runs as a real subprocess.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import stat
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_daemon import Starter, actor_file, up, wait_for  # noqa: F401 (fixtures)

from wascc import (
    HashMismatch,
    Host,
    InvalidSignature,
    KeyPair,
    KeyType,
    ProviderArchiveError,
    TokenExpired,
    UntrustedIssuer,
)
from wascc.cli import main
from wascc.providers.archive import load_provider_archive
from wascc.providers.isolated import IsolatedProvider
from wascc.providers.native import load_native_provider
from wascc.standalone.resolve import resolve_provider
from wascc.wire import par
from wascc.wire.keys import write_seed
from wascc.wire.par import (
    create_archive,
    host_target,
    insert_target,
    read_archive,
    verify_archive,
    write_archive,
)

from conftest import NativeBuilder

NATIVETEST = "wascc:nativetest"
HERE = host_target()


@pytest.fixture(scope="module")
def service() -> KeyPair:
    return KeyPair.generate(KeyType.SERVICE)


@pytest.fixture
def make_par(
    account: KeyPair, service: KeyPair, build_native: NativeBuilder, tmp_path: Path
) -> Callable[..., Path]:
    """make_par(name, targets=None, capid=..., issuer=..., compress=...) -> archive path."""

    def _make(
        name: str = "test.par",
        *,
        targets: dict[str, bytes] | None = None,
        capid: str = NATIVETEST,
        issuer: KeyPair | None = None,
        **kw: object,
    ) -> Path:
        binaries = targets or {HERE: build_native("testprovider").read_bytes()}
        data = create_archive(
            binaries,
            issuer=issuer or account,
            subject=service,
            name="test provider",
            capability_id=capid,
            vendor="wascc tests",
            version="0.1",
            revision=2,
            compress=name.endswith(".gz"),
            **kw,  # type: ignore[arg-type]
        )
        path = tmp_path / name
        path.write_bytes(data)
        return path

    return _make


def trusting(account: KeyPair, **kw: object) -> Host:
    return Host(
        trusted_issuers=[account.public_key],
        health_interval=0,
        load_entry_points=False,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("name", ["test.par", "test.par.gz"])
def test_created_archive_loads_verified_and_serves(
    make_par: Callable[..., Path], account: KeyPair, service: KeyPair, name: str
) -> None:
    path = make_par(name)
    claims, binary = verify_archive(path.read_bytes(), trusted_issuers=[account.public_key])
    assert claims.subject == service.public_key and claims.capability_id == NATIVETEST
    assert set(claims.target_hashes) == {HERE} and binary.startswith(b"\x7fELF")
    with trusting(account) as host:
        provider = load_provider_archive(path, trusted_issuers=host.trusted_issuers)
        assert provider.archive == claims
        host.add_provider(provider)
        assert provider.handle_call("system", "Echo", b"signed") == b"signed"
        extracted = Path(provider.path)  # type: ignore[attr-defined]
        assert stat.S_IMODE(extracted.parent.stat().st_mode) == 0o700


def test_archive_loads_isolated_too(make_par: Callable[..., Path], account: KeyPair) -> None:
    provider = load_provider_archive(make_par(), trusted_issuers=[account.public_key], isolate=True)
    try:
        assert isinstance(provider, IsolatedProvider) and provider.archive is not None
        assert provider.handle_call("system", "Echo", b"x") == b"x"
    finally:
        provider.stop()


def test_tampered_binary_is_refused_before_it_is_loaded(
    make_par: Callable[..., Path], account: KeyPair, tmp_path: Path
) -> None:
    original = read_archive(make_par().read_bytes())
    binary = bytearray(original.binaries[HERE])
    binary[-1] ^= 0xFF
    tampered = tmp_path / "tampered.par"
    tampered.write_bytes(write_archive(original.token, {HERE: bytes(binary)}))
    with pytest.raises(HashMismatch, match=f"the {HERE} binary was modified after signing"):
        load_provider_archive(tampered, trusted_issuers=[account.public_key])
    # a binary added without signing is not covered by the claims either
    added = tmp_path / "added.par"
    added.write_bytes(
        write_archive(original.token, {**original.binaries, "riscv64-linux": b"\x7fELF"})
    )
    with pytest.raises(HashMismatch, match="claims list no hash for riscv64-linux"):
        verify_archive(added.read_bytes(), target="riscv64-linux")


def test_archive_with_only_another_target_says_what_it_holds(
    make_par: Callable[..., Path], account: KeyPair
) -> None:
    path = make_par(targets={"aarch64-freebsd": b"\x7fELF not for us"})
    with pytest.raises(ProviderArchiveError, match=f"no binary for {HERE} .*aarch64-freebsd"):
        load_provider_archive(path, trusted_issuers=[account.public_key])


def test_untrusted_issuer_and_bad_signature_are_refused(
    make_par: Callable[..., Path], account: KeyPair, tmp_path: Path
) -> None:
    stranger = KeyPair.generate(KeyType.ACCOUNT)
    path = make_par(issuer=stranger)
    with pytest.raises(UntrustedIssuer, match=f"issuer {stranger.public_key} is not trusted"):
        load_provider_archive(path, trusted_issuers=[account.public_key])
    archive = read_archive(make_par().read_bytes())
    head, body, sig = archive.token.split(".")
    forged = tmp_path / "forged.par"
    forged.write_bytes(write_archive(f"{head}.{body}.{sig[:-4]}AAAA", archive.binaries))
    with pytest.raises(InvalidSignature):
        load_provider_archive(forged, trusted_issuers=[account.public_key])


def test_expired_archive_is_refused(make_par: Callable[..., Path], account: KeyPair) -> None:
    path = make_par(expires=int(time.time()) - 10)
    with pytest.raises(TokenExpired):
        load_provider_archive(path, trusted_issuers=[account.public_key])


def test_binary_describing_another_capability_is_refused(
    make_par: Callable[..., Path], account: KeyPair
) -> None:
    path = make_par(capid="acme:other")
    refused = r"signed as acme:other, but .* as wascc:nativetest"
    with pytest.raises(ProviderArchiveError, match=refused):
        load_provider_archive(path, trusted_issuers=[account.public_key])


def test_bare_library_refused_when_signed_providers_are_required(
    account: KeyPair, build_native: NativeBuilder, make_par: Callable[..., Path]
) -> None:
    lib = str(build_native("testprovider"))
    with trusting(account, require_signed_providers=True) as host:
        with pytest.raises(ProviderArchiveError, match="requires signed provider archives"):
            resolve_provider(lib, host)
        # the host refuses it too, however it was loaded
        bare = load_native_provider(lib)
        try:
            with pytest.raises(ProviderArchiveError, match="bare native library"):
                host.add_provider(bare)
        finally:
            bare.stop()
        host.add_provider(resolve_provider(str(make_par()), host))
        assert NATIVETEST in {p.capability_id for p in host.providers()}


def test_insert_adds_a_target_and_keeps_the_archive_verifiable(
    make_par: Callable[..., Path], account: KeyPair
) -> None:
    path = make_par("multi.par.gz")
    data = insert_target(path.read_bytes(), "aarch64-linux", b"\x7fELF arm", issuer=account)
    assert data[:2] == b"\x1f\x8b"  # stays compressed
    claims, binary = verify_archive(data, target="aarch64-linux")
    assert binary == b"\x7fELF arm" and set(claims.target_hashes) == {HERE, "aarch64-linux"}
    verify_archive(data, target=HERE, trusted_issuers=[account.public_key])
    with pytest.raises(UntrustedIssuer):
        insert_target(data, "x86_64-macos", b"x", issuer=KeyPair.generate(KeyType.ACCOUNT))


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for info, body in members:
            tar.addfile(info, io.BytesIO(body) if info.isfile() else None)
    return out.getvalue()


def _member(name: str, body: bytes = b"x", kind: bytes = tarfile.REGTYPE) -> tuple:
    info = tarfile.TarInfo(name)
    info.size, info.type = (len(body) if kind == tarfile.REGTYPE else 0), kind
    info.linkname = "/etc/passwd" if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else ""
    return info, body


@pytest.mark.parametrize(
    "data, said",
    [
        (_tar(_member("../x86_64-linux.bin")), "not at the archive's root"),
        (_tar(_member("/claims.jwt")), "not at the archive's root"),
        (_tar(_member("sub/claims.jwt")), "not at the archive's root"),
        (_tar(_member("x86_64-linux.bin", kind=tarfile.SYMTYPE)), "is a link"),
        (_tar(_member("x86_64-linux.bin", kind=tarfile.LNKTYPE)), "is a link"),
        (_tar(_member("x86_64-linux.bin", kind=tarfile.CHRTYPE)), "not a regular file"),
        (_tar(_member("evil.sh")), "unexpected member 'evil.sh'"),
        (_tar(_member("claims.jwt"), _member("claims.jwt")), "appears twice"),
        (_tar(_member("x86_64-linux.bin")), "no claims.jwt"),
        (b"not a tar at all" * 40, "not a readable tar archive"),
        (gzip.compress(b"\0" * 100)[:-8], "not a readable tar archive"),
        (_tar(*[_member(f"t{i}-linux.bin") for i in range(70)]), "more than 64 members"),
    ],
)
def test_hostile_archives_are_refused_with_the_reason(data: bytes, said: str) -> None:
    with pytest.raises(ProviderArchiveError, match=said):
        read_archive(data, "hostile.par")


def test_oversized_members_and_bombs_stop_at_their_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    header = tarfile.TarInfo("x86_64-linux.bin")
    header.size = (8 << 30) - 1  # the header claims 8 GiB; three bytes follow
    huge = header.tobuf(tarfile.USTAR_FORMAT) + b"abc".ljust(1024, b"\0")
    with pytest.raises(ProviderArchiveError, match=r"is 8589934591 bytes, over its limit"):
        read_archive(huge, "huge.par")
    monkeypatch.setattr(par, "MAX_ARCHIVE_BYTES", 1 << 20)
    bomb = gzip.compress(_tar(_member("x86_64-linux.bin", b"\0" * (4 << 20))), mtime=0)
    assert len(bomb) < 10_000
    with pytest.raises(ProviderArchiveError, match="more than 1048576 bytes once decompressed"):
        read_archive(bomb, "bomb.par.gz")


def test_wascc_par_cli_create_inspect_insert_and_wascc_inspect(
    tmp_path: Path, build_native: NativeBuilder, account: KeyPair
) -> None:
    runner = CliRunner()
    seed = tmp_path / "acct.nk"
    write_seed(seed, account)
    out = tmp_path / "cli.par.gz"

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(main, list(args), env={"WASCC_KEYS": str(tmp_path / "keys")})
        assert result.exit_code == code, result.output + result.stderr
        return result.output

    said = run(
        "par", "create", "-n", "clitest", "--capid", NATIVETEST, "--vendor", "Acme",
        "--ver", "1.2", "--rev", "7", "--binary", str(build_native("testprovider")),
        "--issuer", str(seed), "-o", str(out),
    )  # fmt: skip
    assert f"wrote {out} ({NATIVETEST})" in said and (tmp_path / "keys").is_dir()
    shown = run("par", "inspect", str(out))
    assert "Capability  wascc:nativetest" in shown and "Status      valid" in shown
    assert f"{HERE}" in shown and "signed" in shown
    run("par", "insert", str(out), "--binary", str(seed), "--target", "aarch64-linux",
        "--issuer", str(seed))  # fmt: skip
    info = json.loads(run("inspect", "--json", str(out)))
    assert info["format"] == "provider archive" and info["wascap"]["rev"] == 7
    assert set(info["targets"]) == {HERE, "aarch64-linux"}
    assert all(t["signed"] for t in info["targets"].values())
    broken = tmp_path / "broken.par"
    broken.write_bytes(b"junk" * 200)
    assert "not a readable tar archive" in run("par", "inspect", str(broken), code=1)


def test_wascc_up_require_signed_providers_loads_archives_only(
    up: Starter,  # noqa: F811
    tmp_path: Path,
    build_native: NativeBuilder,
    make_par: Callable[..., Path],
) -> None:
    providers = tmp_path / "providers"
    providers.mkdir()
    shutil.copy(build_native("testprovider"), providers / "libbare.so")
    host = up("--providers-dir", str(providers), "--require-signed-providers")
    wait_for(lambda: "libbare.so" in host.output(), "the refusal in the log")
    assert "requires signed provider archives" in host.output()
    assert NATIVETEST not in {p["capability_id"] for p in host.inventory()["providers"]}
    shutil.copy(make_par("signed.par.gz"), providers / "signed.par.gz")
    wait_for(
        lambda: NATIVETEST in {p["capability_id"] for p in host.inventory()["providers"]},
        "the signed archive to load",
    )


def test_manifest_can_require_signed_providers(
    up: Starter,  # noqa: F811
    tmp_path: Path,
    build_native: NativeBuilder,
) -> None:
    manifest = tmp_path / "host.yaml"
    manifest.write_text(
        f"require_signed_providers: true\ncapabilities:\n  - path: {build_native('testprovider')}\n"
    )
    result = CliRunner().invoke(
        main, ["up", "--manifest", str(manifest), "--no-control", "--health-interval", "0"]
    )
    assert result.exit_code == 1
    assert "requires signed provider archives" in result.output + result.stderr
