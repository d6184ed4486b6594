"""Stage 3 pieces that need no trained model: the .bit container against pynq's own reader, the
PL clock divisors against pynq's table, the Vivado shim's refusals, build configuration errors,
and the RTL-directory hook on a hand-made RTL directory."""
from __future__ import annotations

import hashlib
import json
import shutil
import types
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_JETS, resign_manifest
from psqs.board_configs import BoardConfigError, load_board
from psqs.common.artifact import ArtifactError, write_manifest
from psqs.common.contract import IOContract, StreamLayout
from psqs.common.errors import PsqsError
from psqs.common.fixed_point import FixedFormat
from psqs.overlays import (
    bitfile,
    build,
    design,
    handoff,
    hwh,
    model_ip,
    ps,
    tcl,
    tcl_replay,
)
from psqs.overlays.ip import stream_probe

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- .bit container

def test_emulation_bit_is_accepted_by_pynq(tmp_path):
    from pynq.pl_server.embedded_device import bit2bin, parse_bit_header

    identity = {"model_sha256": "ab" * 32, "library_sha256": "cd" * 32, "board": "pynq-z2"}
    path = tmp_path / "pkg.bit"
    fields = bitfile.write_emulation(path, "pkg", "xc7z020clg400-1", identity)
    raw = path.read_bytes()
    header = parse_bit_header(raw)
    assert header["design"] == "psqs_emulation"
    assert header["part"] == "xc7z020clg400-1"
    assert fields["design_name"].startswith("psqs_emulation;pkg;model=abababababababab;UserID=0XFFFFFFFF")
    assert int(header["length"]) % 4 == 0 and int(header["length"]) + raw.index(header["data"]) == len(raw)
    image = bit2bin(raw)
    assert hashlib.sha256(image).hexdigest() == fields["bin_sha256"]
    carried = json.loads(image.decode("ascii"))            # the .bin pynq uploads is the identity
    assert carried["psqs_emulation"] == "pkg" and carried["model_sha256"] == "ab" * 32
    ours = bitfile.read_header(path)
    assert ours.bin == image and ours.part == "xc7z020clg400-1" and ours.design == fields["design_name"]


def test_broken_bit_files_are_refused(tmp_path):
    from pynq.pl_server.embedded_device import parse_bit_header

    good = tmp_path / "good.bit"
    bitfile.write_emulation(good, "pkg", "xc7z020clg400-1", {"model_sha256": "0" * 64})
    short = tmp_path / "short.bit"
    short.write_bytes(good.read_bytes()[:-1])
    with pytest.raises(RuntimeError, match="Invalid length"):
        parse_bit_header(short.read_bytes())
    with pytest.raises(bitfile.BitfileError, match=r"short\.bit: 'e' field of \d+ bytes .* does not end"):
        bitfile.read_header(short)
    with pytest.raises(bitfile.BitfileError, match="not a whole number of 32-bit words"):
        bitfile.container("x", "y", b"abc", datetime.now(timezone.utc))
    text = tmp_path / "text.bit"
    text.write_text("not a bitstream")
    with pytest.raises(bitfile.BitfileError, match=r"text\.bit: no \.bit preamble"):
        bitfile.read_header(text)


# --------------------------------------------------------------------------- PS clocks

