"""A psqs package gives pynq 4.0 its Zynq-7000 PL clock with no patch (issue 14, item 2).

pynqmetadata 0.2.0 reads every PL clock from the ZynqMP parameter name, so a Zynq-7000 handoff as
Vivado writes it gives ``clock_dict[n]["frequency"] is None`` and a plain ``Overlay()`` dies in
``Clocks.set_pl_clk``. :mod:`psqs.overlays.zynq7_clock` copies each ``PCW_ACT_FPGA{n}`` value
under that name. Every parse here runs in a fresh interpreter (pynqmetadata's classes are process
state, and psqs' own patch must not be in the process being tested). What is compared:

- the clock pynq reads against the achieved frequency read off the XML here (``ElementTree``), the
  board's configured frequency and the manifest's, and against what psqs' patch gives the
  unamended file; the unamended file (the lines removed here by a plain text filter) is the
  negative control and reads ``None``;
- real Vivado handoffs (three Zynq-7000, two ZynqMP) before and after: the same ``ip_dict``,
  ``mem_dict`` and clocks but the frequency in pynq 4.0, the same everything in the images' pynq
  (2.7.0's own parser, pynqmetadata 0.1.x), and no other byte changed;
- a plain pynq script (no psqs import) on pynq's on-board path against the emulated local board:
  its download programs the PL clock (moved to 50 MHz first, read back at the board's) and its DMA
  round trip equals the model; the unamended package fails in ``set_pl_clk``;
- the vendor path: a Vivado handoff without the copies gets them in the package, the manifest
  says so with the sha256 of the file as Vivado wrote it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from conftest import resign_manifest
from test_emulator_support import tiny_rtl_source
from test_local_device import PRELUDE, expected_outputs, run

from psqs.board_configs import load_board
from psqs.common.package import OverlayPackage
from psqs.overlays import bitfile, build, design, hwh, model_ip, zynq7_clock

N = 2000
BOARD = load_board("pynq-z2")
ENVS = Path(os.environ.get("PSQS_BOARD_ENVS", Path(__file__).resolve().parents[1] / ".venv-boards"))
#: image environment -> how its pynq parses a handoff (2.7.0 has its own parser, no pynqmetadata)
OLD_PYNQ = {"py38-pynq27": "pynq27", "py310-pynq301": "metadata", "py310-pynq31": "metadata"}

VIEW = r"""
import json, sys
kind, patch, paths = sys.argv[1], sys.argv[2] == "patch", sys.argv[3:]
if patch:
    import psqs.host.pynq_compat as compat
    compat.apply()
def parse(path):
    if kind == "pynq27":            # pynq 2.7.0: its own parser, picked here by the PS in the file
        from pynq.pl_server import hwh_parser
        ps7 = 'MODTYPE="processing_system7"' in open(path, encoding="utf-8-sig").read()
        return (hwh_parser._HWHZynq if ps7 else hwh_parser._HWHUltrascale)(path)
    from pynqmetadata.frontends import Metadata
    from pynqmetadata.views.runtime import RuntimeMetadataParser
    return RuntimeMetadataParser(Metadata(input=path))
views = []
for path in paths:
    p = parse(path)
    views.append({
        "ip": {k: {f: v.get(f) for f in ("type", "phys_addr", "addr_range", "parameters")} for k, v in p.ip_dict.items()},
        "mem": sorted(p.mem_dict), "clock": {str(k): dict(v) for k, v in p.clock_dict.items()}})
try:
    from pynqmetadata.models.proc_sys_core import ProcSysCore
    from pynqmetadata.models.zynq_proc_sys_core import ZynqProcSysCore
    lookup = getattr(ProcSysCore, "clk_freq_param_name", None)
    patched = lookup is not None and getattr(ZynqProcSysCore, "clk_freq_param_name", None) is not lookup
except ImportError:
    patched = None
