"""The tooling commands (`wascc keys`, `claims`, `inspect`, `call`) through click's CliRunner."""

from __future__ import annotations

import base64
import json
import stat
import time
from pathlib import Path
from typing import Any

import click
import pytest
import wasmtime
from click.testing import CliRunner, Result

from wascc import Host, KeyPair, KeyType
from wascc.cli import main
from wascc.cli.tools import _jsonable, describe_type
from wascc.wire import wasm
from wascc.wire.claims import module_hash
from wascc.wire.codec import pack

from conftest import NativeBuilder, Signer, build_test_actor

UNKNOWN_IMPORT_WAT = """
(module
  (import "env" "mystery" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32) i32.const 1))
"""

WASI_WAT = """
(module
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "__guest_call") (param i32 i32) (result i32) i32.const 1))
"""


def run(*args: str, input: bytes | str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result


def error(result: Result, *fragments: str) -> str:
    """Assert the error convention: exit 1, one line on stderr starting with `error:`."""
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def write_seed(path: Path, kind: KeyType) -> KeyPair:
    key = KeyPair.generate(kind)
    path.write_text(key.seed + "\n")
    return key


@pytest.fixture(autouse=True)
def _keys_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Seeds the commands generate go to a temporary $WASCC_KEYS, never ~/.wascc."""
    keys_dir = tmp_path / "keys"
    monkeypatch.setenv("WASCC_KEYS", str(keys_dir))
    return keys_dir


@pytest.fixture
def signed_actor(tmp_path: Path, sign: Signer) -> tuple[Path, KeyPair]:
    """The test actor, signed by the session account, written to a file."""
    signed, module = sign(build_test_actor(), name="cli-test", caps=["wascc:extras"])
    path = tmp_path / "test_s.wasm"
    path.write_bytes(signed)
    return path, module


@pytest.fixture
def unsigned_actor(tmp_path: Path) -> Path:
    path = tmp_path / "test.wasm"
    path.write_bytes(build_test_actor())
    return path


# ---- help ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["keys"],
        ["keys", "gen"],
        ["claims"],
        ["claims", "sign"],
        ["claims", "inspect"],
        ["inspect"],
        ["call"],
    ],
)
def test_every_help_shows_an_example(command: list[str]) -> None:
    result = ok(run(*command, "--help"))
    assert "Example:\n    wascc " in result.stdout


# ---- keys gen --------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(KeyType))
def test_keys_gen_prints_public_key_and_seed(kind: KeyType) -> None:
    lines = ok(run("keys", "gen", kind.name.lower())).stdout.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("public key: ")
    assert lines[1].startswith("seed:       S")
    public, seed = lines[0].split()[-1], lines[1].split()[-1]
    assert len(public) == 56 and public[0] == kind.letter
    key = KeyPair.from_seed(seed)
    assert key.kind is kind and key.public_key == public


def test_keys_gen_output_is_0600_and_never_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "acct.nk"
    public = ok(run("keys", "gen", "account", "-o", str(target))).stdout.strip()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert KeyPair.from_seed(target.read_text().strip()).public_key == public
    before = target.read_text()
    error(run("keys", "gen", "module", "-o", str(target)), str(target), "refusing to overwrite")
    assert target.read_text() == before


def test_keys_gen_unknown_type_is_a_usage_error() -> None:
    assert run("keys", "gen", "wizard").exit_code == 2


# ---- claims sign / inspect ---------------------------------------------------------


def inspect_json(path: Path) -> dict[str, Any]:
    """`claims inspect --json`; it exits 1 when the claims do not verify."""
    result = run("claims", "inspect", "--json", str(path))
    data: dict[str, Any] = json.loads(result.stdout)
    assert result.exit_code == (0 if data["status"] == "valid" else 1), result.stderr
    return data


def test_claims_sign_with_given_seeds(tmp_path: Path, unsigned_actor: Path) -> None:
    account = write_seed(tmp_path / "account.nk", KeyType.ACCOUNT)
    module = write_seed(tmp_path / "module.nk", KeyType.MODULE)
    out = tmp_path / "out.wasm"
    now = int(time.time())
    flags = "-c wascc:http_server -c wascc:extras -t web -t demo --ver 1.2.3 --rev 7"
    flags += " --expires-in-days 2 --not-before-days -1 --provider"
    seeds = ["--issuer", str(tmp_path / "account.nk"), "--subject", str(tmp_path / "module.nk")]
    args = ["claims", "sign", str(unsigned_actor), "-n", "echo", *flags.split(), *seeds]
    result = ok(run(*args, "-o", str(out)))
    assert result.stdout.strip() == (
        f"signed {out} as {module.public_key} (issuer {account.public_key})"
    )
    assert result.stderr == ""  # no key was generated
    claims = inspect_json(out)
    assert claims["iss"] == account.public_key
    assert claims["sub"] == module.public_key
    assert claims["status"] == "valid"
    wascap = claims["wascap"]
    assert wascap["name"] == "echo"
    assert wascap["caps"] == ["wascc:http_server", "wascc:extras"]
    assert wascap["tags"] == ["web", "demo"]
    assert (wascap["ver"], wascap["rev"], wascap["prov"]) == ("1.2.3", 7, True)
    assert abs(claims["exp"] - (now + 2 * 86400)) < 60
    assert abs(claims["nbf"] - (now - 86400)) < 60


def test_claims_sign_generates_keys_into_wascc_keys(
    tmp_path: Path, unsigned_actor: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys_dir = tmp_path / "keys"
    monkeypatch.setenv("WASCC_KEYS", str(keys_dir))
    result = ok(run("claims", "sign", str(unsigned_actor), "-n", "kv"))
    target = unsigned_actor.with_name("test_s.wasm")
    assert target.exists()
    account_file, module_file = keys_dir / "kv_account.nk", keys_dir / "kv_module.nk"
    for path in (account_file, module_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    account = KeyPair.from_seed(account_file.read_text().strip())
    module = KeyPair.from_seed(module_file.read_text().strip())
    assert result.stderr.count("generated ") == 2
    claims = inspect_json(target)
    assert (claims["iss"], claims["sub"]) == (account.public_key, module.public_key)
    assert "caps" not in claims["wascap"] and "exp" not in claims and "nbf" not in claims
    # the next signing reuses them and generates nothing
    again = ok(run("claims", "sign", str(unsigned_actor), "-n", "kv", "-o", str(tmp_path / "b")))
    assert again.stderr == ""
    assert inspect_json(tmp_path / "b")["sub"] == module.public_key


def test_claims_sign_refuses_a_file_that_is_not_wasm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WASCC_KEYS", str(tmp_path / "keys"))
    text = tmp_path / "notes.txt"
    text.write_text("hello, not wasm\n")
    error(run("claims", "sign", str(text), "-n", "x"), "notes.txt")
    assert not (tmp_path / "keys").exists()  # refused before any key was generated


def test_claims_sign_refuses_a_seed_of_the_wrong_type(tmp_path: Path, unsigned_actor: Path) -> None:
    write_seed(tmp_path / "module.nk", KeyType.MODULE)
    error(
        run(
            "claims",
            "sign",
            str(unsigned_actor),
            "-n",
            "x",
            "--issuer",
            str(tmp_path / "module.nk"),
        ),
        "module.nk holds a module seed, not an account seed",
    )
    assert not (tmp_path / "keys").exists()


def test_claims_sign_refuses_a_file_that_is_not_a_seed(
    tmp_path: Path, unsigned_actor: Path
) -> None:
    (tmp_path / "junk.nk").write_text("not a seed\n")
    error(
        run(
            "claims", "sign", str(unsigned_actor), "-n", "x", "--subject", str(tmp_path / "junk.nk")
        ),
        "junk.nk",
    )
    assert not (tmp_path / "keys").exists()  # the account seed was not generated either


def test_claims_sign_missing_module(tmp_path: Path) -> None:
    error(run("claims", "sign", str(tmp_path / "gone.wasm"), "-n", "x"), "gone.wasm")


def test_claims_inspect_table(signed_actor: tuple[Path, KeyPair], account: KeyPair) -> None:
    path, module = signed_actor
    out = ok(run("claims", "inspect", str(path))).stdout
    lines = out.splitlines()
    assert lines[0] == str(path)
    fields = dict(line.strip().split(None, 1) for line in lines[1:] if "  " in line.strip())
    assert "Name          cli-test" in out
    assert f"Module        {module.public_key}" in out
    assert f"Account       {account.public_key}" in out
    assert "Capabilities  wascc:extras" in out
    assert "Expires       never" in out
    assert "Status        valid" in out
    assert fields  # every row is `Key  value`


def test_claims_inspect_json(signed_actor: tuple[Path, KeyPair]) -> None:
    path, module = signed_actor
    claims = inspect_json(path)
    assert claims["sub"] == module.public_key
    assert claims["wascap"]["caps"] == ["wascc:extras"]
    assert claims["status"] == "valid"


def test_claims_inspect_unsigned(unsigned_actor: Path) -> None:
    error(run("claims", "inspect", str(unsigned_actor)), "is not signed")


def test_claims_inspect_tampered_shows_invalid(signed_actor: tuple[Path, KeyPair]) -> None:
    path, _ = signed_actor
    data = path.read_bytes()
    assert data.count(b"VERSION1") == 1
    path.write_bytes(data.replace(b"VERSION1", b"VERSION2"))
    shown = run("claims", "inspect", str(path))
    assert shown.exit_code == 1  # printed, and the exit status says it is invalid
    assert "Status        INVALID: " in shown.stdout and "modified after signing" in shown.stdout
    assert inspect_json(path)["status"].startswith("INVALID: ")


def test_claims_inspect_expired(tmp_path: Path, sign: Signer) -> None:
    signed, _ = sign(build_test_actor(), expires=int(time.time()) - 10)
    path = tmp_path / "old.wasm"
    path.write_bytes(signed)
    assert "expired" in inspect_json(path)["status"]


# ---- hostile claims: one line, never a traceback ----------------------------------


def _seg(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _hostile_module(kind: str, account: KeyPair) -> bytes:
    """The test actor carrying a hostile `jwt` section of the given kind."""
    bare = build_test_actor()
    header = _seg(b'{"typ":"jwt","alg":"Ed25519"}')
    if kind == "deep":  # no key needed
        body = b"[" * 100_000
    elif kind == "digits":  # no key needed
        body = b'{"iat": ' + b"9" * 5000 + b"}"
    else:  # signed by a real account, one time field out of range
        field, value = kind.split("=")
        claims = {
            "jti": "x",
            "iat": 1_600_000_000,
            "iss": account.public_key,
            "sub": KeyPair.generate(KeyType.MODULE).public_key,
            "wascap": {"name": "hostile", "hash": module_hash(bare), "prov": False},
            field: int(value),
        }
        body = json.dumps(claims).encode()
    first = f"{header}.{_seg(body)}"
    token = f"{first}.{_seg(account.sign(first.encode()))}"
    return wasm.append_custom_section(bare, "jwt", token.encode())


HOSTILE = ["deep", "digits", f"nbf={10**20}", f"exp={-(2**63)}", f"iat={10**20}", f"exp={2**63}"]


@pytest.fixture(params=HOSTILE)
def hostile(request: pytest.FixtureRequest, tmp_path: Path, account: KeyPair) -> Path:
    path = tmp_path / "hostile.wasm"
    path.write_bytes(_hostile_module(request.param, account))
    return path


def test_claims_inspect_of_hostile_claims_is_one_line(hostile: Path) -> None:
    result = run("claims", "inspect", str(hostile))
    error(result, str(hostile), "claim")
    assert "Traceback" not in result.output


def test_call_of_hostile_claims_is_one_line(hostile: Path) -> None:
    result = run("call", str(hostile), "Echo", "--raw", "-d", "x")
    error(result, "hostile.wasm", "claim")
    assert "Traceback" not in result.output


def test_inspect_of_hostile_claims_describes_the_module_as_invalid(hostile: Path) -> None:
    result = ok(run("inspect", str(hostile)))
    assert "INVALID: " in result.stdout
    assert result.stdout.rstrip().endswith("waPC actor: valid")
    info = json.loads(ok(run("inspect", "--json", str(hostile))).stdout)
    assert info["claims_status"].startswith("INVALID: ")


# ---- inspect ------------------------------------------------------------------


def test_inspect_signed_actor(signed_actor: tuple[Path, KeyPair]) -> None:
    path, module = signed_actor
    out = ok(run("inspect", str(path))).stdout
    assert out.startswith(f"{path}: WebAssembly module, {path.stat().st_size} bytes\n")
    assert "Name          cli-test" in out
    assert f"Module        {module.public_key}" in out
    assert "Status        valid" in out
    assert "Imports (9)" in out
    lines = [line.split() for line in out.splitlines()]
    assert ["wapc::__host_call", "(i32", "x8)", "->", "i32"] in lines
    assert ["wapc::__guest_request", "(i32", "x2)"] in lines
    assert ["wapc::__host_response_len", "()", "->", "i32"] in lines
    assert ["__guest_call", "(i32", "x2)", "->", "i32"] in lines
    assert ["memory", "memory", "min=1", "(pages)"] in lines
    assert out.rstrip().endswith("waPC actor: valid")


def test_inspect_json(signed_actor: tuple[Path, KeyPair]) -> None:
    path, module = signed_actor
    info = json.loads(ok(run("inspect", "--json", str(path))).stdout)
    assert info["format"] == "wasm"
    assert info["claims_status"] == "valid"
    assert info["claims"]["sub"] == module.public_key
    assert {
        "module": "wapc",
        "name": "__host_call",
        "kind": "func",
        "type": "(i32 x8) -> i32",
    } in info["imports"]
    assert {"name": "memory", "kind": "memory", "type": "memory min=1 (pages)"} in info["exports"]
    assert info["wapc"] == {"valid": True, "role": "actor", "error": None}


def test_inspect_unknown_import_is_not_a_valid_actor(tmp_path: Path) -> None:
    path = tmp_path / "odd.wasm"
    path.write_bytes(wasmtime.wat2wasm(UNKNOWN_IMPORT_WAT))
    out = ok(run("inspect", str(path))).stdout
    assert "(none: the module is not signed)" in out
    assert "env::mystery" in out and "(i32) -> i32" in out
    verdict = out.splitlines()[-1]
    assert verdict.startswith("waPC actor: NOT VALID: ")
    assert "env::mystery" in verdict and "does not provide" in verdict
    info = json.loads(ok(run("inspect", "--json", str(path))).stdout)
    assert info["claims"] is None and info["claims_status"] == "unsigned"
    assert info["wapc"]["valid"] is False and "env::mystery" in info["wapc"]["error"]


def test_inspect_portable_provider_may_use_wasi(tmp_path: Path, sign: Signer) -> None:
    wasm = wasmtime.wat2wasm(WASI_WAT)
    plain = tmp_path / "plain.wasm"
    plain.write_bytes(wasm)
    assert "WASI is not available" in ok(run("inspect", str(plain))).stdout.splitlines()[-1]
    signed, _ = sign(wasm, provider=True)
    prov = tmp_path / "prov.wasm"
    prov.write_bytes(signed)
    assert ok(run("inspect", str(prov))).stdout.splitlines()[-1] == "waPC portable provider: valid"


def test_inspect_tampered_module_still_described(signed_actor: tuple[Path, KeyPair]) -> None:
    path, _ = signed_actor
    path.write_bytes(path.read_bytes().replace(b"VERSION1", b"VERSION2"))
    out = ok(run("inspect", str(path))).stdout
    assert "Status        INVALID: " in out
    assert out.rstrip().endswith("waPC actor: valid")


def test_inspect_native_provider(build_native: NativeBuilder) -> None:
    lib = build_native("testprovider")
    out = ok(run("inspect", str(lib))).stdout
    assert out.startswith(f"{lib}: native capability provider\n")
    assert "Id           wascc:nativetest" in out
    assert "Name         native test provider" in out
    assert "Version      0.1 (rev 1)" in out
    assert "a deliberately configurable provider" in out
    assert "Operations (6)" in out
    lines = [line.split(None, 2) for line in out.splitlines()]
    assert ["Echo", "to_provider", "returns the payload"] in lines
    assert ["Fail", "to_provider", "always fails"] in lines
    info = json.loads(ok(run("inspect", "--json", str(lib))).stdout)
    assert info["format"] == "native"
    assert (info["id"], info["version"], info["revision"]) == ("wascc:nativetest", "0.1", 1)
    assert [op["name"] for op in info["operations"]] == [
        "Echo",
        "Fail",
        "Block",
        "Flood",
        "Crash",
        "Pid",
    ]
    assert info["operations"][0] == {
        "name": "Echo",
        "direction": "to_provider",
        "doctext": "returns the payload",
    }


def test_inspect_shared_object_that_is_not_a_provider(tmp_path: Path) -> None:
    fake = tmp_path / "libfake.so"
    fake.write_text("not an ELF file")
    error(run("inspect", str(fake)), "libfake.so", "not a shared object")


def test_inspect_text_file(tmp_path: Path) -> None:
    text = tmp_path / "readme.txt"
    text.write_text("hello\n")
    error(run("inspect", str(text)), "readme.txt", "neither a WebAssembly module")
    wat = tmp_path / "actor.wat"
    wat.write_text(UNKNOWN_IMPORT_WAT)
    error(run("inspect", str(wat)), "actor.wat", "compile it to binary")


def test_inspect_missing_file(tmp_path: Path) -> None:
    error(run("inspect", str(tmp_path / "nope.wasm")), "nope.wasm", "no such file")
    error(run("inspect", str(tmp_path)), "is a directory")


def test_inspect_broken_wasm(tmp_path: Path) -> None:
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(b"\0asm\x01\0\0\0\x01\xff\xff")
    error(run("inspect", str(broken)), "broken.wasm")


def test_describe_type_formats() -> None:
    module = wasmtime.wat2wasm(
        """(module
             (memory (export "m") 1 3)
             (global (export "g") (mut i64) (i64.const 0))
             (global (export "c") f32 (f32.const 0))
             (global (export "v") v128 (v128.const i64x2 0 0))
             (table (export "t") 2 funcref)
             (func (export "f") (param i32 i32 i64) (result i32 f64)
               i32.const 0 f64.const 0)
             (func (export "s") (param v128) (result v128) local.get 0))"""
    )
    shown = {name: describe_type(e.type) for name, e in wasm.interface(module).exports.items()}
    assert shown == {
        "m": ("memory", "memory min=1 max=3 (pages)"),
        "g": ("global", "global mut i64"),
        "c": ("global", "global f32"),
        "v": ("global", "global v128"),
        "t": ("table", "table funcref min=2"),
        "f": ("func", "(i32 x2, i64) -> (i32, f64)"),
        "s": ("func", "(v128) -> v128"),
    }


# ---- call ----------------------------------------------------------------------


def test_call_raw_echo(signed_actor: tuple[Path, KeyPair]) -> None:
    path, _ = signed_actor
    result = ok(run("call", str(path), "Echo", "--raw", "--data", "hello"))
    assert result.stdout_bytes == b"hello"


def test_call_json_goes_through_msgpack(signed_actor: tuple[Path, KeyPair]) -> None:
    path, _ = signed_actor
    result = ok(run("call", str(path), "Echo", "--data", '{"a": 1}'))
    assert json.loads(result.stdout) == {"a": 1}
    # the payload really was msgpack: the raw echo of the same map is its encoding
    raw = tuple(str(x) for x in ("call", path, "Echo", "--raw", "--data", "@-"))
    assert ok(run(*raw, input=pack({"a": 1}))).stdout_bytes == pack({"a": 1})


def test_call_data_from_files(signed_actor: tuple[Path, KeyPair], tmp_path: Path) -> None:
    path, _ = signed_actor
    request = tmp_path / "req.json"
    request.write_text('{"method": "GET", "path": "/x", "body": "hi"}')
    result = ok(run("call", str(path), "Echo", "--data", f"@{request}"))
    assert json.loads(result.stdout) == {"method": "GET", "path": "/x", "body": "hi"}
    blob = tmp_path / "blob.bin"
    blob.write_bytes(b"\x00\xffbinary")
    raw = ok(run("call", str(path), "Echo", "--raw", "--data", f"@{blob}"))
    assert raw.stdout_bytes == b"\x00\xffbinary"
    stdin = ok(run("call", str(path), "Echo", "--data", "@-", input='[1, "two", null]'))
    assert json.loads(stdin.stdout) == [1, "two", None]


def test_call_without_data_sends_nothing(signed_actor: tuple[Path, KeyPair]) -> None:
    path, _ = signed_actor
    assert ok(run("call", str(path), "Echo", "--raw")).stdout_bytes == b""
    assert ok(run("call", str(path), "Echo")).stdout == ""


def test_call_reply_not_msgpack(signed_actor: tuple[Path, KeyPair]) -> None:
    path, _ = signed_actor
    # 0xc1 is never valid msgpack; without --raw the reply cannot be shown as JSON
    error(run("call", str(path), "Echo", "--data", "@-", input=b"\xc1"), "--raw")


def test_call_bad_json(signed_actor: tuple[Path, KeyPair], tmp_path: Path) -> None:
    path, _ = signed_actor
    error(run("call", str(path), "Echo", "--data", "hello"), "--data is not JSON", "--raw")
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\xff\xfe")
    error(run("call", str(path), "Echo", "--data", f"@{bad}"), "not UTF-8")
    error(run("call", str(path), "Echo", "--data", f"@{tmp_path / 'none.json'}"), "none.json")


def test_call_guest_error(signed_actor: tuple[Path, KeyPair]) -> None:
    path, _ = signed_actor
    line = error(run("call", str(path), "Fail", "--raw", "--data", "it broke\non two lines"))
    assert "answered Fail with an error" in line
    assert "it broke on two lines" in line


def test_call_unknown_operation(signed_actor: tuple[Path, KeyPair]) -> None:
    path, _ = signed_actor
    error(run("call", str(path), "Nope"), "unknown operation")


def test_call_unsigned_refused_unless_allowed(unsigned_actor: Path) -> None:
    error(run("call", str(unsigned_actor), "Echo", "--raw", "-d", "x"), "test.wasm", "not signed")
    result = ok(run("call", str(unsigned_actor), "Echo", "--allow-unsigned", "--raw", "-d", "x"))
    assert result.stdout_bytes == b"x"


def test_call_trusted_issuers(signed_actor: tuple[Path, KeyPair], account: KeyPair) -> None:
    path, _ = signed_actor
    other = KeyPair.generate(KeyType.ACCOUNT).public_key
    error(
        run("call", str(path), "Echo", "--trusted-issuer", other, "--raw", "-d", "x"),
        "not trusted",
    )
    both = ("--trusted-issuer", other, "--trusted-issuer", account.public_key)
    assert ok(run("call", str(path), "Echo", *both, "--raw", "-d", "x")).stdout_bytes == b"x"
    error(run("call", str(path), "Echo", "--trusted-issuer", "AXYZ"), "--trusted-issuer AXYZ")


def test_call_missing_file(tmp_path: Path) -> None:
    error(run("call", str(tmp_path / "gone.wasm"), "Echo"), "gone.wasm", "no such actor file")


def test_call_not_wasm(tmp_path: Path) -> None:
    text = tmp_path / "x.txt"
    text.write_text("nope")
    error(run("call", str(text), "Echo", "--allow-unsigned"), "x.txt")


# ---- call --control ----------------------------------------------------------------


def test_call_control_refuses_file_options(tmp_path: Path) -> None:
    key = KeyPair.generate(KeyType.MODULE).public_key
    sock = str(tmp_path / "h.sock")
    error(run("call", key, "Echo", "--allow-unsigned", "--control", sock), "not to --control")
    error(run("call", key, "Echo", "--control", sock), "cannot reach", sock)


# ---- helpers -----------------------------------------------------------------------


def test_jsonable_bytes_and_keys() -> None:
    assert _jsonable({b"k": b"text", "bin": b"\xff\x00", 1: [b"a", (2, 3)]}) == {
        "k": "text",
        "bin": {"base64": "/wA="},
        1: ["a", [2, 3]],
    }


def test_click_runner_separates_stderr() -> None:
    # the error helper relies on it (click >= 8.2 always captures stderr apart)
    result = CliRunner().invoke(click.Command("x", callback=lambda: click.echo("e", err=True)))
    assert (result.stdout, result.stderr) == ("", "e\n")


def test_call_control_through_a_real_socket(
    tmp_path: Path, signed_actor: tuple[Path, KeyPair], host: Host
) -> None:
    """The real client (wascc.standalone.control.request) against a ControlServer on a socket."""
    from wascc.standalone import control

    path, module = signed_actor
    key = host.add_actor(path)
    assert key == module.public_key

    def call(m: dict[str, Any]) -> dict[str, Any]:
        payload = base64.b64decode(m.get("payload_b64") or "")
        reply = host.call_actor(m["actor"], m["operation"], payload)
        return {"reply_b64": base64.b64encode(reply).decode()}

    sock = tmp_path / "c.sock"
    server = control.ControlServer(sock, {"call": call})
    server.start()
    try:
        echoed = ok(run("call", key, "Echo", "--raw", "-d", "hi", "--control", str(sock)))
        assert echoed.stdout_bytes == b"hi"
        as_json = ok(run("call", key, "Echo", "-d", '{"path": "/x"}', "--control", str(sock)))
        assert json.loads(as_json.stdout) == {"path": "/x"}
        error(run("call", key, "Fail", "--raw", "-d", "nope", "--control", str(sock)), "nope")
        other = KeyPair.generate(KeyType.MODULE).public_key
        error(run("call", other, "Echo", "--control", str(sock)), other)
        error(run("call", key, "Echo", "--control", str(sock), "-d", "{"), "--data is not JSON")
    finally:
        server.stop()
    error(run("call", key, "Echo", "--control", str(sock)), "cannot reach", str(sock))