@pytest.mark.parametrize("mhz", [100.0, 50.0, 142.857, 187.5, 200.0, 250.0, 300.0])
@pytest.mark.parametrize("pll", [1000.0, 1500.0])
def test_divisors_are_the_ones_pynq_programs(pll, mhz):
    from pynq.ps import _ClocksBase, _ClocksZynq

    table = types.SimpleNamespace(VALID_CLOCK_DIV_PRODUCTS=_ClocksZynq.VALID_CLOCK_DIV_PRODUCTS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # pynq warns when the rate is more than 1 % off
        expected = _ClocksBase._get_2_divisors(table, pll, mhz, 6, 6)
    assert ps.divisors(pll, mhz) == expected


def _board_variant(tmp_path, base: str, name: str, **replace) -> Path:
    text = (REPO / "board_configs" / f"{base}.yaml").read_text().replace(f"name: {base}", f"name: {name}")
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return path


def test_pl_clock_the_pll_cannot_make_is_refused(tmp_path):
    board = load_board(_board_variant(tmp_path, "pynq-z2", "slow-z2", **{"fclk_mhz: 100.0": "fclk_mhz: 0.1"}))
    with pytest.raises(ps.PsConfigError, match=r"slow-z2\.yaml: clocks\.fclk_mhz=0\.1: the IO PLL .*more than 1 %"):
        ps.processing_system(board)


def test_ps_parameters_follow_the_board():
    z2 = ps.processing_system(load_board("pynq-z2"))
    assert z2.hwh_parameters["PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ"] == "100"
    assert z2.hwh_parameters["PCW_FPGA_FCLK0_ENABLE"] == "1" and z2.hwh_parameters["PCW_FPGA_FCLK1_ENABLE"] == "0"
    assert (z2.fclk.divisor0, z2.fclk.divisor1, z2.fclk.actual_mhz) == (10, 1, 100.0)
    assert z2.ddr_segment_path == "processing_system7_0/S_AXI_HP0/HP0_DDR_LOWOCM"
    zu = ps.processing_system(load_board("kv260"))
    # KV260's preset runs the IOPLL at 33.333 x 60 / 2 = 999.99 MHz (its real handoff says 99.999001)
    assert zu.hwh_parameters["PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ"] == "99.999000"
    assert (zu.fclk.divisor0, zu.fclk.divisor1) == (10, 1)
    assert ps.processing_system(load_board("zcu104")).fclk.divisor0 == 15   # IOPLL 1500 MHz
    assert zu.width_parameters == {"C_MAXIGP0_DATA_WIDTH": "128", "C_SAXIGP2_DATA_WIDTH": "128"}
    assert zu.config["PSU__USE__M_AXI_GP1"] == "0"          # the preset's HPM1 would need a clock
    assert zu.gp.physical("ARADDR") == "maxigp0_araddr" and zu.hp.physical("WDATA") == "saxigp2_wdata"


# --------------------------------------------------------------------------- shim, configuration

def test_shim_refuses_unknown_cells_and_commands(tmp_path):
    script = tmp_path / "bad.tcl"
    script.write_text("create_bd_design d\nset_property -dict [list CONFIG.X {1}] [get_bd_cells nosuch]\n")
    with pytest.raises(tcl_replay.TclReplayError, match="no cell 'nosuch'"):
        tcl_replay.replay(script)
    script.write_text("create_bd_design d\nsome_vivado_command_the_shim_lacks -x\n")
    with pytest.raises(tcl_replay.TclReplayError, match="invalid command name"):
        tcl_replay.replay(script)


def test_build_configuration_errors(tmp_path):
    with pytest.raises(PsqsError, match=r"--jobs=0: must be a positive integer"):
        build.BuildConfig(tmp_path, "pynq-z2", tmp_path / "out", jobs=0)
    with pytest.raises(PsqsError, match=r"--name='9lives'"):
        build.BuildConfig(tmp_path, "pynq-z2", tmp_path / "out", name="9lives")
    with pytest.raises(BoardConfigError, match=r"pynq-z9\.yaml: unknown board; known boards: .*pynq-z2"):
        build.build(tmp_path, "pynq-z9", tmp_path / "out", emulation=True)
    with pytest.raises(ArtifactError, match="not a directory"):
        build.build(tmp_path / "missing", "pynq-z2", tmp_path / "out", emulation=True)
    other = tmp_path / "model"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"kind": "psqs.model", "format_version": 1}))
    with pytest.raises(model_ip.ModelIpError, match=r"kind is 'psqs.model'; psqs build takes an HLS directory"):
        build.build(other, "pynq-z2", tmp_path / "out", emulation=True)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the RTL hook

