"""Stage 3 end to end on a trained and converted tiny model: the block design of every board
through the tclsh shim and through pynq's HWH parser, emulation packages that pynq loads, the
comparison with real Vivado handoffs, refusals (changed inputs, wrong clock/part/width), and the
vendor path with stand-in `vitis_hls`/`vivado` that write real vendor reports."""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import stat
import tarfile
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import resign_manifest
from psqs.board_configs import board_names, load_board
from psqs.common import stream_probe_regs as regs
from psqs.common.artifact import ArtifactError
from psqs.common.package import OverlayPackage
from psqs.hls import stage as hls_stage
from psqs.host import pynq_compat
from psqs.overlays import (
    bitfile,
    build,
    design,
    handoff,
    hwh,
    model_ip,
    tcl,
    tcl_replay,
)
from psqs.overlays.ip import stream_probe
from psqs.qap import stage as qap_stage
from psqs.qap.config import TrainConfig

pytestmark = pytest.mark.slow

TINY = {"epochs": 2, "patience": 2, "batch_size": 256, "max_train": 2000, "test_vectors": 600,
        "widths": (24, 12, 12), "bits": 6}
CONVERTED = ("pynq-z2", "zcu104")          # one real conversion per PS family (64- and 128-bit bus)


@pytest.fixture(scope="module")
def hls_dirs(tmp_path_factory, synthetic_npz):
    """The tiny model trained once and converted for pynq-z2 and zcu104 (in parallel)."""
    root = tmp_path_factory.mktemp("overlay")
    model = qap_stage.run(TrainConfig(data=str(synthetic_npz), **TINY), root / "model")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(len(CONVERTED), mp_context=context) as pool:
        jobs = {b: pool.submit(hls_stage.run, model.path, root / f"hls-{b}", hls_stage.options_for_board(b))
                for b in CONVERTED}
        return {b: Path(job.result()) for b, job in jobs.items()}


def retarget(source: Path, dst: Path, board: str, hls=None, io=None) -> Path:
    """A copy of an HLS dir as if converted for ``board``'s part (same bus width and clock).

    The other boards of a family share the converted one's bus width and clock, so a conversion
    for them would differ only in the part string; ``hls``/``io`` override manifest fields.
    """
    target = load_board(board)

    def edit(fields: dict) -> None:
        fields["hls"].update(part=target.part, board=target.name, **(hls or {}))
        fields["io"].update(io or {})

    return resign_manifest(shutil.copytree(source, dst), edit)


def _source_for(hls_dirs, board: str, tmp_path: Path) -> Path:
    b = load_board(board)
    converted = "pynq-z2" if b.family == "zynq" else "zcu104"
    return hls_dirs[board] if board in hls_dirs else retarget(hls_dirs[converted], tmp_path / f"hls-{board}", board)


@pytest.fixture(autouse=True)
def _fresh_pynq_state():
    pynq_compat.clear_state()
    yield
    pynq_compat.clear_state()


# --------------------------------------------------------------------------- every board

