"""An imported hls4ml build emulated as it is: the model IP's AXI-Lite registers and the stream
converters between the DMA and the model.

- Registers: the real PYNQ-Z2 jet handoff's ``hier_0/myproject_axi_0`` has an ``s_axi_AXILiteS``
  block (``vector_rows`` at 0x10). A pynq script on the emulated board's on-board path (pynq's
  ``MMIO`` on the local device) writes and reads it; what it must see is derived here from the
  handoff's XML directly (REGISTER properties, the ARADDR port's width), not through psqs's reader.
- Converters: the beats the real ZCU104 Iris design's converters (32 -> 512 bits, then a subset
  to 320 bits) hand the model are compared with the same bytes regrouped by integer arithmetic;
  and a copy of the PYNQ-Z2 jet handoff whose DMA streams are 64 bits wide, with a width
  converter on each side of the model (the ZCU104 design's own converter cell, re-parametrized),
  runs hls4ml's own ``NeuralNetworkOverlay`` bit-exactly against hls4ml's C simulation: the
  model's library gets its one-float beats only if the 64-bit DMA beats are split right. The
  ZCU104 design itself is not imported: its model is a bare io_stream ``myproject`` top taking
  320-bit beats, not the ``myproject_axi`` top hls4ml's VivadoAccelerator writes.
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hls4ml_projects import hls4ml_project
from test_emulator_support import run_local_client
from test_hls4ml_import import DRIVER_SCRIPT, JET_HWH, fake_bit, import_args

from psqs.common.package import OverlayPackage
from psqs.deploy.cli import main
from psqs.deploy.emulator.converters import Beats, Chain
from psqs.deploy.emulator.local_device import environment
from psqs.overlays.from_hls4ml import hwh

ZCU104_HWH = "vivado2025_zcu104_iris_design_1.hwh"
MODEL = "hier_0/myproject_axi_0"


# --------------------------------------------------------------------------- the XML, read here

def _module(root: ET.Element, fullname: str) -> ET.Element:
    return next(m for m in root.iter("MODULE") if m.get("FULLNAME") == "/" + fullname)


def _props(element: ET.Element) -> dict:
    return {p.get("NAME"): p.get("VALUE") for p in element.findall("PROPERTY")}


def _register_view(path: Path, fullname: str) -> tuple[int, int, int, list[dict]]:
    """(base, range, decoded address bits, registers) of the IP's AXI-Lite block, from the XML."""
    root = ET.parse(path).getroot()
    module = _module(root, fullname)
    memrange = next(r for r in root.iter("MEMRANGE") if r.get("INSTANCE") == module.get("INSTANCE"))
    base, high = int(memrange.get("BASEVALUE"), 16), int(memrange.get("HIGHVALUE"), 16)
    interface = memrange.get("SLAVEBUSINTERFACE")
    araddr = next(p for p in module.iter("PORT") if p.get("NAME") == f"{interface}_ARADDR")
    registers = []
    for reg in module.iter("REGISTER"):
        props = _props(reg)
        width = max(int(_props(f)["BIT_OFFSET"]) + int(_props(f)["BIT_WIDTH"]) for f in reg.iter("FIELD"))
        registers.append({"name": reg.get("NAME"), "offset": int(props["ADDRESS_OFFSET"], 0),
                          "access": props["ACCESS"], "reset": int(props["RESET_VALUE"], 0), "width": width})
    return base, high - base + 1, int(araddr.get("LEFT")) - int(araddr.get("RIGHT")) + 1, registers


@pytest.fixture(scope="module")
def jet_import(tmp_path_factory, shared_vendor):
    """The float project imported with the real PYNQ-Z2 jet handoff (and 500 jets)."""
    project = hls4ml_project(tmp_path_factory, "float")
    root = tmp_path_factory.mktemp("jet_import")
    X = np.random.default_rng(3).normal(0, 1.5, size=(500, 16))
    np.savez(root / "jets.npz", X=X)
    bit = fake_bit(root / "design_1_wrapper.bit")
    assert main(import_args(project.directory, bit, shared_vendor / JET_HWH, root / "pkg", root / "jets.npz")) == 0
    return root / "pkg"


