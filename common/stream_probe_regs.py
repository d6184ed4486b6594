"""Register map of the stream probe IP: the one description every consumer reads.

The probe (``overlays/ip/stream_probe``) is a small Verilog IP on the model's input and output
AXI streams that counts clock cycles in the fabric, so the benchmark can report the model's real
latency and initiation interval. Four things must agree on its registers: the Verilog (through a
generated include), the IP-XACT ``component.xml`` that Vivado packages (and that ends up in the
overlay's ``.hwh``), the pynq driver (:mod:`psqs.host.stream_probe`) and the board emulator. They
all read this module, and generated files are checked for staleness by the tests, so a change
here cannot silently leave one of them behind.

It lives in ``psqs.host`` and uses only the standard library because it runs on the board.

Conventions:
- the AXI4-Lite slave has 32-bit data and :data:`ADDR_WIDTH` address bits; offsets are bytes;
- a 64-bit register occupies two words, ``<NAME>_LO`` at its offset and ``<NAME>_HI`` at offset + 4.
  Consistent-read rule: *reading LO latches the HI half of the same register at the same clock
  edge; reading HI returns that latched half.* Read LO, then HI (pynq reads 32 bits at a time; a
  64-bit value assembled this way is one consistent sample). HI reads have no side effect; reset
  and CTRL.CLEAR set the latched halves to those of the cleared values.
- 32-bit registers live in the lower half of the address space and 64-bit ones in the upper half
  (:data:`WIDE_BASE`), 8-byte aligned: the Verilog decodes the upper half as a 16-way multiplexer
  indexed by address bits, which is what keeps the read path small (``validate`` enforces it).
- the four event counters (CYCLES, IN_BEATS, OUT_BEATS, TRANSFERS) are 64 bits wide; the latency
  path (per-transfer ages, LAST_*, MIN/MAX_LATENCY) implements :data:`LATENCY_BITS` = 48 bits,
  enough for 10.9 days at 300 MHz, and its registers read 0 above that. The full 64 bits there
  would cost about 40 more LUTs (a wider age multiplexer, comparators and read multiplexer) for
  intervals no benchmark can reach.
- cycles are counted in ``aclk`` cycles; a beat is a cycle with TVALID and TREADY both high;
  a transfer is delimited by TLAST (an input transfer ends with an input TLAST beat, an output
  transfer with an output TLAST beat) and the k-th output transfer belongs to the k-th input one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .errors import PsqsError

VENDOR = "psqs.org"
LIBRARY = "psqs"
NAME = "stream_probe"
IP_VERSION = "1.0"
VLNV = f"{VENDOR}:{LIBRARY}:{NAME}:{IP_VERSION}"

ID_MAGIC = 0x53505242  # ASCII "SPRB" (stream probe), read from the ID register
VERSION_MAJOR = 1
VERSION_MINOR = 0

DATA_WIDTH = 32  # AXI4-Lite data bus
ADDR_WIDTH = 7  # AXI4-Lite address bits decoded by the IP: 128 bytes, 32 words
ADDRESS_SPAN = 1 << ADDR_WIDTH
WIDE_BASE = ADDRESS_SPAN // 2  # 64-bit registers at WIDE_BASE + 8 * index
LATENCY_BITS = 48

NO_LATENCY = (1 << LATENCY_BITS) - 1  # MIN_LATENCY while no latency has been measured

#: Field and register access codes.
ACCESS = {
    "RO": "read-only",
    "RW": "read-write",
    "W1P": "write 1 to pulse for one cycle (self-clearing, reads 0)",
}


class RegisterMapError(PsqsError, ValueError):
    """The register map (or a value checked against it) is inconsistent."""


@dataclass(frozen=True)
class HdlParameter:
    """A Verilog parameter of the IP, with the range the HDL supports."""

    name: str
    default: int
    description: str
    minimum: int
    maximum: int
    multiple_of: int = 1
    power_of_two: bool = False

    def check(self, value: int) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise RegisterMapError(f"parameter {self.name}={value!r}: must be an integer")
        if not self.minimum <= value <= self.maximum:
            raise RegisterMapError(
                f"parameter {self.name}={value}: must lie in {self.minimum}..{self.maximum}")
        if value % self.multiple_of:
            raise RegisterMapError(
                f"parameter {self.name}={value}: must be a multiple of {self.multiple_of}")
        if self.power_of_two and value & (value - 1):
            raise RegisterMapError(f"parameter {self.name}={value}: must be a power of two")
        return value


HDL_PARAMETERS = (
    HdlParameter("DATA_WIDTH_IN", 32, "TDATA width of the input path (DMA MM2S -> model), bits",
                 8, 4088, multiple_of=8),
    HdlParameter("DATA_WIDTH_OUT", 32, "TDATA width of the output path (model -> DMA S2MM), bits",
                 8, 4088, multiple_of=8),
    HdlParameter("FIFO_DEPTH", 4, "pending input-transfer starts kept for overlapping transfers "
                 "(each is a 48-bit age counter, so keep it small)", 2, 16, power_of_two=True),
)


@dataclass(frozen=True)
class Field:
    name: str
    lsb: int
    width: int
    access: str
    reset: int
    description: str

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.lsb

    def extract(self, word: int) -> int:
        return (word >> self.lsb) & ((1 << self.width) - 1)


@dataclass(frozen=True)
class Register:
    name: str
    offset: int
    width: int  # 32 or 64
    access: str
    reset: int
    description: str
    fields: tuple[Field, ...] = ()
    volatile: bool = False  # the hardware changes it on its own (counters, status)
    bits: int = 0  # implemented low bits (0: all); the bits above read 0

    @property
    def implemented(self) -> int:
        return self.bits or self.width

    @property
    def words(self) -> tuple[tuple[str, int], ...]:
        """The 32-bit words as (name, offset): one for a 32-bit register, LO then HI for 64."""
        if self.width == 32:
            return ((self.name, self.offset),)
        return ((f"{self.name}_LO", self.offset), (f"{self.name}_HI", self.offset + 4))

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name} has no field {name!r}")


def encode_config(fifo_depth: int, data_width_in: int, data_width_out: int) -> int:
    """The CONFIG word of an instance with these parameters (what the hardware returns)."""
    params = {p.name: p for p in HDL_PARAMETERS}
    params["FIFO_DEPTH"].check(fifo_depth)
    params["DATA_WIDTH_IN"].check(data_width_in)
    params["DATA_WIDTH_OUT"].check(data_width_out)
    return fifo_depth | ((data_width_in // 8) << 8) | ((data_width_out // 8) << 20)


_DEFAULTS = {p.name: p.default for p in HDL_PARAMETERS}
_CONFIG_RESET = encode_config(_DEFAULTS["FIFO_DEPTH"], _DEFAULTS["DATA_WIDTH_IN"], _DEFAULTS["DATA_WIDTH_OUT"])


def _counter(name: str, index: int, description: str, reset: int = 0, bits: int = 64) -> Register:
    return Register(name, WIDE_BASE + 8 * index, 64, "RO", reset, description, volatile=True, bits=bits)


REGISTERS: tuple[Register, ...] = (
    Register("ID", 0x00, 32, "RO", ID_MAGIC,
             f"Fixed magic 0x{ID_MAGIC:08X} (ASCII 'SPRB'): software checks it to recognize the IP."),
    Register("VERSION", 0x04, 32, "RO", (VERSION_MAJOR << 8) | VERSION_MINOR,
             "Version of the register interface.",
             (Field("MINOR", 0, 8, "RO", VERSION_MINOR, "minor version: compatible additions"),
              Field("MAJOR", 8, 8, "RO", VERSION_MAJOR, "major version: incompatible changes"))),
    Register("CONFIG", 0x08, 32, "RO", _CONFIG_RESET,
             "Build-time parameters of this instance (reset value shown for the default parameters).",
             (Field("FIFO_DEPTH", 0, 8, "RO", _DEFAULTS["FIFO_DEPTH"], "FIFO_DEPTH parameter"),
              Field("BYTES_IN", 8, 12, "RO", _DEFAULTS["DATA_WIDTH_IN"] // 8, "DATA_WIDTH_IN / 8"),
              Field("BYTES_OUT", 20, 12, "RO", _DEFAULTS["DATA_WIDTH_OUT"] // 8, "DATA_WIDTH_OUT / 8"))),
    Register("CTRL", 0x0C, 32, "RW", 0x2, "Control. Change ENABLE only while both streams are idle.",
             (Field("CLEAR", 0, 1, "W1P", 0,
                    "write 1: zero all counters and statistics, forget the pending input starts, clear "
                    "the STATUS flags and the TLAST framing (so a CLEAR re-synchronizes the probe "
                    "after a DMA reset); takes effect one cycle after the write handshake. Do it "
                    "while both streams are idle: a transfer in flight is then mis-measured"),
              Field("ENABLE", 1, 1, "RW", 1,
                    "1: count beats and measure transfers (CYCLES always runs)"))),
    Register("STATUS", 0x10, 32, "RO", 0, "Status; the sticky flags are cleared by CTRL.CLEAR.",
             (Field("OVERFLOW", 0, 1, "RO", 0,
                    "sticky: an input transfer started while FIFO_DEPTH starts were pending; its start "
                    "was dropped, so later output transfers pair with the wrong inputs until CLEAR"),
              Field("UNMATCHED", 1, 1, "RO", 0,
                    "sticky: an output transfer started with no pending input start; it was "
                    "counted in OUT_BEATS but not measured"),
              Field("IN_BUSY", 2, 1, "RO", 0, "inside an input transfer (first beat seen, TLAST not yet)"),
              Field("OUT_BUSY", 3, 1, "RO", 0, "inside an output transfer"),
              Field("PENDING", 8, 8, "RO", 0, "input-transfer starts waiting for their output transfer")),
             volatile=True),
    _counter("CYCLES", 0, "Free-running aclk cycle counter (runs whether or not ENABLE is set)."),
    _counter("IN_BEATS", 1, "Input-path beats (s_axis_in TVALID & TREADY) while enabled."),
    _counter("OUT_BEATS", 2, "Output-path beats (s_axis_out TVALID & TREADY) while enabled."),
    _counter("TRANSFERS", 3, "Completed measured transfers (output TLAST beats matched to an input start)."),
    _counter("LAST_LATENCY", 4,
             "Cycles from the first input beat of a transfer to the first beat of its output transfer, "
             "for the most recent output transfer.", bits=LATENCY_BITS),
    _counter("LAST_TRANSFER_TIME", 5,
             "Cycles from the first input beat of a transfer to the last (TLAST) beat of its output "
             "transfer, for the most recently completed transfer.", bits=LATENCY_BITS),
    _counter("MIN_LATENCY", 6,
             f"Smallest LAST_LATENCY since CLEAR (0x{NO_LATENCY:X} while none); updated one cycle "
             "after LAST_LATENCY.", reset=NO_LATENCY, bits=LATENCY_BITS),
    _counter("MAX_LATENCY", 7,
             "Largest LAST_LATENCY since CLEAR (0 while none); updated one cycle after LAST_LATENCY.",
             bits=LATENCY_BITS),
)


BY_NAME: dict[str, Register] = {r.name: r for r in REGISTERS}


def register(name: str) -> Register:
    try:
        return BY_NAME[name]
    except KeyError:
        raise RegisterMapError(
            f"stream probe has no register {name!r}; known: {', '.join(BY_NAME)}") from None


def words(registers: tuple[Register, ...] = REGISTERS) -> Iterator[tuple[str, int, Register]]:
    """Every 32-bit word of the map as (word name, byte offset, register), in map order."""
    for reg in registers:
        for name, offset in reg.words:
            yield name, offset, reg


def validate(registers: tuple[Register, ...] = REGISTERS) -> None:
    """Raise :class:`RegisterMapError` naming the first inconsistency in ``registers``.

    Checked: widths 32/64, known access codes, 4-byte (64-bit: 8-byte) alignment, every word
    inside the decoded address span, 32-bit registers below :data:`WIDE_BASE` and 64-bit ones
    above it (the Verilog's decoding relies on it), no two words at one offset, unique names,
    fields inside their register and not overlapping, reset values that fit the implemented
    bits (and agree with the fields).
    """
    seen_names: set[str] = set()
    seen_offsets: dict[int, str] = {}
    for reg in registers:
        where = f"register {reg.name} @0x{reg.offset:02X}"
        if reg.width not in (32, 64):
            raise RegisterMapError(f"{where}: width {reg.width} is not 32 or 64")
        if reg.access not in ACCESS:
            raise RegisterMapError(f"{where}: access {reg.access!r} not in {sorted(ACCESS)}")
        if reg.offset % (reg.width // 8):
            raise RegisterMapError(f"{where}: offset not aligned to {reg.width // 8} bytes")
        if (reg.offset >= WIDE_BASE) != (reg.width == 64):
            raise RegisterMapError(
                f"{where}: {reg.width}-bit registers must lie {'at or above' if reg.width == 64 else 'below'} "
                f"0x{WIDE_BASE:02X}")
        if not 0 < reg.implemented <= reg.width:
            raise RegisterMapError(f"{where}: implemented bits {reg.bits} not in 1..{reg.width}")
        if not 0 <= reg.reset < (1 << reg.implemented):
            raise RegisterMapError(
                f"{where}: reset 0x{reg.reset:X} does not fit its {reg.implemented} implemented bits")
        for name, offset in reg.words:
            if name in seen_names:
                raise RegisterMapError(f"{where}: name {name} used twice")
            seen_names.add(name)
            if offset + 4 > ADDRESS_SPAN:
                raise RegisterMapError(
                    f"{where}: word {name} at 0x{offset:02X} lies outside the {ADDR_WIDTH}-bit "
                    f"address span (0x{ADDRESS_SPAN:X} bytes)")
            if offset in seen_offsets:
                raise RegisterMapError(
                    f"{where}: word {name} overlaps {seen_offsets[offset]} at 0x{offset:02X}")
            seen_offsets[offset] = name
        used = 0
        for f in reg.fields:
            if f.access not in ACCESS:
                raise RegisterMapError(f"{where}: field {f.name} access {f.access!r} unknown")
            if f.width < 1 or f.lsb < 0 or f.lsb + f.width > reg.width:
                raise RegisterMapError(f"{where}: field {f.name} [{f.lsb}+:{f.width}] outside the register")
            if used & f.mask:
                raise RegisterMapError(f"{where}: field {f.name} overlaps another field")
            used |= f.mask
            if f.reset != f.extract(reg.reset):
                raise RegisterMapError(
                    f"{where}: field {f.name} reset {f.reset} disagrees with register reset 0x{reg.reset:X}")
        if reg.fields and reg.reset & ~used:
            raise RegisterMapError(f"{where}: reset 0x{reg.reset:X} sets bits outside its fields")


validate()
