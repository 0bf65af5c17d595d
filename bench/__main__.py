"""``python -m bench [name ...]``: run the benchmarks (all by default) and print their reports.

Each module ``bench/<name>_bench.py`` exposes ``main(argv: list[str]) -> int`` and prints
what it measured, on which machine, and the command to reproduce it. Benchmarks are never
run by ``make test``: speed and memory targets are measured here, not asserted in tests.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time

import bench


def available() -> list[str]:
    return sorted(
        m.name[: -len("_bench")]
        for m in pkgutil.iter_modules(bench.__path__)
        if m.name.endswith("_bench")
    )


def main(argv: list[str]) -> int:
    names = argv or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; available: {', '.join(available())}")
        return 2
    failed = 0
    for name in names:
        print(f"\n=== bench {name} (python -m bench {name}) ===", flush=True)
        started = time.perf_counter()
        module = importlib.import_module(f"bench.{name}_bench")
        code = int(module.main([]) or 0)
        failed += code != 0
        print(f"=== {name}: exit {code} after {time.perf_counter() - started:.1f}s ===", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
