"""Real hls4ml 1.3 ``VivadoAccelerator`` projects, written here by hls4ml itself, for the tests of
``psqs import-hls4ml``: what an hls4ml user has on disk after ``hls_model.write()`` (firmware with
the ``myproject_axi`` top, block-design TCL, ``axi_stream_driver.py``), without Vivado.

The model is a small QKeras MLP (16-32-16-5, 6-bit weights and activations) with seeded random
weights, so that writing a project takes seconds and the weights sit exactly on their grid. Each
distinct project is written once per test session (:func:`hls4ml_project`); tests must not
modify the directory they get (copy it first). ``predict`` adds hls4ml's own library to its
``firmware/`` (``myproject-<stamp>.so``), as ``hls_model.compile()`` does in a user's project.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np

N_IN, HIDDEN, N_OUT = 16, (32, 16), 5
PROJECT = "myproject"

_CACHE: dict = {}


@dataclasses.dataclass
class WrittenProject:
    """One written project: its directory and the hls4ml model that wrote it (for ``predict``)."""

    directory: Path
    hls_model: object
    input_type: str
    output_type: str
    _compiled: bool = False

    def predict(self, X: np.ndarray) -> np.ndarray:
        """hls4ml's own C simulation: its ``build_lib.sh`` library (its bridge calls the
        ``myproject_axi`` top, converting numpy's floats to ``input_axi_t`` in C), compiled on first
        use. ``_compile`` and not ``compile``: ``compile`` writes the project again, which would
        undo the hand fix of the element typedefs (see :func:`write_project`)."""
        if not self._compiled:
            self.hls_model._compile()
            self._compiled = True
        return np.asarray(self.hls_model.predict(np.ascontiguousarray(X)))


def keras_model(seed: int = 0):
    """The QKeras MLP with seeded random weights, rounded onto the quantizers' grid by QKeras."""
    import tensorflow as tf
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    tf.keras.utils.set_random_seed(seed)
    inputs = tf.keras.Input(shape=(N_IN,), name="features")
    x = inputs
    for i, width in enumerate(HIDDEN, start=1):
        x = QDense(width, name=f"fc{i}", kernel_quantizer=quantized_bits(6, 0, alpha=1),
                   bias_quantizer=quantized_bits(6, 0, alpha=1))(x)
        x = QActivation(quantized_relu(6, 2), name=f"relu{i}")(x)
    outputs = QDense(N_OUT, name="output", kernel_quantizer=quantized_bits(6, 0, alpha=1),
                     bias_quantizer=quantized_bits(6, 0, alpha=1))(x)
    model = tf.keras.Model(inputs, outputs)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.9, 0.9, size=w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def write_project(directory: Path, input_type: str = "float", output_type: str | None = None,
                  interface: str = "axi_stream", seed: int = 0, hand_fix: bool = True,
                  io_type: str = "io_parallel") -> WrittenProject:
    """Convert the model with hls4ml's ``VivadoAccelerator`` backend for PYNQ-Z2 and write it.

    For ``ap_fixed`` I/O, hls4ml 1.3 writes ``typedef fixed<16,6,TRN,WRAP,0> T_in;`` into
    ``firmware/myproject_axi.h``, which neither g++ nor Vivado HLS compiles; ``hand_fix`` does
    what its users do, spell the two typedefs as the ``input_type`` / ``output_type`` they asked
    for. ``hand_fix=False`` leaves the project exactly as hls4ml wrote it.
    """
    import hls4ml

    output_type = input_type if output_type is None else output_type
    model = keras_model(seed)
    config = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="VivadoAccelerator")
    hls_model = hls4ml.converters.convert_from_keras_model(
        model, hls_config=config, backend="VivadoAccelerator", board="pynq-z2", interface=interface,
        io_type=io_type, input_type=input_type, output_type=output_type,
        output_dir=str(directory), project_name=PROJECT)
    hls_model.write()
    header = Path(directory) / "firmware" / f"{PROJECT}_axi.h"
    if hand_fix:
        text = header.read_text()
        for name, spelled in (("T_in", input_type), ("T_out", output_type)):
            text = re.sub(rf"typedef [^;]+ {name};", f"typedef {spelled} {name};", text)
        header.write_text(text)
    return WrittenProject(Path(directory), hls_model, input_type, output_type)


