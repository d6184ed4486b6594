"""Loading and validating jet data: real rows, every file type, and every rejection path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from psqs.qap import data
from psqs.qap.data import CLASSES, FEATURES, DataError


def test_real_npz_keeps_its_own_class_order(shared_jets):
    jets = data.load_file(shared_jets / "hls4ml_jets_openml_first8_raw.npz")
    with np.load(shared_jets / "hls4ml_jets_openml_first8_raw.npz") as raw:
        y_str = raw["y_str"].tolist()
    assert jets.class_names == ("g", "q", "t", "w", "z")  # the file's alphabetical order, not ours
    assert jets.X.shape == (8, 16) and jets.X.dtype == np.float32
    assert [jets.class_names[i] for i in jets.y] == y_str


def test_real_csv_matches_real_npz(shared_jets):
    from_npz = data.load_file(shared_jets / "hls4ml_jets_openml_first8_raw.npz")
    from_csv = data.load_file(shared_jets / "hls4ml_jets_openml_first8_raw.csv")
    assert from_csv.class_names == CLASSES
    np.testing.assert_array_equal(from_csv.X, from_npz.X)
    assert [from_csv.class_names[i] for i in from_csv.y] == [from_npz.class_names[i] for i in from_npz.y]
    # mass_mmdt of the first (gluon) row, straight from the CSV text
    assert from_csv.X[0, FEATURES.index("mass_mmdt")] == pytest.approx(8.926881790161133)


def test_parquet_with_prefixed_shuffled_columns(shared_jets, tmp_path):
    frame = pd.read_csv(shared_jets / "hls4ml_jets_openml_first8_raw.csv")
    frame = frame.rename(columns={f: f"j_{f}" for f in FEATURES})
    frame = frame[list(reversed(frame.columns))]
    frame.to_parquet(tmp_path / "jets.parquet")
    reference = data.load_file(shared_jets / "hls4ml_jets_openml_first8_raw.csv")
    loaded = data.load_file(tmp_path / "jets.parquet")
    np.testing.assert_array_equal(loaded.X, reference.X)
    np.testing.assert_array_equal(loaded.y, reference.y)


def test_npz_columns_reordered_by_name(synthetic_npz, tmp_path):
    with np.load(synthetic_npz) as npz:
        X, y, names, classes = npz["X"], npz["y"], npz["feature_names"], npz["class_names"]
    perm = np.random.default_rng(1).permutation(16)
    np.savez(tmp_path / "perm.npz", X=X[:, perm], y=y, feature_names=names[perm], class_names=classes)
    np.testing.assert_array_equal(data.load_file(tmp_path / "perm.npz").X, data.load_file(synthetic_npz).X)


def _npz(tmp_path, **overrides):
    X = np.ones((6, 16), np.float32)
    fields = dict(X=X, y=np.arange(6) % 5, feature_names=np.array(FEATURES), class_names=np.array(CLASSES))
    fields.update(overrides)
    path = tmp_path / "bad.npz"
    np.savez(path, **{k: v for k, v in fields.items() if v is not None})
    return path


@pytest.mark.parametrize("overrides, message", [
    (dict(feature_names=np.array(FEATURES[:-1] + ("nconstituents",))), r"missing feature\(s\) \['multiplicity'\]"),
    (dict(class_names=np.array(["g", "q", "w", "z", "b"])), "must be the 5 jet classes"),
    (dict(class_names=np.array(["g", "q", "w", "z"])), "must be the 5 jet classes"),
    (dict(y=np.array([0, 1, 2, 3, 4, 7])), r"1 label\(s\) outside 0..4, first rows \[5\]"),
    (dict(y=np.linspace(0, 4, 6)), "labels y must be integers"),
    (dict(class_names=None), r"missing array\(s\) \['class_names'\]"),
    (dict(X=np.ones((6, 15), np.float32)), "X has shape"),
])
def test_bad_npz_is_named(tmp_path, overrides, message):
    path = _npz(tmp_path, **overrides)
    with pytest.raises(DataError, match=message) as info:
        data.load_file(path)
    assert str(path) in str(info.value)


def test_non_finite_values_name_rows_and_features(tmp_path):
    X = np.ones((6, 16), np.float32)
    X[4, FEATURES.index("mass_mmdt")] = np.nan
    X[2, 0] = np.inf
    with pytest.raises(DataError, match=r"2 non-finite .* first rows \[2, 4\], features \['mass_mmdt', 'zlogz'\]"):
        data.load_file(_npz(tmp_path, X=X))


def test_csv_with_unknown_label_and_missing_class_column(shared_jets, tmp_path):
    frame = pd.read_csv(shared_jets / "hls4ml_jets_openml_first8_raw.csv")
    frame.loc[3, "class"] = "higgs"
    frame.to_csv(tmp_path / "labels.csv", index=False)
    with pytest.raises(DataError, match=r"labels.csv: unknown class label\(s\) \['higgs'\]"):
        data.load_file(tmp_path / "labels.csv")
    frame.drop(columns="class").to_csv(tmp_path / "nolabels.csv", index=False)
    with pytest.raises(DataError, match="nolabels.csv: no 'class' column"):
        data.load_file(tmp_path / "nolabels.csv")


def test_unreadable_and_unsupported_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="junk.npz: not a readable .npz"):
        data.load_file(tmp_path / "junk.npz")
    with pytest.raises(DataError, match="jets.h5: unsupported file type"):
        (tmp_path / "jets.h5").write_bytes(b"")
        data.load_file(tmp_path / "jets.h5")
    with pytest.raises(DataError, match="nowhere.npz: no such file"):
        data.load_file(tmp_path / "nowhere.npz")


def test_source_precedence(synthetic_npz, tmp_path, monkeypatch):
    monkeypatch.setenv("PSQS_DATA", str(tmp_path / "missing.npz"))
    assert data.load(synthetic_npz).source == str(synthetic_npz)  # explicit path wins
    with pytest.raises(DataError, match="missing.npz: no such file"):
        data.load()  # no silent fall-through to OpenML


def test_openml_offline_error_says_what_to_do(monkeypatch, tmp_path):
    import sklearn.datasets

    def offline(**kwargs):
        assert kwargs["data_id"] == 42468 and str(tmp_path) in kwargs["data_home"]
        raise OSError("network is unreachable")

    monkeypatch.delenv("PSQS_DATA", raising=False)
    monkeypatch.setenv("PSQS_CACHE", str(tmp_path))
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", offline)
    with pytest.raises(DataError, match=r"openml:42468: could not load .* network is unreachable.*PSQS_DATA"):
        data.load()


def test_openml_frame_layout(shared_jets, monkeypatch, tmp_path):
    """OpenML delivers a frame with the 16 features and a categorical 'class' column."""
    import sklearn.datasets
    from sklearn.utils import Bunch

    frame = pd.read_csv(shared_jets / "hls4ml_jets_openml_first8_raw.csv")
    frame["class"] = frame["class"].astype("category")
    monkeypatch.delenv("PSQS_DATA", raising=False)
    monkeypatch.setenv("PSQS_CACHE", str(tmp_path))
    monkeypatch.setattr(sklearn.datasets, "fetch_openml", lambda **kw: Bunch(frame=frame))
    jets = data.load()
    assert jets.source == "openml:42468" and jets.X.shape == (8, 16)
    assert [jets.class_names[i] for i in jets.y] == list(frame["class"].astype(str))
