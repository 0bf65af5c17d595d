"""A promoted classifier is served without a restart, and every routed event names the model
version that classified it (the real router, broker and database)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest

from services.router.classification.feedback import PROMOTION_FILE
from services.router.classification.model import ARRAYS_FILE, ARTEFACT_DIR, META_FILE, CategoryClassifier
from shared import topics
from tests.integration.conftest import Stack, consume_all, parse, petition, wait_for

pytestmark = pytest.mark.integration


def _routed_version(stack: Stack, client: httpx.Client) -> str | None:
    r = client.post("/v1/petitions", json=petition())
    assert r.status_code == 202, r.text
    pid = r.json()["id"]
    wait_for(lambda: client.get(f"/v1/petitions/{pid}").json().get("department"), timeout=30)
    found = [m for m in map(parse, consume_all(stack.infra.admin, topics.PETITION_ROUTED))
             if m.get("petition_id") == pid]
    assert len(found) == 1
    version: str | None = found[0].get("model_version")
    return version


def test_the_router_serves_a_promoted_model_without_a_restart(
    stack: Stack, client: httpx.Client, tmp_path: Path
) -> None:
    shipped = CategoryClassifier.load().version
    assert _routed_version(stack, client) == shipped

    # a candidate that passed its comparison: the shipped arrays with a note in its meta (so
    # its version differs), promoted with the command an operator runs
    candidate = tmp_path / "candidate"
    candidate.mkdir()
    shutil.copyfile(ARTEFACT_DIR / ARRAYS_FILE, candidate / ARRAYS_FILE)
    meta = json.loads((ARTEFACT_DIR / META_FILE).read_text(encoding="utf-8"))
    meta["training"]["note"] = "promotion test"
    (candidate / META_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
    version = CategoryClassifier.load(candidate).version
    (candidate / PROMOTION_FILE).write_text(json.dumps({
        "version": version, "promotable": True, "reasons": [], "baseline_macro_f1": 0.88,
        "candidate_macro_f1": 0.88, "baseline_feedback_accuracy": 0.5, "candidate_feedback_accuracy": 0.6}))
    try:
        done = stack.petitionctl("model", "promote", "--candidate", str(candidate))
        assert done.returncode == 0, done.stderr
        assert version in done.stdout
        assert wait_for(lambda: _routed_version(stack, client) == version, timeout=60, interval=2)
    finally:  # the session's other tests keep the shipped model
        shutil.rmtree(stack.run_dir / "model", ignore_errors=True)
    assert wait_for(lambda: _routed_version(stack, client) == shipped, timeout=60, interval=2)
