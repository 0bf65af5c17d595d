"""Category classifier throughput: texts/second of ``CategoryClassifier.predict`` in one process.

Loads the committed artefact, then predicts over the labelled + unlabelled petition texts
(../shared/data, or ``PETITION_DATA_DIR``; a few handwritten texts if absent) in batches of
``BENCH_CLASSIFY_BATCH`` (default 256), cycling through them for at least
``BENCH_CLASSIFY_SECONDS`` (default 10) seconds. Target: >= 3,000 texts/s.

Reproduce: ``.venv/bin/python -m bench classify``
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from bench.machine import describe

REPO = Path(__file__).resolve().parents[1]
TARGET = 3000.0


def load_texts() -> tuple[list[tuple[str, str]], str]:
    """Real petition texts from ../shared/data (never copied into the repo), or written ones."""
    data = Path(os.environ.get("PETITION_DATA_DIR", REPO.parent / "shared" / "data"))
    out: list[tuple[str, str]] = []
    for name in ("petitions-labeled.csv", "petitions-unlabeled.csv"):
        path = data / name
        if path.exists():
            with path.open(encoding="utf-8") as f:
                out.extend((r["title"] or "", r["content"] or "") for r in csv.DictReader(f))
    if out:
        return out, f"{len(out)} petition texts from {data}"
    fallback = [
        ("小区电梯长期故障无人维修", "我们小区的电梯坏了三个月，物业一直推诿不修，老人上下楼非常困难。"),
        ("学校违规收取补课费", "某中学组织学生周末补课，每人收费数百元，家长意见很大，请教育部门调查。"),
        ("公交车经常晚点", "这条公交线路的车经常晚点半小时以上，早高峰根本等不到车，希望增加班次。"),
        ("工厂拖欠工人工资", "工厂老板拖欠我们两个月工资，请劳动监察大队帮助讨薪。"),
    ]
    return fallback * 500, "handwritten fallback texts (data set not found)"


def main(argv: list[str]) -> int:
    from services.router.classification import CategoryClassifier

    batch = int(os.environ.get("BENCH_CLASSIFY_BATCH", "256"))
    min_seconds = float(os.environ.get("BENCH_CLASSIFY_SECONDS", "10"))
    texts, source = load_texts()
    chars = sum(len(t) + len(c) for t, c in texts) / len(texts)

    started = time.perf_counter()
    clf = CategoryClassifier.load()
    load_s = time.perf_counter() - started

    clf.predict(texts[:batch])  # warm-up
    done = 0
    pos = 0
    started = time.perf_counter()
    while True:
        chunk = texts[pos : pos + batch]
        if not chunk:
            pos = 0
            continue
        clf.predict(chunk)
        done += len(chunk)
        pos += batch
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            break
    rate = done / elapsed

    print(f"machine: {describe()}")
    print(f"model: {clf!r}, loaded in {load_s * 1000:.0f} ms")
    print(f"input: {source}, mean {chars:.0f} characters (title + content)")
    print(f"predicted {done} texts in batches of {batch} over {elapsed:.1f}s, one process")
    print(f"throughput: {rate:,.0f} texts/s (target >= {TARGET:,.0f}): {'OK' if rate >= TARGET else 'BELOW TARGET'}")
    print("reproduce: .venv/bin/python -m bench classify")
    return 0 if rate >= TARGET else 1


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