print(json.dumps({"views": views, "patched": patched, "psqs": sorted(m for m in sys.modules if m.startswith("psqs"))}))
"""


def views(paths: list[Path], python: str = sys.executable, kind: str = "metadata", patch: bool = False) -> dict:
    """How a fresh interpreter's pynq parses ``paths`` (``patch``: after psqs' pynq_compat.apply())."""
    proc = subprocess.run([python, "-c", VIEW, kind, "patch" if patch else "plain", *map(str, paths)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = json.loads(proc.stdout.splitlines()[-1])
    if not patch and python == sys.executable:       # what the test relies on: pynq as shipped
        assert out["patched"] is False and out["psqs"] == []
    return out


def achieved(path: Path) -> dict[int, str]:
    """``PCW_ACT_FPGA<n>_PERIPHERAL_FREQMHZ`` of the file's processing_system7, read as XML."""
    ps = next(m for m in ET.parse(path).getroot().iter("MODULE") if m.get("MODTYPE") == "processing_system7")
    values = {p.get("NAME"): p.get("VALUE") for p in ps.iter("PARAMETER")}
    return {n: values[f"PCW_ACT_FPGA{n}_PERIPHERAL_FREQMHZ"] for n in range(4)}


def unamended(data: bytes) -> bytes:
    """The handoff without the copies: every line naming the ZynqMP clock parameter removed (for a
    Zynq-7000 file, which has no such line of its own)."""
    return b"".join(line for line in data.splitlines(keepends=True) if b"_REF_CTRL__ACT_FREQMHZ" not in line)


def without_amendment(package: Path, dst: Path) -> Path:
    """A consistent copy of ``package`` whose .hwh is as Vivado would write it."""
    shutil.copytree(package, dst)
    path = OverlayPackage(dst).hwh
    path.write_bytes(unamended(path.read_bytes()))
    return resign_manifest(dst)


def _ps_parameters_without_copies(view: dict, added: set[str]) -> dict:
    ip = json.loads(json.dumps(view["ip"]))
    for entry in ip.values():
        if entry["type"] and ":processing_system7:" in entry["type"]:
            assert added <= set(entry["parameters"])
            for name in added:
                del entry["parameters"][name]
    return ip


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    root = tmp_path_factory.mktemp("zynq7_clock")
    return build.build(tiny_rtl_source(root, N), "pynq-z2", root / "pkg", emulation=True)


def vendor_handoffs(shared_vendor: Path) -> list[Path]:
    return sorted(shared_vendor.glob("*.hwh"))


# --------------------------------------------------------------------------- a psqs package

def test_pynq_4_reads_the_packages_clock_without_the_patch(package, tmp_path):
    pkg = OverlayPackage(package)
    control = without_amendment(package, tmp_path / "control")
    ours, theirs = views([pkg.hwh, OverlayPackage(control).hwh])["views"]
    n = BOARD.fclk
    act = achieved(pkg.hwh)
    assert float(act[n]) == pytest.approx(BOARD.fclk_mhz, rel=1e-6) == pkg.manifest["board"]["fclk_actual_mhz"]
    assert ours["clock"][str(n)]["enable"] == 1 and ours["clock"][str(n)]["frequency"] == float(act[n])
    assert theirs["clock"][str(n)]["enable"] == 1 and theirs["clock"][str(n)]["frequency"] is None
    # the amendment gives pynq what psqs' patch gives it on the unamended file, clock for clock
    assert views([OverlayPackage(control).hwh], patch=True)["views"][0]["clock"] == ours["clock"]
    # and the manifest says what was added, value for value
    assert pkg.manifest["hwh"] == {"written_by": "psqs.overlays.hwh", "why": zynq7_clock.WHY,
                                   "added_parameters": {f"PSU__CRL_APB__PL{i}_REF_CTRL__ACT_FREQMHZ": act[i]
                                                        for i in range(4)}}


PLAIN = """
    from pynqmetadata.models.proc_sys_core import ProcSysCore
    from pynqmetadata.models.zynq_proc_sys_core import ZynqProcSysCore
    emit(patched=ZynqProcSysCore.clk_freq_param_name is not ProcSysCore.clk_freq_param_name)
    pynq.Clocks.fclk0_mhz = 50.0                       # so that only the download can bring it back
    emit(fclk_before=pynq.Clocks.fclk0_mhz)
    ol = Overlay(sys.argv[1].rstrip("/") + "/" + [p for p in __import__("os").listdir(sys.argv[1])
                                                      if p.endswith(".bit")][0])
    emit(fclk_after=pynq.Clocks.fclk0_mhz, clock_dict=ol.clock_dict[0]["frequency"])
    codes = np.rint(np.load(sys.argv[1] + "/test_vectors.npz")["X"] * 1024).astype(np.int16)
    inp = allocate(shape=codes.shape, dtype=np.int16)
    out = allocate(shape=(len(codes), 5), dtype=np.int32)
    inp[:] = codes
    dma = ol.axi_dma_0
    dma.recvchannel.transfer(out)
    dma.sendchannel.transfer(inp)
    dma.sendchannel.wait()
    dma.recvchannel.wait()
    np.save("out.npy", np.array(out))
    emit(received=int(dma.recvchannel.transferred))
"""


