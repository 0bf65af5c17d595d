"""The classifier learning from the desk: CV macro-F1 before and after feedback, and a refusal.

There is no triage desk's history on this machine, so the desk's feedback is simulated from the
labelled petitions (../shared/data; never copied into the repo):

* **desk feedback**: a stratified fifth of the 963 labelled petitions (seed 0) is withheld from
  the "original" labels; a model trained on the other four fifths routes them, and the ones a
  person would have decided become the feedback: those below the triage threshold (0.5: the
  triage desk assigns them) and those it got wrong (a department returns them and the right one
  keeps them). The comparison (services/router/classification/feedback.py: the same 5 folds
  with and without feedback; test rows are always original ones, each feedback row is
  predicted by a model that did not see it) gives the macro-F1 on the original labels and the
  accuracy on the feedback, before and after. For contrast, the whole withheld fifth as
  feedback (most of it petitions the model already gets right);
* **bad feedback**: 300 unlabelled petitions each given a category the model does not predict
  for them (a desk that got them all wrong), trained with the full labelled set as originals:
  ``petitionctl model promote`` must refuse the candidate and leave the serving folder as it was.

Reproduce: ``.venv/bin/python -m bench feedback`` (about 5 minutes on 2 cores).
"""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.machine import describe


def main(argv: list[str]) -> int:
    from sklearn.model_selection import StratifiedShuffleSplit

    from services.router.classification.dataset import load_data
    from services.router.classification.feedback import (
        FeedbackRow,
        compare,
        promote,
        train_with_feedback,
    )
    from services.router.classification.model import CategoryClassifier

    print(describe())
    try:
        data = load_data(None)
    except FileNotFoundError as exc:
        print(f"skipped: {exc}")
        return 0
    labels = np.array(data.labels)
    keep, held = next(StratifiedShuffleSplit(1, test_size=0.2, random_state=0).split(np.zeros(len(labels)), labels))
    originals = replace(data, titles=[data.titles[i] for i in keep], contents=[data.contents[i] for i in keep],
                        labels=[data.labels[i] for i in keep])
    from services.router.classification.train import Corpus, fit

    eighty = fit(Corpus(originals), seed=0).classifier()
    routed = eighty.predict([(data.titles[i], data.contents[i]) for i in held], with_scores=False)
    desk = [FeedbackRow(data.titles[i], data.contents[i], data.labels[i],
                        "triage" if p.confidence < 0.5 else "kept")
            for i, p in zip(held, routed, strict=True) if p.confidence < 0.5 or p.category != data.labels[i]]
    to_desk, wrong = sum(r.source == "triage" for r in desk), sum(r.source == "kept" for r in desk)
    print(f"\nwithheld {len(held)} of {len(labels)} labelled petitions; the model of the other {len(keep)} sends "
          f"{to_desk} to the triage desk and gets {wrong} more wrong (returned, then kept by the right department)")
    good = compare(originals, desk)
    print(f"\ndesk feedback ({len(desk)} rows: the triage desk's decisions and the returns kept):")
    print(good.format())
    everything = compare(originals, [FeedbackRow(data.titles[i], data.contents[i], data.labels[i], "triage")
                                     for i in held])
    print(f"\nfor contrast, the whole withheld fifth as feedback ({len(held)} rows):")
    print(everything.format())

    model = CategoryClassifier.load()
    rng = random.Random(0)
    texts = list(zip(data.unlabeled_titles, data.unlabeled_contents, strict=True))
    picked = rng.sample(texts, 300)
    predicted = model.predict(picked, with_scores=False)
    categories = sorted(set(data.labels))
    bad = [FeedbackRow(t, c, rng.choice([x for x in categories if x != p.category]), "triage")
           for (t, c), p in zip(picked, predicted, strict=True)]
    with tempfile.TemporaryDirectory() as tmp:
        candidate, serving = Path(tmp) / "candidate", Path(tmp) / "serving"
        comparison, version = train_with_feedback(bad, candidate)
        print(f"\nbad feedback ({len(bad)} rows, every one labelled against the model):")
        print(comparison.format())
        done, message = promote(candidate, serving)
        print(f"petitionctl model promote: {message}")
        print(f"serving folder after the refusal: {sorted(p.name for p in serving.glob('*')) or 'empty'}")
        report = json.loads((candidate / "promotion.json").read_text(encoding="utf-8"))
        print(f"candidate {version}: promotable={report['promotable']}")
    # what the rule guarantees: a candidate that lowers macro-F1 is never served (whether the
    # desk's feedback helps enough to be promoted is a measurement, reported above)
    return 0 if not done else 1
