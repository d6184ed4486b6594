"""One initiation-interval rule, checked where each component states or shows it.

The HLS top's pipeline pragma (parsed from the generated C++), the RTL wrapper's timing, the
overlay's timing estimate and the emulator's beat-timing model (its sample period measured from
the cycles at which it accepts beats) must all equal the rate the streams allow, computed here by
hand: a sample needs ceil(values * field / bus) beats on each stream at one beat per cycle, and
hls4ml's network takes a sample every ``reuse`` cycles. With 8-bit inputs the 16 features fit in
fewer beats than the 5 outputs, which is where the HLS pragma used to disagree.
"""
from __future__ import annotations

import re
import types
from math import ceil

import numpy as np
import pytest

from psqs.common.contract import IOContract, StreamLayout
from psqs.common.fixed_point import FixedFormat
from psqs.deploy.emulator import timing as emu_timing
from psqs.hls import wrapper
from psqs.hls.rtl import hdl
from psqs.overlays import model_ip

N_IN, N_OUT = 16, 5            # the jet tagger's features and classes


def hand_beats(values: int, width: int, bus: int) -> int:
    """Beats per sample written out: the narrowest of 8/16/32/64 bits that holds ``width``."""
    field = 8 if width <= 8 else 16 if width <= 16 else 32 if width <= 32 else 64
    return ceil(values * field / bus)


def hand_ii(in_width: int, out_width: int, bus: int, reuse: int) -> int:
    return max(hand_beats(N_IN, in_width, bus), hand_beats(N_OUT, out_width, bus), reuse)


def contract(in_width: int, out_width: int, bus: int) -> IOContract:
    return IOContract(StreamLayout.packed(N_IN, FixedFormat(in_width, min(in_width, 5)), bus),
                      StreamLayout.packed(N_OUT, FixedFormat(out_width, 8), bus), top="jet_axis")


def pragma_ii(tmp_path, c: IOContract, reuse: int) -> int:
    firmware = tmp_path / "firmware"
    firmware.mkdir()
    wrapper.write_firmware(firmware, c, "jet", "io_parallel", "Vitis", reuse)
    found = re.findall(r"#pragma HLS PIPELINE II=(\d+)", (firmware / "jet_axis.cpp").read_text())
    assert len(found) == 1, found
    return int(found[0])


def rtl_ii(c: IOContract) -> int:
    core = hdl.Core(name="core", modules={}, primitives=(), stages=3, inputs=(), outputs=(),
                    cost_luts=0.0, register_bits=0, adder_depth=0.0)
    return hdl.timing(c, core).ii


def estimated_ii(c: IOContract, reuse: int) -> int:
    model = types.SimpleNamespace(contract=c, manifest={"hls": {"reuse_factor": reuse}}, dense_layers=4)
    return model_ip.estimate_timing(model)["ii_cycles"]


def emulated_period(c: IOContract, package_ii: int, samples: int = 40) -> int:
    """The emulator's sample period as its beat model shows it: the package's II under the stream
    floor (as ``packages.load_package`` builds its timing), fed one long DMA transfer."""
    ib = c.input.beats_per_sample
    t = emu_timing.StreamTiming(ib, c.output.beats_per_sample, 9, c.initiation_interval(package_ii))
    accepted = emu_timing.accept(t, emu_timing.InputSide(), start=100, n_beats=samples * ib)
    starts = accepted.beat_times[::ib]
    gaps = np.unique(np.diff(starts))
    assert gaps.size == 1, gaps                     # steady streaming: one period
    assert np.array_equal(accepted.sample_ends, starts + ib - 1)
    return int(gaps[0])


@pytest.mark.parametrize("bus", [32, 64, 128])
@pytest.mark.parametrize("in_width", range(4, 17))
@pytest.mark.parametrize("out_width", [16, 18])
def test_every_component_uses_the_stream_rate(tmp_path, in_width, out_width, bus):
    c = contract(in_width, out_width, bus)
    for reuse in (1, 6):
        expected = hand_ii(in_width, out_width, bus, reuse)
        sub = tmp_path / f"r{reuse}"
        sub.mkdir()
        assert pragma_ii(sub, c, reuse) == expected, ("HLS pragma", reuse)
        assert estimated_ii(c, reuse) == expected, ("estimate", reuse)
        assert emulated_period(c, reuse) == expected, ("emulator", reuse)
    assert rtl_ii(c) == hand_ii(in_width, out_width, bus, 1)      # da4ml's core takes a sample per cycle


def test_eight_bit_inputs_are_paced_by_the_outputs(tmp_path):
    """`psqs train --input-width 8` on PYNQ-Z2: 16 x 8 bits = 2 beats in, 5 x 32-bit fields = 3 out."""
    c = contract(8, 18, 64)
    assert (c.input.beats_per_sample, c.output.beats_per_sample) == (2, 3)
    assert pragma_ii(tmp_path, c, 1) == rtl_ii(c) == emulated_period(c, 1) == 3
