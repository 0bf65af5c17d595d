"""``petitionctl``: operators' commands (topics, broker users, migrations, department queues, SLA, model,
tokens).

Each subcommand imports what it needs when it runs, so ``petitionctl sla due`` or
``petitionctl classify`` work without Kafka or PostgreSQL.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from petitionctl.broker import add_parsers as add_broker_parsers
from shared.settings import load_settings


def _db_migrate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from shared.db import ensure_common_tables, migrate

    # Each service's migrations folder beside its app module (the apps themselves are not
    # imported: faust, FastAPI and the classifier cost a second and are not needed here).
    services = Path(__file__).resolve().parent.parent / "services"
    INTAKE, ROUTER, ESC = (services / name / "migrations" for name in ("intake", "router", "escalation"))

    async def run() -> None:
        import asyncpg

        conn = await asyncpg.connect(args.dsn or load_settings().pg_dsn)
        try:
            for schema, folder in (("intake", INTAKE), ("router", ROUTER), ("escalation", ESC)):
                applied = await migrate(conn, schema, folder)
                await ensure_common_tables(conn, schema)
                print(f"{schema}: {len(applied)} migration(s) applied")
        finally:
            await conn.close()

    asyncio.run(run())
    return 0


def _triage_export(args: argparse.Namespace) -> int:
    """The triage desk's decisions as JSON lines: new labelled training data."""

    async def run() -> int:
        import asyncpg

        conn = await asyncpg.connect(args.dsn or load_settings().pg_dsn)
        try:
            rows = await conn.fetch(
                """SELECT petition_id, title, content, predicted_category, predicted_confidence,
                          decided_category, department_code, decided_by, note, decided_at
                   FROM router.triage_decision ORDER BY decided_at, petition_id"""
            )
        finally:
            await conn.close()
        for r in rows:
            record = dict(r)
            record["category"] = record.pop("decided_category")
            record["decided_at"] = record["decided_at"].isoformat()
            sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return 0

    return asyncio.run(run())


def _model_feedback(args: argparse.Namespace) -> int:
    """The desk's decisions as labelled examples (services/router/classification/feedback.py)."""
    from services.router.classification.feedback import from_database, write_feedback

    settings = load_settings()
    rows = from_database(args.dsn or settings.pg_dsn, settings.routing_table_path, settings.gazetteer_path)
    text = write_feedback(rows)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {len(rows)} feedback rows to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _model_promote(args: argparse.Namespace) -> int:
    from services.router.classification.feedback import promote

    settings = load_settings()
    candidate = args.candidate or settings.run_dir / "model-candidate"
    done, message = promote(Path(candidate), Path(args.model_dir or settings.serving_model_dir))
    print(message, file=sys.stdout if done else sys.stderr)
    return 0 if done else 1


def _classify(args: argparse.Namespace) -> int:
    """The router's own decision code on JSON lines: category, confidence, department, rule.

    Reads ``{"id", "title", "content"}`` (optionally ``location`` ``{"admin_code",
    "address"}``, ``kind``, ``channel``, ``persons``; a top-level ``admin_code`` is still read)
    per line on stdin, turns each into the ``petition.submitted`` event the router would
    receive and decides it with the router's own planning code
    (``services.router.planning.initial_decision``); writes one line per input, in input
    order; needs no Kafka or PostgreSQL. A line that is not valid gets ``{"id": …, "error": …}``
    at its position.
    """
    from services.router.classify import Classifier, petition_of
    from shared.events import PetitionSubmitted

    settings = load_settings()
    clf = Classifier.from_settings(settings, classifier=args.classifier)
    batch: list[tuple[int, tuple[object, PetitionSubmitted] | str]] = []
    failed = 0

    def flush() -> None:
        nonlocal failed
        good = [(i, x) for i, x in batch if not isinstance(x, str)]
        results = dict(zip([i for i, _ in good], clf.classify_petitions([x for _, x in good]), strict=True))
        for i, item in batch:
            if isinstance(item, str):
                failed += 1
                sys.stdout.write(json.dumps({"id": None, "error": item}, ensure_ascii=False) + "\n")
            else:
                sys.stdout.write(json.dumps(results[i], ensure_ascii=False) + "\n")
        batch.clear()

    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            if not isinstance(item, dict) or not isinstance(item.get("title", ""), str) \
                    or not isinstance(item.get("content", ""), str):
                raise ValueError("expected an object with string title and content")
            if not (item.get("title") or item.get("content")):
                raise ValueError("title and content are both empty")
            batch.append((n, (item.get("id"), petition_of(item))))
        except ValueError as exc:
            batch.append((n, f"line {n}: {exc}"))
        if len(batch) >= 512:
            flush()
    flush()
    sys.stdout.flush()
    return 1 if failed else 0


