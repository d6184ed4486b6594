"""The emulator's gRPC surface with raw pynq stubs: refusals arrive as status codes and the server
keeps serving, programming by firmware content, concurrent clients, independent boards."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import threading

import grpc
import numpy as np
import pytest
from psqs.common.errors import PsqsError
from psqs.deploy.emulator import EmulatorConfig, EmulatorServer, Fault
from psqs.deploy.emulator import dma as D
from psqs.deploy.emulator.packages import bin_image
from psqs.deploy.emulator.server import EmulatorStartError
from pynq.remote import (
    buffer_pb2,
    buffer_pb2_grpc,
    gpio_pb2,
    gpio_pb2_grpc,
    mmio_pb2,
    mmio_pb2_grpc,
    remote_device_pb2,
    remote_device_pb2_grpc,
)
from test_emulator_support import (
    DMA_BASE,
    FAKE_IO,
    PROBE_BASE,
    build_fake_library,
    fake_model_outputs,
    start_emulator,
    write_package,
)

Code = grpc.StatusCode


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("overlays")
    library = build_fake_library(root.parent / "fake-lib")
    write_package(root / "fake", "fake", library, FAKE_IO)
    return root


@pytest.fixture(scope="module")
def server(packages):
    server = start_emulator([packages])
    yield server
    server.stop()


class Client:
    """pynq's four stubs on one channel, with the calls pynq's client makes."""

    def __init__(self, host: str):
        self.channel = grpc.insecure_channel(f"{host}:7967")
        self.device = remote_device_pb2_grpc.RemoteDeviceStub(self.channel)
        self.mmio = mmio_pb2_grpc.MmioStub(self.channel)
        self.buffer = buffer_pb2_grpc.RemoteBufferStub(self.channel)
        self.gpio = gpio_pb2_grpc.GpioStub(self.channel)

    def read_file(self, path):
        return b"".join(r.data for r in self.device.readfile(remote_device_pb2.ReadFileRequest(file_path=path)))

    def write_file(self, path, data):
        self.device.writefile(iter([remote_device_pb2.WriteFileRequest(file_path=path, data=data)]))

    def program(self, name, image):
        self.write_file(f"/lib/firmware/{name}", image)
        self.write_file("/sys/class/fpga_manager/fpga0/flags", b"0")
        self.write_file("/sys/class/fpga_manager/fpga0/firmware", name.encode())

    def window(self, base, length):
        return self.mmio.get_mmio(mmio_pb2.GetMmioRequest(base_addr=base, length=length)).mmio_id

    def read32(self, mmio_id, offset, length=4):
        return self.mmio.read(mmio_pb2.ReadRequest(mmio_id=mmio_id, offset=offset, length=length)).data

    def write32(self, mmio_id, offset, value):
        self.mmio.write(mmio_pb2.WriteRequest(mmio_id=mmio_id, offset=offset, data=value.to_bytes(4, "little")))

    def allocate(self, size):
        return self.buffer.allocate(buffer_pb2.AllocateRequest(size=size, dtype="|u1", cacheable=True)).buffer_id

    def upload(self, buffer_id, data, start=0, end=0):
        self.buffer.write(iter([buffer_pb2.BufferWriteRequest(buffer_id=buffer_id, data=data, start=start, end=end)]))

    def download(self, buffer_id, start=0, end=0):
        return b"".join(r.data for r in self.buffer.read(buffer_pb2.BufferReadRequest(buffer_id=buffer_id, start=start,
                                                                                    end=end)))

    def address(self, buffer_id):
        return self.buffer.physical_address(buffer_pb2.AddressRequest(buffer_id=buffer_id)).address


def fake_image(packages):
    return bin_image((packages / "fake" / "fake.bit").read_bytes())


def refused(code, call, *args, **kwargs):
    with pytest.raises(grpc.RpcError) as info:
        call(*args, **kwargs)
    assert info.value.code() == code, info.value.details()
    return info.value.details()


def test_board_identity(server):
    client = Client(server.config.host)
    assert b"armv7l" in client.read_file("/proc/version")
    assert client.read_file("/proc/device-tree/chosen/pynq_board").strip(b"\0") == b"Pynq-Z2"
    exists = client.device.existsfile(remote_device_pb2.ExistsFileRequest(file_path="/lib/firmware/none.bin"))
    assert not exists.exists


def test_malformed_requests_are_refused_and_the_server_goes_on(server, packages):
    c = Client(server.config.host)
    buf = c.allocate(64)
    cases = [
        (Code.NOT_FOUND, c.upload, "no-such-buffer", b"1234"),
        (Code.NOT_FOUND, c.download, "no-such-buffer"),
        (Code.NOT_FOUND, c.address, "no-such-buffer"),
        (Code.NOT_FOUND, c.buffer.freebuffer, buffer_pb2.FreeBufferRequest(buffer_id="no-such-buffer")),
        (Code.OUT_OF_RANGE, c.upload, buf, b"x" * 65),
        (Code.OUT_OF_RANGE, c.upload, buf, b"xy", 63, 65),
        (Code.OUT_OF_RANGE, c.download, buf, 10, 100),
        (Code.INVALID_ARGUMENT, c.upload, buf, b"xyz", 0, 2),
        (Code.INVALID_ARGUMENT, c.allocate, 0),
        (Code.RESOURCE_EXHAUSTED, c.allocate, (1 << 31) - 1),
        (Code.INVALID_ARGUMENT, c.read_file, "/lib/firmware/../../../etc/passwd"),
        (Code.INVALID_ARGUMENT, c.read_file, "etc/passwd"),
        (Code.INVALID_ARGUMENT, c.device.existsfile, remote_device_pb2.ExistsFileRequest(file_path="/../etc")),
        (Code.INVALID_ARGUMENT, c.write_file, "/lib/firmware/../../evil.bin", b"x"),
        (Code.PERMISSION_DENIED, c.write_file, "/proc/version", b"aarch64"),
        (Code.NOT_FOUND, c.read_file, "/no/such/file"),
        (Code.NOT_FOUND, c.read32, "no-such-window", 0),
        (Code.OUT_OF_RANGE, c.read32, c.window(0x4100_0000, 0x1000), 0),          # nothing decodes there
        (Code.OUT_OF_RANGE, c.read32, c.window(0xF800_0000, 0x200), 0x200),       # past the window
        (Code.INVALID_ARGUMENT, c.read32, c.window(0xF800_0000, 0x200), 0x100, 8),  # 64 bits: two words
        (Code.INVALID_ARGUMENT, c.read32, c.window(0xF800_0000, 0x200), 0x102),
        (Code.INVALID_ARGUMENT, c.window, 0x4000_0000, 0),
        (Code.UNIMPLEMENTED, c.gpio.get_gpio, gpio_pb2.GetGpioRequest(index=0, direction="out")),
    ]
    for code, call, *args in cases:
        refused(code, call, *args)
        assert c.read32(c.window(0xF800_0000, 0x200), 0x108) >> 12 == 20      # still serving
    assert c.download(buf) == b"\0" * 64


def test_programming_by_firmware_content(server, packages):
    c = Client(server.config.host)
    details = refused(Code.NOT_FOUND, c.program, "mystery.bin", b"\x12\x34\x56\x78" * 64)
    assert "matches no overlay package" in details and "fake" in details
    assert c.read_file("/sys/class/fpga_manager/fpga0/state") == b"write error\n"
    refused(Code.OUT_OF_RANGE, c.read32, c.window(DMA_BASE, 0x10000), D.MM2S + D.DMASR)  # PL left empty
    refused(Code.NOT_FOUND, c.write_file, "/sys/class/fpga_manager/fpga0/firmware", b"absent.bin")
    c.write_file("/sys/class/fpga_manager/fpga0/flags", b"1")
    refused(Code.UNIMPLEMENTED, c.write_file, "/sys/class/fpga_manager/fpga0/firmware", b"mystery.bin")
    c.program("renamed.bin", fake_image(packages))          # the name does not matter, the content does
    assert c.read_file("/sys/class/fpga_manager/fpga0/state") == b"operating\n"
    dma = c.window(DMA_BASE, 0x10000)
    assert c.read32(dma, D.MM2S + D.DMASR) & D.HALTED and c.read32(dma, D.MM2S + D.DMACR) == 0x10002
    assert c.read32(c.window(PROBE_BASE, 0x80), 0) == 0x53505242
    c.device.download(iter([remote_device_pb2.DownloadRequest(buffer=fake_image(packages))]))   # download RPC


def dma_roundtrip(client: Client, x: np.ndarray) -> np.ndarray:
    """One transfer through the DMA registers, as pynq's driver makes it (receive side first)."""
    n = x.shape[0]
    src, dst = client.allocate(x.nbytes), client.allocate(n * 20)
    client.upload(src, x.tobytes())
    dma = client.window(DMA_BASE, 0x10000)
    for channel in (D.MM2S, D.S2MM):
        client.write32(dma, channel + D.DMACR, D.RS)
    client.write32(dma, D.S2MM + D.ADDR, client.address(dst))
    client.write32(dma, D.S2MM + D.LENGTH, n * 20)
    client.write32(dma, D.MM2S + D.ADDR, client.address(src))
    client.write32(dma, D.MM2S + D.LENGTH, x.nbytes)
    while not client.read32(dma, D.S2MM + D.DMASR) & D.IDLE:
        pass
    out = np.frombuffer(client.download(dst), dtype=np.int32).reshape(n, 5)
    for b in (src, dst):
        client.buffer.freebuffer(buffer_pb2.FreeBufferRequest(buffer_id=b))
    return out


