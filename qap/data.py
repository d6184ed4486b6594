"""The hls4ml LHC jet-substructure data set: loading, validation and a single in-memory form.

Sources, in order of precedence: an explicit path (``--data``), the ``PSQS_DATA`` environment
variable, else OpenML data set 42468 downloaded through scikit-learn with a local cache. There is
deliberately no fallback from one to the next: a path that fails to load is an error, and so is
an offline machine without a path.

Files: ``.npz`` with ``X``, ``y``, ``feature_names`` and ``class_names`` (``y`` indexes
``class_names``, in whatever order the file chose), or ``.csv``/``.parquet`` with the 16 named
feature columns and a ``class`` column of jet labels (``g``, ``q``, ``w``, ``z``, ``t``). Names may
carry the ``j_`` prefix of the original HDF5 release. Columns are put into the canonical order
below by name.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from psqs.common import npz
from psqs.common.errors import PsqsError

log = logging.getLogger(__name__)

#: OpenML 42468 (``hls4ml_lhc_jets_hlf``) column order: the order the hardware receives features in.
FEATURES = (
    "zlogz", "c1_b0_mmdt", "c1_b1_mmdt", "c1_b2_mmdt", "c2_b1_mmdt", "c2_b2_mmdt",
    "d2_b1_mmdt", "d2_b2_mmdt", "d2_a1_b1_mmdt", "d2_a1_b2_mmdt", "m2_b1_mmdt", "m2_b2_mmdt",
    "n2_b1_mmdt", "n2_b2_mmdt", "mass_mmdt", "multiplicity",
)
#: The five jet classes. Files that store integer labels bring their own order (``class_names``);
#: string labels are indexed in this order, the one of the original one-hot ``j_g … j_t`` columns.
CLASSES = ("g", "q", "w", "z", "t")

OPENML_ID = 42468
CLASS_COLUMN = "class"


class DataError(PsqsError, ValueError):
    """A data source is unusable; the message names the source and the problem."""


@dataclass(frozen=True)
class JetData:
    X: np.ndarray            # (n, 16) float32 raw features, columns in FEATURES order
    y: np.ndarray            # (n,) int64 index into class_names
    class_names: tuple[str, ...]
    source: str

    @property
    def fingerprint(self) -> str:
        """sha256 over the arrays and the class order: identical data gives an identical print."""
        digest = hashlib.sha256()
        digest.update(np.ascontiguousarray(self.X, dtype="<f4").tobytes())
        digest.update(np.ascontiguousarray(self.y, dtype="<i8").tobytes())
        digest.update(",".join(self.class_names).encode())
        return digest.hexdigest()


def canonical_name(name: str) -> str:
    name = str(name).strip()
    return name[2:] if name.startswith("j_") else name


def _feature_order(names, source: str) -> list[int]:
    """Column indices that put ``names`` into FEATURES order; errors name what is wrong."""
    canon = [canonical_name(n) for n in names]
    duplicates = sorted({n for n in canon if canon.count(n) > 1})
    if duplicates:
        raise DataError(f"{source}: duplicate feature columns {duplicates}")
    missing = [f for f in FEATURES if f not in canon]
    if missing:
        raise DataError(f"{source}: missing feature(s) {missing}; expected the 16 jet features {list(FEATURES)}")
    return [canon.index(f) for f in FEATURES]


def _class_names(names, source: str) -> tuple[str, ...]:
    canon = tuple(canonical_name(n) for n in names)
    if len(canon) != len(CLASSES) or set(canon) != set(CLASSES):
        raise DataError(f"{source}: class_names {list(canon)} must be the 5 jet classes {list(CLASSES)} in any order")
    return canon


def _validate(X: np.ndarray, y: np.ndarray, class_names, source: str) -> JetData:
    if X.ndim != 2 or X.shape[1] != len(FEATURES):
        raise DataError(f"{source}: X has shape {X.shape}, expected (n, {len(FEATURES)})")
    if y.shape != (X.shape[0],):
        raise DataError(f"{source}: y has shape {y.shape}, expected ({X.shape[0]},)")
    if X.shape[0] == 0:
        raise DataError(f"{source}: no rows")
    bad = ~np.isfinite(X)
    if bad.any():
        rows = np.unique(np.nonzero(bad)[0])
        cols = sorted({FEATURES[c] for c in np.nonzero(bad)[1]})
        raise DataError(f"{source}: {bad.sum()} non-finite value(s) (NaN/inf) in {len(rows)} row(s), "
                        f"first rows {rows[:5].tolist()}, features {cols}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{source}: labels y must be integers, got {y.dtype}")
    out_of_range = (y < 0) | (y >= len(class_names))
    if out_of_range.any():
        raise DataError(f"{source}: {out_of_range.sum()} label(s) outside 0..{len(class_names) - 1}, "
                        f"first rows {np.nonzero(out_of_range)[0][:5].tolist()}")
    return JetData(X.astype(np.float32), y.astype(np.int64), tuple(class_names), source)


def _from_npz(path: Path) -> JetData:
    arrays = npz.load(path, DataError, required=("X", "y", "feature_names", "class_names"))
    X, y = arrays["X"], arrays["y"]
    feature_names, class_names = arrays["feature_names"].tolist(), arrays["class_names"].tolist()
    if X.ndim != 2 or X.shape[1] != len(feature_names):
        raise DataError(f"{path}: X has shape {X.shape} but there are {len(feature_names)} feature_names")
    if not np.issubdtype(X.dtype, np.number):
        raise DataError(f"{path}: X must be numeric, got {X.dtype}")
    X = X[:, _feature_order(feature_names, str(path))]
    return _validate(X, y, _class_names(class_names, str(path)), str(path))


def from_frame(frame, source: str) -> JetData:
    """A table with the 16 named feature columns and a ``class`` column of jet labels."""
    columns = [str(c) for c in frame.columns]
    labels = [c for c in columns if c.strip().lower() == CLASS_COLUMN]
    if not labels:
        raise DataError(f"{source}: no '{CLASS_COLUMN}' column (columns: {columns})")
    features = [c for c in columns if c not in labels]
    order = _feature_order(features, source)
    try:
        X = frame[[features[i] for i in order]].to_numpy(dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{source}: feature columns are not all numeric ({exc})") from None
    raw = frame[labels[0]].astype(str).map(canonical_name).to_numpy()
    unknown = sorted(set(raw) - set(CLASSES))
    if unknown:
        raise DataError(f"{source}: unknown class label(s) {unknown[:10]} in column '{labels[0]}'; "
                        f"expected {list(CLASSES)}")
    y = np.array([CLASSES.index(v) for v in raw], dtype=np.int64)
    return _validate(X, y, CLASSES, source)


def _from_table(path: Path) -> JetData:
    import pandas as pd

    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # pandas raises many types for unreadable files
        raise DataError(f"{path}: not a readable {path.suffix} file ({type(exc).__name__}: {exc})") from None
    return from_frame(frame, str(path))


def load_file(path) -> JetData:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix == ".npz":
        return _from_npz(path)
    if path.suffix in (".csv", ".parquet"):
        return _from_table(path)
    raise DataError(f"{path}: unsupported file type {path.suffix!r}; use .npz, .csv or .parquet")


def cache_dir() -> Path:
    return Path(os.environ.get("PSQS_CACHE", Path.home() / ".cache" / "psqs"))


def load_openml() -> JetData:
    """Download (once; cached under ``PSQS_CACHE``) the real data set from OpenML."""
    from sklearn.datasets import fetch_openml

    home = cache_dir() / "openml"
    log.info("loading OpenML %d (cache %s)", OPENML_ID, home)
    try:
        bunch = fetch_openml(data_id=OPENML_ID, data_home=str(home), as_frame=True, parser="auto")
    except Exception as exc:  # network, HTTP and parse errors all mean "not available"
        raise DataError(
            f"openml:{OPENML_ID}: could not load the jet data set ({type(exc).__name__}: {exc}); "
            "pass --data PATH or set PSQS_DATA to a local .npz/.csv/.parquet") from None
    return from_frame(bunch.frame, f"openml:{OPENML_ID}")


def load(path=None) -> JetData:
    """Load from ``path``, else ``$PSQS_DATA``, else OpenML (see the module docstring)."""
    chosen = path or os.environ.get("PSQS_DATA") or None
    if chosen:
        data = load_file(chosen)
    else:
        data = load_openml()
    log.info("data: %d jets from %s", len(data.y), data.source)
    return data
