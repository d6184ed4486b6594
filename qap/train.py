"""Quantization-aware training with pruning during training (QAP), round by round.

A run is a list of training rounds over one model:
- ``none``: one round;
- ``imp-ft`` / ``imp-lt``: a dense round, then one round per IMP target (:func:`pruning.imp_targets`),
  after choosing a global magnitude mask; ``imp-lt`` rewinds survivors to their initial values;
- ``gradual``: one round in which tfmot's polynomial-decay schedule raises each layer's sparsity
  during the first half of the epochs;
- with batch normalization, a final round on the BN-folded network (see :func:`_fold_batchnorm`).

Each round trains with Adam, early stopping on validation loss (best weights restored) and the
masks held by tfmot's pruning wrapper. The result is a plain QKeras model (wrappers stripped)
whose weights sit exactly on their quantization grid.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time

import numpy as np

from psqs.common.fixed_point import FixedFormat

from . import model as model_lib
from . import pruning
from .config import TrainConfig
from .reference import deployed_config

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RoundResult:
    name: str
    target_sparsity: float
    epochs: int
    best_val_loss: float
    val_accuracy: float
    seconds: float


@dataclasses.dataclass
class TrainResult:
    model: object                 # tf.keras.Model, plain QKeras layers, weights on grid
    masks: dict                   # dense layer name -> float32 0/1 array (kernel shape)
    rounds: list[RoundResult]
    seconds: float


def _callbacks(config: TrainConfig, wrapped: bool, progress, start_from_epoch: int = 0):
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    class EarlyStoppingRestoringBest(tf.keras.callbacks.EarlyStopping):
        """Keras restores the best weights only when it stops early; we want them always."""

        def on_train_end(self, logs=None):
            super().on_train_end(logs)
            if self.best_weights is not None and self.stopped_epoch == 0:
                self.model.set_weights(self.best_weights)

    callbacks = [EarlyStoppingRestoringBest(monitor="val_loss", patience=config.patience,
                                            restore_best_weights=True,
                                            start_from_epoch=start_from_epoch)]
    if wrapped:
        callbacks.append(tfmot.sparsity.keras.UpdatePruningStep())
    if progress is not None:
        callbacks.append(progress)
    return callbacks


def _wrappers(model):
    """tfmot's pruning wrappers (the class is not public API; they are the layers with masks)."""
    return [layer for layer in model.layers if hasattr(layer, "pruning_vars")]


def _dense(model, name):
    """The dense layer called ``name``, looking through a pruning wrapper."""
    for layer in model.layers:
        inner = getattr(layer, "layer", layer)
        if inner.name == name:
            return inner
    raise KeyError(name)


def _masks_of(model) -> dict:
    masks = {}
    for wrapper in _wrappers(model):
        (_, mask, _), = wrapper.pruning_vars
        masks[wrapper.layer.name] = mask.numpy().astype(np.float32)
    return masks


def _set_masks(model, masks: dict) -> None:
    """Install ``masks`` in the pruning wrappers and zero the pruned weights now."""
    for wrapper in _wrappers(model):
        (weight, mask, _), = wrapper.pruning_vars
        m = masks[wrapper.layer.name]
        mask.assign(m)
        weight.assign(weight.numpy() * m)


def prune_step(model, names: list[str], masks: dict, target: float, rewind_to=None) -> dict:
    """One IMP pruning step on a wrapped model: choose global masks, optionally rewind, apply.

    With ``rewind_to`` (the model's initial weights) the surviving weights restart from their
    initial values (lottery ticket); otherwise they keep their trained values (fine-tuning).
    """
    kernels = [_dense(model, n).kernel.numpy() for n in names]
    chosen = dict(zip(names, pruning.global_masks(kernels, [masks[n] for n in names], target)))
    if rewind_to is not None:
        model.set_weights(rewind_to)
    _set_masks(model, chosen)
    return chosen


