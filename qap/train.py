"""Quantization-aware training with pruning during training (QAP), round by round.

A run is a pruning chain: a list of training rounds over one model, with a checkpoint after each
sparsity step (:func:`chain`; ``psqs train`` keeps the last one, :func:`fit`):
- ``none``: one round;
- ``imp-ft`` / ``imp-lt``: a dense round, then one round per IMP step (the paper's schedule,
  :func:`pruning.imp_targets`), after choosing a global magnitude mask; ``imp-lt`` rewinds
  survivors to their initial values;
- ``gradual``: one round per step in which tfmot's polynomial-decay schedule raises each layer's
  sparsity from the previous step to this one during the first half of the epochs;
- with batch normalization, each checkpoint gets one more round on its BN-folded network (see
  :func:`_fold_batchnorm`), on a copy: the chain goes on with BN.

Each round trains with Adam, early stopping on validation loss (best weights restored) and the
masks held by tfmot's pruning wrapper. The result is a plain QKeras model (wrappers stripped)
whose weights sit exactly on their quantization grid.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from typing import Iterator

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
    # the best epoch once pruning has ended (a short run may end before it does: then the last one)
    start = min(start_from_epoch, len(val_loss) - 1)
    best = int(np.argmin(val_loss[start:])) + start
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


def _plain_copy(model, config: TrainConfig, input_format: FixedFormat, masks: dict):
    """An unwrapped copy of ``model`` (same layers, pruned weights zeroed) that shares nothing with it.

    A checkpoint is finished (BN folded, weights snapped to their grid) on this copy, so the chain
    it was taken from trains on exactly as if no checkpoint had been taken.
    """
    plain = model_lib.build(config, input_format)
    for layer in plain.layers:
        if layer.weights:
            layer.set_weights(_dense(model, layer.name).get_weights())
    for name, mask in masks.items():
        kernel = plain.get_layer(name).kernel
        kernel.assign(kernel.numpy() * mask)
    return plain


def _finish(model, config: TrainConfig, input_format: FixedFormat, masks: dict, train, val,
            rounds: list[RoundResult], progress_factory, t_start: float) -> TrainResult:
    """The deployable model of the network ``model`` is now: BN folded (one more round), grid-snapped."""
    import tensorflow_model_optimization as tfmot

    plain = _plain_copy(model, config, input_format, masks)
    rounds = list(rounds)
    if config.bn:
        wrapped = config.pruning != "none"
        folded = _fold_batchnorm(plain, config)
        plain = model_lib.build(
            deployed_config(config), input_format,
            wrap_dense=(lambda l: tfmot.sparsity.keras.prune_low_magnitude(
                l, pruning_schedule=pruning.fixed_mask_schedule())) if wrapped else None)
        for name, (kernel, bias) in folded.items():
            dense = _dense(plain, name)
            dense.kernel.assign(kernel)
            dense.bias.assign(bias)
        if wrapped:
            _set_masks(plain, masks)
        rounds.append(_fit_round(plain, config, train, val, "bn-folded", config.sparsity,
                                 progress_factory, wrapped))
        if wrapped:
            plain = tfmot.sparsity.keras.strip_pruning(plain)
    _snap_to_grid(plain, deployed_config(config))
    return TrainResult(plain, masks, rounds, time.perf_counter() - t_start)


def chain(config: TrainConfig, input_format: FixedFormat, train, val, steps: list[float],
          progress_factory=None, wanted=None) -> Iterator[tuple[float, TrainResult | None]]:
    """Train one pruning chain and yield ``(sparsity, result)`` after each of its ``steps``.

    ``steps`` are the cumulative sparsities of the pruning rounds, increasing (``[0.0]`` for
    ``pruning="none"``): IMP prunes to each in turn after a dense round, ``gradual`` raises the
    sparsity from the previous step to the next in one tfmot polynomial-decay round each. Each
    result is the deployable model at that step (see :func:`_finish`), computed on a copy so the
    chain goes on untouched; ``wanted(k)`` false skips finishing step ``k`` (``result`` None),
    which saves the BN fine-tuning round of checkpoints nobody asked for.
    """
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot

    _check_steps(config, steps)
    tf.keras.utils.set_random_seed(config.seed)
    tf.config.experimental.enable_op_determinism()
    t_start = time.perf_counter()
    prune = tfmot.sparsity.keras.prune_low_magnitude
    steps_per_epoch = math.ceil(len(train[1]) / config.batch_size)
    names = model_lib.dense_names(config)
    wanted = wanted or (lambda k: True)
    rounds: list[RoundResult] = []

    def finished(k, model, masks, target):
        if not wanted(k):
            return target, None
        at = dataclasses.replace(config, sparsity=target) if config.pruning != "none" else config
        return target, _finish(model, at, input_format, masks, train, val, rounds, progress_factory, t_start)

    if config.pruning == "gradual":
        model, previous = None, 0.0
        for k, target in enumerate(steps):
            prune_epochs = max(1, config.epochs // 2)
            frequency = max(1, steps_per_epoch // 4)
            end_step = frequency * math.ceil(prune_epochs * steps_per_epoch / frequency)
            schedule = tfmot.sparsity.keras.PolynomialDecay(
                initial_sparsity=previous, final_sparsity=target, begin_step=0,
                end_step=end_step, frequency=frequency)
            grown = model_lib.build(config, input_format, wrap_dense=lambda l: prune(l, pruning_schedule=schedule))
            if model is not None:         # go on from the previous step's weights, under the new schedule
                for layer in grown.layers:
                    inner = getattr(layer, "layer", layer)
                    if inner.weights:
                        inner.set_weights(_dense(model, inner.name).get_weights())
            model = grown
            rounds.append(_fit_round(model, config, train, val, f"gradual{k}", target, progress_factory, True,
                                     start_from_epoch=math.ceil(end_step / steps_per_epoch)))
            yield finished(k, model, _masks_of(model), target)
            previous = target
    elif config.pruning in ("imp-ft", "imp-lt"):
        model = model_lib.build(config, input_format,
                                wrap_dense=lambda l: prune(l, pruning_schedule=pruning.fixed_mask_schedule()))
        initial = model.get_weights()
        masks = {n: np.ones(_dense(model, n).kernel.shape, np.float32) for n in names}
        rounds.append(_fit_round(model, config, train, val, "imp0", 0.0, progress_factory, True))
        for k, target in enumerate(steps):
            masks = prune_step(model, names, masks, target,
                               rewind_to=initial if config.pruning == "imp-lt" else None)
            rounds.append(_fit_round(model, config, train, val, f"imp{k + 1}", target, progress_factory, True))
            yield finished(k, model, masks, target)
    else:
        model = model_lib.build(config, input_format)
        rounds.append(_fit_round(model, config, train, val, "dense", 0.0, progress_factory, False))
        yield finished(0, model, {n: np.ones(model.get_layer(n).kernel.shape, np.float32) for n in names}, 0.0)


def _check_steps(config: TrainConfig, steps: list[float]) -> None:
    if config.pruning == "none":
        if list(steps) != [0.0]:
            raise ValueError(f"a dense chain has the one step [0.0], not {steps}")
        return
    if not steps or any(not 0 < s < 1 for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        raise ValueError(f"pruning steps must increase within (0, 1): {steps}")


def fit(config: TrainConfig, input_format: FixedFormat, train, val, progress_factory=None) -> TrainResult:
    """Run all rounds of ``config`` on standardized (train, val) = ((X, y), (X, y)).

    IMP goes through the paper's schedule up to ``config.sparsity`` (:func:`pruning.imp_targets`);
    ``gradual`` is one round from 0 to ``config.sparsity``; only the last step is finished.
    """
    if config.pruning in ("imp-ft", "imp-lt"):
        steps = pruning.imp_targets(config.sparsity)
    else:
        steps = [config.sparsity]
    last = len(steps) - 1
    for _, result in chain(config, input_format, train, val, steps, progress_factory, wanted=lambda k: k == last):
        pass
    return result
