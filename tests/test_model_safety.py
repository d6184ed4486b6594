"""A model file is foreign input: its config is checked with h5py before Keras rebuilds anything.

Found on main: ``psqs convert`` of a model directory whose ``model.h5`` holds a Lambda layer ran the
Lambda's marshalled code while loading, before the layer check refused it.
"""
from __future__ import annotations

import json
import shutil

import h5py
import pytest

from conftest import resign_manifest
from psqs.common.artifact import ArtifactError
from psqs.deploy.cli import main
from psqs.qap import load_model
from psqs.qap import stage as qap_stage
from psqs.qap.artifact import MODEL_FILE, _load_in_safe_mode, check_model_file, refused_layers
from psqs.qap.config import TrainConfig

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, synthetic_npz):
    """A real (tiny) psqs model directory."""
    config = TrainConfig(data=str(synthetic_npz), bits=6, widths=(8,), epochs=1, patience=1,
                         batch_size=256, max_train=300, test_vectors=20)
    return qap_stage.run(config, tmp_path_factory.mktemp("safety") / "model").path


def _with_model_file(model_dir, target, write):
    """A copy of ``model_dir`` whose model.h5 ``write`` replaced, with a manifest that matches it."""
    shutil.copytree(model_dir, target)
    write(target / MODEL_FILE)
    return resign_manifest(target)


def _lambda_model(model_dir, marker):
    """The psqs model with a Lambda before its output layer whose code creates ``marker`` when run."""
    import tensorflow as tf

    base = load_model(model_dir)
    # eval: the marker's path becomes a constant of the lambda's code, which Keras marshals into the file
    touch = eval(f"lambda x: (open({str(marker)!r}, 'w').close(), x)[1]")
    x = tf.keras.layers.Lambda(touch, name="evil")(base.layers[-2].output)
    model = tf.keras.Model(base.inputs, base.layers[-1](x))
    marker.unlink()   # building the model ran the lambda once, here in the test
    return model


def test_convert_refuses_a_lambda_without_running_it(model_dir, tmp_path, capsys):
    marker = tmp_path / "lambda-ran"
    evil = _lambda_model(model_dir, marker)
    bad_dir = _with_model_file(model_dir, tmp_path / "model", lambda p: evil.save(p, save_format="h5"))
    assert not marker.exists()

    assert main(["-q", "convert", str(bad_dir), "--out", str(tmp_path / "hls")]) == 2
    assert not marker.exists(), "psqs convert ran the Lambda's code"
    err = capsys.readouterr().err
    assert f"{bad_dir / MODEL_FILE}: refused before loading" in err
    assert "layer 'evil' is a Lambda (runs Python code stored in the file)" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "hls").exists()

    # every other reader of model.h5 goes through the same check: psqs rtl, psqs.qap.load_model
    assert main(["-q", "rtl", str(bad_dir), "--out", str(tmp_path / "rtl")]) == 2
    assert "layer 'evil' is a Lambda" in capsys.readouterr().err
    with pytest.raises(ArtifactError, match="layer 'evil' is a Lambda"):
        load_model(bad_dir)
    assert not marker.exists() and not (tmp_path / "rtl").exists()

    # Keras' safe mode, the second line of defence, also stops it if the h5py check were bypassed
    with pytest.raises(ValueError, match="Lambda layer with a Python `lambda`"):
        _load_in_safe_mode(bad_dir / MODEL_FILE)
    assert not marker.exists()

    # control: the file does carry code that runs, as psqs' loader on main let it (QKeras' loader)
    from qkeras.utils import load_qmodel

    load_qmodel(str(bad_dir / MODEL_FILE), compile=False)
    assert marker.exists()


def _edit_config(path, edit):
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)


def _layer(config, name):
    return next(layer for layer in config["config"]["layers"] if layer["name"] == name)


def test_unknown_classes_and_functions_are_refused_by_name(model_dir, tmp_path, capsys):
    def unknown_layer(config):
        _layer(config, "relu1")["class_name"] = "MyCustomLayer"

    bad_dir = _with_model_file(model_dir, tmp_path / "model",
                               lambda p: (shutil.copy(model_dir / MODEL_FILE, p), _edit_config(p, unknown_layer)))
    assert main(["-q", "convert", str(bad_dir), "--out", str(tmp_path / "hls")]) == 2
    err = capsys.readouterr().err
    assert "layer 'relu1' is a MyCustomLayer (not a psqs layer class)" in err and "Traceback" not in err

    path = tmp_path / "nested.h5"
    shutil.copy(model_dir / MODEL_FILE, path)
    _edit_config(path, lambda c: (_layer(c, "fc1")["config"]["kernel_initializer"].update(class_name="Backdoor"),
                                  _layer(c, "output")["config"].update(activation="my_module.payload")))
    with pytest.raises(ArtifactError) as refused:
        check_model_file(path)
    assert "layer 'fc1' (QDense) holds object of class 'Backdoor'" in str(refused.value)
    assert "layer 'output' (QDense) holds activation 'my_module.payload'" in str(refused.value)

    _edit_config(path, lambda c: c.update(class_name="Sequential"))
    with pytest.raises(ArtifactError, match="model class 'Sequential'"):
        check_model_file(path)


def test_psqs_models_pass_and_broken_files_are_named(model_dir, tmp_path):
    with h5py.File(model_dir / MODEL_FILE, "r") as f:
        assert refused_layers(json.loads(f.attrs["model_config"])) == []
    not_h5 = tmp_path / "model.h5"
    not_h5.write_text("{}")
    with pytest.raises(ArtifactError, match=r"model\.h5: not a readable HDF5 model file"):
        check_model_file(not_h5)
    with h5py.File(tmp_path / "weights.h5", "w") as f:
        f["w"] = [1.0]
    with pytest.raises(ArtifactError, match=r"weights\.h5: holds no model_config"):
        check_model_file(tmp_path / "weights.h5")
