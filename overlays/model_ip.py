"""The model IP an overlay is built around, read from an HLS directory or an RTL directory.

Both stage-2 outputs describe one free-running AXI-stream IP with the same I/O contract; they
differ in where the IP comes from (a vendor-HLS export or an IP-XACT packaged RTL core), in how
the emulator reproduces it (the HLS C simulation or an RTL simulation library) and in what is
known about its timing. :func:`load` reads either into one :class:`ModelIp`, verifying every
file's sha256 first, so the rest of the overlay build does not care which it got.

Timing, in order of preference: cycles measured on the RTL (an RTL manifest's ``timing``), the
vendor HLS report (``report.json`` of a synthesized HLS directory, or of psqs' own synthesis in a
vendor build), else an estimate, documented in :func:`estimate_timing`. ``latency_cycles`` is
always counted as the stream probe (LAST_LATENCY) and the board emulator count it: from a
sample's first input beat to its first output beat. The RTL measures exactly that; HLS reports
the top's latency up to its last output write, so :func:`timing` subtracts the output beats
after the first and keeps the HLS figure beside it.
"""
from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from psqs.common.artifact import MANIFEST, peek_kind, read_manifest, sha256_file
from psqs.common.contract import ContractError, IOContract
from psqs.common.errors import PsqsError

from .interfaces import Interface, ScalarPin, axis

log = logging.getLogger(__name__)

_CELL_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")

HLS_KIND, HLS_FORMAT = "psqs.hls", 1
TEST_VECTORS = "test_vectors.npz"
RTL_KIND, RTL_FORMAT = "psqs.rtl", 1

#: Fields an RTL directory's manifest must have, with what they hold (the hook for ``psqs rtl``).
RTL_FIELDS = {
    "io": "the I/O contract (as in an HLS manifest)",
    "ip": "{vlnv, repo (directory holding component.xml), hdl [files of the directory], clock, reset, "
          "input, output (bus interface names), clock_period_ns, optional part}",
    "emulation": "{library (simulation library with the C entry points of the HLS C simulation; "
                 "its directory is packaged whole), sources (directory of HDL/C++ to rebuild it)}",
    "model": "the model's identity, as in an HLS manifest (scaler, classes, features, metrics, "
             "config, model_sha256)",
    "files": "test_vectors.npz (X, y, logits, csim_logits, index) as in an HLS directory",
}


class ModelIpError(PsqsError, ValueError):
    """A stage-2 directory cannot be used for an overlay; the message names the file and field."""


@dataclass(frozen=True)
class ModelIp:
    """A model IP: identity, interfaces, emulation files and what is known of its timing."""

    kind: str                        # hls | rtl
    path: Path
    manifest: dict
    contract: IOContract
    vlnv: str
    cell: str
    input: Interface
    output: Interface
    clock_pin: str
    reset_pin: str
    part: str | None
    clock_period_ns: float
    emulation_files: tuple[tuple[str, str], ...]   # (path in the source dir, path in the package)
    emulation_model: dict
    measured_timing: dict | None = None
    repo: Path | None = None          # IP repository (RTL); an HLS IP is exported by the vendor build
    identity: dict = field(default_factory=dict)
    #: block-design hierarchy the layout asks for (hls4ml's ``hier_0``; ``psqs convert --interface``)
    hierarchy: str | None = None

    @property
    def pins(self) -> tuple[ScalarPin, ...]:
        busifs = (self.input.name, self.output.name)
        return (ScalarPin(self.clock_pin, "I", "clk", associated=busifs),
                ScalarPin(self.reset_pin, "I", "rst", polarity="ACTIVE_LOW"))

    @property
    def dense_layers(self) -> int:
        return sum(1 for types in self.manifest.get("precisions", {}).values() if "weight_t" in types)


