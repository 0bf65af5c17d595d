"""The compiled scoring loop (``_scores.c``), built on first use and loaded with ctypes.

The numpy path of :mod:`model` needs ~90 us of CPU per text, most of it in batch-wide
temporary arrays (every n-gram's key, owner, sort code); the C loop does the same lookups
and arithmetic text by text in ~10 us. It is built with the system's C compiler (``cc``, or
``$CC``) into a cache folder keyed by the source's hash, so a changed source is rebuilt and
processes starting together do not trip over each other (each compiles to its own file and
renames it into place). No compiler, a failed build or ``PETITION_NATIVE=0``: :func:`load`
returns None and the classifier uses numpy, with the same results (tested to 1e-12).
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("_scores.c")
FLAGS = ("-O2", "-shared", "-fPIC", "-std=c99")

_P = ctypes.c_void_p
_I64 = ctypes.c_int64
#: field_scores' parameters, in order (see _scores.c)
ARGTYPES = (
    _P, _P, _I64,  # cps, offsets, n_docs
    ctypes.c_int, _P, ctypes.c_int32,  # fold_digits, decimal_bmp, zero_id
    _P, _I64,  # char_id, char_id_len
    _I64, _P, _P, ctypes.c_int,  # n_ids, single, pair table, its bits
    _P, _P, ctypes.c_uint64, ctypes.c_int, _P,  # tri_keys, tri_pos, tri_mask, tri_shift, tri_number
    _P,  # to_field
    _P, _I64, _I64, ctypes.c_double,  # lines, n_feat, k, weight
    _P, _P,  # scores, sq_norm
)

_loaded: ctypes.CDLL | None = None
_tried = False


def cache_dir() -> Path:
    """Where built libraries go: ``$PETITION_NATIVE_DIR``, else beside the interpreter's
    prefix (the project's venv), else the temporary folder."""
    if os.environ.get("PETITION_NATIVE_DIR"):
        return Path(os.environ["PETITION_NATIVE_DIR"])
    prefix = Path(sys.prefix) / "var" / "petition-native"
    try:
        prefix.mkdir(parents=True, exist_ok=True)
        if os.access(prefix, os.W_OK):
            return prefix
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"petition-native-{os.getuid()}"


def build(target_dir: Path | None = None) -> Path:
    """Compile the source (if its library is not there yet) and return the library's path;
    raises on a missing compiler or a failed build."""
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise RuntimeError("no C compiler (cc, gcc or $CC)")
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + repr((FLAGS, sys.platform)).encode()).hexdigest()[:16]
    folder = target_dir or cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    library = folder / f"petition_scores_{digest}.so"
    if library.exists():
        return library
    fd, partial = tempfile.mkstemp(prefix=library.stem, suffix=".so.partial", dir=folder)
    os.close(fd)
    try:
        done = subprocess.run(  # noqa: S603 - the C compiler with fixed arguments
            [compiler, *FLAGS, "-o", partial, str(SOURCE), "-lm"], capture_output=True, text=True, timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip()[:2000]}")
        os.chmod(partial, 0o755)  # noqa: S103 - readable by every user of this venv (mkstemp made it 0600)
        os.replace(partial, library)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    log.info("built %s", library)
    return library


def pair_table(pairs: np.ndarray, entries: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The compiled loop's open-addressing table of a view's pairs (see _scores.c), at most
    a third full, and its size in bits; None without the library."""
    lib = load()
    if lib is None:
        return None
    pairs = np.ascontiguousarray(pairs, dtype=np.uint32)
    entries = np.ascontiguousarray(entries, dtype=np.uint32)
    bits = max(4, int(np.ceil(np.log2(max(len(pairs), 1) * 3))))
    table = np.full(1 << bits, np.iinfo(np.uint64).max, dtype=np.uint64)
    if lib.build_pair_table(pairs.ctypes.data, entries.ctypes.data, len(pairs), table.ctypes.data, bits) != 0:
        return None
    return table, bits


def load() -> ctypes.CDLL | None:
    """The library (built if need be), or None when disabled or it cannot be built."""
    global _loaded, _tried
    if _tried:
        return _loaded
    _tried = True
    if os.environ.get("PETITION_NATIVE", "1") == "0":
        return None
    try:
        lib = ctypes.CDLL(str(build()))
        lib.field_scores.argtypes = ARGTYPES
        lib.field_scores.restype = ctypes.c_int
        lib.build_pair_table.argtypes = (_P, _P, _I64, _P, ctypes.c_int)
        lib.build_pair_table.restype = ctypes.c_int
        _loaded = lib
    except Exception as exc:  # noqa: BLE001 - no compiler, a read-only disk...: numpy does the same work
        log.warning("compiled scoring unavailable, using numpy: %s", exc)
        _loaded = None
    return _loaded
