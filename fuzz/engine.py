"""A small fuzzing engine for wascc's parsers of untrusted bytes.

Every target is a function of one ``bytes`` input that calls a parser (or a
whole host path) the way untrusted input reaches it.  The only acceptable
outcomes are the call's own result or a :class:`wascc.errors.WasccError`;
anything else - another exception, a hang past the target's deadline, memory
that does not come back - is a finding.

Inputs come from two sources, mixed case by case and reproducible from the
seed: mutations of the target's seed corpus (bit flips, byte edits, splices,
interesting integers, repeated chunks), and the target's own ``generate``
function for structure-aware hostile input (deep nesting, huge numbers, ...).
With ``engine="atheris"`` (``make fuzz FUZZ_ENGINE=atheris``) libFuzzer's
coverage-guided mutator drives the same targets instead.

A target module is ``fuzz/fuzz_<name>.py`` holding ``TARGET = Target(...)``.
"""

from __future__ import annotations

import importlib
import random
import resource
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from wascc.errors import WasccError
from wascc.wire.wasm import write_uleb

__all__ = ["Finding", "Report", "Target", "discover", "mutate", "run_target"]

HERE = Path(__file__).resolve().parent

INTERESTING = [
    0,
    1,
    0x7F,
    0x80,
    0xFF,
    0x7FFF,
    0x8000,
    0xFFFF,
    0x7FFFFFFF,
    0x80000000,
    0xFFFFFFFF,
    2**63 - 1,
    2**63,
    2**64 - 1,
]


@dataclass
class Target:
    """One fuzz target: ``run(data)`` must return or raise a WasccError.

    ``seeds``: valid (or nearly valid) inputs the mutator starts from.
    ``generate(rng)``: optional structure-aware generator of hostile inputs.
    ``deadline``: seconds one case may take before it counts as a hang.
    ``allowed``: extra exception types that are a legitimate outcome (rare;
    say why where it is used).
    ``setup``/``teardown``: make and free shared state (a host, a server).
    """

    name: str
    run: Callable[[bytes], object]
    seeds: Iterable[bytes] = ()
    generate: Callable[[random.Random], bytes] | None = None
    deadline: float = 10.0
    allowed: tuple[type[BaseException], ...] = ()
    setup: Callable[[], None] | None = None
    teardown: Callable[[], None] | None = None
    max_size: int = 1 << 16


@dataclass
class Finding:
    target: str
    case: int
    data: bytes
    problem: str


@dataclass
class Report:
    target: str
    cases: int = 0
    ok: int = 0
    refused: int = 0  # a WasccError: the input was rejected cleanly
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    rss_start_kib: int = 0
    rss_end_kib: int = 0

    def line(self) -> str:
        return (
            f"{self.target:<14} {self.cases:>8} cases  {self.ok:>8} ok  "
            f"{self.refused:>8} refused  {len(self.findings):>3} findings  "
            f"{self.seconds:7.1f}s  rss {self.rss_start_kib // 1024}->"
            f"{self.rss_end_kib // 1024} MiB"
        )


def rss_kib() -> int:
    """Resident memory now (KiB), from /proc; the peak where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * (resource.getpagesize() // 1024)
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def mutate(data: bytes, rng: random.Random, pool: list[bytes], max_size: int) -> bytes:
    """One to eight random edits of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        choice = rng.randrange(9)
        if choice == 0 and buf:  # flip a bit
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif choice == 1 and buf:  # set a byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif choice == 2:  # insert bytes
            i = rng.randint(0, len(buf))
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif choice == 3 and buf:  # delete a range
            i = rng.randrange(len(buf))
            del buf[i : i + rng.randint(1, 16)]
        elif choice == 4 and buf:  # an interesting integer, little or big endian
            value = rng.choice(INTERESTING)
            width = rng.choice((1, 2, 4, 8))
            packed = (value & ((1 << (8 * width)) - 1)).to_bytes(
                width, rng.choice(("little", "big"))
            )
            i = rng.randrange(len(buf))
            buf[i : i + width] = packed
        elif choice == 5 and buf:  # repeat a chunk
            i = rng.randrange(len(buf))
            chunk = buf[i : i + rng.randint(1, 32)]
            buf[i:i] = chunk * rng.randint(1, 64)
        elif choice == 6 and pool:  # splice with another corpus entry
            other = rng.choice(pool)
            if other:
                j = rng.randrange(len(other))
                i = rng.randint(0, len(buf))
                buf[i:] = other[j:]
        elif choice == 7 and buf:  # LEB128 of a large value at a random place
            i = rng.randrange(len(buf))
            buf[i:i] = write_uleb(rng.choice(INTERESTING))
        elif choice == 8 and len(buf) > 1:  # truncate
            del buf[rng.randrange(len(buf)) :]
    return bytes(buf[:max_size])


