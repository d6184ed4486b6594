"""Verilog of the model IP: da4ml's pipelined network core inside psqs' AXI4-Stream top.

da4ml writes the network as a chain of combinational stage modules separated by registers (its
``pipeline_logic_gen``: one register in front of every stage and one on the output), with no
valid, ready or reset. The AXI-stream top (``templates/axis_top.v``) supplies those, speaking the
I/O contract of the HLS IP bit for bit; what links the two is generated here: which bits of the
gathered input beats feed which core input, and how each core output (da4ml gives every value
its own minimal fixed-point format) becomes a code of the contract's output format in its field.

Timing is structural, so it is computed here and then *measured* by the simulation:
- core latency = stages + 1 register levels;
- latency = input beats + core latency (first input beat accepted -> first output beat sent:
  the last input beat launches the sample, the core's output is written to the FIFO, and the FIFO
  presents it the cycle after);
- II = the I/O contract's one rule (``IOContract.initiation_interval``) with reuse 1: da4ml's core
  takes a sample every cycle, so the streams set the pace, max(input beats, output beats).
"""
from __future__ import annotations

import logging
import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from math import ceil, log2
from pathlib import Path
from string import Template

from psqs.common.contract import IOContract
from psqs.common.fixed_point import FixedFormat

from .trace import TraceError

log = logging.getLogger(__name__)

#: da4ml's primitive modules, instantiated by name from the stage modules it generates.
PRIMITIVES = ("shift_adder", "negative", "mux", "multiplier", "lookup_table")
HDL_DIR = "hdl"


@dataclass(frozen=True)
class Slice:
    """One core port value: its offset in the core's bus and its da4ml format (keep-negative, int, frac)."""

    offset: int
    signed: bool
    integer: int
    frac: int

    @property
    def width(self) -> int:
        return int(self.signed) + self.integer + self.frac


@dataclass(frozen=True)
class Core:
    """The pipelined network as da4ml generated it."""

    name: str
    modules: dict[str, str] = field(repr=False)   # module name -> Verilog text (stages, then the top)
    primitives: tuple[str, ...]
    stages: int
    inputs: tuple[Slice, ...]
    outputs: tuple[Slice, ...]
    cost_luts: float            # da4ml's LUT estimate of the arithmetic
    register_bits: int          # its pipeline register bits
    adder_depth: float          # adder levels of the combinational network

    @property
    def latency(self) -> int:
        return self.stages + 1

    @property
    def in_bits(self) -> int:
        return sum(s.width for s in self.inputs)

    @property
    def out_bits(self) -> int:
        return sum(s.width for s in self.outputs)


def _slices(qints) -> tuple[Slice, ...]:
    from da4ml.cmvm.types import _minimal_kif

    out, offset = [], 0
    for qint in qints:
        k, i, f = (int(v) for v in _minimal_kif(qint))
        out.append(Slice(offset, bool(k), i, f))
        offset += k + i + f
    return tuple(out)


def pipeline_core(comb, name: str, stage_depth: int) -> Core:
    """Split the traced network into stages of at most ``stage_depth`` adder levels."""
    from da4ml.codegen.rtl.verilog import pipeline_logic_gen
    from da4ml.trace import to_pipeline

    if stage_depth < 1:
        raise TraceError(f"stage_depth={stage_depth}: must be >= 1")
    pipe = to_pipeline(comb, stage_depth, verbose=False)
    modules = pipeline_logic_gen(pipe, name, print_latency=False)
    text = "\n".join(modules.values())
    used = tuple(p for p in PRIMITIVES if re.search(rf"\b{p} #\(", text))
    core = Core(name=name, modules=modules, primitives=used, stages=len(pipe.solutions),
                inputs=_slices(pipe.inp_qint), outputs=_slices(pipe.out_qint), cost_luts=float(comb.cost),
                register_bits=int(pipe.reg_bits), adder_depth=float(comb.latency[1]))
    log.info("core %s: %d stages of <= %d adder levels, latency %d cycles, ~%.0f LUTs, %d register bits",
             name, core.stages, stage_depth, core.latency, core.cost_luts, core.register_bits)
    return core


@dataclass(frozen=True)
class Timing:
    latency: int         # cycles, first input beat accepted -> first output beat sent
    core_latency: int
    ii: int              # cycles per sample, steady streaming without stalls
    fifo_depth: int      # output FIFO, in samples

    def to_dict(self) -> dict:
        return {"latency_cycles": self.latency, "core_latency_cycles": self.core_latency,
                "ii_cycles": self.ii, "fifo_depth_samples": self.fifo_depth}


def timing(contract: IOContract, core: Core) -> Timing:
    in_beats, out_beats = contract.input.beats_per_sample, contract.output.beats_per_sample
    depth = 1 << max(1, ceil(log2(core.latency + out_beats + 2)))
    return Timing(latency=in_beats + core.latency, core_latency=core.latency,
                  ii=contract.initiation_interval(), fifo_depth=depth)


def lint_waivers(core: Core) -> str:
    """Verilator configuration for the build: the one warning da4ml's code raises under -Wall.

    A stage leaves input bits unread when pruning removed every weight of a feature, or when a
    value only passes through; da4ml waives that in its own wrapper, which psqs does not use.
    """
    return ("`verilator_config\n"
            f'lint_off -rule UNUSEDSIGNAL -file "*/{core.name}_stage*.v" -match "*model_inp*"\n')


