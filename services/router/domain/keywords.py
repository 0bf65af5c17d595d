"""The first keyword classifier: explainable, dependency-free, used when no model is loaded."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prediction:
    category: str | None
    confidence: float


class KeywordClassifier:
    """Scores each category by the weights of its keywords in title (x2) and content."""

    version = "keywords-1"

    def __init__(self, keywords: Mapping[str, Mapping[str, float]]) -> None:
        self._keywords = {c: dict(k) for c, k in keywords.items()}
        self.categories = tuple(self._keywords)

    def predict(self, items: Sequence[tuple[str, str]], *, with_scores: bool = True) -> list[Prediction]:
        """One prediction per item (`with_scores` is accepted for the trained model's
        signature; this one never returns per-class scores)."""
        out = []
        for title, content in items:
            scores = {
                cat: sum(w * (2 * title.count(k) + content.count(k)) for k, w in kws.items())
                for cat, kws in self._keywords.items()
            }
            total = sum(scores.values())
            if total <= 0:
                out.append(Prediction(None, 0.0))
                continue
            best = max(scores, key=lambda c: scores[c])
            out.append(Prediction(best, scores[best] / total))
        return out
