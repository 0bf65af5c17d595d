"""一级 category classifier for petitions (title + content -> category, calibrated confidence).

Inference (``model.py``) needs only numpy and scipy and reads a pickle-free artefact from
``artefacts/``; training and evaluation (``train.py``) use scikit-learn.
"""

from services.router.classification.model import ARTEFACT_DIR, CategoryClassifier, Prediction

__all__ = ["ARTEFACT_DIR", "CategoryClassifier", "Prediction"]
