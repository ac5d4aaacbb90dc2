"""wascc:logging, the native C provider (native/providers/logging), driven by real actors."""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wascc import BindingError, GuestError, Host
from wascc._providers import library
from wascc.errors import ProviderCallError
from wascc.providers.native import NativeProvider, load_native_provider
from wascc.wire.codec import CapabilityConfiguration, HealthResponse, WriteLogRequest, pack

from conftest import call_payload

LOGGING = "wascc:logging"
LEVELS = ["OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE"]
StartActor = Callable[..., str]


@pytest.fixture
def provider(host: Host) -> NativeProvider:
    p = load_native_provider(library("logging"))
    host.add_provider(p)
    return p


@pytest.fixture
def actor(start_actor: StartActor, provider: NativeProvider) -> str:
    return start_actor(caps=[LOGGING], name="logger")


def write_log(host: Host, key: str, level: int, body: str) -> bytes:
    payload = WriteLogRequest(level=level, body=body).encode()
    return host.call_actor(key, "Call", call_payload(LOGGING, "WriteLog", payload))


def line_pattern(level: str, key: str, body: str) -> re.Pattern[str]:
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
    return re.compile(rf"{stamp} {level} {key} {re.escape(body)}")


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_lines_land_in_the_file_with_level_actor_and_body(
    host: Host, actor: str, tmp_path: Path
) -> None:
    log = tmp_path / "actor.log"
    host.set_binding(actor, LOGGING, values={"FILE": str(log)})
    before = datetime.now(UTC)
    assert write_log(host, actor, 1, "disk on fire") == b""
    write_log(host, actor, 2, "disk warm")
    write_log(host, actor, 3, "hello, world")
    got = lines(log)
    assert len(got) == 3
    for line, (level, body) in zip(
        got,
        [("ERROR", "disk on fire"), ("WARN", "disk warm"), ("INFO", "hello, world")],
        strict=True,
    ):
        assert line_pattern(level, actor, body).fullmatch(line), line
        stamp = datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ")
        assert abs(stamp.replace(tzinfo=UTC) - before) < timedelta(seconds=30)
    assert oct(log.stat().st_mode & 0o777) == oct(0o640 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_file_is_appended_to_not_truncated(host: Host, actor: str, tmp_path: Path) -> None:
    log = tmp_path / "existing.log"
    log.write_text("earlier line\n")
    host.set_binding(actor, LOGGING, values={"FILE": str(log)})
    write_log(host, actor, 3, "later")
    got = lines(log)
    assert got[0] == "earlier line"
    assert line_pattern("INFO", actor, "later").fullmatch(got[1])


@pytest.mark.parametrize(
    ("level", "written"),
    [
        (None, ["ERROR", "WARN", "INFO"]),  # the default is INFO
        ("warn", ["ERROR", "WARN"]),
        ("Warning", ["ERROR", "WARN"]),
        ("ERROR", ["ERROR"]),
        ("5", ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]),
        ("TRACE", ["ERROR", "WARN", "INFO", "DEBUG", "TRACE"]),
        ("OFF", []),
        ("0", []),
    ],
)
def test_levels_above_LEVEL_are_filtered(
    host: Host, actor: str, tmp_path: Path, level: str | None, written: list[str]
) -> None:
    log = tmp_path / "levels.log"
    values = {"FILE": str(log)}
    if level is not None:
        values["LEVEL"] = level
    host.set_binding(actor, LOGGING, values=values)
    for n, name in enumerate(LEVELS):
        assert write_log(host, actor, n, f"at {name}") == b""  # filtered calls succeed too
    got = lines(log)
    assert [line.split(" ")[1] for line in got] == written
    assert [line.split(" ", 3)[3] for line in got] == [f"at {name}" for name in written]


def test_level_off_is_never_written(host: Host, actor: str, tmp_path: Path) -> None:
    log = tmp_path / "off.log"
    host.set_binding(actor, LOGGING, values={"FILE": str(log), "LEVEL": "TRACE"})
    write_log(host, actor, 0, "never")
    write_log(host, actor, 5, "always")
    assert [line.split(" ")[1] for line in lines(log)] == ["TRACE"]


def test_an_unknown_LEVEL_fails_the_binding(host: Host, actor: str, tmp_path: Path) -> None:
    with pytest.raises(BindingError, match="LEVEL LOUD is not one of"):
        host.set_binding(actor, LOGGING, values={"FILE": str(tmp_path / "x"), "LEVEL": "LOUD"})
    assert not (tmp_path / "x").exists()


def test_a_FILE_that_cannot_be_opened_fails_the_binding(
    host: Host, actor: str, tmp_path: Path
) -> None:
    missing = tmp_path / "no such dir" / "actor.log"
    with pytest.raises(BindingError, match=re.escape(str(missing))):
        host.set_binding(actor, LOGGING, values={"FILE": str(missing)})
    with pytest.raises(GuestError, match="not bound"):
        write_log(host, actor, 3, "x")