def _plain(package: Path, workdir: Path) -> tuple[subprocess.CompletedProcess, dict]:
    workdir.mkdir(parents=True)
    script = workdir / "client.py"
    script.write_text(PRELUDE + textwrap.dedent(PLAIN))
    assert "psqs" not in script.read_text()
    proc = run([script, package], package, workdir)
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            results.update(json.loads(line[len("RESULT "):]))
    return proc, results


def test_a_plain_pynq_script_needs_no_line_on_the_on_board_path(package, tmp_path):
    proc, result = _plain(package, tmp_path / "amended")
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert result["patched"] is False and result["fclk_before"] == pytest.approx(50.0, rel=1e-3)
    assert result["fclk_after"] == pytest.approx(BOARD.fclk_mhz, rel=1e-4) and result["clock_dict"] == BOARD.fclk_mhz
    assert result["received"] == N * 5 * 4
    assert np.array_equal(np.load(tmp_path / "amended" / "out.npy"), expected_outputs(package))

    # negative control: the same package with the handoff as Vivado writes it
    control = without_amendment(package, tmp_path / "control")
    proc, result = _plain(control, tmp_path / "unamended")
    assert proc.returncode != 0 and result == {"patched": False, "fclk_before": pytest.approx(50.0, rel=1e-3)}
    last = proc.stderr.strip().splitlines()[-1]
    assert "in set_pl_clk" in proc.stderr and last.startswith("TypeError") and "'NoneType'" in last, proc.stderr[-4000:]


# --------------------------------------------------------------------------- real Vivado handoffs

def test_real_vivado_handoffs_parse_as_before_but_the_clock(shared_vendor, tmp_path):
    originals = vendor_handoffs(shared_vendor)
    assert len(originals) >= 3
    amended, added = [], {}
    for original in originals:
        copy = tmp_path / original.name
        shutil.copy(original, copy)
        added[original.name] = zynq7_clock.amend_file(copy)
        amended.append(copy)
    plain = views([*originals, *amended])
    patched = views(originals, patch=True)["views"]
    before, after = plain["views"][:len(originals)], plain["views"][len(originals):]
    zynq7 = 0
    for original, copy, b, a, p in zip(originals, amended, before, after, patched):
        if 'MODTYPE="processing_system7"' not in original.read_text(encoding="utf-8-sig"):
            assert added[original.name] == {} and copy.read_bytes() == original.read_bytes()
            assert a == b and b["clock"]["0"]["frequency"] is not None, original.name
            continue
        zynq7 += 1
        act = achieved(original)
        assert added[original.name] == {f"PSU__CRL_APB__PL{n}_REF_CTRL__ACT_FREQMHZ": act[n] for n in range(4)}
        assert unamended(copy.read_bytes()) == original.read_bytes()      # nothing else changed, BOM included
        assert copy.stat().st_size > original.stat().st_size
        assert _ps_parameters_without_copies(a, set(added[original.name])) == b["ip"] and a["mem"] == b["mem"]
        for n in range(4):
            got, was = a["clock"][str(n)], b["clock"][str(n)]
            assert was["frequency"] is None and got["frequency"] == float(act[n]), (original.name, n)
            assert {k: v for k, v in got.items() if k != "frequency"} == {k: v for k, v in was.items() if k != "frequency"}
        assert a["clock"] == p["clock"], original.name                    # what the patch would give
    assert zynq7 >= 2


