"""DDR as the DMA sees it: contiguous buffers with physical addresses inside the board's window.

pynq allocates DMA buffers from the kernel's contiguous-memory pool and hands their physical
addresses to the DMA. Here each buffer is a numpy array placed, page-aligned, in a pool that
occupies the upper half of the board's DDR window (the kernel and user space live in the lower
half on a PYNQ image). Only allocated buffers are backed: a DMA access that leaves the DDR window
is the AXI decode error the interconnect would return, and one that touches DDR outside every
buffer is reported the same way, where real hardware would silently read or corrupt memory.
"""
from __future__ import annotations

import bisect
import logging
import threading
import uuid
from dataclasses import dataclass

import numpy as np

from .errors import BusError, InvalidArgument, NotFound, OutOfRange, ResourceExhausted

log = logging.getLogger(__name__)

PAGE = 4096
MAX_BUFFER = (1 << 31) - 1   # AllocateRequest.size is an int32


@dataclass
class Buffer:
    id: str
    phys: int
    size: int
    data: np.ndarray   # uint8, the buffer's bytes in "DDR"

    @property
    def end(self) -> int:
        return self.phys + self.size


class DdrMemory:
    """The board's DDR window and the buffers allocated in it (thread-safe)."""

    def __init__(self, ddr_base: int, ddr_size: int):
        self.ddr_base, self.ddr_size = ddr_base, ddr_size
        self.pool_base = ddr_base + ddr_size // 2
        self.pool_end = ddr_base + ddr_size
        self._lock = threading.RLock()
        self._by_id: dict[str, Buffer] = {}
        self._starts: list[int] = []          # sorted physical bases of live buffers
        self._by_start: dict[int, Buffer] = {}

    # ---------------------------------------------------------------- allocation (client side)
    def allocate(self, size: int) -> Buffer:
        if size <= 0:
            raise InvalidArgument(f"allocate: size {size} must be positive")
        if size > MAX_BUFFER:
            raise InvalidArgument(f"allocate: size {size} exceeds the protocol's 2 GiB limit")
        pages = -(-size // PAGE) * PAGE
        with self._lock:
            phys = self._first_fit(pages)
            if phys is None:
                used = sum(b.size for b in self._by_id.values())
                raise ResourceExhausted(
                    f"allocate: no contiguous {pages} bytes left in the {self.pool_end - self.pool_base} "
                    f"byte DMA pool ({used} bytes in {len(self._by_id)} live buffers)")
            buf = Buffer(uuid.uuid4().hex, phys, size, np.zeros(size, dtype=np.uint8))
            self._by_id[buf.id] = buf
            bisect.insort(self._starts, phys)
            self._by_start[phys] = buf
        log.debug("allocated %d bytes at 0x%x (%s)", size, phys, buf.id)
        return buf

    def _first_fit(self, pages: int) -> int | None:
        cursor = self.pool_base
        for start in self._starts:
            if start - cursor >= pages:
                return cursor
            cursor = max(cursor, -(-self._by_start[start].end // PAGE) * PAGE)
        return cursor if self.pool_end - cursor >= pages else None

    def free(self, buffer_id: str) -> None:
        with self._lock:
            buf = self.get(buffer_id)
            del self._by_id[buffer_id]
            self._starts.remove(buf.phys)
            del self._by_start[buf.phys]

    def get(self, buffer_id: str) -> Buffer:
        with self._lock:
            try:
                return self._by_id[buffer_id]
            except KeyError:
                raise NotFound(f"no buffer {buffer_id!r} (never allocated, or freed)") from None

    # ---------------------------------------------------------------- client reads and writes
    def write(self, buffer_id: str, offset: int, data: bytes) -> None:
        with self._lock:
            buf = self.get(buffer_id)
            if offset < 0 or offset + len(data) > buf.size:
                raise OutOfRange(f"write of {len(data)} bytes at offset {offset} outside the "
                                 f"{buf.size}-byte buffer {buffer_id}")
            buf.data[offset:offset + len(data)] = np.frombuffer(data, dtype=np.uint8)

    def read(self, buffer_id: str, start: int, end: int) -> bytes:
        with self._lock:
            buf = self.get(buffer_id)
            if not 0 <= start <= end <= buf.size:
                raise OutOfRange(f"read of [{start}, {end}) outside the {buf.size}-byte buffer {buffer_id}")
            return buf.data[start:end].tobytes()

    # ---------------------------------------------------------------- the DMA's side
    def _locate(self, phys: int, n: int) -> tuple[Buffer, int]:
        if not (self.ddr_base <= phys and phys + n <= self.ddr_base + self.ddr_size):
            raise BusError("decode", f"[0x{phys:x}, 0x{phys + n:x}) is outside the DDR window "
                                     f"[0x{self.ddr_base:x}, 0x{self.ddr_base + self.ddr_size:x})")
        i = bisect.bisect_right(self._starts, phys) - 1
        if i >= 0:
            buf = self._by_start[self._starts[i]]
            if phys + n <= buf.end:
                return buf, phys - buf.phys
        raise BusError("decode", f"[0x{phys:x}, 0x{phys + n:x}) is not inside one allocated buffer")

    def dma_read(self, phys: int, n: int) -> np.ndarray:
        with self._lock:
            buf, offset = self._locate(phys, n)
            return buf.data[offset:offset + n].copy()

    def dma_write(self, phys: int, data: np.ndarray) -> None:
        with self._lock:
            buf, offset = self._locate(phys, data.size)
            buf.data[offset:offset + data.size] = data