def hls4ml_project(tmp_path_factory, input_type: str = "float", output_type: str | None = None,
                   interface: str = "axi_stream", hand_fix: bool = True,
                   io_type: str = "io_parallel") -> WrittenProject:
    """The project for these I/O types, interface and hls4ml io_type, written at most once per
    test session."""
    key = (input_type, output_type, interface, hand_fix, io_type)
    if key not in _CACHE:
        directory = tmp_path_factory.mktemp("hls4ml_project") / "project"
        _CACHE[key] = write_project(directory, input_type, output_type, interface,
                                     hand_fix=hand_fix, io_type=io_type)
    return _CACHE[key]


#: Where the stream widths of hls4ml's PYNQ-Z2 layout sit in its handoff, as regular expressions
#: over Vivado's XML with the width as the group they replace. Each must match exactly the number
#: of times given, in the DMA ``hier_0/axi_dma_0`` and the model IP ``hier_0/myproject_axi_0``:
#: the DMA's stream-width parameters (Vivado lists each twice: C_* and c_*), its AXI-stream
#: TDATA/TKEEP ports, the model's ``in_r``/``out_r`` TDATA ports, and TDATA_NUM_BYTES of the four
#: stream interfaces (the DMA's two and the model's two), which is what pynq's and psqs's readers
#: take for a stream's width.
_STREAM_WIDTHS = (
    (r'NAME="(?i:c_m_axis_mm2s_tdata_width)" VALUE="(\d+)"', 2, "bits"),
    (r'NAME="(?i:c_s_axis_s2mm_tdata_width)" VALUE="(\d+)"', 2, "bits"),
    (r'LEFT="(\d+)" NAME="(?:m_axis_mm2s_tdata|s_axis_s2mm_tdata|in_r_TDATA|out_r_TDATA)"', 4, "msb"),
    (r'LEFT="(\d+)" NAME="(?:m_axis_mm2s_tkeep|s_axis_s2mm_tkeep)"', 2, "keep_msb"),
    (r'NAME="TDATA_NUM_BYTES" VALUE="(\d+)"', 4, "bytes"),
)


def stream_width_variant(source: Path, destination: Path, bits: int) -> Path:
    """A DERIVED test fixture, not a Vivado output: the real hls4ml PYNQ-Z2 jet handoff at
    ``source`` with its two AXI streams (DMA MM2S -> ``in_r``, ``out_r`` -> DMA S2MM) made ``bits``
    wide, every other byte unchanged. It stands in for the handoff Vivado would write for the same
    block design built from an ``ap_fixed<bits, I>`` project, which no one has built here (no
    Vivado). The DMA's memory-map widths stay 32 bits: hls4ml's TCL asks for the stream width there
    too, but PG021 allows no memory-map width below 32, so a real build cannot have less; pynq takes
    its buffer alignment from them, not from the streams."""
    values = {"bits": str(bits), "msb": str(bits - 1), "keep_msb": str(bits // 8 - 1), "bytes": str(bits // 8)}
    text = Path(source).read_text()
    for pattern, count, key in _STREAM_WIDTHS:
        found = list(re.finditer(pattern, text))
        if len(found) != count:
            raise ValueError(f"{source}: {pattern} matches {len(found)} times, expected {count}: "
                             "not hls4ml's PYNQ-Z2 layout")
        for match in reversed(found):
            text = text[:match.start(1)] + values[key] + text[match.end(1):]
    Path(destination).write_text(text)
    return Path(destination)