@pytest.mark.parametrize("image", sorted(OLD_PYNQ))
def test_the_images_pynq_ignores_the_amendment(image, shared_vendor, tmp_path):
    python = ENVS / image / "bin" / "python"
    if not python.is_file():
        pytest.skip(f"{python} not built (make board-envs)")
    originals = [p for p in vendor_handoffs(shared_vendor)
                 if 'MODTYPE="processing_system7"' in p.read_text(encoding="utf-8-sig")]
    amended = []
    for original in originals:
        shutil.copy(original, tmp_path / original.name)
        zynq7_clock.amend_file(tmp_path / original.name)
        amended.append(tmp_path / original.name)
    out = views([*originals, *amended], python=str(python), kind=OLD_PYNQ[image])
    before, after = out["views"][:len(originals)], out["views"][len(originals):]
    copies = {f"PSU__CRL_APB__PL{n}_REF_CTRL__ACT_FREQMHZ" for n in range(4)}
    for original, b, a in zip(originals, before, after):
        assert a["clock"] == b["clock"] and a["mem"] == b["mem"], original.name
        assert b["clock"]["0"]["enable"] == 1 and b["clock"]["0"]["divisor0"] * b["clock"]["0"]["divisor1"] == 10
        if any(v["parameters"] for v in a["ip"].values()):
            assert _ps_parameters_without_copies(a, copies) == b["ip"], original.name
        else:
            assert a["ip"] == b["ip"], original.name


# --------------------------------------------------------------------------- the vendor build path

def _stand_in_vivado(bin_dir: Path, handoff: Path, shared_vendor: Path) -> None:
    """A `vivado` that leaves ``handoff`` and real PYNQ-Z2 reports where the build script would."""
    bit = bin_dir / "jet.bit"
    bit.write_bytes(bitfile.container("psqs_bd_wrapper;UserID=0XFFFFFFFF;Version=2023.2", BOARD.part,
                                      b"\xff" * 32 + b"\xaa\x99\x55\x66" * 4, datetime.now(timezone.utc)))
    script = bin_dir / "vivado"
    script.write_text(f"""#!/bin/sh
[ "$1" = "-version" ] && {{ echo "Vivado v2023.2 (64-bit)"; exit 0; }}
mkdir -p out
cp {bit} out/jet.bit
cp {handoff} out/jet.hwh
cp {shared_vendor / 'vivado2019_pynqz2_jet_design_1_wrapper_utilization_placed.rpt'} out/utilization.rpt
cp {shared_vendor / 'vivado2019_pynqz2_jet_design_1_wrapper_timing_summary_routed.rpt'} out/timing_summary.rpt
""")
    script.chmod(0o755)


def test_a_vivado_handoff_is_amended_before_the_manifest(shared_vendor, tmp_path, monkeypatch):
    source = tiny_rtl_source(tmp_path / "src", 64)
    written = tmp_path / "as_vivado_wrote_it.hwh"                         # the design's handoff, unamended
    written.write_bytes(unamended(hwh.render(design.describe(BOARD, model_ip.load(source))).encode()))
    assert b"_REF_CTRL__ACT_FREQMHZ" not in written.read_bytes()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stand_in_vivado(bin_dir, written, shared_vendor)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = build.build(source, "pynq-z2", tmp_path / "pkg", name="jet")
    pkg = OverlayPackage(out)                                             # verifies every sha256
    assert not pkg.emulation
    data = pkg.hwh.read_bytes()
    assert unamended(data) == written.read_bytes() and len(data) > len(written.read_bytes())
    act = achieved(written)
    assert pkg.manifest["hwh"] == {
        "written_by": "vivado", "vivado_sha256": hashlib.sha256(written.read_bytes()).hexdigest(),
        "added_parameters": {f"PSU__CRL_APB__PL{n}_REF_CTRL__ACT_FREQMHZ": act[n] for n in range(4)},
        "why": zynq7_clock.WHY}
    assert pkg.manifest["files"][pkg.hwh.name] == hashlib.sha256(data).hexdigest()
    report = json.loads((out / "report.json").read_text())
    assert report["checks"]["hwh"]["checked"] and report["checks"]["hwh"]["clock"]["frequency"] == BOARD.fclk_mhz
    assert views([pkg.hwh])["views"][0]["clock"]["0"]["frequency"] == float(act[0])
