"""Nothing hangs, nothing is left behind: a frozen board, SIGINT and SIGTERM, with real processes.

Every test runs the real command line in a subprocess against real processes: an emulated board
served by ``python -m psqs.deploy.emulator`` and frozen with SIGSTOP (a board whose kernel hangs:
its TCP stack still accepts, nothing answers), real g++ under ``psqs convert``, real TensorFlow
under ``psqs train``. Timings are measured with the monotonic clock from the moment the board
froze or the signal was sent.
"""
from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_emulator_support import tiny_rtl_source

from psqs.common.interrupts import descendants
from psqs.deploy.emulator.client_env import client_env

pytestmark = pytest.mark.slow

#: A board whose PYNQ image serves PYNQ.remote (what these tests exercise); a Zynq-7000 has none.
BOARD = "zcu104"
BOARD_ERROR = re.compile(r"^psqs: error: board 127\.0\.\d+\.\d+:7967 did not answer (.+?) within 2 s\b")


class Process:
    """A subprocess whose merged stdout/stderr is collected line by line by a thread (a full pipe
    would freeze the child), with waits that have deadlines."""

    def __init__(self, command: list[str], **kwargs):
        self.popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                      bufsize=1, **kwargs)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not seen (exit {self.popen.poll()}):\n{self.text[-4000:]}")
            time.sleep(0.05)

    def wait(self, timeout: float) -> tuple[int, float]:
        """(exit status, seconds it took); a process still running after ``timeout`` is killed."""
        t0 = time.monotonic()
        try:
            status = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)
            raise AssertionError(f"still running after {timeout} s:\n{self.text[-4000:]}") from None
        self._reader.join(5)
        return status, time.monotonic() - t0

    def stop(self):
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)


def psqs(*args: str, **kwargs) -> Process:
    return Process([sys.executable, "-m", "psqs.deploy.cli", *args], **kwargs)


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def assert_one_line_no_traceback(proc: Process, line: str) -> None:
    assert "Traceback" not in proc.text, proc.text[-4000:]
    # once, as a line of its own (a progress bar's carriage-return updates may precede it on screen)
    assert proc.text.count(line) == 1 and f"{line}\n" in f"{proc.text}\n", proc.text[-4000:]


# --------------------------------------------------------------------------- a board that freezes

@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """An RTL directory whose simulation library is a small C model (the stand-in of the emulator
    tests): psqs build makes a real emulation package of it, with the stream probe, in a second.
    For zcu104: these tests are about PYNQ.remote, which a Zynq-7000 board has no image for."""
    return tiny_rtl_source(tmp_path_factory.mktemp("frozen"), 500, board=BOARD)


@pytest.fixture(scope="module")
def package(source):
    from psqs.overlays.build import build

    return build(source, BOARD, source.parent / "pkg", emulation=True)


@pytest.fixture
def board(package):
    """``python -m psqs.deploy.emulator`` serving ``package`` on a free loopback address."""
    for _ in range(20):
        host = f"127.0.{random.randrange(1, 255)}.{random.randrange(2, 255)}"
        emulator = Process([sys.executable, "-m", "psqs.deploy.emulator", "--board", BOARD, "--overlays",
                            str(package), "--host", host])
        try:
            emulator.wait_for("connect with PYNQ_REMOTE_DEVICES", 120)
        except AssertionError:
            emulator.stop()
            continue
        emulator.host = host
        yield emulator
        emulator.stop()
        return
    raise AssertionError("no free loopback address for the emulator")


def bench(package, board, tmp_path, timeout: float) -> Process:
    return psqs("bench", str(package), "--batch-sizes", "1,100", "--repeats", "100000", "--timeout", str(timeout),
                env=client_env(board.host, tmp_path / "client"), cwd=tmp_path)


def freeze_mid_run(board: Process) -> float:
    """SIGSTOP the emulator once the bench has loaded the overlay and is streaming."""
    board.wait_for(r"DMA soft reset", 120)
    time.sleep(1.0)
    board.popen.send_signal(signal.SIGSTOP)
    return time.monotonic()


def test_frozen_board_before_connecting_is_named_within_the_timeout(package, board, tmp_path):
    board.popen.send_signal(signal.SIGSTOP)
    proc = bench(package, board, tmp_path, timeout=2)
    status, seconds = proc.wait(60)
    assert status == 1, proc.text[-4000:]
    assert BOARD_ERROR.match(proc.lines[-1]) and "the connection" in proc.lines[-1], proc.text[-4000:]
    assert seconds < 2 + 5, seconds
    assert "Traceback" not in proc.text


