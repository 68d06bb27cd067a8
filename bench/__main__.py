"""Run every benchmark (or those named): ``python -m bench [--quick] [NAME …]``.

Each ``bench/bench_<name>.py`` has ``main(argv: list[str]) -> None`` that prints a
table and writes ``bench/results/<name>.json``.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

_OPTIONS_WITH_VALUES = {"--workers", "--rows", "--batch", "--seconds"}  # bench_migrate, bench_policy


def main() -> None:
    args = sys.argv[1:]
    found = sorted(p.stem[len("bench_") :] for p in Path(__file__).parent.glob("bench_*.py"))
    flags: list[str] = []  # options and their values (``--workers 0``), passed to each benchmark
    names: list[str] = []
    for i, arg in enumerate(args):
        if arg.startswith("-") or (i > 0 and args[i - 1] in _OPTIONS_WITH_VALUES):
            flags.append(arg)
        else:
            names.append(arg)
    unknown = set(names) - set(found)
    if unknown:
        sys.exit(f"unknown benchmark(s) {sorted(unknown)}; have {found}")
    for name in names or found:
        print(f"\n=== bench {name} ===", flush=True)
        importlib.import_module(f"bench.bench_{name}").main(flags)


if __name__ == "__main__":
    main()