def _fit_round(model, config, train, val, name, target, progress_factory, wrapped,
               start_from_epoch=0) -> RoundResult:
    import tensorflow as tf

    model.compile(optimizer=tf.keras.optimizers.Adam(config.learning_rate),
                  loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    progress = progress_factory(name, config.epochs) if progress_factory else None
    t0 = time.perf_counter()
    history = model.fit(train[0], train[1], validation_data=val, epochs=config.epochs,
                        batch_size=config.batch_size, shuffle=True, verbose=0,
                        callbacks=_callbacks(config, wrapped, progress, start_from_epoch))
    if progress is not None:
        progress.close()
    seconds = time.perf_counter() - t0
    val_loss = history.history["val_loss"]
    best = int(np.argmin(val_loss[start_from_epoch:])) + start_from_epoch
    result = RoundResult(name, target, len(val_loss), float(val_loss[best]),
                         float(history.history["val_accuracy"][best]), seconds)
    log.info("round %s: sparsity target %.3f, %d epochs, best val loss %.4f, val acc %.4f, %.1f s",
             name, target, result.epochs, result.best_val_loss, result.val_accuracy, seconds)
    return result


def _fold_batchnorm(bn_model, config: TrainConfig):
    """Per dense layer, the (kernel, bias) of the network with batch normalization folded in.

    ``y = BN(Q(W) x)`` becomes ``y = (Q(W) * s) x + (beta - mean * s)`` with
    ``s = gamma / sqrt(var + eps)``. Those folded values are re-quantized and fine-tuned in a last
    round, because hls4ml and QKeras must compute the same layer: a quantized dense layer with no
    separate normalization (QKeras 0.9.0 has no QDenseBatchnorm).
    """
    folded = {}
    for i, name in enumerate(model_lib.dense_names(config)):
        dense = _dense(bn_model, name)
        kernel = dense.kernel.numpy()
        if config.quantized:
            kernel = dense.kernel_quantizer_internal(kernel).numpy()
        if name == "output":
            folded[name] = (kernel, dense.bias.numpy())
            continue
        bn = bn_model.get_layer(f"bn{i + 1}")
        scale = bn.gamma.numpy() / np.sqrt(bn.moving_variance.numpy() + bn.epsilon)
        folded[name] = (kernel * scale, bn.beta.numpy() - bn.moving_mean.numpy() * scale)
    return folded


def _snap_to_grid(model, config: TrainConfig) -> None:
    """Replace every weight and bias by its quantized value, and check QKeras agrees.

    After this the stored float weights *are* the fixed-point weights: QKeras, hls4ml and any
    RTL generator read identical numbers, whatever rounding each applies to off-grid values.
    """
    if not config.quantized:
        return
    fmt = model_lib.weight_format(config.bits)
    for name in model_lib.dense_names(config):
        layer = model.get_layer(name)
        for var, quantizer in ((layer.kernel, layer.kernel_quantizer_internal),
                               (layer.bias, layer.bias_quantizer_internal)):
            snapped = fmt.quantize(var.numpy()).astype(np.float32)
            var.assign(snapped)
            requantized = quantizer(snapped).numpy()
            if not np.array_equal(requantized, snapped):
                raise AssertionError(f"{layer.name}/{var.name}: QKeras re-quantization moved "
                                     f"{int((requantized != snapped).sum())} on-grid weight(s)")


def fit(config: TrainConfig, input_format: FixedFormat, train, val, progress_factory=None) -> TrainResult:
    """Run all rounds of ``config`` on standardized (train, val) = ((X, y), (X, y))."""
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    tf.keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    t_start = time.perf_counter()
    prune = tfmot.sparsity.keras.prune_low_magnitude
    steps_per_epoch = math.ceil(len(train[1]) / config.batch_size)
    rounds: list[RoundResult] = []

    if config.pruning == "gradual":
        prune_epochs = max(1, config.epochs // 2)
        frequency = max(1, steps_per_epoch // 4)
        end_step = frequency * math.ceil(prune_epochs * steps_per_epoch / frequency)
        schedule = tfmot.sparsity.keras.PolynomialDecay(
            initial_sparsity=0.0, final_sparsity=config.sparsity, begin_step=0,
            end_step=end_step, frequency=frequency)
        model = model_lib.build(config, input_format, wrap_dense=lambda l: prune(l, pruning_schedule=schedule))
        rounds.append(_fit_round(model, config, train, val, "gradual", config.sparsity,
                                 progress_factory, True,
                                 start_from_epoch=math.ceil(end_step / steps_per_epoch)))
    elif config.pruning in ("imp-ft", "imp-lt"):
        model = model_lib.build(config, input_format,
                                wrap_dense=lambda l: prune(l, pruning_schedule=pruning.fixed_mask_schedule()))
        initial = model.get_weights()
        names = model_lib.dense_names(config)
        masks = {n: np.ones(_dense(model, n).kernel.shape, np.float32) for n in names}
        targets = [0.0] + pruning.imp_targets(config.sparsity)
        for k, target in enumerate(targets):
            if target > 0:
                masks = prune_step(model, names, masks, target,
                                   rewind_to=initial if config.pruning == "imp-lt" else None)
            rounds.append(_fit_round(model, config, train, val, f"imp{k}", target,
                                     progress_factory, True))
    else:
        model = model_lib.build(config, input_format)
        rounds.append(_fit_round(model, config, train, val, "dense", 0.0, progress_factory, False))

    wrapped = config.pruning != "none"
    masks = _masks_of(model) if wrapped else None
    if config.bn:
        folded = _fold_batchnorm(model, config)
        model = model_lib.build(
            deployed_config(config), input_format,
            wrap_dense=(lambda l: prune(l, pruning_schedule=pruning.fixed_mask_schedule())) if wrapped else None)
        for name, (kernel, bias) in folded.items():
            dense = _dense(model, name)
            dense.kernel.assign(kernel)
            dense.bias.assign(bias)
        if wrapped:
            _set_masks(model, masks)
        rounds.append(_fit_round(model, config, train, val, "bn-folded", config.sparsity,
                                 progress_factory, wrapped))
    if wrapped:
        masks = _masks_of(model)
        model = tfmot.sparsity.keras.strip_pruning(model)
    else:
        masks = {n: np.ones(model.get_layer(n).kernel.shape, np.float32)
                 for n in model_lib.dense_names(config)}
    _snap_to_grid(model, deployed_config(config))
    return TrainResult(model, masks, rounds, time.perf_counter() - t_start)