def rtl_dir(root: Path, contract: IOContract | None = None, library: Path | None = None,
            test_vectors: Path | None = None, model: dict | None = None) -> Path:
    """A hand-made RTL directory in the shape model_ip.RTL_FIELDS describes.

    ``library`` (a library with the C-simulation entry points, its weights/ next to it) and
    ``test_vectors`` make it buildable; without them they are stand-in bytes.
    """
    contract = contract or IOContract(StreamLayout.packed(16, FixedFormat(16, 6), 64),
                                      StreamLayout.packed(5, FixedFormat(18, 8), 64), top="jet_rtl")
    (root / "ip" / "hdl").mkdir(parents=True)
    (root / "ip" / "hdl" / "jet_rtl.v").write_text("module jet_rtl(); endmodule\n")
    (root / "ip" / "component.xml").write_text(
        '<spirit:component xmlns:spirit="http://www.spiritconsortium.org/XMLSchema/SPIRIT/1685-2009">'
        "<spirit:vendor>psqs.org</spirit:vendor><spirit:library>psqs</spirit:library>"
        "<spirit:name>jet_rtl</spirit:name><spirit:version>1.0</spirit:version></spirit:component>\n")
    (root / "sim").mkdir()
    if library is None:
        (root / "sim" / "libpsqs_rtl.so").write_bytes(b"\x7fELF stand-in")
    else:
        shutil.copy(library, root / "sim" / "libpsqs_rtl.so")
        shutil.copytree(library.parent / "weights", root / "sim" / "weights")
    if test_vectors is None:
        n = 8
        np.savez(root / "test_vectors.npz", X=np.zeros((n, 16)), y=np.zeros(n, int), logits=np.zeros((n, 5)),
                 csim_logits=np.zeros((n, 5)), index=np.arange(n))
    else:
        shutil.copy(test_vectors, root / "test_vectors.npz")
    ip = {"vlnv": "psqs.org:psqs:jet_rtl:1.0", "repo": "ip", "hdl": ["ip/hdl/jet_rtl.v"], "clock": "aclk",
          "reset": "aresetn", "input": "s_axis", "output": "m_axis", "clock_period_ns": 10.0,
          "part": "xc7z020clg400-1"}
    write_manifest(root, "psqs.rtl", 1, {
        "io": contract.to_dict(), "ip": ip,
        "emulation": {"library": "sim/libpsqs_rtl.so", "sources": "ip/hdl"},
        "timing": {"latency_cycles": 8, "ii_cycles": 4},
        "model": model or {"model_sha256": "12" * 32, "scaler": {"mean": [0.0] * 16, "scale": [1.0] * 16},
                           "classes": list("twzqg"), "features": [f"f{i}" for i in range(16)], "config": {},
                           "metrics": {}}})
    return root


def test_rtl_directory_gives_the_same_block_design(tmp_path):
    model = model_ip.load(rtl_dir(tmp_path / "rtl"))
    assert (model.kind, model.cell, model.input.physical("TDATA"), model.clock_pin, model.reset_pin) == \
        ("rtl", "jet_rtl_0", "s_axis_tdata", "aclk", "aresetn")
    assert model.emulation_files == (("ip/hdl/jet_rtl.v", "emulation/ip/hdl/jet_rtl.v"),
                                     ("sim/libpsqs_rtl.so", "emulation/sim/libpsqs_rtl.so"))
    d = design.describe(load_board("pynq-z2"), model)
    script = tmp_path / "build.tcl"
    repos = [stream_probe.ip_repo_dir(), model.repo]
    script.write_text(tcl.render(d, "jet_rtl", repos))
    rec = tcl_replay.replay(script)
    assert tcl_replay.check(rec, d, "jet_rtl", repos) == []
    assert ("stream_probe_0/m_axis_in", "jet_rtl_0/s_axis") in {(a, b) for _, a, b in rec.interface_nets}
    path = tmp_path / "d.hwh"
    path.write_text(hwh.render(d))
    assert handoff.check(handoff.parse(path), d) == []