def _model_train(args: argparse.Namespace) -> int:
    from services.router.classification.train import main_train

    return int(main_train(args.rest) or 0)


def _model_evaluate(args: argparse.Namespace) -> int:
    from services.router.classification.train import main_evaluate

    return int(main_evaluate(args.rest) or 0)


def _sla_due(args: argparse.Namespace) -> int:
    from services.escalation.sla_cli import run_due

    return run_due(sys.stdin, sys.stdout, sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="petitionctl", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    add_broker_parsers(sub)  # topics ensure, kafka-user add, queue

    db = sub.add_parser("db", help="database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    mig = db_sub.add_parser("migrate", help="apply every service's migrations")
    mig.add_argument("--dsn")
    mig.set_defaults(func=_db_migrate)

    classify = sub.add_parser(
        "classify", help="classify and route JSON lines from stdin (no services needed)",
        description="Reads JSON lines {id, title, content} and optionally location {admin_code, address}, "
                    "kind (suggestion|accusation|claim), channel (default hotline) and persons (default 1); "
                    "writes {id, category, confidence, department, rule} per line, decided by the router's own "
                    "planning code (jurisdiction from location.admin_code, else from title, content and "
                    "location.address; an accusation never goes to the unit it accuses).")
    classify.add_argument("--classifier", choices=["model", "keywords"], default=None,
                          help="default: the trained model (PETITION_CLASSIFIER)")
    classify.set_defaults(func=_classify)

    model = sub.add_parser("model", help="the category classifier")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    train = model_sub.add_parser("train", help="rebuild the model artefact reproducibly", add_help=False)
    train.add_argument("rest", nargs=argparse.REMAINDER)
    train.set_defaults(func=_model_train)
    evaluate = model_sub.add_parser("evaluate", help="stratified 5-fold CV macro-F1 and per-class scores",
                                    add_help=False)
    evaluate.add_argument("rest", nargs=argparse.REMAINDER)
    evaluate.set_defaults(func=_model_evaluate)

    feedback = model_sub.add_parser("feedback", help="the desk's decisions as labelled examples (JSON lines)")
    feedback.add_argument("--output", help="a file (default: standard output)")
    feedback.add_argument("--dsn", help="PostgreSQL (default PETITION_PG_DSN)")
    feedback.set_defaults(func=_model_feedback)
    promote = model_sub.add_parser(
        "promote", help="serve a candidate trained --with-feedback, only if its CV comparison allows")
    promote.add_argument("--candidate", type=Path, default=None, help="default: <run dir>/model-candidate")
    promote.add_argument("--model-dir", type=Path, default=None,
                         help="the serving folder the router watches (default PETITION_MODEL_DIR or <run dir>/model)")
    promote.set_defaults(func=_model_promote)

    triage = sub.add_parser("triage", help="the triage desk")
    triage_sub = triage.add_subparsers(dest="triage_command", required=True)
    export = triage_sub.add_parser("export", help="print triage decisions as JSON lines (training data)")
    export.add_argument("--dsn")
    export.set_defaults(func=_triage_export)

    sla = sub.add_parser("sla", help="SLA deadlines")
    sla_sub = sla.add_subparsers(dest="sla_command", required=True)
    due = sla_sub.add_parser("due", help="compute deadlines for JSON lines on stdin")
    due.set_defaults(func=_sla_due)

    from petitionctl import kpis, open311, tokens, users

    tokens.add_parsers(sub)
    users.add_parsers(sub)
    open311.add_parsers(sub)
    kpis.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["model", "train"] and any(a.split("=")[0] == "--with-feedback" for a in argv[2:]):
        from services.router.classification.feedback import main_train as train_with_feedback

        return train_with_feedback(argv[2:])
    if argv[:1] == ["model"] and argv[1:2] in (["train"], ["evaluate"]):
        # their options belong to the training module's own parser (argparse's REMAINDER
        # would not take a leading "--seed 1")
        from services.router.classification.train import main_evaluate, main_train

        return int((main_train if argv[1] == "train" else main_evaluate)(argv[2:]) or 0)
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
