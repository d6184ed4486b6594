"""Reading ``.npz`` files (data sets, test vectors, masks) so that a damaged one is a one-line error.

``numpy.load`` reports a truncated or corrupted archive with whatever the layer underneath raised
(``zipfile.BadZipFile``, ``EOFError``, ``zlib.error``, ``ValueError`` for pickled content), and it
reads members lazily, so the error may come long after the file was "opened". :func:`load` reads
every array at once and turns all of those into the caller's :class:`~psqs.common.errors.PsqsError`
naming the file.
"""
from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import PsqsError

#: What numpy and the zip/zlib layers raise for a file that is not a readable .npz.
UNREADABLE = (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, zlib.error)


def load(path: Path, error: type[PsqsError] = PsqsError, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` at ``path`` (no pickles); ``error`` if it is unreadable or lacks
    one of ``required``."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in required if k not in npz.files]
            if missing:
                raise error(f"{path}: missing array(s) {missing}; an .npz here needs {', '.join(required)}")
            return {k: npz[k] for k in npz.files}
    except UNREADABLE as exc:
        if isinstance(exc, PsqsError):
            raise
        raise error(f"{path}: not a readable .npz file ({type(exc).__name__}: {exc})") from None