def _one(target: Target, data: bytes) -> tuple[str, str | None]:
    """Run one case in a watchdog thread: ("ok"|"refused"|"bad", problem)."""
    outcome: list[tuple[str, str | None]] = []

    def body() -> None:
        try:
            target.run(data)
            outcome.append(("ok", None))
        except WasccError:
            outcome.append(("refused", None))
        except target.allowed:
            outcome.append(("refused", None))
        except BaseException as exc:
            tb = "".join(traceback.format_exception(exc)[-6:])
            outcome.append(("bad", f"{type(exc).__name__}: {exc}\n{tb}"))

    if target.deadline <= 0:
        body()
        return outcome[0]
    worker = threading.Thread(target=body, daemon=True, name=f"fuzz-{target.name}")
    worker.start()
    worker.join(target.deadline)
    if worker.is_alive():
        return "bad", f"hang: no outcome after {target.deadline:g}s"
    return outcome[0]


def run_target(
    target: Target,
    cases: int,
    *,
    seed: int = 0,
    stop_on_finding: bool = True,
    rss_slack_kib: int = 64 * 1024,
) -> Report:
    """Run ``cases`` inputs through ``target``; the report counts each outcome."""
    rng = random.Random(f"{target.name}:{seed}")
    pool = [bytes(s) for s in target.seeds]
    report = Report(target.name)
    if target.setup:
        target.setup()
    try:
        # warm up: the first calls allocate caches that are not leaks
        for data in pool[:8]:
            _one(target, data)
        report.rss_start_kib = rss_kib()
        started = time.monotonic()
        for case in range(cases):
            if case < len(pool):
                data = pool[case]
            elif target.generate is not None and rng.random() < 0.3:
                data = target.generate(rng)[: target.max_size]
            elif pool:
                data = mutate(rng.choice(pool), rng, pool, target.max_size)
            else:
                data = rng.randbytes(rng.randint(0, 64))
            kind, problem = _one(target, data)
            report.cases += 1
            if kind == "ok":
                report.ok += 1
                if len(pool) < 512 and rng.random() < 0.05:
                    pool.append(data)  # grow the corpus with inputs that parse
            elif kind == "refused":
                report.refused += 1
            else:
                report.findings.append(Finding(target.name, case, data, problem or ""))
                if stop_on_finding:
                    break
        report.seconds = time.monotonic() - started
        report.rss_end_kib = rss_kib()
        grown = report.rss_end_kib - report.rss_start_kib
        if grown > rss_slack_kib:
            report.findings.append(
                Finding(
                    target.name,
                    report.cases,
                    b"",
                    f"memory did not come back: RSS grew by {grown // 1024} MiB "
                    f"over {report.cases} cases",
                )
            )
    finally:
        if target.teardown:
            target.teardown()
    return report


def discover(names: Iterable[str] = ()) -> list[Target]:
    """Every ``fuzz/fuzz_*.py`` target (or only those named)."""
    wanted = set(names)
    if str(HERE.parent) not in sys.path:
        sys.path.insert(0, str(HERE.parent))
    targets = []
    for path in sorted(HERE.glob("fuzz_*.py")):
        module = importlib.import_module(f"fuzz.{path.stem}")
        target: Target = module.TARGET
        if not wanted or target.name in wanted:
            targets.append(target)
    missing = wanted - {t.name for t in targets}
    if missing:
        raise SystemExit(f"no fuzz target named {', '.join(sorted(missing))}")
    return targets