REGISTER_CLIENT = """
    import sys
    ol = Overlay(sys.argv[1])
    base, size = ol.ip_dict[sys.argv[2]]["phys_addr"], ol.ip_dict[sys.argv[2]]["addr_range"]
    mmio = MMIO(base, size)
    offsets = [int(x) for x in sys.argv[3].split(",")]
    writes = [(int(o), int(v)) for o, v in (w.split(":") for w in sys.argv[4].split(","))]
    before = {o: mmio.read(o) for o in offsets}
    for offset, value in writes:
        mmio.write(offset, value)
    after = {o: mmio.read(o) for o in offsets}
    emit(base=base, size=size, before=before, after=after)
"""


@pytest.mark.slow
def test_the_model_ips_axilite_registers_answer_as_the_hls_adapter(jet_import, tmp_path):
    """pynq's MMIO on the emulated board, against the register description in the handoff's XML."""
    package = OverlayPackage(jet_import)
    base, size, address_bits, registers = _register_view(package.hwh, MODEL)
    assert [r["name"] for r in registers] == ["vector_rows"]          # the jet top's only argument
    alias = 1 << address_bits                                          # the adapter decodes these bits only
    used = {r["offset"] for r in registers}
    offsets = sorted({0x0, 0x4, 0x8, 0xC, 0x14, *used, *(o + alias for o in used), *(o + 7 * alias for o in used),
                      size - 4})
    # writes: every register (through an alias too), reserved words, and bits beyond a register's width
    writes = [(r["offset"], 0xDEADBEEF) for r in registers] + [(0x0, 0xFFFFFFFF), (0x14, 0x12345678)]
    writes += [(r["offset"] + 3 * alias, 0x0000BEEF ^ r["reset"]) for r in registers]
    got = run_local_client(REGISTER_CLIENT, [jet_import], tmp_path,
                           args=(package.bitstream, MODEL, ",".join(map(str, offsets)),
                                 ",".join(f"{o}:{v}" for o, v in writes)))
    assert (got["base"], got["size"]) == (base, size)

    def expected(state: dict) -> dict:
        out = {}
        for offset in offsets:
            reg = next((r for r in registers if r["offset"] == offset % alias), None)
            out[str(offset)] = 0 if reg is None else state[reg["name"]]
        return out

    state = {r["name"]: r["reset"] for r in registers}
    assert got["before"] == expected(state)
    for offset, value in writes:
        reg = next((r for r in registers if r["offset"] == offset % alias), None)
        if reg is not None and reg["access"] != "read-only":
            state[reg["name"]] = value & ((1 << reg["width"]) - 1)
    assert got["after"] == expected(state)
    assert state["vector_rows"] == 0x0000BEEF                          # the last write won, through the alias


# --------------------------------------------------------------------------- converters

def _as_int(data: bytes) -> int:
    return int.from_bytes(data, "little")