@pytest.mark.parametrize("board_name", board_names())
def test_every_board_script_and_handoff(hls_dirs, tmp_path, board_name):
    board = load_board(board_name)
    model = model_ip.load(_source_for(hls_dirs, board_name, tmp_path))
    d = design.describe(board, model)
    contract = model.contract

    # TCL, run by tclsh against the recording shim, rebuilt as a graph and checked
    repos = [stream_probe.ip_repo_dir(), tmp_path / "hls_ip"]
    script = tmp_path / "build.tcl"
    script.write_text(tcl.render(d, "ovl", repos))
    rec = tcl_replay.replay(script)
    assert tcl_replay.check(rec, d, "ovl", repos) == []
    ps_vlnv = {"zynq": "xilinx.com:ip:processing_system7:5.5",
               "zynquplus": "xilinx.com:ip:zynq_ultra_ps_e:3.5"}[board.family]
    assert rec.cells[d.ps.cell] == ps_vlnv
    assert rec.config("axi_dma_0")["c_m_axis_mm2s_tdata_width"] == str(contract.input.bus_bits)
    assert rec.config("axi_dma_0")["c_s_axis_s2mm_tdata_width"] == str(contract.output.bus_bits)
    assert rec.config("axi_dma_0")["c_m_axi_mm2s_data_width"] == str(board.hp_data_width)
    assert rec.config("axi_dma_0")["c_include_sg"] == "0" and rec.config("axi_dma_0")["c_sg_length_width"] == "26"
    links = {(a, b) for _, a, b in rec.interface_nets}
    assert {("axi_dma_0/M_AXIS_MM2S", "stream_probe_0/s_axis_in"), ("stream_probe_0/m_axis_in", f"{model.cell}/in_r"),
            (f"{model.cell}/out_r", "stream_probe_0/s_axis_out"),
            ("stream_probe_0/m_axis_out", "axi_dma_0/S_AXIS_S2MM")} <= links
    addressed = {seg: base for space, seg, base, _ in rec.addresses if space == f"{d.ps.cell}/Data"}
    assert addressed == {"axi_dma_0/S_AXI_LITE/Reg": board.pl_slave_base + 0x40_0000,
                         "stream_probe_0/s_axi_ctrl/reg0": board.pl_slave_base + 0x41_0000}
    clock = rec.nets[f"{d.ps.cell}_{board.fclk_port}"]
    assert clock[0] == f"{d.ps.cell}/{board.fclk_port}"
    assert {"axi_dma_0/s_axi_lite_aclk", "stream_probe_0/aclk", f"{model.cell}/ap_clk"} <= set(clock)

    # HWH, parsed by pynq's own parser
    path = tmp_path / "ovl.hwh"
    path.write_text(hwh.render(d))
    parsed = handoff.parse(path)
    assert handoff.check(parsed, d) == []
    ip = parsed.ip_dict
    assert set(ip) == {"axi_dma_0", "stream_probe_0", d.ps.cell}
    assert ip["axi_dma_0"]["phys_addr"] == board.pl_slave_base + 0x40_0000
    assert ip["stream_probe_0"]["phys_addr"] == board.pl_slave_base + 0x41_0000
    assert ip["stream_probe_0"]["type"] == regs.VLNV and ip["stream_probe_0"]["addr_range"] == 0x1_0000
    assert ip[d.ps.cell]["type"] == ps_vlnv and parsed.family_ps == ps_vlnv.split(":")[2]
    assert parsed.mem_dict == {}
    clk = parsed.clock_dict[board.fclk]
    # what the board's IO PLL gives: 99.999 MHz on KV260 (33.333 x 60 / 2 / 10), as its real handoff says
    assert clk["enable"] == 1 and clk["frequency"] == pytest.approx(board.fclk_mhz, rel=1e-4)
    assert board.io_pll_mhz / (clk["divisor0"] * clk["divisor1"]) == pytest.approx(clk["frequency"], abs=1e-6)
    assert all(parsed.clock_dict[n]["enable"] == 0 for n in range(4) if n != board.fclk)
    params = ip[d.ps.cell]["parameters"]
    if board.family == "zynquplus":       # what pynq's download writes into the PS
        assert params["C_MAXIGP0_DATA_WIDTH"] == str(board.gp_data_width)
        assert params["C_SAXIGP2_DATA_WIDTH"] == str(board.hp_data_width)
        # 33.333 x 60 / 2 / 10 on KV260, 33.33333 x 90 / 2 / 15 on the RFSoC 4x2, 100/3 x 90 / 2 / 15 elsewhere
        expected = {"kv260": "99.999000", "rfsoc4x2": "99.999990"}.get(board.name, "100.000000")
        assert params["PSU__CRL_APB__PL0_REF_CTRL__ACT_FREQMHZ"] == expected
    else:
        assert params["PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ"] == "100"
        assert params["C_S_AXI_HP0_DATA_WIDTH"] == str(board.hp_data_width)


# --------------------------------------------------------------------------- emulation packages