def _source_kind(path: Path) -> str:
    kind = peek_kind(path)
    if kind not in (HLS_KIND, RTL_KIND):
        raise ModelIpError(f"{path / MANIFEST}: kind is {kind!r}; psqs build takes an HLS directory "
                           f"({HLS_KIND!r}, from psqs convert) or an RTL directory ({RTL_KIND!r})")
    return kind


def _field(manifest: dict, where: str, *keys):
    value = manifest
    for i, key in enumerate(keys):
        if not isinstance(value, dict) or key not in value:
            raise ModelIpError(f"{where}: missing field {'.'.join(map(str, keys[:i + 1]))!r}")
        value = value[key]
    return value


def _contract(manifest: dict, where: str) -> IOContract:
    try:
        return IOContract.from_dict(_field(manifest, where, "io"), f"{where}: io")
    except ContractError as exc:
        raise ModelIpError(str(exc)) from None


def _stream(name: str, data_width: int, master: bool, prefix: str, upper: bool, **kw) -> Interface:
    return Interface(name, "axis", master, "AXIS", axis(data_width, **kw), prefix=prefix, upper=upper)


def _hls(path: Path) -> ModelIp:
    manifest = read_manifest(path, HLS_KIND, HLS_FORMAT)
    where = str(path / MANIFEST)
    contract = _contract(manifest, where)
    hls = _field(manifest, where, "hls")
    for key in ("project", "vlnv", "top", "backend", "part", "clock_period_ns"):
        _field(manifest, where, "hls", key)
    library = _field(manifest, where, "csim", "library")
    sources = _field(manifest, where, "csim", "sources")
    firmware = "hls4ml/firmware/"
    if not all(s.startswith(firmware) for s in sources):
        raise ModelIpError(f"{where}: csim.sources must lie in {firmware}, got {sources}")
    # ap_axiu<W,1,1,1> under Vivado HLS (TUSER/TID/TDEST), <W,0,0,0> under Vitis HLS; the
    # exported ports of an argument named in/out are in_r/out_r (as in hls4ml's own exports)
    side = 1 if hls["backend"] == "Vivado" else 0
    files = manifest["files"]
    weights = sorted(f for f in files if f.startswith("csim/weights/"))
    emulation_files = ((library, f"emulation/{library}"),
                       *((w, f"emulation/{w}") for w in weights),
                       *((f, "emulation/firmware/" + f[len(firmware):])
                         for f in sorted(files) if f.startswith(firmware)))
    top = hls["top"]
    hierarchy = (manifest.get("interface") or {}).get("hierarchy")   # absent before --interface existed
    if hierarchy is not None and not (isinstance(hierarchy, str) and _CELL_NAME.match(hierarchy)):
        raise ModelIpError(f"{where}: interface.hierarchy={hierarchy!r}: must be a block-design cell name "
                           f"(a letter, then letters, digits, underscores)")
    return ModelIp(
        kind="hls", path=path, manifest=manifest, contract=contract, vlnv=hls["vlnv"], cell=f"{top}_0",
        input=_stream("in_r", contract.input.bus_bits, False, "in_r_", True, strb=True, side_bits=side),
        output=_stream("out_r", contract.output.bus_bits, True, "out_r_", True, strb=True, side_bits=side),
        clock_pin="ap_clk", reset_pin="ap_rst_n", part=hls["part"],
        clock_period_ns=float(hls["clock_period_ns"]),
        emulation_files=emulation_files,
        emulation_model={"kind": "csim", "library": f"emulation/{library}",
                         "weights": "emulation/csim/weights", "sources": "emulation/firmware",
                         "compile": [s[len(firmware):] for s in sources],
                         "note": "g++ -O2 -fPIC -std=c++14 -fno-gnu-unique -DPSQS_GXX_CSIM -include "
                                 "psqs_weights_dir.h -DWEIGHTS_DIR=psqs_weights_dir() -Iap_types, "
                                 "linked -shared (psqs.hls.csim.build_library); the library reads "
                                 "its weights from weights/ next to it"},
        identity={"kind": HLS_KIND, "source_manifest_sha256": sha256_file(path / MANIFEST),
                  "model_sha256": _field(manifest, where, "model", "model_sha256"),
                  "library_sha256": files[library]},
        hierarchy=hierarchy)


