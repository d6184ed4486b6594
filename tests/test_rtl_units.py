"""psqs.hls.rtl pieces that need no trained model and no compiler: rounding, I/O mapping, packaging."""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from psqs.board_configs import load_board
from psqs.common.contract import IOContract, StreamLayout
from psqs.common.fixed_point import FixedFormat
from psqs.hls.rtl import cache, hdl, ipxact, synth
from psqs.hls.rtl.trace import TraceError, relu_half_even


@pytest.mark.parametrize("acc, relu", [
    ((1, 3, 8), (6, 0)),      # 10 bits dropped at most: ties at every 2**9
    ((1, 2, 11), (6, 2)),     # relu_integer 2: saturation at 4 - 1/16
    ((1, 5, 6), (8, 3)),      # a wide accumulator saturating
    ((0, 3, 7), (4, 1)),      # unsigned input
    ((1, 2, 3), (6, 0)),      # fewer fraction bits than the result: no rounding, saturation only
])
def test_relu_half_even_is_ap_ufixed_rnd_conv_sat(acc, relu):
    """Every code of the accumulator through the traced ReLU == ap_ufixed<b, r, AP_RND_CONV, AP_SAT>."""
    from da4ml.trace import FixedVariableArray, comb_trace

    k, i, f = acc
    x = FixedVariableArray.from_kif(np.array([k]), np.array([i]), np.array([f]))
    fmt = FixedFormat(width=relu[0], integer=relu[1], signed=False)
    comb = comb_trace(x._vars, [relu_half_even(x._vars[0], fmt)])
    codes = np.arange(-(1 << (i + f)) if k else 0, 1 << (i + f))
    values = codes * 2.0 ** -f
    got = np.asarray(comb.predict(values[:, None])).ravel()
    np.testing.assert_array_equal(got, fmt.quantize(values))
    scaled = values * 2.0 ** fmt.frac
    if f > fmt.frac:
        assert np.any(np.abs(scaled - np.floor(scaled) - 0.5) == 0), "the sweep must contain ties"


def _contract(out_fmt: FixedFormat, bus: int = 64, in_fmt: FixedFormat | None = None) -> IOContract:
    in_fmt = in_fmt or FixedFormat(16, 3)
    return IOContract(StreamLayout.packed(16, in_fmt, bus), StreamLayout.packed(5, out_fmt, bus), top="t_axis")


def _core(outputs, inputs=None) -> hdl.Core:
    inputs = inputs or tuple(hdl.Slice(16 * j, True, 2, 13) for j in range(16))
    return hdl.Core(name="t_axis_core", modules={}, primitives=(), stages=3, inputs=inputs, outputs=outputs,
                    cost_luts=0.0, register_bits=0, adder_depth=0.0)


def _outputs(*formats):
    out, offset = [], 0
    for signed, integer, frac in formats:
        out.append(hdl.Slice(offset, signed, integer, frac))
        offset += out[-1].width
    return tuple(out)


def test_output_codes_are_aligned_and_extended_into_their_fields():
    """da4ml's per-output minimal formats become contract codes: LSB aligned, sign- or zero-extended."""
    contract = _contract(FixedFormat(16, 5))                     # frac 11, 16-bit fields, 4 per beat
    core = _core(_outputs((True, 0, 11), (False, 2, 9), (False, 0, 0), (True, 4, 11), (True, 1, 11)))
    text = hdl._output_map(contract, core)
    lines = dict(re.findall(r"assign out_sample\[(\d+:\d+)\] = (.*);", text))
    assert lines["15:0"] == "{{4{head_out[11]}}, head_out[11:0]}"         # signed: sign bits
    assert lines["31:16"] == "{3'd0, head_out[22:12], 2'd0}"               # unsigned, 2 LSBs short
    assert lines["47:32"] == "16'd0"                                       # constant-zero output
    assert lines["63:48"] == "{head_out[38:23]}"                          # exactly 16 bits
    assert lines["127:112"] == "16'd0"                                     # padding field of beat 2
    assert len(lines) == contract.output.beats_per_sample * contract.output.values_per_beat


def test_io_mismatches_are_named():
    contract = _contract(FixedFormat(16, 5))
    with pytest.raises(TraceError, match=r"output 1: .*does not fit the contract's ap_fixed<16,5"):
        hdl._check_io(contract, _core(_outputs((True, 0, 11), (True, 5, 11), (True, 0, 11), (True, 0, 11),
                                                (True, 0, 11))))
    with pytest.raises(TraceError, match=r"output 0: .*12 fraction bits"):
        hdl._check_io(contract, _core(_outputs(*[(True, 0, 12)] * 5)))
    wrong_inputs = tuple(hdl.Slice(16 * j, True, 3, 12) for j in range(16))
    with pytest.raises(TraceError, match=r"input 0: the core reads 16 bits with 12 fraction bits"):
        hdl._check_io(contract, _core(_outputs(*[(True, 0, 11)] * 5), wrong_inputs))


