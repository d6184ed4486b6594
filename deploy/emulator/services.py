"""The PYNQ.remote gRPC services, implemented on pynq's own generated servicers.

Every handler turns the emulator's refusals (:mod:`.errors`) into an aborted RPC with a status
code, because pynq's client ignores the ``status``/``msg`` fields of several responses; anything
unexpected is logged and reported as INTERNAL. Either way the server keeps serving.
"""
from __future__ import annotations

import functools
import logging
import threading
import uuid

import grpc
from pynq.remote import (
    buffer_pb2,
    buffer_pb2_grpc,
    gpio_pb2_grpc,
    mmio_pb2,
    mmio_pb2_grpc,
    remote_device_pb2,
    remote_device_pb2_grpc,
)

from .board import ADDRESS_LIMIT, EmulatedBoard
from .errors import EmulatorError, InvalidArgument, NotFound, OutOfRange, Unimplemented
from .memory import DdrMemory

log = logging.getLogger(__name__)

CHUNK = 2 << 20   # response chunks, as pynq's client sends (gRPC's default limit is 4 MiB)


def _rpc(method):
    """Run a handler; refusals become status codes, bugs become INTERNAL, the server goes on."""

    @functools.wraps(method)
    def handler(self, request, context):
        try:
            return method(self, request, context)
        except EmulatorError as exc:
            log.info("%s refused (%s): %s", method.__name__, exc.code, exc)
            context.abort(getattr(grpc.StatusCode, exc.code), str(exc))
        except Exception as exc:   # a bug: report it, keep serving
            log.exception("%s failed", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"emulator error in {method.__name__}: {exc!r}")

    return handler


def _chunks(data: bytes, message):
    return [message(data=data[i:i + CHUNK]) for i in range(0, len(data), CHUNK)] or [message(data=b"")]


class RemoteDeviceService(remote_device_pb2_grpc.RemoteDeviceServicer):
    """Files, the fpga_manager and the PL clocks."""

    def __init__(self, board: EmulatedBoard):
        self.board = board

    @_rpc
    def existsfile(self, request, context):
        return remote_device_pb2.ExistsFileResponse(exists=self.board.exists(request.file_path))

    @_rpc
    def readfile(self, request, context):
        return iter(_chunks(self.board.read_file(request.file_path), remote_device_pb2.ReadFileResponse))

    @_rpc
    def writefile(self, request_iterator, context):
        path, parts = None, []
        for request in request_iterator:
            if path is None:
                path = request.file_path
            elif request.file_path != path:
                raise InvalidArgument(f"writefile: one stream names two files ({path!r}, {request.file_path!r})")
            parts.append(request.data)
        if path is not None:
            self.board.write_file(path, b"".join(parts))
        return remote_device_pb2.WriteFileResponse()

    @_rpc
    def set_bitstream_attrs(self, request, context):
        self.board.bitstream_attrs = (request.binfile_name, request.partial)
        return remote_device_pb2.SetBitstreamAttrsResponse(status=True)

    @_rpc
    def download(self, request_iterator, context):
        image = b"".join(request.buffer for request in request_iterator)
        self.board.program(image, origin="download RPC")
        return remote_device_pb2.DownloadResponse(status=True)

    @_rpc
    def set_pl_clk(self, request, context):
        self.board.set_pl_clock(request.i, request.div0, request.div1, request.clk_mhz)
        return remote_device_pb2.SetPlClkResponse(status=True)

    @_rpc
    def shutdown(self, request, context):
        # PL shutdown managers isolate the AXI ports before reconfiguration; no emulated design has one
        return remote_device_pb2.ShutdownResponse(status=True)