def _rtl(path: Path) -> ModelIp:
    manifest = read_manifest(path, RTL_KIND, RTL_FORMAT)
    where = str(path / MANIFEST)
    contract = _contract(manifest, where)
    try:
        ip = {key: _field(manifest, where, "ip", key)
              for key in ("vlnv", "repo", "hdl", "clock", "reset", "input", "output", "clock_period_ns")}
        emulation = {key: _field(manifest, where, "emulation", key) for key in ("library", "sources")}
        model_sha256 = _field(manifest, where, "model", "model_sha256")
    except ModelIpError as exc:
        shape = "; ".join(f"{k}: {v}" for k, v in RTL_FIELDS.items())
        raise ModelIpError(f"{exc} (an RTL directory's manifest needs {shape})") from None
    repo = path / ip["repo"]
    if not (repo / "component.xml").is_file():
        raise ModelIpError(f"{where}: ip.repo={ip['repo']!r} holds no component.xml")
    files = manifest["files"]
    unlisted = [f for f in ip["hdl"] if f not in files]
    if unlisted:
        raise ModelIpError(f"{where}: ip.hdl names {', '.join(unlisted)}, not files of the directory")
    # the library's directory is the emulation unit (the library and what it loads), plus the sources
    homes = tuple(d.rstrip("/") + "/" for d in (Path(emulation["library"]).parent.as_posix(),
                                                 emulation["sources"]) if d not in ("", "."))
    emulated = sorted(f for f in files if f == emulation["library"] or f.startswith(homes))
    if emulation["library"] not in files:
        raise ModelIpError(f"{where}: emulation.library={emulation['library']!r} is not a file of the directory")
    timing = manifest.get("timing")
    measured = None
    if isinstance(timing, dict) and "latency_cycles" in timing and "ii_cycles" in timing:
        measured = {"latency_cycles": int(timing["latency_cycles"]), "ii_cycles": int(timing["ii_cycles"])}
    vlnv = ip["vlnv"]
    return ModelIp(
        kind="rtl", path=path, manifest=manifest, contract=contract, vlnv=vlnv,
        cell=f"{vlnv.split(':')[2]}_0",
        input=_stream(ip["input"], contract.input.bus_bits, False, f"{ip['input']}_", False),
        output=_stream(ip["output"], contract.output.bus_bits, True, f"{ip['output']}_", False),
        clock_pin=ip["clock"], reset_pin=ip["reset"], part=manifest["ip"].get("part"),
        clock_period_ns=float(ip["clock_period_ns"]),
        emulation_files=tuple((f, f"emulation/{f}") for f in emulated),
        emulation_model={"kind": "rtl", "library": f"emulation/{emulation['library']}",
                         "sources": f"emulation/{emulation['sources']}"},
        measured_timing=measured, repo=repo,
        identity={"kind": RTL_KIND, "source_manifest_sha256": sha256_file(path / MANIFEST),
                  "model_sha256": model_sha256, "library_sha256": files[emulation["library"]]})


def load(path: Path) -> ModelIp:
    """Read and verify an HLS or RTL directory (every file's sha256 is checked)."""
    path = Path(path)
    kind = _source_kind(path)
    model = _hls(path) if kind == HLS_KIND else _rtl(path)
    if TEST_VECTORS not in model.manifest["files"]:
        raise ModelIpError(f"{path / MANIFEST}: no {TEST_VECTORS} (the package carries the model's test vectors)")
    log.info("model IP %s (%s) from %s", model.vlnv, model.kind, path)
    return model