def test_concurrent_clients_keep_their_buffers(server, packages):
    Client(server.config.host).program("fake.bin", fake_image(packages))
    lock, errors = threading.Lock(), []

    def worker(seed):
        c = Client(server.config.host)
        rng = np.random.default_rng(seed)
        try:
            for _ in range(20):
                data = rng.integers(0, 256, size=int(rng.integers(1, 50_000)), dtype=np.uint8).tobytes()
                b = c.allocate(len(data))
                c.upload(b, data)
                assert c.download(b) == data
                c.buffer.freebuffer(buffer_pb2.FreeBufferRequest(buffer_id=b))
                x = rng.integers(-3000, 3000, size=(int(rng.integers(1, 300)), 16)).astype(np.int16)
                with lock:      # one DMA: a host serializes its transfers, as on the board
                    out = dma_roundtrip(c, x)
                np.testing.assert_array_equal(out, fake_model_outputs(x))
        except Exception as exc:   # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_two_boards_in_one_process_do_not_share_model_state(packages):
    """Each board loads its own copy of the model library (the loader would share one per path)."""
    first, second = start_emulator([packages]), start_emulator([packages])
    try:
        a, b = Client(first.config.host), Client(second.config.host)
        for c in (a, b):
            c.program("fake.bin", fake_image(packages))
        x = np.random.default_rng(7).integers(-3000, 3000, size=(3, 16)).astype(np.int16)
        half = x.tobytes()[:48]                        # board a: a sample and a half stay inside
        src = a.allocate(48)
        a.upload(src, half)
        dma = a.window(DMA_BASE, 0x10000)
        a.write32(dma, D.MM2S + D.DMACR, D.RS)
        a.write32(dma, D.MM2S + D.ADDR, a.address(src))
        a.write32(dma, D.MM2S + D.LENGTH, 48)
        np.testing.assert_array_equal(dma_roundtrip(b, x), fake_model_outputs(x))   # b unaffected
    finally:
        first.stop()
        second.stop()


