"""Exact reference outputs of a trained QKeras model: what a bit-exact FPGA must produce.

The trained model computes in float32, which is exact for fixed-point values only while every
sum fits a 24-bit mantissa (not so for 16-bit networks, or for the first layer with a 16-bit
input). The reference rebuilds the same QKeras network with Keras' float type set to float64
(53-bit mantissa: exact for all widths psqs supports), copies the weights, and runs the same
quantizers. Its logits are stored as the model's test vectors: the reference every rung of every
later stage's verification ladder is compared with (rung 1 compares the float32 model itself).

Input values are saturated to the input format's range before the quantizer sees them: QKeras'
straight-through form ``x + (xq - x)`` is only exact when ``x`` is within an LSB of ``xq``.
"""
from __future__ import annotations

import contextlib
import dataclasses

import numpy as np

from psqs.common.fixed_point import FixedFormat

from . import model as model_lib
from .config import TrainConfig


@contextlib.contextmanager
def float64():
    import tensorflow as tf

    old = tf.keras.backend.floatx()
    tf.keras.backend.set_floatx("float64")
    try:
        yield
    finally:
        tf.keras.backend.set_floatx(old)


def deployed_config(config: TrainConfig) -> TrainConfig:
    """The architecture that is deployed: batch normalization is folded into the dense layers."""
    return dataclasses.replace(config, bn=False)


class ExactModel:
    """The float64 twin of a trained (BN-folded, unwrapped) model."""

    def __init__(self, trained, config: TrainConfig, input_format: FixedFormat):
        import tensorflow as tf

        self.input_format = input_format
        with float64():
            twin = model_lib.build(deployed_config(config), input_format, exact=True)
            twin.set_weights([np.asarray(w, dtype=np.float64) for w in trained.get_weights()])
            names = model_lib.activation_names(config)
            outputs = [twin.get_layer(n).output for n in names] + [twin.output]
            self._model = tf.keras.Model(twin.inputs, outputs)

    def __call__(self, X_std: np.ndarray, batch_size: int = 16384) -> tuple[np.ndarray, list[np.ndarray]]:
        """Logits (float64) and the hidden ReLU activations for standardized inputs."""
        fmt = self.input_format
        x = np.clip(np.asarray(X_std, dtype=np.float64), fmt.min_value, fmt.max_value)
        with float64():
            outs = self._model.predict(x, batch_size=batch_size, verbose=0)
        return outs[-1], outs[:-1]
