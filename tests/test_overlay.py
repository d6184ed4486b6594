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
from conftest import resign_manifest
from psqs.board_configs import BoardConfigError, load_board
from psqs.host.artifact import ArtifactError, write_manifest
from psqs.host.contract import IOContract, StreamLayout
from psqs.host.fixed_point import FixedFormat
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
    with pytest.raises(build.BuildError, match=r"--jobs=0: must be a positive integer"):
        build.BuildConfig(tmp_path, "pynq-z2", tmp_path / "out", jobs=0)
    with pytest.raises(build.BuildError, match=r"--name='9lives'"):
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
    from psqs.host import stream_probe_regs as regs

    d = design.describe(load_board("pynq-z2"), model_ip.load(rtl_dir(tmp_path / "rtl")))
    path = tmp_path / "d.hwh"
    path.write_text(hwh.render(d))
    registers = handoff.parse(path).ip_dict["stream_probe_0"]["registers"]
    assert {name: r["address_offset"] for name, r in registers.items()} == \
        {name: offset for name, offset, _ in regs.words()}
    ctrl = registers["CTRL"]["fields"]
    assert ctrl["CLEAR"]["access"] == "write-only" and ctrl["ENABLE"]["bit_offset"] == 1