def test_rtl_directory_missing_fields_names_the_shape(tmp_path):
    source = rtl_dir(tmp_path / "rtl")
    resign_manifest(source, lambda fields: fields["ip"].pop("clock"))
    with pytest.raises(model_ip.ModelIpError, match=r"manifest\.json: missing field 'ip\.clock' \(an RTL "
                                                   r"directory's manifest needs io: .*ip: \{vlnv, repo"):
        model_ip.load(source)


def test_handoff_of_every_register_of_the_probe(tmp_path):
    """pynq's ip_dict lists the probe's registers as the register map defines them."""
    from psqs.common import stream_probe_regs as regs

    d = design.describe(load_board("pynq-z2"), model_ip.load(rtl_dir(tmp_path / "rtl")))
    path = tmp_path / "d.hwh"
    path.write_text(hwh.render(d))
    registers = handoff.parse(path).ip_dict["stream_probe_0"]["registers"]
    assert {name: r["address_offset"] for name, r in registers.items()} == \
        {name: offset for name, offset, _ in regs.words()}
    ctrl = registers["CTRL"]["fields"]
    assert ctrl["CLEAR"]["access"] == "write-only" and ctrl["ENABLE"]["bit_offset"] == 1


# --------------------------------------------------------------------------- the DMA's registers

def _vivado_dma_handoffs() -> list[Path]:
    """Real Vivado handoffs with an AXI DMA: the one pynqmetadata ships, and the vendor fixtures."""
    from importlib import resources

    shipped = Path(str(resources.files("pynqmetadata").joinpath("tests", "hwhs", "resizer.hwh")))
    vendor = SHARED_JETS.parent / "vendor"
    found = [shipped] + sorted(vendor.glob("vivado*.hwh") if vendor.is_dir() else [])
    return [p for p in found if 'MODTYPE="axi_dma"' in p.read_text(errors="replace")]


def _dma_registers_in(path: Path) -> dict:
    """The DMA's register layout read straight from the XML (names, offsets, sizes, fields)."""
    import xml.etree.ElementTree as ET

    module = next(m for m in ET.parse(path).getroot().iter("MODULE") if m.get("MODTYPE") == "axi_dma")
    layout = {}
    for reg in module.iter("REGISTER"):
        props = {p.get("NAME"): p.get("VALUE") for p in reg.findall("PROPERTY")}
        fields = {}
        for f in reg.iter("FIELD"):
            fp = {p.get("NAME"): p.get("VALUE") for p in f.findall("PROPERTY")}
            fields[f.get("NAME")] = (int(fp["BIT_OFFSET"]), int(fp["BIT_WIDTH"]), fp["ACCESS"],
                                     fp["MODIFIED_READ_VALUES"], [p.get("NAME") for p in f.findall("PROPERTY")])
        layout[reg.get("NAME")] = (int(props["ADDRESS_OFFSET"], 16), int(props["SIZE"]), props["ACCESS"],
                                   props["IS_ENABLED"], int(props["RESET_VALUE"], 16), fields)
    return layout


