"""The jet tagger as a QKeras network whose arithmetic the FPGA reproduces exactly.

Layout (the paper's 16-64-32-32-5 by default)::

    features -> input_quant -> fc1 [-> bn1] -> relu1 -> ... -> output (logits)

- ``input_quant`` quantizes the standardized features to the hardware's input word
  (``quantized_bits(W, I-1, alpha=1)`` = ``ap_fixed<W, I, RND_CONV, SAT>``), so the model's logits
  are those of exactly the input the FPGA receives.
- dense weights and biases use ``quantized_bits(b, 0, alpha=1)`` (``ap_fixed<b, 1>``), ReLUs
  ``quantized_relu(b, r)`` (``ap_ufixed<b, r, RND_CONV, SAT>``); ``b = 32`` builds a float network.
- the output layer has no activation: softmax lives in the loss only, so hardware outputs can be
  compared with the model bit for bit.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from psqs.common.fixed_point import FixedFormat

from .config import TrainConfig

N_FEATURES = 16
N_CLASSES = 5


def input_format_for(X_std: np.ndarray, width: int, coverage: float) -> FixedFormat:
    """Smallest signed format of ``width`` bits whose range holds ``coverage`` of ``|X_std|``.

    Integer bits (sign included) are ``1 + max(0, floor(log2(q)) + 1)`` with ``q`` the coverage
    quantile of the absolute standardized training values; the rest are fraction bits.
    """
    q = float(np.quantile(np.abs(X_std), coverage))
    magnitude_bits = max(0, math.floor(math.log2(q)) + 1) if q > 0 else 0
    integer = 1 + magnitude_bits
    if integer >= width:
        raise ValueError(f"input_width={width}: too narrow for standardized values up to {q:.3g}")
    return FixedFormat(width=width, integer=integer, signed=True)


def weight_format(bits: int) -> FixedFormat:
    return FixedFormat(width=bits, integer=1, signed=True)


def relu_format(bits: int, relu_integer: int) -> FixedFormat:
    return FixedFormat(width=bits, integer=relu_integer, signed=False)


def dense_names(config: TrainConfig) -> list[str]:
    return [f"fc{i + 1}" for i in range(len(config.widths))] + ["output"]


def activation_names(config: TrainConfig) -> list[str]:
    return [f"relu{i + 1}" for i in range(len(config.widths))]


def _exact_quantized_relu():
    """quantized_relu without QKeras' internal cast to float32.

    QKeras' ``quantized_relu`` casts its input to float32, which rounds accumulators wider than
    24 bits (any 16-bit network, and the first layer of narrower ones) and can move a value onto
    a rounding tie that the exact fixed-point sum does not sit on. The reference model
    (float64, :mod:`psqs.qap.reference`) needs the exact sum, so it uses this subclass: same
    parameters and formula (round half to even, clip to ``[0, 2**integer - lsb]``), in the
    input's dtype. It is never used for training or saved into a model file.
    """
    import tensorflow as tf
    from qkeras import quantized_relu

    class ExactQuantizedRelu(quantized_relu):
        def __call__(self, x):
            if self.use_sigmoid or self.negative_slope:
                raise NotImplementedError("exact reference supports plain quantized_relu only")
            m = 2.0 ** self.bits
            m_i = 2.0 ** self.integer
            return m_i * tf.clip_by_value(tf.round(x * m / m_i) / m, 0.0, 1.0 - 1.0 / m)

    return ExactQuantizedRelu


def build(config: TrainConfig, input_format: FixedFormat,
          wrap_dense: Callable | None = None, exact: bool = False):
    """Build the (untrained) Keras model.

    ``wrap_dense`` wraps every dense layer (the trainer passes tfmot's pruning wrapper);
    ``exact`` builds the float64 reference variant (call inside :func:`reference.float64`).
    """
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    wrap_dense = wrap_dense or (lambda layer: layer)
    relu_cls = _exact_quantized_relu() if exact else quantized_relu
    regularizer = tf.keras.regularizers.l1(config.l1) if config.l1 and not exact else None
    names = dense_names(config)

    def dense(units, name, use_bias=True):
        if not config.quantized:
            return tf.keras.layers.Dense(units, name=name, use_bias=use_bias,
                                         kernel_regularizer=regularizer)
        wq = quantized_bits(config.bits, 0, alpha=1)
        return QDense(units, name=name, use_bias=use_bias, kernel_quantizer=wq,
                      bias_quantizer=quantized_bits(config.bits, 0, alpha=1) if use_bias else None,
                      kernel_regularizer=regularizer)

    inputs = tf.keras.Input(shape=(N_FEATURES,), name="features")
    x = QActivation(quantized_bits(input_format.width, input_format.integer - 1, alpha=1),
                    name="input_quant")(inputs)
    for i, units in enumerate(config.widths):
        x = wrap_dense(dense(units, names[i], use_bias=not config.bn))(x)
        if config.bn:
            x = tf.keras.layers.BatchNormalization(name=f"bn{i + 1}")(x)
        if config.quantized:
            x = QActivation(relu_cls(config.bits, config.relu_integer), name=f"relu{i + 1}")(x)
        else:
            x = tf.keras.layers.Activation("relu", name=f"relu{i + 1}")(x)
    logits = wrap_dense(dense(N_CLASSES, names[-1]))(x)
    return tf.keras.Model(inputs, logits, name="jet_tagger")


def layer_table(config: TrainConfig, input_format: FixedFormat) -> list[dict]:
    """Per dense layer: shape and the fixed-point formats of its input, weights and biases.

    This is what BOPs are computed from and what later stages read to check their precisions.
    """
    sizes = [N_FEATURES, *config.widths, N_CLASSES]
    rows = []
    for i, name in enumerate(dense_names(config)):
        in_fmt = input_format if i == 0 else (relu_format(config.bits, config.relu_integer)
                                              if config.quantized else None)
        rows.append({
            "name": name,
            "n_in": sizes[i],
            "n_out": sizes[i + 1],
            "input_format": in_fmt.to_dict() if in_fmt else None,
            "weight_format": weight_format(config.bits).to_dict() if config.quantized else None,
            "bias_format": weight_format(config.bits).to_dict() if config.quantized else None,
            "activation": "linear" if name == "output" else "relu",
            "output_format": (relu_format(config.bits, config.relu_integer).to_dict()
                              if config.quantized and name != "output" else None),
        })
    return rows
