"""The psqs command line: user errors are one line naming the culprit, exit status 2."""
from __future__ import annotations

from psqs.deploy.cli import main


def test_bad_data_path(tmp_path, capsys):
    assert main(["-q", "train", "--out", str(tmp_path / "m"), "--data", str(tmp_path / "nope.npz")]) == 2
    err = capsys.readouterr().err
    assert "nope.npz: no such file" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_bad_option_value(tmp_path, capsys, synthetic_npz):
    assert main(["-q", "train", "--out", str(tmp_path / "m"), "--bits", "3", "--data", str(synthetic_npz)]) == 2
    assert "bits=3: must be in 4..16 or 32 (float)" in capsys.readouterr().err
    assert main(["-q", "train", "--out", str(tmp_path / "m"), "--pruning", "imp-lt", "--sparsity", "1.5",
                 "--data", str(synthetic_npz)]) == 2
    assert "sparsity=1.5: must be in [0, 1)" in capsys.readouterr().err


def test_existing_output_needs_force(tmp_path, capsys, synthetic_npz):
    (tmp_path / "m").mkdir()
    assert main(["-q", "train", "--out", str(tmp_path / "m"), "--data", str(synthetic_npz),
                 "--epochs", "1", "--max-train", "500"]) == 2
    assert "already exists (pass --force" in capsys.readouterr().err