@pytest.mark.parametrize("reference", _vivado_dma_handoffs(), ids=lambda p: p.name)
def test_dma_register_map_is_vivados(tmp_path, reference):
    """The generated .hwh describes the DMA's registers field by field as Vivado does, and pynq's
    register_map built from it decodes MM2S_DMASR.Idle (and the rest) like on a board."""
    from pynq.registers import RegisterMap

    from psqs.host import dma as host_dma

    d = design.describe(load_board("pynq-z2"), model_ip.load(rtl_dir(tmp_path / "rtl")))
    ours = tmp_path / "d.hwh"
    ours.write_text(hwh.render(d))
    assert _dma_registers_in(ours) == _dma_registers_in(reference)

    ip = handoff.parse(ours).ip_dict[d.dma.name]
    theirs = next(v for v in handoff.parse(reference).ip_dict.values() if v["type"] == ip["type"])
    def layout(registers):
        return {name: (r["address_offset"], r["size"], r["access"],
                       {f: (v["bit_offset"], v["bit_width"], v["access"]) for f, v in r["fields"].items()})
                for name, r in registers.items()}
    assert layout(ip["registers"]) == layout(theirs["registers"])

    words = np.zeros(ip["addr_range"] // 4, dtype=np.uint32)     # pynq binds it to the mmio array
    regmap = RegisterMap.create_subclass(d.dma.name, ip["registers"])(words)
    words[(host_dma.S2MM + host_dma.DMASR) // 4] = host_dma.SR_IDLE | host_dma.SR_IOC | (1 << 16)
    words[(host_dma.MM2S + host_dma.DMASR) // 4] = host_dma.SR_HALTED | host_dma.SR_DECODE_ERROR
    assert (regmap.S2MM_DMASR.Idle, regmap.S2MM_DMASR.IOC_Irq, regmap.S2MM_DMASR.IRQThresholdSts) == (1, 1, 1)
    assert (regmap.MM2S_DMASR.Idle, regmap.MM2S_DMASR.Halted, regmap.MM2S_DMASR.DMADecErr) == (0, 1, 1)
    regmap.MM2S_DMACR.RS = 1
    regmap.MM2S_LENGTH.Length = 0x3FFFFFF
    assert words[(host_dma.MM2S + host_dma.DMACR) // 4] == host_dma.CR_RUN
    assert words[(host_dma.MM2S + host_dma.LENGTH) // 4] == 0x3FFFFFF


@pytest.mark.slow
def test_dma_register_map_over_pynq_remote(tmp_path):
    """`ol.axi_dma_0.register_map.MM2S_DMASR.Idle` through unmodified pynq, PYNQ.remote and the
    emulator, on a package whose handoff psqs generated."""
    from test_emulator_support import FAKE_IO, build_fake_library, run_client, start_emulator, write_package

    package = tmp_path / "overlays" / "fake"
    write_package(package, "fake", build_fake_library(tmp_path / "lib"), FAKE_IO)
    d = design.describe(load_board("pynq-z2"), model_ip.load(rtl_dir(tmp_path / "rtl", IOContract.from_dict(FAKE_IO))))
    (package / "fake.hwh").write_text(hwh.render(d))

    def edit(fields: dict) -> None:
        fields["ips"] = {name: {k: ip[k] for k in ("vlnv", "base", "range")} for name, ip in d.ips.items()}
        fields["dma"]["name"] = d.dma.name
    resign_manifest(package, edit)
    server = start_emulator([package])
    try:
        result = run_client("""
            ol = Overlay(sys.argv[1])
            dma = ol.axi_dma_0
            regs = dma.register_map
            before = [int(regs.MM2S_DMASR.Halted), int(regs.MM2S_DMASR.Idle)]
            inp, out = allocate(shape=(2, 16), dtype=np.int16), allocate(shape=(2, 5), dtype=np.int32)
            inp[:] = np.arange(32, dtype=np.int16).reshape(2, 16)
            dma.recvchannel.transfer(out)
            dma.sendchannel.transfer(inp)
            dma.sendchannel.wait()
            dma.recvchannel.wait()
            emit(before=before, idle=[int(regs.MM2S_DMASR.Idle), int(regs.S2MM_DMASR.Idle)],
                 run=int(regs.S2MM_DMACR.RS), received=int(regs.S2MM_LENGTH.Length))
        """, server.config.host, tmp_path / "client", args=(package / "fake.bit",))
    finally:
        server.stop()
    received = 2 * IOContract.from_dict(FAKE_IO).output.bytes_per_sample
    assert result == {"before": [0, 0], "idle": [1, 1], "run": 1, "received": received}
