"""The unmodified pynq client against the emulator: Overlay() and pynq.lib.dma.DMA, bit-exact
against the C simulation, injected faults and recovery, two clients at once, a ZynqMP board, and
a soak of a million samples. Each client is a subprocess with private pynq state."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from psqs.deploy.emulator import Fault
from psqs.deploy.emulator.client_env import client_env
from test_emulator_support import (
    DESIGNS,
    FAKE_IO,
    PROBE_BASE,
    TIMING,
    build_fake_library,
    client_script,
    run_client,
    start_emulator,
    write_package,
)

# shared by the client scripts: the stand-in model's outputs, a DMA wait with a timeout (pynq's
# own wait() polls forever), and the recovery a host performs after an error or a timeout
FAKE_CLIENT = f"""
PROBE_BASE = {PROBE_BASE}

def expected(x):
    acc = x.astype(np.int64) @ np.arange(1, 17, dtype=np.int64)
    return (acc[:, None] + 1000 * np.arange(5)).astype(np.int32)

def run(dma, inp, out, timeout=5.0, n=None):
    nin = 0 if n is None else n * 32
    nout = 0 if n is None else n * 20
    out[:] = 0
    dma.recvchannel.transfer(out, nbytes=nout)
    dma.sendchannel.transfer(inp, nbytes=nin)
    deadline = time.monotonic() + timeout
    while True:
        mm2s, s2mm = dma.mmio.read(0x04), dma.mmio.read(0x34)
        if (mm2s | s2mm) & 0x70:
            return "error", mm2s, s2mm
        if mm2s & 2 and s2mm & 2:
            out.invalidate()
            return "done", mm2s, s2mm
        if time.monotonic() > deadline:
            return "timeout", mm2s, s2mm

def recover(dma, probe):
    dma.mmio.write(0x00, 0x4)          # DMACR.Reset (either channel resets the whole DMA)
    dma.sendchannel.start()
    dma.recvchannel.start()
    probe.write(0x0C, 0x3)             # probe CTRL: CLEAR, keep ENABLE

def probe64(probe, offset):
    lo = probe.read(offset)
    return lo | probe.read(offset + 4) << 32