def test_one_emulator_per_address(server, packages):
    with pytest.raises(EmulatorStartError):
        EmulatorServer(EmulatorConfig(overlays=[packages], host=server.config.host))


def test_rebuilt_package_is_picked_up(tmp_path, packages):
    library = build_fake_library(tmp_path / "lib")
    write_package(tmp_path / "overlays" / "fake", "fake", library, FAKE_IO, tag="v1")
    server = start_emulator([tmp_path / "overlays"])
    try:
        shutil.rmtree(tmp_path / "overlays" / "fake")
        rebuilt = write_package(tmp_path / "overlays" / "fake", "fake", library, FAKE_IO, tag="v2")
        image = bin_image((rebuilt / "fake.bit").read_bytes())
        c = Client(server.config.host)
        c.program("fake.bin", image)
        assert server.board.loaded.bin_sha256 == hashlib.sha256(image).hexdigest()
    finally:
        server.stop()


def test_rtl_models_need_their_cycle_counter(tmp_path):
    overlays = tmp_path / "overlays"
    write_package(overlays / "rtl", "rtl", build_fake_library(tmp_path / "rtl", cycles=True), FAKE_IO, kind="rtl")
    write_package(overlays / "norm", "norm", build_fake_library(tmp_path / "csim"), FAKE_IO, kind="rtl")
    server = start_emulator([overlays])
    try:
        c = Client(server.config.host)
        c.program("rtl.bin", bin_image((overlays / "rtl" / "rtl.bit").read_bytes()))
        assert server.board.dma.stream.rtl_cycles is not None
        details = refused(Code.FAILED_PRECONDITION, c.program, "norm.bin",
                          bin_image((overlays / "norm" / "norm.bit").read_bytes()))
        assert "psqs_cycles" in details
    finally:
        server.stop()