def _check_io(contract: IOContract, core: Core) -> None:
    """The core's inputs must be the contract's input codes, and its outputs fit the output format."""
    fin, fout = contract.input.format, contract.output.format
    if len(core.inputs) != contract.input.values or len(core.outputs) != contract.output.values:
        raise TraceError(f"network is {len(core.inputs)} -> {len(core.outputs)} values, the I/O contract "
                         f"{contract.input.values} -> {contract.output.values}")
    for j, s in enumerate(core.inputs):
        if s.width and (s.signed, s.integer + int(s.signed), s.frac) != (fin.signed, fin.integer, fin.frac):
            raise TraceError(f"input {j}: the core reads {s.width} bits with {s.frac} fraction bits, "
                             f"not the contract's {fin.hls_type()}")
    for j, s in enumerate(core.outputs):
        if not s.width:
            continue
        low = -(2.0 ** s.integer) if s.signed else 0.0
        high = 2.0 ** s.integer - 2.0 ** -s.frac
        if s.frac > fout.frac or low < fout.min_value or high > fout.max_value or (s.signed and not fout.signed):
            raise TraceError(f"output {j}: the core's {s.width}-bit value (range {low}..{high}, "
                             f"{s.frac} fraction bits) does not fit the contract's {fout.hls_type()}")


def _input_map(contract: IOContract, core: Core) -> str:
    field_bits, width = contract.input.field_bits, contract.input.format.width
    lines = []
    for j, s in enumerate(core.inputs):
        if s.width:                 # a zero-width input is unused by the network (all its weights 0)
            lo = j * field_bits
            lines.append(f"    assign core_inp[{s.offset + s.width - 1}:{s.offset}] = in_sample[{lo + width - 1}:{lo}];")
    return "\n".join(lines)


def _output_map(contract: IOContract, core: Core) -> str:
    layout = contract.output
    fmt: FixedFormat = layout.format
    n_fields = layout.beats_per_sample * layout.values_per_beat
    lines = []
    for j in range(n_fields):
        lo, hi = j * layout.field_bits, (j + 1) * layout.field_bits - 1
        s = core.outputs[j] if j < len(core.outputs) else None
        if s is None or not s.width:
            lines.append(f"    assign out_sample[{hi}:{lo}] = {layout.field_bits}'d0;")
            continue
        shift = fmt.frac - s.frac        # align the core's LSB with the format's
        pad = layout.field_bits - s.width - shift
        raw = f"head_out[{s.offset + s.width - 1}:{s.offset}]"
        ext = f"{{{pad}{{head_out[{s.offset + s.width - 1}]}}}}" if s.signed else f"{pad}'d0"
        parts = ([ext] if pad else []) + [raw] + ([f"{shift}'d0"] if shift else [])
        lines.append(f"    assign out_sample[{hi}:{lo}] = {{{', '.join(parts)}}};")
    return "\n".join(lines)


def _bits(n: int) -> int:
    return max(1, ceil(log2(n))) if n > 1 else 1


def top_verilog(contract: IOContract, core: Core, t: Timing) -> str:
    i, o = contract.input, contract.output
    values = {
        "top": contract.top, "core": core.name,
        "in_values": i.values, "in_type": i.format.hls_type(), "in_field": i.field_bits,
        "in_per_beat": i.values_per_beat, "in_beats": i.beats_per_sample, "in_bus": i.bus_bits,
        "in_bus_msb": i.bus_bits - 1, "in_keep_msb": i.bus_bytes - 1,
        "in_index_bits": _bits(i.beats_per_sample), "in_final": i.beats_per_sample - 1,
        "out_values": o.values, "out_type": o.format.hls_type(), "out_field": o.field_bits,
        "out_per_beat": o.values_per_beat, "out_beats": o.beats_per_sample, "out_bus": o.bus_bits,
        "out_bus_msb": o.bus_bits - 1, "out_keep_msb": o.bus_bytes - 1, "out_keep_bits": o.bus_bytes,
        "out_index_bits": _bits(o.beats_per_sample), "out_final": o.beats_per_sample - 1,
        "out_extension": "sign" if o.format.signed else "zero",
        "core_in_bits": core.in_bits, "core_out_bits": core.out_bits, "core_latency": core.latency,
        "fifo_addr_bits": int(log2(t.fifo_depth)), "depth": t.fifo_depth,
        "latency": t.latency, "ii": t.ii,
        "input_map": _input_map(contract, core), "output_map": _output_map(contract, core),
    }
    template = Template(resources.files("psqs.hls.rtl").joinpath("templates", "axis_top.v").read_text())
    return template.substitute(values)


def write(directory: Path, contract: IOContract, core: Core) -> tuple[list[str], Timing]:
    """Write every Verilog file into ``directory/hdl``.

    Returns the file names relative to ``directory`` in compile order (primitives, stages, the
    core, the AXI-stream top last) and the top's timing.
    """
    _check_io(contract, core)
    if core.latency < 2:
        raise TraceError(f"core latency {core.latency}: the wrapper needs at least 2 register levels")
    t = timing(contract, core)
    hdl = directory / HDL_DIR
    hdl.mkdir(parents=True, exist_ok=True)
    source = resources.files("da4ml.codegen.rtl").joinpath("verilog", "source")
    files = []
    for name in core.primitives:
        with resources.as_file(source.joinpath(f"{name}.v")) as path:
            shutil.copyfile(path, hdl / f"{name}.v")
        files.append(f"{HDL_DIR}/{name}.v")
    for name, text in core.modules.items():      # stages first, the core's top module last
        (hdl / f"{name}.v").write_text(text)
        files.append(f"{HDL_DIR}/{name}.v")
    (hdl / f"{contract.top}.v").write_text(top_verilog(contract, core, t))
    files.append(f"{HDL_DIR}/{contract.top}.v")
    return files, t
