"""Run the fuzz targets: ``python -m fuzz [--cases N] [--engine builtin|atheris] [NAME...]``.

Prints one line of counts per target and exits 1 if any target had a
finding (each finding's input is written to ``fuzz/findings/``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fuzz.engine import HERE, Report, Target, discover, run_target


def _save(report: Report) -> None:
    out = HERE / "findings"
    out.mkdir(exist_ok=True)
    for finding in report.findings:
        path = out / f"{finding.target}-{finding.case}.bin"
        path.write_bytes(finding.data)
        print(f"  finding in {finding.target}, case {finding.case} (input: {path}):")
        print("    " + finding.problem.replace("\n", "\n    "))


def _atheris(target: Target, cases: int) -> int:
    """libFuzzer-driven run of one target in this process (coverage guided)."""
    import atheris  # type: ignore[import-not-found]

    def one(data: bytes) -> None:
        from wascc.errors import WasccError

        try:
            target.run(data)
        except (WasccError, *target.allowed):
            pass

    corpus = HERE / "corpus" / target.name
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(target.seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    if target.setup:
        target.setup()
    atheris.Setup([sys.argv[0], f"-runs={cases}", f"-max_len={target.max_size}", str(corpus)], one)
    atheris.Fuzz()  # exits the process at the end of the run
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__)
    parser.add_argument("names", nargs="*", help="targets to run (default: all)")
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=("builtin", "atheris"), default="builtin")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args(argv)
    targets = discover(args.names)
    if args.list:
        for t in targets:
            print(t.name)
        return 0
    if args.engine == "atheris":
        if len(targets) != 1:
            raise SystemExit("--engine atheris runs one target per process: name it")
        return _atheris(targets[0], args.cases)
    failed = False
    total = 0
    for target in targets:
        report = run_target(target, args.cases, seed=args.seed)
        print(report.line(), flush=True)
        total += report.cases
        if report.findings:
            failed = True
            _save(report)
    print(f"{len(targets)} targets, {total} cases, {'FINDINGS' if failed else 'no findings'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    raise SystemExit(main())