@pytest.mark.parametrize("board_name", CONVERTED)
def test_emulation_package_loads_in_pynq(hls_dirs, tmp_path, board_name):
    from pynq.pl_server.embedded_device import bit2bin, parse_bit_header
    from pynq.pl_server.remote_device import RemoteBitfileHandler

    out = build.build(hls_dirs[board_name], board_name, tmp_path / "pkg", emulation=True, tar=True)
    package = OverlayPackage(out)
    board = load_board(board_name)
    m = package.manifest
    assert package.emulation and re.fullmatch(f"jet_tagger_{board_name.replace('-', '_')}_[0-9a-f]{{8}}", m["name"])
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{m['name']}.bit", f"{m['name']}.hwh", "emulation", "manifest.json", "report.json", "test_vectors.npz"])
    assert m["board"]["part"] == board.part and m["board"]["hp_data_width"] == board.hp_data_width
    assert package.dma.base == board.pl_slave_base + 0x40_0000 and package.probe.base == board.pl_slave_base + 0x41_0000
    assert package.max_transfer_bytes == (1 << 26) - 1 == m["dma"]["max_transfer_bytes"]
    assert m["dma"]["mm2s_tdata_width"] == package.contract.input.bus_bits
    assert m["probe"] == {"name": "stream_probe_0", "vlnv": regs.VLNV, "register_map": "1.0",
                          "data_width_in": package.contract.input.bus_bits,
                          "data_width_out": package.contract.output.bus_bits, "fifo_depth": 4}
    hls_manifest = json.loads((hls_dirs[board_name] / "manifest.json").read_text())
    assert m["io"] == hls_manifest["io"] and m["model"] == hls_manifest["model"] and m["hls"] == hls_manifest["hls"]
    i, o = package.contract.input.beats_per_sample, package.contract.output.beats_per_sample
    assert m["timing"]["source"] == "estimate"
    assert (m["timing"]["latency_cycles"], m["timing"]["ii_cycles"]) == (i + 4 * 3, max(i, o))
    assert m["emulation_model"]["kind"] == "csim" and (out / m["emulation_model"]["library"]).is_file()
    assert (out / "emulation/firmware/ap_types/ap_fixed.h").is_file()
    assert (out / "emulation/firmware/nnet_utils").is_dir() and (out / "emulation/csim/weights/w3.txt").is_file()
    assert m["tools"] == {"vivado": None, "vitis_hls": None}
    report = json.loads((out / "report.json").read_text())
    assert report["checks"]["emulation"] == {"checked": True, "samples": 600, "exact": True}
    assert report["checks"]["tcl"]["checked"] and report["checks"]["hwh"]["checked"]
    np.testing.assert_array_equal(package.test_vectors()["csim_logits"],
                                  np.load(hls_dirs[board_name] / "test_vectors.npz")["csim_logits"])

    raw = package.bitstream.read_bytes()
    header = parse_bit_header(raw)
    assert header["design"] == "psqs_emulation" and header["part"] == board.part
    assert m["bitstream"]["design_name"].split(";")[:2] == ["psqs_emulation", m["name"]]
    assert hashlib.sha256(bit2bin(raw)).hexdigest() == m["bitstream"]["bin_sha256"]
    assert json.loads(bit2bin(raw))["model_sha256"] == hls_manifest["model"]["model_sha256"]

    # what pynq.Overlay gets off a remote board: its bitstream handler's parser
    parser = RemoteBitfileHandler(str(package.bitstream)).get_parser()
    assert {k: (v["phys_addr"], v["addr_range"]) for k, v in parser.ip_dict.items() if k in m["ips"]} == \
        {k: (v["base"], v["range"]) for k, v in m["ips"].items()}
    assert hashlib.sha256(parser.bin_data).hexdigest() == m["bitstream"]["bin_sha256"]
    assert parser.clock_dict[0]["frequency"] == pytest.approx(board.fclk_mhz, rel=1e-4)
    dma = parser.ip_dict["axi_dma_0"]["parameters"]
    assert (1 << int(dma["c_sg_length_width"])) - 1 == package.max_transfer_bytes

    with tarfile.open(out.with_name("pkg.tar.gz")) as tar:
        assert f"pkg/{m['name']}.bit" in tar.getnames() and "pkg/manifest.json" in tar.getnames()


def _pynq_view(path: Path):
    pynq_compat.apply()
    return handoff.parse(path)