"""

# end-to-end: every test runs pynq clients in subprocesses (seconds each)
pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]


@pytest.fixture(scope="module")
def fake_packages(tmp_path_factory):
    root = tmp_path_factory.mktemp("overlays")
    library = build_fake_library(root.parent / "fake-lib")
    write_package(root / "fake", "fake", library, FAKE_IO)
    write_package(root / "fake_zu", "fake_zu", library, FAKE_IO, board="zcu104")
    return root


@pytest.fixture
def emulator(fake_packages):
    server = start_emulator([fake_packages / "fake"])
    yield server
    server.stop()


@pytest.fixture(scope="module")
def jet_package(tmp_path_factory, synthetic_npz):
    """A tiny QAP model, converted for the PYNQ-Z2 and built as an emulation overlay package."""
    from psqs.hls import stage
    from psqs.overlays.build import build
    from psqs.qap import stage as qap_stage
    from psqs.qap.config import TrainConfig

    root = tmp_path_factory.mktemp("jet")
    model = qap_stage.run(TrainConfig(data=str(synthetic_npz), epochs=2, patience=2, batch_size=256, max_train=2000,
                                      test_vectors=600, widths=(24, 12, 12), bits=6), root / "model")
    hls_dir = stage.run(model.path, root / "hls", stage.options_for_board("pynq-z2"))
    return build(hls_dir, "pynq-z2", root / "overlays" / "jet", emulation=True)


def test_overlay_and_dma_are_bit_exact_with_the_c_simulation(jet_package, tmp_path):
    server = start_emulator([jet_package])
    try:
        result = run_client("""
            from psqs.common import codec
            from psqs.common.package import OverlayPackage
            pkg = OverlayPackage(sys.argv[1])
            ol = Overlay(str(pkg.bitstream))
            dma = DMA(ol.ip_dict[pkg.dma.name])
            vectors, contract = pkg.test_vectors(), pkg.contract
            mean, scale = pkg.scaler
            codes, _ = codec.encode(contract.input, (vectors["X"] - mean) / scale)
            data = codec.pack(contract.input, codes)
            n = vectors["X"].shape[0]
            inp = allocate(shape=(data.size,), dtype=np.uint8)
            out = allocate(shape=(n * contract.output.bytes_per_sample,), dtype=np.uint8)
            inp[:] = data
            dma.recvchannel.transfer(out)
            dma.sendchannel.transfer(inp)
            dma.sendchannel.wait()
            dma.recvchannel.wait()
            logits = codec.decode(contract.output, codec.unpack(contract.output, np.asarray(out)))
            probe = MMIO(pkg.probe.base, 0x80)
            emit(exact=bool(np.array_equal(logits, vectors["csim_logits"])), n_in=n, n_out=int(logits.shape[0]),
                 received=dma.recvchannel.transferred, bytes_per_sample=contract.output.bytes_per_sample,
                 in_beats=probe.read(0x48), out_beats=probe.read(0x50), latency=probe.read(0x60),
                 transfer_time=probe.read(0x68), beats=[contract.input.beats_per_sample, contract.output.beats_per_sample],
                 timing=pkg.timing, probe_in_overlay=pkg.probe.name in ol.ip_dict)
        """, server.config.host, tmp_path / "client", args=(jet_package,))
    finally:
        server.stop()
    assert result["exact"] and result["n_in"] == result["n_out"] == 600
    assert result["received"] == 600 * result["bytes_per_sample"]
    ib, ob = result["beats"]
    latency, ii = result["timing"]["latency_cycles"], result["timing"]["ii_cycles"]
    assert (result["in_beats"], result["out_beats"], result["latency"]) == (600 * ib, 600 * ob, latency)
    assert result["transfer_time"] == latency + 599 * max(ii, ib, ob) + ob - 1
    assert result["probe_in_overlay"]


def test_injected_faults_are_observable_and_recoverable(emulator, fake_packages, tmp_path):
    kinds = ["hang", "decode-error", "slave-error", "no-tlast", "stall"]
    for i, kind in enumerate(kinds):    # transfers 2, 4, ...: each follows a clean one
        emulator.board.inject(Fault(kind, stall_ms=300.0 if kind == "stall" else 0.0, at_transfer=2 * i + 2))
    result = run_client(f"""
        ol = Overlay(sys.argv[1])
        dma = ol.hier_0.axi_dma_0
        probe = MMIO(PROBE_BASE, 0x80)
        x = np.random.default_rng(3).integers(-3000, 3000, size=(64, 16)).astype(np.int16)
        inp, out = allocate(shape=(64, 16), dtype=np.int16), allocate(shape=(64, 5), dtype=np.int32)
        inp[:] = x
        report = {{}}
        for kind in {kinds!r}:
            clean = run(dma, inp, out)
            ok = clean[0] == "done" and bool(np.array_equal(out, expected(x)))
            latency = probe64(probe, 0x60)
            t0 = time.monotonic()
            outcome, mm2s, s2mm = run(dma, inp, out, timeout=1.0)
            report[kind] = dict(clean_before=ok, latency_before=latency, outcome=outcome, mm2s=mm2s, s2mm=s2mm,
                                seconds=time.monotonic() - t0, probe_latency=probe64(probe, 0x60))
            recover(dma, probe)
        final = run(dma, inp, out)
        emit(report=report, final=final[0], final_ok=bool(np.array_equal(out, expected(x))),
             final_latency=probe64(probe, 0x60), transfers=probe64(probe, 0x58))
    """, emulator.config.host, tmp_path / "client", args=(fake_packages / "fake" / "fake.bit",), helpers=FAKE_CLIENT)
    report = result["report"]
    for kind in kinds:
        assert report[kind]["clean_before"] and report[kind]["latency_before"] == 15, (kind, report[kind])
    hang, dec, slv, tlast, stall = (report[k] for k in kinds)
    assert hang["outcome"] == "timeout" and hang["mm2s"] & 0x2 and not hang["s2mm"] & 0x73
    assert dec["outcome"] == "error" and dec["mm2s"] & 0x4041 == 0x4041          # DecErr, Err_Irq, halted
    assert slv["outcome"] == "error" and slv["mm2s"] & 0x4021 == 0x4021          # SlvErr
    assert tlast["outcome"] == "error" and tlast["s2mm"] & 0x4011 == 0x4011      # IntErr: full before TLAST
    assert stall["outcome"] == "done" and stall["seconds"] >= 0.3 and stall["probe_latency"] >= 30_000_000
    assert result["final"] == "done" and result["final_ok"]
    assert result["final_latency"] == 15 and result["transfers"] == 1


def test_the_probe_does_not_count_the_host_between_pynq_calls(emulator, fake_packages, tmp_path):
    """Found on main: in pynq's usual order (sendchannel, then recvchannel) the host's time between
    the two calls was counted as fabric cycles (LAST_LATENCY in the hundreds of thousands). Both
    orders, with or without a 50 ms pause between the calls, read the timing model's figures:
    latency L, transfer time L + (n - 1) * P + (ob - 1) with P = max(II, 8 input, 5 output beats)."""
    result = run_client("""
        from psqs.common import stream_probe_regs as regs
        ol = Overlay(sys.argv[1])
        dma = ol.hier_0.axi_dma_0
        probe = MMIO(PROBE_BASE, 0x80)
        figures = {}
        for n in (64, 3000):                                  # 3000 > the stream's capacity: back-pressure
            inp, out = allocate(shape=(n, 16), dtype=np.int16), allocate(shape=(n, 5), dtype=np.int32)
            inp[:] = np.arange(16 * n).reshape(n, 16) % 3000
            for order in ("send first", "recv first"):
                for pause in (0.0, 0.05):
                    calls = [(dma.sendchannel, inp), (dma.recvchannel, out)]
                    if order == "recv first":
                        calls.reverse()
                    calls[0][0].transfer(calls[0][1])
                    time.sleep(pause)
                    calls[1][0].transfer(calls[1][1])
                    dma.sendchannel.wait()
                    dma.recvchannel.wait()
                    ok = bool(np.array_equal(out, expected(np.asarray(inp))))
                    figures[f"{n} {order} {pause}"] = [probe64(probe, regs.register(name).offset)
                                                       for name in ("LAST_LATENCY", "LAST_TRANSFER_TIME")] + [ok]
        emit(figures=figures)
    """, emulator.config.host, tmp_path / "client", args=(fake_packages / "fake" / "fake.bit",), helpers=FAKE_CLIENT)
    latency = TIMING["latency_cycles"]
    for key, figures in result["figures"].items():
        n = int(key.split()[0])
        assert figures == [latency, latency + (n - 1) * 8 + 4, True], key


def test_a_client_writes_and_reads_back_files_where_a_board_lets_it(emulator, tmp_path):
    """pynq 4.0's remote client has three file calls (exists_file, read_file, write_file); a board
    lets it write its /tmp and home directories, not the rest, and never outside the sandbox."""
    name = f"psqs-{tmp_path.name}.txt"
    result = run_client(f"""
        import grpc
        device = pynq.Device.active_device
        back = {{}}
        for path in ("/tmp/{name}", "/home/xilinx/{name}", "/root/{name}"):
            data = path.encode() * 100_000                    # several 2 MiB chunks
            device.write_file(path, data)
            back[path] = device.read_file(path) == data and device.exists_file(path).exists
        refused = {{}}
        for path in ("/tmp/../etc/{name}", "/etc/{name}", "/proc/version", "tmp/{name}", "/tmp/no/{name}"):
            try:
                device.write_file(path, b"x")
                refused[path] = None
            except grpc.RpcError as exc:
                refused[path] = exc.code().name
        emit(back=back, refused=refused)
    """, emulator.config.host, tmp_path / "client")
    assert result["back"] == {f"{d}/{name}": True for d in ("/tmp", "/home/xilinx", "/root")}
    assert result["refused"] == {f"/tmp/../etc/{name}": "INVALID_ARGUMENT", f"/etc/{name}": "PERMISSION_DENIED",
                                 "/proc/version": "PERMISSION_DENIED", f"tmp/{name}": "INVALID_ARGUMENT",
                                 f"/tmp/no/{name}": "NOT_FOUND"}
    sandbox = emulator.board.files.root
    assert (sandbox / "tmp" / name).stat().st_size == len(f"/tmp/{name}") * 100_000
    assert not (Path("/tmp") / name).exists()                   # the host's own /tmp is untouched


def test_unknown_bitstream_is_refused_then_a_known_one_loads(emulator, fake_packages, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    bit = bytearray((fake_packages / "fake" / "fake.bit").read_bytes())
    bit[-4:] = b"XXXX"                                   # same header and design, other content
    (other / "other.bit").write_bytes(bytes(bit))
    shutil.copy2(fake_packages / "fake" / "fake.hwh", other / "other.hwh")
    result = run_client("""
        import grpc
        try:
            Overlay(sys.argv[1])
            emit(refused=None)
        except grpc.RpcError as exc:
            emit(refused=exc.code().name, details=exc.details())
        ol = Overlay(sys.argv[2])
        x = np.arange(32, dtype=np.int16).reshape(2, 16)
        inp, out = allocate(shape=(2, 16), dtype=np.int16), allocate(shape=(2, 5), dtype=np.int32)
        inp[:] = x
        emit(after=run(ol.hier_0.axi_dma_0, inp, out)[0], ok=bool(np.array_equal(out, expected(x))))
    """, emulator.config.host, tmp_path / "client", args=(other / "other.bit", fake_packages / "fake" / "fake.bit"),
                        helpers=FAKE_CLIENT)
    assert result["refused"] == "NOT_FOUND" and "matches no overlay package" in result["details"]
    assert result["after"] == "done" and result["ok"]


def test_two_clients_at_once(emulator, fake_packages, tmp_path):
    """Both download, allocate and check their buffers concurrently; their DMA transfers take turns
    under a lock, as two processes sharing one board's DMA must."""
    body = """
        import fcntl
        bit, lock_path, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
        rng = np.random.default_rng(seed)
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ol = Overlay(bit)                    # a download resets the PL: not during the other's transfer
            dma = ol.hier_0.axi_dma_0
            fcntl.flock(lock, fcntl.LOCK_UN)
            inp, out = allocate(shape=(3000, 16), dtype=np.int16), allocate(shape=(3000, 5), dtype=np.int32)
            checks = 0
            for _ in range(8):
                scratch = allocate(shape=(200_000,), dtype=np.uint8)   # buffer traffic outside the lock
                data = rng.integers(0, 256, size=scratch.shape, dtype=np.uint8)
                scratch[:] = data
                scratch.flush()
                scratch[:] = 0
                scratch.invalidate()
                checks += int(np.array_equal(scratch, data))
                scratch.freebuffer()
                n = int(rng.integers(1, 3000))
                x = rng.integers(-3000, 3000, size=(n, 16)).astype(np.int16)
                inp[:n] = x
                fcntl.flock(lock, fcntl.LOCK_EX)
                dma.sendchannel.start()
                dma.recvchannel.start()
                outcome = run(dma, inp, out, n=n)[0]
                fcntl.flock(lock, fcntl.LOCK_UN)
                checks += int(outcome == "done" and np.array_equal(out[:n], expected(x)))
        emit(checks=checks)
    """
    script = client_script(tmp_path / "client.py", body, FAKE_CLIENT)
    procs = [subprocess.Popen([sys.executable, str(script), str(fake_packages / "fake" / "fake.bit"),
                               str(tmp_path / "dma.lock"), str(seed)],
                              env=client_env(emulator.config.host, tmp_path / f"client{seed}"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in (1, 2)]
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-4000:]
        assert json.loads(out.split("RESULT ")[-1]) == {"checks": 16}


def test_zynqmp_board(fake_packages, tmp_path):
    """aarch64 code paths: ZynqMP clock registers, AXI port widths, a 14-bit LENGTH register."""
    server = start_emulator([fake_packages / "fake_zu"], board="zcu104")
    try:
        result = run_client("""
            ol = Overlay(sys.argv[1])
            dma = ol.axi_dma_0
            x = np.random.default_rng(5).integers(-3000, 3000, size=(500, 16)).astype(np.int16)
            inp, out = allocate(shape=(500, 16), dtype=np.int16), allocate(shape=(500, 5), dtype=np.int32)
            inp[:] = x
            outcome = run(dma, inp, out)[0]
            try:
                dma.sendchannel.transfer(allocate(shape=(16384,), dtype=np.uint8))
                too_big = None
            except ValueError as exc:
                too_big = str(exc)
            emit(arch=ol.device.arch, outcome=outcome, ok=bool(np.array_equal(out, expected(x))),
                 max_size=dma.buffer_max_size, too_big=too_big)
        """, server.config.host, tmp_path / "client", args=(fake_packages / "fake_zu" / "fake_zu.bit",),
                            helpers=FAKE_CLIENT.replace(str(PROBE_BASE), str(DESIGNS["zcu104"]["probe_base"])))
        assert round(server.board.cycles.mhz) == 100
    finally:
        server.stop()
    assert result["arch"] == "aarch64" and result["outcome"] == "done" and result["ok"]
    assert result["max_size"] == (1 << 14) - 1 and "exceeds" in result["too_big"]


def test_soak_a_million_samples(emulator, fake_packages, tmp_path):
    result = run_client("""
        ol = Overlay(sys.argv[1])
        dma = ol.hier_0.axi_dma_0
        probe = MMIO(PROBE_BASE, 0x80)
        probe.write(0x0C, 0x3)
        rng = np.random.default_rng(11)
        cap = 60_000
        inp, out = allocate(shape=(cap, 16), dtype=np.int16), allocate(shape=(cap, 5), dtype=np.int32)
        sizes = [60_000, 1, 59_999, 12_345, 60_000, 7] * 6
        total, good, transfers = 0, 0, 0
        for n in sizes:
            x = rng.integers(-3000, 3000, size=(n, 16)).astype(np.int16)
            inp[:n] = x
            outcome = run(dma, inp, out, timeout=30.0, n=n)[0]
            total += n
            transfers += 1
            good += int(outcome == "done") * int(np.array_equal(out[:n], expected(x))) * n
        emit(total=total, good=good, transfers=transfers, in_beats=probe64(probe, 0x48),
             out_beats=probe64(probe, 0x50), probe_transfers=probe64(probe, 0x58))
    """, emulator.config.host, tmp_path / "client", timeout=600, args=(fake_packages / "fake" / "fake.bit",),
                        helpers=FAKE_CLIENT)
    assert result["total"] >= 1_000_000 and result["good"] == result["total"]
    assert (result["in_beats"], result["out_beats"]) == (8 * result["total"], 5 * result["total"])
    assert result["probe_transfers"] == result["transfers"]
