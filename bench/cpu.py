"""CPU time per part of the stack over a measured window, read from /proc (Linux).

On a two-core machine the broker, PostgreSQL and the process under test share the cores, so
a rate alone does not say what limits it; the core-seconds each part used in the window do.
"""

from __future__ import annotations

import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, group hint, CPU seconds so far)."""
    out: dict[int, tuple[int, str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces; fields follow the last ')'
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        if "kafka.Kafka" in cmdline:
            hint = "kafka"
        elif comm.startswith("postgres") or cmdline.startswith("postgres"):
            hint = "postgres"
        elif "prometheus" in comm:
            hint = "prometheus"
        else:
            hint = "other"
        out[int(entry.name)] = (ppid, hint, (utime + stime) / _TICK)
    return out


def snapshot(under_test: int | None) -> dict[str, float]:
    """CPU seconds used so far by the process under test, its child processes, Kafka,
    PostgreSQL, this benchmark process and everything else."""
    procs = _processes()
    me = os.getpid()
    totals = {"under test": 0.0, "its children": 0.0, "kafka": 0.0, "postgres": 0.0, "bench": 0.0, "other": 0.0}
    for pid, (_ppid, hint, seconds) in procs.items():
        group = hint if hint in ("kafka", "postgres") else ("bench" if pid == me else "other")
        walk, depth = pid, 0
        while group == "other" and under_test is not None and walk in procs and depth < 64:
            if walk == under_test:
                group = "under test" if depth == 0 else "its children"
            walk, depth = procs[walk][0], depth + 1
        totals[group] += seconds
    return totals


def describe_window(before: dict[str, float], after: dict[str, float], seconds: float, items: int = 0) -> str:
    """'under test 0.97, kafka 0.41, ...' in cores (CPU seconds per wall second); with
    `items`, also the CPU per item of the stack (process under test, its children, Kafka
    and PostgreSQL), the figure that does not drift with the machine's speed as a rate does."""
    parts = []
    stack = 0.0
    for group in ("under test", "its children", "kafka", "postgres", "bench", "other"):
        used = max(after.get(group, 0.0) - before.get(group, 0.0), 0.0)
        if group in ("under test", "its children", "kafka", "postgres"):
            stack += used
        parts.append(f"{group} {used / max(seconds, 1e-6):.2f}")
    per_item = f"; {stack / items * 1e6:,.0f} us of CPU per petition" if items else ""
    return "cores used: " + ", ".join(parts) + per_item