def test_newlines_and_control_characters_stay_on_one_line(
    host: Host, actor: str, tmp_path: Path
) -> None:
    log = tmp_path / "escape.log"
    host.set_binding(actor, LOGGING, values={"FILE": str(log)})
    body = "first\nsecond\r\n\tthird \x1b[31mred\x7f back\\slash \x85nel \u2028ls é 💡"
    write_log(host, actor, 3, body)
    (line,) = lines(log)
    escaped = (
        "first\\nsecond\\r\\n\\tthird \\x1B[31mred\\x7F back\\\\slash \\u0085nel \\u2028ls é 💡"
    )
    assert line_pattern("INFO", actor, escaped).fullmatch(line)


def test_invalid_utf8_in_a_bin_body_is_escaped(
    host: Host, actor: str, provider: NativeProvider, tmp_path: Path
) -> None:
    log = tmp_path / "bin.log"
    host.set_binding(actor, LOGGING, values={"FILE": str(log)})
    payload = pack({"level": 3, "body": b"ok \xff\xc3( end"})  # bin, not str: accepted
    host.call_actor(actor, "Call", call_payload(LOGGING, "WriteLog", payload))
    (line,) = lines(log)
    assert line.endswith(" ok \\xFF\\xC3( end")


def test_a_huge_body_is_truncated_and_marked(host: Host, actor: str, tmp_path: Path) -> None:
    log = tmp_path / "huge.log"
    host.set_binding(actor, LOGGING, values={"FILE": str(log)})
    write_log(host, actor, 3, "é" * 50_000)  # 100,000 bytes
    (line,) = lines(log)
    body = line.split(" ", 3)[3]
    kept = "é" * (64 * 1024 // 2)
    assert body == f"{kept} [+{100_000 - 64 * 1024} bytes truncated]"


def test_concurrent_calls_never_interleave_within_a_line(
    host: Host, actor: str, tmp_path: Path
) -> None:
    log = tmp_path / "concurrent.log"
    host.set_binding(actor, LOGGING, values={"FILE": str(log)})
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def worker(t: int) -> None:
        try:
            start.wait()
            for i in range(200):
                write_log(host, actor, 2, f"thread {t} line {i} " + chr(ord("a") + t) * 300)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    got = lines(log)
    assert len(got) == 1600
    pattern = re.compile(rf"\S+Z WARN {actor} thread (\d) line (\d+) ([a-h])\3{{299}}")
    seen = set()
    for line in got:
        m = pattern.fullmatch(line)
        assert m, line[:120]
        t, i, letter = int(m[1]), int(m[2]), m[3]
        assert letter == chr(ord("a") + t)
        seen.add((t, i))
    assert seen == {(t, i) for t in range(8) for i in range(200)}


def test_two_actors_on_one_file_both_write_whole_lines(
    host: Host, start_actor: StartActor, provider: NativeProvider, tmp_path: Path
) -> None:
    log = tmp_path / "shared.log"
    first = start_actor(caps=[LOGGING], name="first")
    second = start_actor(caps=[LOGGING], name="second")
    host.set_binding(first, LOGGING, values={"FILE": str(log)})
    host.set_binding(second, LOGGING, values={"FILE": str(log), "LEVEL": "DEBUG"})
    write_log(host, first, 3, "from first")
    write_log(host, second, 4, "from second")
    write_log(host, first, 4, "filtered for first")
    got = lines(log)
    assert len(got) == 2
    assert line_pattern("INFO", first, "from first").fullmatch(got[0])
    assert line_pattern("DEBUG", second, "from second").fullmatch(got[1])


def test_garbage_msgpack_is_an_error_for_the_actor_and_the_provider_goes_on(
    host: Host, actor: str, tmp_path: Path
) -> None:
    log = tmp_path / "garbage.log"
    host.set_binding(actor, LOGGING, values={"FILE": str(log)})
    cases = [
        (b"\xc1\xc1", "not a msgpack map"),
        (pack("a string"), "not a msgpack map"),
        (b"\x82\xa5level", "not valid msgpack"),  # truncated
        (pack({"level": "loud", "body": "x"}), "not valid msgpack"),
        (pack({"body": "no level"}), "has no level"),
        (pack({"level": 9, "body": "x"}), "level 9 is not one of"),
        (pack({"level": -1, "body": "x"}), "level -1 is not one of"),
    ]
    for payload, message in cases:
        with pytest.raises(GuestError, match=message):
            host.call_actor(actor, "Call", call_payload(LOGGING, "WriteLog", payload))
    # unknown keys are ignored, trailing bytes too; the provider still serves
    payload = pack({"level": 1, "body": "still here", "extra": [1, 2]}) + b"\x00pad"
    host.call_actor(actor, "Call", call_payload(LOGGING, "WriteLog", payload))
    with pytest.raises(GuestError, match="does not support the operation Shout"):
        host.call_actor(actor, "Call", call_payload(LOGGING, "Shout", b""))
    got = lines(log)
    assert len(got) == 1
    assert line_pattern("ERROR", actor, "still here").fullmatch(got[0])


def test_an_unbound_actor_is_refused(
    host: Host, actor: str, provider: NativeProvider, tmp_path: Path
) -> None:
    # the host refuses before the call reaches the provider ...
    with pytest.raises(GuestError, match="not bound"):
        write_log(host, actor, 3, "x")
    # ... and so does the provider itself
    with pytest.raises(ProviderCallError, match=f"actor {actor} is not bound to wascc:logging"):
        provider.handle_call(actor, "WriteLog", WriteLogRequest(level=3, body="x").encode())


def test_remove_binding_closes_the_file_and_refuses_further_lines(
    host: Host, actor: str, provider: NativeProvider, tmp_path: Path
) -> None:
    log = tmp_path / "closed.log"
    host.set_binding(actor, LOGGING, values={"FILE": str(log)})
    write_log(host, actor, 3, "one")
    assert _open_count(log) == 1
    host.remove_binding(actor, LOGGING)
    assert _open_count(log) == 0
    with pytest.raises(ProviderCallError, match="not bound"):
        provider.handle_call(actor, "WriteLog", WriteLogRequest(level=3, body="x").encode())
    # bound again, it appends to the same file
    host.set_binding(actor, LOGGING, values={"FILE": str(log)})
    write_log(host, actor, 3, "two")
    assert [line.split(" ", 3)[3] for line in lines(log)] == ["one", "two"]


def test_host_stop_closes_the_files(host: Host, actor: str, tmp_path: Path) -> None:
    log = tmp_path / "stop.log"
    host.set_binding(actor, LOGGING, values={"FILE": str(log)})
    write_log(host, actor, 3, "before stop")
    host.stop()
    assert _open_count(log) == 0
    assert len(lines(log)) == 1


def _open_count(path: Path) -> int:
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        try:
            if os.readlink(fd) == str(path):
                count += 1
        except OSError:
            continue
    return count


def test_rebinding_with_new_values_moves_the_destination(
    host: Host, actor: str, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    host.set_binding(actor, LOGGING, values={"FILE": str(first)})
    write_log(host, actor, 3, "to first")
    host.set_binding(actor, LOGGING, values={"FILE": str(second)})
    write_log(host, actor, 3, "to second")
    assert [line.split(" ", 3)[3] for line in lines(first)] == ["to first"]
    assert [line.split(" ", 3)[3] for line in lines(second)] == ["to second"]
    assert _open_count(first) == 0


def test_stderr_is_the_default_destination(
    host: Host, actor: str, capfd: pytest.CaptureFixture[str]
) -> None:
    host.set_binding(actor, LOGGING)
    capfd.readouterr()
    write_log(host, actor, 1, "to stderr\nstill one line")
    sys.stderr.flush()
    captured = capfd.readouterr()
    assert captured.out == ""
    got = [line for line in captured.err.splitlines() if actor in line]
    assert len(got) == 1
    assert line_pattern("ERROR", actor, "to stderr\\nstill one line").fullmatch(got[0])


def test_core_operations_are_for_the_host_only(
    host: Host, actor: str, provider: NativeProvider, tmp_path: Path
) -> None:
    config = CapabilityConfiguration(actor, {"FILE": str(tmp_path / "x.log")}).encode()
    for op in ("BindActor", "RemoveActor", "GetCapabilityDescriptor", "HealthRequest"):
        with pytest.raises(ProviderCallError, match=f"{op} is reserved for the host"):
            provider.handle_call(actor, op, config)
    with pytest.raises(ProviderCallError, match="not a CapabilityConfiguration"):
        provider.handle_call("system", "BindActor", b"\xc1")


def test_descriptor_health_and_idempotent_core_operations(
    host: Host, actor: str, provider: NativeProvider, tmp_path: Path
) -> None:
    descriptor = provider.descriptor()
    assert descriptor.id == LOGGING
    assert [op.name for op in descriptor.supported_operations] == ["WriteLog"]
    health = HealthResponse.decode(provider.handle_call("system", "HealthRequest", b"\x80"))
    assert health.healthy
    config = CapabilityConfiguration(actor, {"FILE": str(tmp_path / "i.log")}).encode()
    assert provider.handle_call("system", "BindActor", config) == b""
    assert provider.handle_call("system", "BindActor", config) == b""
    assert _open_count(tmp_path / "i.log") == 1
    remove = CapabilityConfiguration(actor, {}).encode()
    assert provider.handle_call("system", "RemoveActor", remove) == b""
    assert provider.handle_call("system", "RemoveActor", remove) == b""
    assert _open_count(tmp_path / "i.log") == 0