def estimate_timing(model: ModelIp) -> dict:
    """Latency and initiation interval without a vendor report: a documented rough figure.

    The psqs AXI-stream top reads one input beat per cycle, so a sample needs ``in_beats``
    cycles to enter, and the top is pipelined at the rate its streams allow: II is the contract's
    one rule, ``IOContract.initiation_interval(reuse)`` = max(in_beats, out_beats, reuse factor).
    After the last input beat, each dense layer of hls4ml's latency strategy at reuse R costs
    about R + 2 cycles on a 10 ns clock (R multiplier passes, an adder tree, a register;
    activations fold into them), then the first output beat leaves:
    latency (first input beat -> first output beat) = in_beats + layers x (R + 2).
    Vendor synthesis replaces this with the scheduled figures.
    """
    i = model.contract.input.beats_per_sample
    reuse = int(model.manifest.get("hls", {}).get("reuse_factor", 1))
    layers = model.dense_layers
    return {"latency_cycles": i + layers * (reuse + 2), "ii_cycles": model.contract.initiation_interval(reuse),
            "note": f"estimate: {i} input beat(s) + {layers} dense layer(s) x (reuse {reuse} + 2) cycles "
                    "to the first output beat; II = max(input beats, output beats, reuse)"}


def timing_basis(fclk_mhz: float) -> dict:
    """What every manifest ``timing`` says besides its figures: the clock and what they mean."""
    return {"fclk_mhz": fclk_mhz, "definition": "latency_cycles: first input beat -> first output beat "
                                                "of a sample; ii_cycles: cycles between sample starts"}


def hls_report_timing(latency: dict | None, interval: dict | None, out_beats: int, where: str, tool: str) -> dict:
    """The emulator's timing from an HLS report's worst-case latency and interval (``{min, max}``
    cycles): the report's latency runs to the last output write, the timing model's to the first
    output beat, ``out_beats - 1`` beats earlier."""
    latency, interval = latency or {}, interval or {}
    if latency.get("max") is None or interval.get("max") is None:
        raise ModelIpError(f"{where}: synthesized but without latency/interval ({latency}, {interval})")
    after_first = out_beats - 1
    return {"source": "hls_report", "latency_cycles": max(int(latency["max"]) - after_first, 0),
            "ii_cycles": int(interval["max"]), "hls_latency_cycles": int(latency["max"]),
            "note": f"worst case scheduled by {tool.strip()}; HLS latency {latency['max']} runs to the last "
                    f"output write, minus {after_first} later output beat(s)"}


def timing(model: ModelIp, fclk_mhz: float, hls_report: dict | None) -> dict:
    """The manifest's ``timing``: measured RTL cycles, else HLS report, else the estimate."""
    base = timing_basis(fclk_mhz)
    if model.measured_timing is not None:
        return {"source": "rtl", **model.measured_timing, **base,
                "note": f"measured on the RTL ({model.path / MANIFEST})"}
    if hls_report and hls_report.get("synthesized"):
        return {**hls_report_timing(hls_report.get("latency_cycles"), hls_report.get("interval_cycles"),
                                    model.contract.output.beats_per_sample, f"HLS report of {model.path}",
                                    f"{hls_report.get('tool', 'the HLS tool')} {hls_report.get('version') or ''}"),
                **base}
    estimate = estimate_timing(model)
    return {"source": "estimate", "latency_cycles": estimate["latency_cycles"],
            "ii_cycles": estimate["ii_cycles"], **base, "note": estimate["note"]}


def check_clock(model: ModelIp, fclk_mhz: float, board_name: str) -> None:
    """Refuse a model synthesized for another clock than the board's fabric clock."""
    expected = 1000.0 / fclk_mhz
    if not math.isclose(model.clock_period_ns, expected, rel_tol=1e-3):
        field_name = "hls.clock_period_ns" if model.kind == "hls" else "ip.clock_period_ns"
        raise ModelIpError(
            f"{model.path / MANIFEST}: {field_name}={model.clock_period_ns:g} ns, but {board_name} runs "
            f"the fabric at {fclk_mhz:g} MHz ({expected:g} ns); convert again for this board "
            f"(psqs convert --board {board_name})")