def test_handoffs_compare_with_real_vivado_ones(hls_dirs, tmp_path, shared_vendor):
    """Same IP types, DMA parameters, clock and address-map style as the real designs."""
    z2_package = OverlayPackage(build.build(hls_dirs["pynq-z2"], "pynq-z2", tmp_path / "z2", emulation=True))
    assert re.fullmatch(r"jet_tagger_pynq_z2_[0-9a-f]{8}", z2_package.name)   # a new source, a new firmware name
    z2 = _pynq_view(z2_package.hwh)
    real_z2 = _pynq_view(shared_vendor / "vivado2019_pynqz2_jet_design_1.hwh")
    ours, theirs = z2.ip_dict["axi_dma_0"], real_z2.ip_dict["hier_0/axi_dma_0"]
    assert ours["type"] == theirs["type"] == "xilinx.com:ip:axi_dma:7.1"
    assert ours["phys_addr"] == theirs["phys_addr"] == 0x4040_0000
    assert ours["addr_range"] == theirs["addr_range"] == 0x1_0000
    assert ours["mem_id"] == theirs["mem_id"] == "S_AXI_LITE"
    read_by_pynq = ("c_micro_dma", "c_include_sg", "c_sg_length_width", "c_include_mm2s", "c_include_mm2s_dre",
                    "c_include_s2mm", "c_include_s2mm_dre")
    assert {k: ours["parameters"][k] for k in read_by_pynq} == {k: theirs["parameters"][k] for k in read_by_pynq} \
        == {"c_micro_dma": "0", "c_include_sg": "0", "c_sg_length_width": "26", "c_include_mm2s": "1",
            "c_include_mm2s_dre": "0", "c_include_s2mm": "1", "c_include_s2mm_dre": "0"}
    # widths differ by design: the real one streams 32-bit floats, psqs packs 64-bit beats
    assert (theirs["parameters"]["c_m_axi_mm2s_data_width"], ours["parameters"]["c_m_axi_mm2s_data_width"]) == ("32", "64")
    assert ours["interrupts"] == theirs["interrupts"] == {}           # polled, as pynq remote requires
    assert z2.ip_dict["processing_system7_0"]["type"] == real_z2.ip_dict["processing_system7_0"]["type"]
    for key in ("enable", "frequency", "src_sel"):
        assert z2.clock_dict[0][key] == real_z2.clock_dict[0][key]
    assert (z2.clock_dict[0]["divisor0"] * z2.clock_dict[0]["divisor1"]
            == real_z2.clock_dict[0]["divisor0"] * real_z2.clock_dict[0]["divisor1"] == 10)
    assert z2.mem_dict == real_z2.mem_dict == {}
    ps = "processing_system7_0"
    for key in ("PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ", "PCW_FPGA0_PERIPHERAL_FREQMHZ", "PCW_FPGA_FCLK0_ENABLE",
                "C_S_AXI_HP0_DATA_WIDTH", "PCW_USE_S_AXI_HP0", "PCW_USE_M_AXI_GP0"):
        assert z2.ip_dict[ps]["parameters"][key] == real_z2.ip_dict[ps]["parameters"][key], key

    zu = _pynq_view(OverlayPackage(build.build(hls_dirs["zcu104"], "zcu104", tmp_path / "zu", emulation=True)).hwh)
    for real_name in ("vivado2025_zcu104_iris_design_1.hwh", "vivado2023_kv260_cnn_design_1.hwh"):
        real = _pynq_view(shared_vendor / real_name)
        ps = "zynq_ultra_ps_e_0"
        assert zu.ip_dict[ps]["type"] == real.ip_dict[ps]["type"] == "xilinx.com:ip:zynq_ultra_ps_e:3.5"
        real_dma = next(v for k, v in real.ip_dict.items() if k.endswith("axi_dma_0"))
        assert real_dma["phys_addr"] == 0xA000_0000 and zu.ip_dict["axi_dma_0"]["phys_addr"] == 0xA040_0000
        assert real_dma["addr_range"] == zu.ip_dict["axi_dma_0"]["addr_range"] == 0x1_0000
        assert real_dma["parameters"]["c_include_sg"] == zu.ip_dict["axi_dma_0"]["parameters"]["c_include_sg"] == "0"
        for key in ("C_MAXIGP0_DATA_WIDTH", "C_MAXIGP2_DATA_WIDTH", "C_SAXIGP2_DATA_WIDTH", "PSU__FPGA_PL0_ENABLE",
                    "PSU__CRL_APB__PL0_REF_CTRL__FREQMHZ", "PSU__CRL_APB__PL0_REF_CTRL__SRCSEL"):
            assert zu.ip_dict[ps]["parameters"][key] == real.ip_dict[ps]["parameters"][key], (real_name, key)
        assert zu.clock_dict[0]["enable"] == real.clock_dict[0]["enable"] == 1
        assert zu.clock_dict[0]["frequency"] == 100.0 and real.clock_dict[0]["frequency"] == pytest.approx(100.0, rel=1e-4)
        assert zu.mem_dict == real.mem_dict == {}


