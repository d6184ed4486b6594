"""The model IP's AXI-Lite registers, as Vivado HLS's ``s_axilite`` adapter answers them.

An hls4ml top may carry scalar arguments on an AXI-Lite bundle (the PYNQ-Z2 jet design has
``vector_rows`` at 0x10 of ``s_axi_AXILiteS``); a user's script can write and read them through
pynq's ``MMIO`` or the IP's ``register_map``. The block is built from the handoff's IP-XACT
description of it (:meth:`psqs.overlays.from_hls4ml.hwh.HandoffFile.registers`) and answers as the
adapter HLS generates (``<top>_<bundle>_s_axi.v``) does:

- a data register of an input argument ("Data signal of x") holds what was last written, masked
  to the argument's width, and reads it back: the adapter's read multiplexer includes every input
  register (``rdata <= int_x[31:0]``), although Vivado HLS's IP-XACT calls them ``write-only``;
  arguments wider than 32 bits take consecutive words, low word first;
- a read-only register (an output argument's data or ``_ap_vld`` control word) reads its reset
  value: the emulated model computes the streams only, and hls4ml's tops have no scalar outputs;
- an offset no register occupies reads 0 (the multiplexer's default) and ignores writes, and
  only the low ``address_bits`` of an address are decoded, so the registers repeat through the
  block's range as they do behind the adapter's truncated ``ARADDR``/``AWADDR``;
- a block with block-level control registers (``CTRL`` with ``AP_START``: ``ap_ctrl_hs`` /
  ``ap_ctrl_chain``) is refused: such an IP processes only when started, which the free-running
  stream model does not emulate (hls4ml's ``axi_stream`` tops are ``ap_ctrl_none``).

Registers reset to their ``RESET_VALUE`` when the overlay is downloaded.
"""
from __future__ import annotations

from psqs.overlays.from_hls4ml.hwh import RegisterBlock

WORD_BITS = 32
#: field names of HLS's block-level control word (CTRL at 0x00) and its interrupt registers
BLOCK_CONTROL = ("AP_START", "AP_DONE", "AP_IDLE", "AP_READY", "AUTO_RESTART")


class HlsRegisters:
    """One HLS AXI-Lite slave: ``read32`` / ``write32`` at byte offsets within its range."""

    def __init__(self, name: str, block: RegisterBlock):
        self.name, self.block, self.size = name, block, block.range
        self._decode = (1 << block.address_bits) - 1 if block.address_bits else block.range - 1
        self._words: dict[int, tuple[str, int, bool]] = {}   # word offset -> (register, word index, writable)
        for reg in block.words:
            controls = [f[0] for f in reg.fields if f[0].upper() in BLOCK_CONTROL]
            if controls:
                raise ValueError(f"{name}: register {reg.name} at 0x{reg.offset:02x} holds block-level control "
                                 f"({', '.join(controls)}): an ap_ctrl_hs/ap_ctrl_chain IP runs only when started, "
                                 "which is not emulated (hls4ml's axi_stream tops are ap_ctrl_none)")
            if reg.offset % 4 or reg.bits < 1:
                raise ValueError(f"{name}: register {reg.name} at offset {reg.offset} with {reg.bits} bits "
                                 "is not a word-aligned register")
            for k in range(-(-max(reg.bits, _width(reg)) // WORD_BITS)):
                offset = reg.offset + 4 * k
                if offset in self._words:
                    raise ValueError(f"{name}: registers {self._words[offset][0]} and {reg.name} overlap at 0x{offset:02x}")
                self._words[offset] = (reg.name, k, reg.access != "read-only")
        self._by_name = {reg.name: reg for reg in block.words}
        self.reset()

    def reset(self) -> None:
        self._values = {reg.name: reg.reset & ((1 << _width(reg)) - 1) for reg in self.block.words}

    def read32(self, offset: int) -> int:
        word = self._words.get(offset & self._decode)
        if word is None:
            return 0
        name, k, _ = word
        return (self._values[name] >> (WORD_BITS * k)) & 0xFFFFFFFF

    def write32(self, offset: int, value: int) -> None:
        word = self._words.get(offset & self._decode)
        if word is None or not word[2]:
            return
        name, k, _ = word
        shift, reg = WORD_BITS * k, self._by_name[name]
        merged = (self._values[name] & ~(0xFFFFFFFF << shift)) | ((value & 0xFFFFFFFF) << shift)
        self._values[name] = merged & ((1 << _width(reg)) - 1)


def _width(reg) -> int:
    """The bits a register stores: its fields' extent (an 8-bit argument in a 32-bit word holds 8),
    else its SIZE."""
    return max((offset + bits for _, offset, bits, _ in reg.fields), default=reg.bits) or reg.bits
