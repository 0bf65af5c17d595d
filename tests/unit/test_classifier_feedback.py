"""The classifier's feedback (services/router/classification/feedback.py) without training a
model: which decisions become which labels, and when a promotion is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from services.router.classification.feedback import (
    PROMOTION_FILE,
    FeedbackRow,
    categories_by_type,
    feedback_rows,
    promote,
    read_feedback,
    write_feedback,
)
from services.router.classification.model import ARRAYS_FILE, ARTEFACT_DIR, META_FILE, CategoryClassifier
from services.router.config import load_classifier, load_routing_table


def test_a_department_type_names_a_category_only_when_the_table_gives_it_one() -> None:
    by_type = categories_by_type(load_routing_table().rules)
    assert by_type["HOUSING"] == "城乡建设" and by_type["HRSS"] == "劳动和社会保障"
    assert "GOV" not in by_type  # the 兜底 government takes every category: it tells nothing


def test_the_desks_decisions_and_the_kept_returns_become_labelled_rows() -> None:
    by_type = {"HOUSING": "城乡建设", "EDUCATION": "教育文体"}
    triage = [{"petition_id": "p1", "title": "t1", "content": "c1", "decided_category": "商贸旅游",
               "department_code": "A3-MARKET"},
              {"petition_id": "p2", "title": "t2", "content": "c2", "decided_category": None,
               "department_code": "A3-EDUCATION"},
              {"petition_id": "p3", "title": "t3", "content": "c3", "decided_category": None,
               "department_code": "A3-GOV"}]
    kept = [{"petition_id": "p4", "title": "t4", "content": "c4", "department_code": "B-HOUSING"},
            {"petition_id": "p1", "title": "t1", "content": "c1", "department_code": "A3-HOUSING"}]
    rows = {r.title: r for r in feedback_rows(triage, kept, by_type)}
    assert rows["t1"] == FeedbackRow("t1", "c1", "商贸旅游", "triage")  # the person's choice wins
    assert rows["t2"].category == "教育文体" and rows["t4"] == FeedbackRow("t4", "c4", "城乡建设", "kept")
    assert "t3" not in rows


def test_feedback_files_round_trip(tmp_path: Path) -> None:
    rows = [FeedbackRow("标题", "内容", "城乡建设", "triage")]
    path = tmp_path / "feedback.jsonl"
    path.write_text(write_feedback(rows), encoding="utf-8")
    assert read_feedback(path) == rows


def _candidate(tmp_path: Path, **report: object) -> Path:
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    for name in (META_FILE, ARRAYS_FILE):
        shutil.copyfile(ARTEFACT_DIR / name, candidate / name)
    version = CategoryClassifier.load(candidate).version
    (candidate / PROMOTION_FILE).write_text(json.dumps({
        "version": version, "promotable": True, "reasons": [], "baseline_macro_f1": 0.88, "candidate_macro_f1": 0.89,
        "baseline_feedback_accuracy": 0.5, "candidate_feedback_accuracy": 0.7, **report}), encoding="utf-8")
    return candidate


def test_a_candidate_that_would_lower_macro_f1_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    candidate = _candidate(tmp_path, promotable=False, reasons=["macro-F1 on the original labels would fall"])
    serving = tmp_path / "serving"
    done, message = promote(candidate, serving)
    assert not done and "would fall" in message and not serving.exists()


def test_a_candidate_whose_artefact_changed_after_its_comparison_is_refused(tmp_path: Path) -> None:
    candidate = _candidate(tmp_path, version="something-else")
    done, message = promote(candidate, tmp_path / "serving")
    assert not done and "not the one its comparison measured" in message


def test_a_promoted_candidate_is_what_the_router_loads(tmp_path: Path) -> None:
    candidate = _candidate(tmp_path)
    serving = tmp_path / "serving"
    done, message = promote(candidate, serving)
    assert done, message
    served = load_classifier("model", serving)
    assert served.version == CategoryClassifier.load(candidate).version
    assert load_classifier("model", tmp_path / "nothing-here").version == CategoryClassifier.load().version
