"""Xilinx ``.bit`` containers: reading their header, and writing the emulation image.

A ``.bit`` file is a short header of tagged fields followed by the configuration data::

    00 09  0F F0 0F F0 0F F0 0F F0 00   00 01
    'a' <u16 length> design name;UserID=...;Version=...\\0
    'b' <u16 length> part\\0
    'c' <u16 length> date\\0
    'd' <u16 length> time\\0
    'e' <u32 length> configuration data (to the end of the file)

(big-endian lengths). pynq's ``parse_bit_header`` walks exactly these fields and insists that the
``e`` length ends at the end of the file; ``bit2bin`` byte-swaps the data as 32-bit words into
the ``.bin`` it writes to /lib/firmware for the FPGA manager, so the data must be a whole number
of words.

An emulation package carries no configuration data: its ``.bit`` is a valid container whose
design field starts with :data:`EMULATION_DESIGN` and whose data is a JSON identity of the
overlay (package name, board, part, sha256 of the model and its C simulation), stored pre-swapped
so that the ``.bin`` pynq uploads *is* that JSON, padded to whole words. The board emulator
recognizes an overlay by the sha256 of that ``.bin``, which the manifest records. There is no
sync word, so on a real board the FPGA manager would reject the image instead of configuring
the fabric with it.
"""
from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from psqs.common.errors import PsqsError

EMULATION_DESIGN = "psqs_emulation"
_PREAMBLE = b"\x00\x09\x0f\xf0\x0f\xf0\x0f\xf0\x0f\xf0\x00\x00\x01"


class BitfileError(PsqsError, ValueError):
    """A file is not a .bit container (the message names the file and the offset)."""


@dataclass(frozen=True)
class BitHeader:
    design: str          # the whole 'a' field
    part: str
    date: str
    time: str
    data: bytes

    @property
    def bin(self) -> bytes:
        """What pynq's ``bit2bin`` makes of the data: 32-bit words byte-swapped."""
        return _swap32(self.data)


def _swap32(data: bytes) -> bytes:
    if len(data) % 4:
        raise BitfileError(f"configuration data of {len(data)} bytes is not a whole number of 32-bit words")
    words = struct.unpack(f">{len(data) // 4}I", data)
    return struct.pack(f"<{len(words)}I", *words)


def _field(tag: bytes, text: str) -> bytes:
    raw = text.encode("ascii") + b"\x00"
    return tag + struct.pack(">H", len(raw)) + raw


def container(design: str, part: str, data: bytes, when: datetime) -> bytes:
    """A ``.bit`` file with these header fields around ``data`` (a whole number of words)."""
    if len(data) % 4:
        raise BitfileError(f"configuration data of {len(data)} bytes is not a whole number of 32-bit words")
    return (_PREAMBLE + _field(b"a", design) + _field(b"b", part)
            + _field(b"c", when.strftime("%Y/%m/%d")) + _field(b"d", when.strftime("%H:%M:%S"))
            + b"e" + struct.pack(">I", len(data)) + data)


def read_header(path: Path) -> BitHeader:
    """Parse a ``.bit`` file with the rules pynq applies (see the module docstring)."""
    raw = Path(path).read_bytes()
    if not raw.startswith(_PREAMBLE):
        raise BitfileError(f"{path}: no .bit preamble (00 09 0F F0 ... 00 01) at offset 0")
    fields, offset = {}, len(_PREAMBLE)
    while True:
        if offset >= len(raw):
            raise BitfileError(f"{path}: header ends at offset {offset} before the 'e' data field")
        tag = raw[offset:offset + 1]
        if tag == b"e":
            (length,) = struct.unpack(">I", raw[offset + 1:offset + 5])
            start = offset + 5
            if start + length != len(raw):
                raise BitfileError(f"{path}: 'e' field of {length} bytes at offset {start} does not end "
                                   f"at the end of the file ({len(raw)} bytes)")
            data = raw[start:]
            break
        if tag not in (b"a", b"b", b"c", b"d"):
            raise BitfileError(f"{path}: unknown field {tag!r} at offset {offset}")
        (length,) = struct.unpack(">H", raw[offset + 1:offset + 3])
        fields[tag.decode()] = raw[offset + 3:offset + 3 + length].rstrip(b"\x00").decode("ascii")
        offset += 3 + length
    missing = [k for k in "abcd" if k not in fields]
    if missing:
        raise BitfileError(f"{path}: header lacks field(s) {', '.join(missing)}")
    return BitHeader(fields["a"], fields["b"], fields["c"], fields["d"], data)


def emulation_image(name: str, identity: dict) -> bytes:
    """The ``.bin`` content of an emulation overlay: its identity as JSON, padded to whole words."""
    text = json.dumps({"psqs_emulation": name, **identity}, sort_keys=True, indent=1) + "\n"
    raw = text.encode("ascii")
    return raw + b" " * (-len(raw) % 4)


def design_field(name: str, model_sha256: str) -> str:
    """The 'a' field: marked as emulation, naming the package and the model it carries."""
    return f"{EMULATION_DESIGN};{name};model={model_sha256[:16]};UserID=0XFFFFFFFF;Version=psqs-emulation"


def write_emulation(path: Path, name: str, part: str, identity: dict,
                    when: datetime | None = None) -> dict:
    """Write the emulation ``.bit``; returns the manifest's ``bitstream`` fields."""
    image = emulation_image(name, identity)
    design = design_field(name, identity["model_sha256"])
    Path(path).write_bytes(container(design, part, _swap32(image), when or datetime.now(timezone.utc)))
    return {"file": Path(path).name, "bin_sha256": hashlib.sha256(image).hexdigest(),
            "design_name": design, "part": part, "emulation": True}