def test_rtl_directory_builds_an_emulation_package(hls_dirs, tmp_path):
    """The RTL hook end to end; the RTL's simulation library is stood in for by the C simulation
    (the same entry points, bit-exact on the same test vectors)."""
    from psqs.common.contract import IOContract
    from test_overlay import rtl_dir

    hls = hls_dirs["pynq-z2"]
    hls_manifest = json.loads((hls / "manifest.json").read_text())
    source = rtl_dir(tmp_path / "rtl", IOContract.from_dict(hls_manifest["io"]), hls / "csim" / "libpsqs_axis.so",
                     hls / "test_vectors.npz", hls_manifest["model"])
    out = build.build(source, "pynq-z2", tmp_path / "pkg", emulation=True)
    package = OverlayPackage(out)
    assert package.name.startswith("jet_rtl_pynq_z2_") and package.timing["source"] == "rtl"
    assert (package.timing["latency_cycles"], package.timing["ii_cycles"]) == (8, 4)
    assert package.manifest["emulation_model"] == {"kind": "rtl", "library": "emulation/sim/libpsqs_rtl.so",
                                                   "sources": "emulation/ip/hdl"}
    assert package.manifest["design"]["cells"]["jet_rtl_0"] == "psqs.org:psqs:jet_rtl:1.0"
    assert (out / "emulation/sim/weights/w3.txt").is_file() and (out / "emulation/ip/hdl/jet_rtl.v").is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["checks"]["emulation"] == {"checked": True, "samples": 600, "exact": True}
    assert package.manifest["hls"] is None and package.manifest["source"]["kind"] == "psqs.rtl"


# --------------------------------------------------------------------------- refusals

def test_refuses_an_hls_dir_changed_after_conversion(hls_dirs, tmp_path):
    source = shutil.copytree(hls_dirs["pynq-z2"], tmp_path / "hls")
    with open(source / "csim" / "weights" / "w3.txt", "r+b") as f:
        f.seek(3)
        f.write(b"9")
    with pytest.raises(ArtifactError, match=r"csim/weights/w3\.txt: sha256 .* does not match the manifest"):
        build.build(source, "pynq-z2", tmp_path / "pkg", emulation=True)
    assert not (tmp_path / "pkg").exists()


def test_refuses_wrong_clock_part_and_bus_width(hls_dirs, tmp_path):
    fast = retarget(hls_dirs["pynq-z2"], tmp_path / "fast", "pynq-z2", hls={"clock_period_ns": 5.0})
    with pytest.raises(design.DesignError, match=r"hls\.clock_period_ns=5 ns, but pynq-z2 runs the fabric at "
                                                 r"100 MHz \(10 ns\); convert again"):
        build.build(fast, "pynq-z2", tmp_path / "pkg", emulation=True)
    with pytest.raises(design.DesignError, match=r"hls\.part='xc7z020clg400-1', but zcu104 is a xczu7ev-ffvc1156-2-e"):
        build.build(hls_dirs["pynq-z2"], "zcu104", tmp_path / "pkg", emulation=True)
    wide = retarget(hls_dirs["zcu104"], tmp_path / "wide", "pynq-z2")
    with pytest.raises(design.DesignError, match=r"io\.input\.bus_bits=128 is wider than pynq-z2's S_AXI_HP0 \(64 bits\)"):
        build.build(wide, "pynq-z2", tmp_path / "pkg", emulation=True)
    assert not (tmp_path / "pkg").exists()