def test_board_frozen_mid_run_is_named_within_the_timeout(package, board, tmp_path):
    proc = bench(package, board, tmp_path, timeout=2)
    frozen = freeze_mid_run(board)
    status, _ = proc.wait(60)
    seconds = time.monotonic() - frozen
    assert status == 1, proc.text[-4000:]
    call = BOARD_ERROR.match(proc.lines[-1])
    assert call and re.fullmatch(r"(Mmio|RemoteBuffer)/\w+", call.group(1)), proc.text[-4000:]   # a streaming call
    assert seconds < 2 + 5, seconds
    assert "Traceback" not in proc.text


def test_sigint_ends_a_bench_blocked_on_a_frozen_board(package, board, tmp_path):
    proc = bench(package, board, tmp_path, timeout=60)      # the board's deadline is far away
    freeze_mid_run(board)
    time.sleep(0.5)
    proc.popen.send_signal(signal.SIGINT)
    status, seconds = proc.wait(30)
    assert status == 130 and seconds < 2.0, (status, seconds, proc.text[-4000:])
    assert_one_line_no_traceback(proc, "psqs: interrupted")


def test_a_call_the_board_refuses_is_one_line_naming_board_and_call(source, package, board, tmp_path):
    """The emulator serves ``package``; a package it does not know is refused at the firmware
    upload with NOT_FOUND, as a board without the file would: one line, not a gRPC traceback."""
    from psqs.overlays.build import build

    unknown = build(source, BOARD, tmp_path / "unknown", emulation=True, name="unknown")
    proc = bench(unknown, board, tmp_path, timeout=2)
    status, _ = proc.wait(60)
    assert status == 1, proc.text[-4000:]
    assert re.match(r"psqs: error: board 127\.0\.\d+\.\d+:7967: RemoteDevice/writefile failed: NOT_FOUND "
                    r"\(/lib/firmware/unknown\.bin: firmware .* matches no overlay package", proc.lines[-1]), \
        proc.text[-4000:]
    assert "Traceback" not in proc.text


def test_a_board_that_goes_away_mid_run_is_named_with_the_call_that_found_out(package, board, tmp_path):
    proc = bench(package, board, tmp_path, timeout=2)
    board.wait_for(r"DMA soft reset", 120)
    time.sleep(1.0)
    board.popen.kill()
    status, seconds = proc.wait(60)
    assert status == 1 and seconds < 2 + 5, (status, seconds, proc.text[-4000:])
    assert re.match(r"psqs: error: board 127\.0\.\d+\.\d+:7967: (Mmio|RemoteBuffer)/\w+ failed: UNAVAILABLE",
                    proc.lines[-1]), proc.text[-4000:]
    assert "Traceback" not in proc.text


# --------------------------------------------------------------------------- stages


def test_sigint_ends_training_mid_epoch(synthetic_npz, tmp_path):
    out = tmp_path / "model"
    proc = psqs("train", "--out", str(out), "--data", str(synthetic_npz), "--epochs", "500", "--patience", "500",
                "--batch-size", "32", "--widths", "24,12,12", cwd=tmp_path)
    proc.wait_for(r"train .*\| [1-9]\d*/500 ", 300)    # an epoch is done: training is in full swing
    time.sleep(0.5)
    proc.popen.send_signal(signal.SIGINT)
    status, seconds = proc.wait(30)
    assert status == 130 and seconds < 2.0, (status, seconds, proc.text[-4000:])
    assert_one_line_no_traceback(proc, "psqs: interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, synthetic_npz):
    from psqs.qap import stage as qap_stage
    from psqs.qap.config import TrainConfig

    root = tmp_path_factory.mktemp("convert")
    return qap_stage.run(TrainConfig(data=str(synthetic_npz), epochs=1, patience=1, batch_size=256, max_train=1000,
                                     test_vectors=100, widths=(24, 12, 12)), root / "model").path


def compilers(pid: int) -> list[int]:
    return [p for p in descendants(pid) if _comm(p) == "cc1plus"]   # the C++ compiler proper


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def test_sigterm_while_gxx_compiles_leaves_no_directory_and_no_process(model_dir, tmp_path):
    out = tmp_path / "work" / "hls"
    proc = psqs("convert", str(model_dir), "--out", str(out), cwd=tmp_path)
    deadline = time.monotonic() + 300
    while not compilers(proc.popen.pid):
        assert proc.popen.poll() is None and time.monotonic() < deadline, proc.text[-4000:]
        time.sleep(0.05)
    tree = descendants(proc.popen.pid)
    assert list((tmp_path / "work").glob(".hls.*.tmp")), "the stage is not staging yet"
    proc.popen.send_signal(signal.SIGTERM)
    status, seconds = proc.wait(30)
    assert status == 143 and seconds < 2.0, (status, seconds, proc.text[-4000:])
    assert_one_line_no_traceback(proc, "psqs: terminated")
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == []      # no .hls.*.tmp, no hls
    deadline = time.monotonic() + 2
    while any(running(p) for p in tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(p, _comm(p)) for p in tree if running(p)] == []
