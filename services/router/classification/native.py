"""The classifier's compiled scoring kernel, when it is built and switched on.

With it, ``predict`` costs ~30 us of CPU per text in batches of 256 (~18 us of it in the
kernel); the numpy path of :mod:`model` needs ~140 us, most of it in batch-wide temporary
arrays (every n-gram's key, owner, sort code), which the kernel does without, text by text.
It is the ``_scores`` extension module, compiled from ``_scores.c`` by setup.py when the
package is installed (``make venv``), and it checks every argument it is given: a wrong call
raises TypeError or ValueError, it cannot crash the process.

``PETITION_NATIVE=0``, or a module that is not there (the sources used without installing
them, a build for another Python): :func:`field_scorer` returns None and the classifier
scores with numpy, its reference, with the same results (tested to 1e-12).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from services.router.classification._scores import FieldScorer

log = logging.getLogger(__name__)

#: The switch: "0" turns the kernel off.
SWITCH = "PETITION_NATIVE"

_warned = False


def field_scorer() -> type[FieldScorer] | None:
    """The kernel's scorer type, or None when it is switched off or not importable (said once
    in the log: the classifier then runs several times slower, with the same results)."""
    global _warned
    if os.environ.get(SWITCH, "1") == "0":
        return None
    try:
        from services.router.classification._scores import FieldScorer
    except ImportError as exc:
        if not _warned:
            _warned = True
            log.warning("compiled scoring kernel not importable, classifying with numpy: %s", exc)
        return None
    return FieldScorer