def test_overlays_without_a_package_are_an_error(tmp_path, packages):
    """Found on main: ``--overlays`` naming a directory that holds no package served "no packages".
    It is an error naming the directory and what was looked for, also beside a good directory,
    and ``python -m psqs.deploy.emulator`` exits with it instead of serving."""
    from psqs.deploy.emulator.errors import PackageError
    from psqs.common.artifact import write_manifest

    empty, other = tmp_path / "empty", tmp_path / "other"
    empty.mkdir()
    (empty / "notes").mkdir()
    (other / "hls6").mkdir(parents=True)
    write_manifest(other / "hls6", "psqs.hls", 1, {})                # an artifact of another kind
    for root, extra in ((empty, ""), (other, "hls6 (kind 'psqs.hls')")):
        with pytest.raises(PackageError) as info:
            EmulatorServer(EmulatorConfig(overlays=[packages, root], host="127.0.0.1", port=1))
        message = str(info.value)
        assert str(root) in message and "manifest.json of kind 'psqs.overlay'" in message and extra in message
    proc = subprocess.run([sys.executable, "-m", "psqs.deploy.emulator", "--overlays", str(empty),
                           "--host", "127.0.0.1", "--port", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and str(empty) in proc.stderr and "no overlay package" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli(tmp_path, capsys):
    import argparse

    from psqs.deploy.emulator import cli

    parser = argparse.ArgumentParser(prog="psqs")
    cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["emulate", "--overlays", str(tmp_path / "missing"), "--fault", "stall=5@2",
                              "--fault", "hang"])
    config = cli.config_from(args)
    assert (config.host, config.port, config.board) == ("127.0.0.1", 7967, "pynq-z2")
    assert config.faults == [Fault("stall", 5.0, 2), Fault("hang")]
    with pytest.raises(PsqsError, match="missing: no such directory"):
        args.func(args)
    with pytest.raises(SystemExit):
        parser.parse_args(["emulate", "--fault", "explode"])
    assert "must be one of hang" in capsys.readouterr().err
