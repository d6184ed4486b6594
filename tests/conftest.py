"""Shared fixtures: synthetic jet files for training tests, the shared real rows for loader tests."""
from __future__ import annotations

import ctypes
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from psqs.common.artifact import MANIFEST, write_manifest
from psqs.common.interrupts import PR_SET_CHILD_SUBREAPER
from psqs.qap.data import FEATURES

REPO = Path(__file__).resolve().parents[1]
SHARED_JETS = Path(os.environ.get("PSQS_SHARED", REPO.parent / "shared")) / "data" / "jets"


@pytest.fixture(autouse=True)
def _quiet_tensorflow(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _not_a_subreaper():
    """A test that runs a command's main() in this process installs psqs.common.interrupts, which
    makes the process a child subreaper (so that a command can find and end its orphaned
    grandchildren). pytest is no command: it would inherit every orphan of later tests (the
    loopback SSH server's detached bench) and, never reaping them, keep them as zombies, which
    `tail --pid` then waits on forever. Each test ends by giving orphans back to init."""
    yield
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


@pytest.fixture(scope="session")
def shared_jets() -> Path:
    """The 16 real OpenML rows of ../shared/data/jets (never copied into this repository)."""
    if not (SHARED_JETS / "hls4ml_jets_openml_first8_raw.npz").is_file():
        pytest.skip(f"shared real jet rows not found under {SHARED_JETS} (set PSQS_SHARED)")
    return SHARED_JETS


def synthetic_jets(n: int, seed: int = 0, class_names=("t", "w", "z", "q", "g")):
    """Five separable Gaussian classes in 16 features with jet-like scales (not physics)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, size=n)
    centers = rng.normal(0.0, 1.0, size=(5, 16))
    scales = np.geomspace(0.01, 200.0, 16)  # raw features span orders of magnitude, as real ones do
    X = (centers[y] + rng.normal(0.0, 0.9, size=(n, 16))) * scales + scales
    return X.astype(np.float32), y.astype(np.int64), tuple(class_names)


@pytest.fixture(scope="session")
def synthetic_npz(tmp_path_factory) -> Path:
    """An .npz in the layout of the simulated set: j_-prefixed names, its own class order."""
    X, y, classes = synthetic_jets(4000)
    path = tmp_path_factory.mktemp("data") / "synthetic.npz"
    np.savez(path, X=X, y=y, feature_names=np.array([f"j_{f}" for f in FEATURES]),
             class_names=np.array(classes))
    return path


@pytest.fixture(scope="session")
def shared_vendor() -> Path:
    """Real vendor-tool outputs of public hls4ml/PYNQ builds (../shared/data/vendor)."""
    vendor = SHARED_JETS.parent / "vendor"
    if not (vendor / "SOURCES.md").is_file():
        pytest.skip(f"shared vendor reports not found under {vendor} (set PSQS_SHARED)")
    return vendor


def resign_manifest(directory: Path, edit: Callable[[dict], None] = lambda fields: None) -> Path:
    """Let ``edit`` change a stage directory's manifest fields, then write the manifest again with
    its own kind and version and the checksums of the files as they now are, as the stage would:
    tests use it to make a directory that is consistent but wrong in one chosen way."""
    manifest = json.loads((directory / MANIFEST).read_text())
    kind, version = manifest.pop("kind"), manifest.pop("format_version")
    del manifest["created_utc"], manifest["files"]
    edit(manifest)
    write_manifest(directory, kind, version, manifest)
    return directory