class MmioService(mmio_pb2_grpc.MmioServicer):
    """32-bit register accesses through windows the client maps."""

    def __init__(self, board: EmulatedBoard):
        self.board = board
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}
        self._ids: dict[tuple[int, int], str] = {}

    def _window(self, mmio_id: str) -> tuple[int, int]:
        with self._lock:
            try:
                return self._windows[mmio_id]
            except KeyError:
                raise NotFound(f"no MMIO window {mmio_id!r}") from None

    @staticmethod
    def _check(base: int, size: int, offset: int, length: int) -> int:
        if offset % 4:
            raise InvalidArgument(f"offset 0x{offset:x}: accesses must be 32-bit aligned")
        if offset + length > size:
            raise OutOfRange(f"offset 0x{offset:x} + {length} bytes is outside the {size}-byte window at 0x{base:x}")
        return base + offset

    @_rpc
    def get_mmio(self, request, context):
        base, length = request.base_addr, request.length
        if length == 0 or base % 4 or base + length > ADDRESS_LIMIT:
            raise InvalidArgument(f"MMIO window 0x{base:x} + 0x{length:x}: must be non-empty, 32-bit aligned "
                                  "and inside the 40-bit physical address space")
        with self._lock:
            mmio_id = self._ids.get((base, length))
            if mmio_id is None:   # one id per window: pynq maps a fresh window for every Register access
                mmio_id = self._ids[(base, length)] = uuid.uuid4().hex
                self._windows[mmio_id] = (base, length)
        return mmio_pb2.GetMmioResponse(status=True, mmio_id=mmio_id)

    @_rpc
    def read(self, request, context):
        if request.length not in (1, 2, 4):
            raise InvalidArgument(f"read of {request.length} bytes: ReadResponse.data holds 32 bits, "
                                  "read 64-bit registers as two words")
        base, size = self._window(request.mmio_id)
        value = self.board.read32(self._check(base, size, request.offset, 4))
        return mmio_pb2.ReadResponse(status=True, data=value & ((1 << (8 * request.length)) - 1))

    @_rpc
    def write(self, request, context):
        data = request.data
        if not data or len(data) % 4:
            raise InvalidArgument(f"write of {len(data)} bytes: must be whole 32-bit words")
        base, size = self._window(request.mmio_id)
        address = self._check(base, size, request.offset, len(data))
        for i in range(0, len(data), 4):
            self.board.write32(address + i, int.from_bytes(data[i:i + 4], "little"))
        return mmio_pb2.WriteResponse(status=True)


class RemoteBufferService(buffer_pb2_grpc.RemoteBufferServicer):
    """DMA buffers in the board's DDR."""

    def __init__(self, memory: DdrMemory):
        self.memory = memory

    @_rpc
    def allocate(self, request, context):
        return buffer_pb2.AllocateResponse(buffer_id=self.memory.allocate(request.size).id)

    @_rpc
    def write(self, request_iterator, context):
        cursor = 0
        for request in request_iterator:
            if request.end > request.start:                  # an explicit range
                if len(request.data) != request.end - request.start:
                    raise InvalidArgument(f"write: {len(request.data)} bytes for range "
                                          f"[{request.start}, {request.end})")
                cursor = request.start
            self.memory.write(request.buffer_id, cursor, request.data)   # else: consecutive chunks
            cursor += len(request.data)
        return buffer_pb2.BufferWriteResponse()

    @_rpc
    def read(self, request, context):
        size = self.memory.get(request.buffer_id).size
        end = request.end if request.end else size
        return iter(_chunks(self.memory.read(request.buffer_id, request.start, end), buffer_pb2.BufferReadResponse))

    @_rpc
    def flush(self, request, context):
        self.memory.get(request.buffer_id)   # DDR is the buffer here: nothing to write back
        return buffer_pb2.FlushResponse()

    @_rpc
    def invalidate(self, request, context):
        self.memory.get(request.buffer_id)
        return buffer_pb2.InvalidateResponse()

    @_rpc
    def physical_address(self, request, context):
        return buffer_pb2.AddressResponse(address=self.memory.get(request.buffer_id).phys)

    @_rpc
    def virtual_address(self, request, context):
        # where the buffer lives in the board's (here: the emulator's) address space
        return buffer_pb2.AddressResponse(address=self.memory.get(request.buffer_id).data.ctypes.data)

    @_rpc
    def cacheable(self, request, context):
        self.memory.get(request.buffer_id)
        return buffer_pb2.CacheableResponse(cacheable=True)

    @_rpc
    def freebuffer(self, request, context):
        self.memory.free(request.buffer_id)
        return buffer_pb2.FreeBufferResponse()


class GpioService(gpio_pb2_grpc.GpioServicer):
    """PS GPIO (no psqs design uses it): every call is UNIMPLEMENTED, with a reason."""

    def gpio(self, request, context):
        raise Unimplemented("PS GPIO is not emulated by the psqs board emulator")

    get_gpio = read = write = unexport = is_exported = get_gpio_base_path = get_gpio_npins = _rpc(gpio)


def add_services(server: grpc.Server, board: EmulatedBoard) -> None:
    remote_device_pb2_grpc.add_RemoteDeviceServicer_to_server(RemoteDeviceService(board), server)
    mmio_pb2_grpc.add_MmioServicer_to_server(MmioService(board), server)
    buffer_pb2_grpc.add_RemoteBufferServicer_to_server(RemoteBufferService(board.memory), server)
    gpio_pb2_grpc.add_GpioServicer_to_server(GpioService(), server)