def test_cli_needs_vendor_tools_or_emulation(hls_dirs, tmp_path, capsys, monkeypatch):
    from psqs.deploy.cli import main

    monkeypatch.setenv("PATH", os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep)
                                               if not (Path(d) / "vivado").exists()))
    argv = ["-q", "build", str(hls_dirs["pynq-z2"]), "--board", "pynq-z2", "--out", str(tmp_path / "p")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("psqs: error: vivado and vitis_hls: not found on PATH") and "pass --emulation" in err
    assert main([*argv, "--emulation", "--name", "demo_z2"]) == 0
    printed = capsys.readouterr().out
    assert "emulation package for pynq-z2" in printed and "axi_dma_0 @ 0x40400000" in printed
    assert (tmp_path / "p" / "demo_z2.bit").is_file()
    assert main([*argv, "--emulation", "--name", "demo_z2"]) == 2    # exists, no --force
    assert "already exists (pass --force" in capsys.readouterr().err


# --------------------------------------------------------------------------- vendor path, stand-in tools

def _executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def _stand_ins(tmp_path: Path, vendor: Path, source: Path, csynth: str, utilization: Path, timing: Path) -> Path:
    """`vitis_hls` and `vivado` that write real reports where the tools would."""
    bin_dir, prep = tmp_path / "bin", tmp_path / "prep"
    bin_dir.mkdir()
    prep.mkdir()
    board = load_board("pynq-z2")
    # what Vivado would hand off for this design, and a bitstream with a Vivado header
    (prep / "jet.hwh").write_text(hwh.render(design.describe(board, model_ip.load(source))))
    (prep / "jet.bit").write_bytes(bitfile.container("psqs_bd_wrapper;UserID=0XFFFFFFFF;Version=2023.2",
                                                     "7z020clg400", b"\xff" * 32 + b"\xaa\x99\x55\x66" * 4,
                                                     datetime.now(timezone.utc)))
    component = ('<spirit:component xmlns:spirit="http://www.spiritconsortium.org/XMLSchema/SPIRIT/1685-2009">'
                 "<spirit:vendor>psqs.org</spirit:vendor><spirit:library>hls</spirit:library>"
                 "<spirit:name>jet_tagger_axis</spirit:name><spirit:version>1.0</spirit:version>"
                 "<spirit:busInterfaces><spirit:busInterface><spirit:name>in_r</spirit:name></spirit:busInterface>"
                 "<spirit:busInterface><spirit:name>out_r</spirit:name></spirit:busInterface></spirit:busInterfaces>"
                 "</spirit:component>")
    _executable(bin_dir / "vitis_hls", f"""#!/bin/sh
[ "$1" = "-version" ] && {{ echo "vitis_hls v2023.2 (64-bit)"; exit 0; }}
grep -q "set_top jet_tagger_axis" "$2" || exit 3
test -f ../hls4ml/firmware/jet_tagger_axis.cpp || exit 4
mkdir -p jet_tagger_axis_prj/solution1/syn/report jet_tagger_axis_prj/solution1/impl/ip
echo '<project name="jet_tagger_axis_prj"><solutions><solution name="solution1"/></solutions></project>' > jet_tagger_axis_prj/hls.app
cp {vendor / csynth} jet_tagger_axis_prj/solution1/syn/report/jet_tagger_axis_csynth.xml
echo '{component}' > jet_tagger_axis_prj/solution1/impl/ip/component.xml
echo "INFO: [HLS 200-111] Finished Command export_design"
""")
    _executable(bin_dir / "vivado", f"""#!/bin/sh
[ "$1" = "-version" ] && {{ echo "Vivado v2023.2 (64-bit)"; exit 0; }}
grep -q "jet_tagger_axis_prj/solution1/impl/ip" build.tcl || {{ echo "ERROR: no HLS IP repository"; exit 3; }}
grep -q "launch_runs impl_1 -to_step write_bitstream" build.tcl || exit 4
echo "Starting synth_1 $*"
mkdir -p out
cp {prep / 'jet.bit'} out/jet.bit
cp {prep / 'jet.hwh'} out/jet.hwh
cp {utilization} out/utilization.rpt
cp {timing} out/timing_summary.rpt
echo "INFO: [Common 17-206] Exiting Vivado"
""")
    return bin_dir


def _failing_timing(real: Path, dst: Path) -> Path:
    """The real PYNQ-Z2 routed timing summary with its design summary row made to fail."""
    text = real.read_text()
    row = "      0.549        0.000                      0                45878"
    bad = "     -0.231       -3.456                     27                45878"
    assert row in text and len(row) == len(bad)
    dst.write_text(text.replace(row, bad, 1).replace("All user specified timing constraints are met.",
                                                     "Timing constraints are not met.", 1))
    return dst


def test_vendor_build_with_stand_in_tools(hls_dirs, tmp_path, shared_vendor, monkeypatch):
    source = hls_dirs["pynq-z2"]
    bin_dir = _stand_ins(tmp_path, shared_vendor, source, "vitishls2025_7z020_iris_myproject_csynth.xml",
                         shared_vendor / "vivado2019_pynqz2_jet_design_1_wrapper_utilization_placed.rpt",
                         shared_vendor / "vivado2019_pynqz2_jet_design_1_wrapper_timing_summary_routed.rpt")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = build.build(source, "pynq-z2", tmp_path / "pkg", jobs=2, name="jet")
    package = OverlayPackage(out)
    m = package.manifest
    assert not package.emulation and m["tools"] == {"vivado": "2023.2", "vitis_hls": "2023.2"}
    assert m["bitstream"]["design_name"] == "psqs_bd_wrapper;UserID=0XFFFFFFFF;Version=2023.2"
    assert m["bitstream"]["emulation"] is False and m["bitstream"]["part"] == "7z020clg400"
    # the real report's 32 cycles run to the last of the 3 output beats: 30 to the first
    assert m["timing"]["source"] == "hls_report" and m["timing"]["hls_latency_cycles"] == 32
    assert (m["timing"]["latency_cycles"], m["timing"]["ii_cycles"]) == (32 - (package.contract.output.beats_per_sample - 1), 1)
    report = json.loads((out / "report.json").read_text())
    assert report["implemented"] and report["timing"]["wns_ns"] == 0.549
    assert report["utilization"]["resources"]["LUT"]["used"] == 18321
    assert report["hls"]["resources"]["DSP"] == 110 and report["checks"]["hwh"]["checked"]
    work = tmp_path / "pkg.build"
    assert (work / "vivado" / "vivado.log").read_text().startswith(
        "Starting synth_1 -mode batch -nojournal -source build.tcl -tclargs 2\n")
    assert (work / "hls" / "axis_ip" / "vendor.log").is_file()


def test_vendor_build_refuses_failed_timing(hls_dirs, tmp_path, shared_vendor, monkeypatch):
    timing = _failing_timing(shared_vendor / "vivado2019_pynqz2_jet_design_1_wrapper_timing_summary_routed.rpt",
                             tmp_path / "timing.rpt")
    bin_dir = _stand_ins(tmp_path, shared_vendor, hls_dirs["pynq-z2"], "vitishls2025_7z020_iris_myproject_csynth.xml",
                         shared_vendor / "vivado2019_pynqz2_jet_design_1_wrapper_utilization_placed.rpt", timing)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(build.BuildError, match=r"timing_summary\.rpt: timing not met: WNS -0\.231 ns, TNS -3\.456 ns "
                                               r"\(27 failing setup endpoints\)"):
        build.build(hls_dirs["pynq-z2"], "pynq-z2", tmp_path / "pkg", name="jet")
    assert not (tmp_path / "pkg").exists()


@pytest.mark.parametrize("where", ["hls", "implementation"])
def test_vendor_build_refuses_a_design_that_does_not_fit(hls_dirs, tmp_path, shared_vendor, monkeypatch, where):
    csynth = "vitishls2022_u250_jet_myproject_csynth.xml" if where == "hls" else "vitishls2025_7z020_iris_myproject_csynth.xml"
    utilization = shared_vendor / ("vivado2019_7z020_cnn_vivado_synth.rpt" if where == "implementation"
                                   else "vivado2019_pynqz2_jet_design_1_wrapper_utilization_placed.rpt")
    bin_dir = _stand_ins(tmp_path, shared_vendor, hls_dirs["pynq-z2"], csynth, utilization,
                         shared_vendor / "vivado2019_pynqz2_jet_design_1_wrapper_timing_summary_routed.rpt")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    expected = (r"the HLS estimate of psqs\.org:hls:jet_tagger_axis:1\.0 .* does not fit pynq-z2: LUT: 116694 used > 53200"
                if where == "hls" else
                r"the implemented design .* does not fit pynq-z2: LUT: 121299 used > 53200 available .* 228\.0 %")
    with pytest.raises(build.BuildError, match=expected):
        build.build(hls_dirs["pynq-z2"], "pynq-z2", tmp_path / "pkg", name="jet")
    assert not (tmp_path / "pkg").exists()