def test_zcu104_converters_hand_the_model_what_the_hwh_says(shared_vendor):
    """The real ZCU104 chain, DMA -> 32-to-512 width converter -> 512-to-320 subset converter ->
    model: packets of 10 and 16 32-bit words and a 20-word packet without TLAST in between."""
    h = hwh.read(shared_vendor / ZCU104_HWH)
    entries = [{"name": p.name, "vlnv": p.vlnv, "in_bits": p.in_bits, "out_bits": p.out_bits,
                "parameters": dict(p.parameters)} for p in h.mm2s_path]
    chain = Chain.of(entries, h.dma.mm2s_stream_bits // 8, h.model.input_bits // 8, "zcu104")
    rng = np.random.default_rng(0)
    packets = [(10, True), (16, True), (20, False), (12, True), (3, True)]
    got, reference, group = [], [], []
    for words, tlast in packets:
        payload = rng.integers(0, 256, size=4 * words, dtype=np.uint8)
        last = np.zeros(words, dtype=bool)
        last[-1] = tlast
        beats = chain.push(Beats.of(payload, 4, last, np.arange(words)))
        got += [(bytes(d), bool(t)) for d, t in zip(beats.data, beats.last)]
        # the reference: words gathered 16 at a time or up to a TLAST, as one little-endian number,
        # of which the model gets the low 320 bits (TDATA_REMAP tdata[319:0])
        for i in range(words):
            group.append(payload[4 * i:4 * i + 4].tobytes())
            closes = tlast and i == words - 1
            if len(group) == 16 or closes:
                value = _as_int(b"".join(group)) & ((1 << 320) - 1)
                reference.append((value.to_bytes(40, "little"), closes))
                group = []
    assert got == reference
    assert len(got) == 5          # the 20-word packet's last 4 words wait for, and close with, the next 12


def test_remap_expressions_and_a_downsizer_with_null_bytes():
    """A byte-swapping subset converter and a 64-to-32 downsizer, against integer arithmetic."""
    swap = {"name": "swap", "vlnv": "xilinx.com:ip:axis_subset_converter:1.1", "in_bits": 32, "out_bits": 32,
            "parameters": {"tdata_remap": "{tdata[7:0],tdata[15:8],tdata[23:16],tdata[31:24]}",
                           "tlast_remap": "1'b1"}}
    down = {"name": "down", "vlnv": "xilinx.com:ip:axis_dwidth_converter:1.1", "in_bits": 64, "out_bits": 32}
    words = np.random.default_rng(1).integers(0, 1 << 32, size=6, dtype=np.uint64)
    beats = Chain.of([swap], 4, 4, "t").push(Beats.of(words.astype("<u4").view(np.uint8), 4,
                                                        np.zeros(6, bool), np.arange(6)))
    assert [_as_int(bytes(d)) for d in beats.data] == [int.from_bytes(int(w).to_bytes(4, "big"), "little")
                                                       for w in words]
    assert beats.last.all()                                       # TLAST_REMAP 1'b1
    # downsizer: 3 wide beats, the last with TLAST and only its low 4 bytes valid
    data = np.random.default_rng(2).integers(0, 256, size=24, dtype=np.uint8)
    keep = np.ones(24, dtype=bool)
    keep[20:] = False
    out = Chain.of([down], 8, 4, "t").push(Beats.of(data, 8, np.array([0, 0, 1], bool), np.arange(3), keep))
    assert [bytes(d) for d in out.data] == [data[i:i + 4].tobytes() for i in range(0, 20, 4)]
    assert out.last.tolist() == [False] * 4 + [True]


def _widened_jet_hwh(source: Path, zcu104: Path, out: Path) -> Path:
    """The jet handoff with 64-bit DMA streams and a width converter on each side of the model,
    each a copy of the ZCU104 design's converter cell, re-parametrized and wired by stream nets."""
    tree = ET.parse(source)
    root = tree.getroot()
    cell = _module(ET.parse(zcu104).getroot(), "axis_dwidth_converter_0")
    modules = root.find("MODULES")
    dma, model = _module(root, "hier_0/axi_dma_0"), _module(root, MODEL)

    def busif(module, name):
        return next(b for b in module.iter("BUSINTERFACE") if b.get("NAME") == name)

    def set_bytes(bus, n):
        for p in bus.iter("PARAMETER"):
            if p.get("NAME") == "TDATA_NUM_BYTES":
                p.set("VALUE", str(n))

    for p in dma.find("PARAMETERS"):
        if p.get("NAME").lower() in ("c_m_axis_mm2s_tdata_width", "c_s_axis_s2mm_tdata_width"):
            p.set("VALUE", "64")
    for bus, net in ((busif(dma, "M_AXIS_MM2S"), "dma_to_down"), (busif(dma, "S_AXIS_S2MM"), "up_to_dma")):
        bus.set("BUSNAME", net)
        set_bytes(bus, 8)
    busif(model, "in_r").set("BUSNAME", "down_to_model")
    busif(model, "out_r").set("BUSNAME", "model_to_up")
    for name, s_net, m_net, s_bytes, m_bytes in (("down", "dma_to_down", "down_to_model", 8, 4),
                                                  ("up", "model_to_up", "up_to_dma", 4, 8)):
        piece = copy.deepcopy(cell)
        piece.set("FULLNAME", f"/hier_0/axis_{name}size_0")
        piece.set("INSTANCE", f"hier_0_axis_{name}size_0")
        for p in piece.find("PARAMETERS"):
            value = {"S_TDATA_NUM_BYTES": s_bytes, "M_TDATA_NUM_BYTES": m_bytes, "C_S_AXIS_TDATA_WIDTH": 8 * s_bytes,
                     "C_M_AXIS_TDATA_WIDTH": 8 * m_bytes}.get(p.get("NAME"))
            if value is not None:
                p.set("VALUE", str(value))
        for port in piece.find("PORTS"):
            connections = port.find("CONNECTIONS")
            if connections is not None:
                port.remove(connections)
        for bus, net, n in ((busif(piece, "S_AXIS"), s_net, s_bytes), (busif(piece, "M_AXIS"), m_net, m_bytes)):
            bus.set("BUSNAME", net)
            set_bytes(bus, n)
        modules.append(piece)
    tree.write(out)
    return out


@pytest.mark.slow
def test_nn_overlay_through_width_converters_is_bit_exact(shared_vendor, tmp_path_factory, tmp_path):
    """Import, then hls4ml's own driver file, unchanged (pynq 4.0, on-board path): 64-bit DMA beats
    -> 2 floats each into the model; its 5 floats per jet -> 64-bit beats, the batch's last one
    half null (the S2MM channel writes 20 bytes per jet, no more)."""
    project = hls4ml_project(tmp_path_factory, "float")
    hwh_path = _widened_jet_hwh(shared_vendor / JET_HWH, shared_vendor / ZCU104_HWH, tmp_path / "design_1.hwh")
    h = hwh.read(hwh_path, top="myproject_axi")
    assert (h.dma.mm2s_stream_bits, h.model.input_bits, h.model.output_bits, h.dma.s2mm_stream_bits) == (64, 32, 32, 64)
    assert [p.name for p in h.mm2s_path] == ["hier_0/axis_downsize_0"]
    assert [p.name for p in h.s2mm_path] == ["hier_0/axis_upsize_0"]
    n = 1001                                               # odd: 5 * n floats end in half a 64-bit beat
    X = np.random.default_rng(5).normal(0, 1.5, size=(n, 16))
    np.savez(tmp_path / "jets.npz", X=X)
    bit = fake_bit(tmp_path / "design_1_wrapper.bit")
    out = tmp_path / "pkg"
    assert main(import_args(project.directory, bit, hwh_path, out, tmp_path / "jets.npz")) == 0
    package = OverlayPackage(out)
    assert [hop["name"] for hop in package.manifest["streams"]["mm2s"]] == ["hier_0/axis_downsize_0"]
    script, result = tmp_path / "user_script.py", tmp_path / "outputs.npz"
    # pynq 4.0 (this venv) reads a Zynq-7000 PL clock as None, which psqs.host patches; the images'
    # pynq <= 3.1 needs no patch (test_hls4ml_import runs the script unpatched in each of them)
    script.write_text("from psqs.host import pynq_compat\npynq_compat.apply()\n" + DRIVER_SCRIPT)
    proc = subprocess.run([sys.executable, "-m", "psqs.deploy.emulator.local_device", str(script),
                           str(package.bitstream), str(project.directory), str(tmp_path / "jets.npz"), str(result)],
                          env=environment("pynq-z2", [out], tmp_path / "client"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    outputs = np.load(result)
    expected = project.predict(X.astype(np.float32))
    for key in ("plain", "profiled"):
        assert np.array_equal(outputs[key], expected), key
    assert json.loads(proc.stdout.split("RESULT ", 1)[1])["rate"] > 0


def test_what_is_not_emulated_is_refused_by_name():
    """An ap_ctrl_hs block (pynqmetadata's resizer design: CTRL with AP_START at 0x00), a width
    ratio that is no integer and an IP that is no stream infrastructure: each refused, naming it."""
    import importlib.resources

    from psqs.deploy.emulator.hls_regs import HlsRegisters

    resizer = Path(str(importlib.resources.files("pynqmetadata").joinpath("tests", "hwhs", "resizer.hwh")))
    root = ET.parse(resizer).getroot()
    ctrl = next(r for r in _module(root, "resize_accel_0").iter("REGISTER") if r.get("NAME") == "CTRL")
    assert "AP_START" in [f.get("NAME") for f in ctrl.iter("FIELD")]
    handoff = hwh.HandoffFile(resizer)
    block = handoff.registers(handoff.module("resize_accel_0"))
    with pytest.raises(ValueError, match=r"resize_accel_0: register CTRL at 0x00 holds block-level control "
                                         r"\(AP_START, AP_DONE, AP_IDLE, AP_READY, AUTO_RESTART\)"):
        HlsRegisters("resize_accel_0", block)
    odd = {"name": "w", "vlnv": "xilinx.com:ip:axis_dwidth_converter:1.1", "in_bits": 24, "out_bits": 32}
    with pytest.raises(ValueError, match=r"w: a 24-to-32-bit width conversion is not an integer ratio"):
        Chain.of([odd], 3, 4, "t")
    other = {"name": "dsp", "vlnv": "xilinx.com:ip:fir_compiler:7.2", "in_bits": 32, "out_bits": 32}
    with pytest.raises(ValueError, match=r"t: dsp \(xilinx.com:ip:fir_compiler:7.2, 32 -> 32 bits\) is not a "
                                         r"stream IP the emulator carries beats across"):
        Chain.of([other], 4, 4, "t")