@pytest.mark.parametrize("bus, in_beats, out_beats", [(64, 4, 2), (128, 2, 1), (256, 1, 1), (32, 8, 3)])
def test_timing_is_beats_plus_core(bus, in_beats, out_beats):
    contract = _contract(FixedFormat(16, 5), bus)
    core = _core(_outputs(*[(True, 0, 11)] * 5))
    t = hdl.timing(contract, core)
    assert (contract.input.beats_per_sample, contract.output.beats_per_sample) == (in_beats, out_beats)
    assert t.latency == in_beats + core.stages + 1 and t.core_latency == core.stages + 1
    assert t.ii == max(in_beats, out_beats)
    assert t.fifo_depth >= core.latency + out_beats + 2 and t.fifo_depth & (t.fifo_depth - 1) == 0


def test_component_xml_describes_the_axis_ip():
    contract = _contract(FixedFormat(18, 6), 64)
    files = ["hdl/shift_adder.v", "hdl/t_axis_core.v", "hdl/t_axis.v"]
    root = ET.fromstring(ipxact.component_xml(contract, files, "test"))
    ns = {"spirit": ipxact.SPIRIT}
    vlnv = ":".join(root.find(f"spirit:{k}", ns).text for k in ("vendor", "library", "name", "version"))
    assert vlnv == ipxact.vlnv("t_axis") == "psqs.org:psqs:t_axis:1.0"
    interfaces = {bi.find("spirit:name", ns).text: bi for bi in root.iter(f"{{{ipxact.SPIRIT}}}busInterface")}
    assert set(interfaces) == {"s_axis", "m_axis", "aclk", "aresetn"}
    assert interfaces["s_axis"].find("spirit:slave", ns) is not None
    assert interfaces["m_axis"].find("spirit:master", ns) is not None
    params = {p.find("spirit:name", ns).text: p.find("spirit:value", ns).text
              for p in interfaces["aclk"].iter(f"{{{ipxact.SPIRIT}}}parameter")}
    assert params == {"ASSOCIATED_BUSIF": "s_axis:m_axis", "ASSOCIATED_RESET": "aresetn"}
    widths = {}
    for port in root.iter(f"{{{ipxact.SPIRIT}}}port"):
        left = port.find("spirit:wire/spirit:vector/spirit:left", ns)
        widths[port.find("spirit:name", ns).text] = int(left.text) + 1 if left is not None else 1
    assert widths["s_axis_tdata"] == 64 and widths["m_axis_tkeep"] == 8 and widths["aresetn"] == 1
    synthesis = [fs for fs in root.iter(f"{{{ipxact.SPIRIT}}}fileSet")
                 if fs.find("spirit:name", ns).text == "xilinx_anylanguagesynthesis_view_fileset"]
    assert [f.find("spirit:name", ns).text for f in synthesis[0].iter(f"{{{ipxact.SPIRIT}}}file")] == files


def test_yosys_cells_become_board_resources():
    cells = {"$scopeinfo": 3, "LUT2": 10, "LUT6": 5, "INV": 2, "RAM32M": 3, "SRL16E": 1, "CARRY4": 7,
             "FDRE": 20, "FDSE": 4, "DSP48E1": 1, "RAMB36E1": 2, "RAMB18E1": 1, "MUXF7": 9, "XORCY": 1}
    used, unclassified = synth.count(cells)
    assert used == {"LUT": 17 + 13, "LUT_logic": 17, "LUT_memory": 13, "CARRY": 7, "FF": 24, "DSP": 1,
                    "BRAM_18K": 5}
    assert unclassified == {"XORCY": 1}
    assert synth.family_for(load_board("pynq-z2")) == "xc7" and synth.family_for(load_board("kv260")) == "xcup"


def test_cache_entries_appear_whole(tmp_path, monkeypatch):
    monkeypatch.setenv("PSQS_CACHE", str(tmp_path))
    key = cache.content_key({"a": 1})
    assert key == cache.content_key({"a": 1}) != cache.content_key({"a": 2})
    with pytest.raises(RuntimeError), cache.building("tool", key) as entry:
        (entry / "half").write_text("x")
        raise RuntimeError("interrupted")
    assert cache.lookup("tool", key) is None and not list((tmp_path / "rtl" / "tool").iterdir())
    with cache.building("tool", key) as entry:
        (entry / "result").write_text("done")
    assert (cache.lookup("tool", key) / "result").read_text() == "done"
