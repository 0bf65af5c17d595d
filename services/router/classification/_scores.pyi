"""Types of the compiled scoring kernel, the extension module built from ``_scores.c``."""

from typing import TypeAlias, final

import numpy as np
from typing_extensions import Buffer

#: What the kernel reads: numpy arrays or other buffers (their format and shape are checked).
_Array: TypeAlias = np.ndarray | Buffer

@final
class FieldScorer:
    """One view-field of the classifier, its lookup tables built from the artefact's arrays."""

    def __init__(
        self, *, chars: _Array, keys: _Array, idf: _Array, coef: _Array, weight: float, fold_digits: bool
    ) -> None: ...
    def add_scores(self, texts: list[str] | tuple[str, ...], scores: _Array, sq_norm: _Array) -> None: ...
    @property
    def n_terms(self) -> int: ...
    @property
    def n_classes(self) -> int: ...
    @property
    def weight(self) -> float: ...
