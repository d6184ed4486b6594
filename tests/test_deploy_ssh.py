"""``psqs deploy`` against a real SSH server: asyncssh's server side on loopback, SFTP and exec.

There is no sshd here, so the test runs one in-process (:class:`LoopbackBoard`): a generated host
key, public-key authentication against a client key written into a temporary ``HOME/.ssh`` (the
deploy subprocess gets that ``HOME``, so the user's real ``~/.ssh`` is never read or changed), SFTP
chrooted into a sandbox directory that is the board user's home, and exec requests run by a real
shell there. The board names itself through a device-tree file under ``PSQS_BOARD_ROOT`` (the
one test hook of :mod:`psqs.deploy.board_probe`).

The board's Python is this venv's (pynq 4.0.0) and its bench reaches the PL through the
PYNQ.remote emulator (``PYNQ_REMOTE_DEVICES`` in the exec environment), so the board is a zcu104:
psqs refuses PYNQ.remote for a Zynq-7000 package, whose image has none. Issue 14's emulated local
device, with image-like environments, replaces that path once it lands.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import asyncssh
import pytest
from test_emulator_support import tiny_rtl_source

from psqs.deploy.emulator import EmulatorConfig, EmulatorServer, Fault
from psqs.deploy.emulator.client_env import client_env

pytestmark = pytest.mark.slow

N_VECTORS = 500
BOARD, PYNQ_BOARD = "zcu104", "ZCU104"     # a board whose PYNQ image serves PYNQ.remote


class LoopbackBoard:
    """An SSH server on 127.0.0.1 (random port) in a thread of its own, acting as a PYNQ board
    named ``board_name`` whose home is ``sandbox``; ``drop_on`` makes the server abort the
    connection when the client opens a file whose path contains it (a link lost mid-upload),
    ``drop_exec`` = (text, seconds) that many seconds after the first command containing text."""

    def __init__(self, root: Path, env: dict, board_name: str = PYNQ_BOARD, drop_on: str | None = None,
                 drop_exec: tuple[str, float] | None = None):
        self.root, self.sandbox = root, root / "board_home"
        self.sandbox.mkdir(parents=True, exist_ok=True)
        tree = root / "board_root" / "proc/device-tree/chosen"
        tree.mkdir(parents=True, exist_ok=True)
        (tree / "pynq_board").write_bytes(board_name.encode() + b"\0")
        self.env = {**env, "HOME": str(self.sandbox), "PSQS_BOARD_ROOT": str(root / "board_root")}
        self.env.pop("SSH_AUTH_SOCK", None)
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.drop_on, self.drop_exec, self.commands = drop_on, drop_exec, []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.acceptor = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        self.port = self.acceptor.sockets[0].getsockname()[1]

    async def _start(self):
        board = self

        class Sftp(asyncssh.SFTPServer):
            def __init__(self, chan):
                super().__init__(chan, chroot=os.fsencode(board.sandbox))

            def open(self, path, pflags, attrs):
                if board.drop_on and board.drop_on.encode() in path:
                    self.connection.abort()
                    raise asyncssh.SFTPConnectionLost("dropped by the test")
                return super().open(path, pflags, attrs)

        return await asyncssh.create_server(
            asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[self.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(
                self.client_key.export_public_key().decode()),
            sftp_factory=Sftp, process_factory=self._exec, password_auth=False, kbdint_auth=False)

    async def _exec(self, process):
        self.commands.append(process.command)
        if self.drop_exec and self.drop_exec[0] in process.command:
            self.loop.call_later(self.drop_exec[1], process.channel.get_connection().abort)
            self.drop_exec = None
        proc = await asyncio.create_subprocess_shell(
            process.command or "true", cwd=self.sandbox, env=self.env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)

        async def pump(reader, writer):
            while chunk := await reader.read(65536):
                writer.write(chunk.decode(errors="replace"))
        try:
            await asyncio.gather(pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr))
            process.exit(await proc.wait())
        except (OSError, asyncssh.Error):
            pass          # the client closed the channel (as sshd does, the shell's group is ended below)
        finally:
            if proc.returncode is None:
                os.killpg(proc.pid, 9)
                await proc.wait()

    def client_home(self, name: str = "client_home", authorized: bool = True, known: bool = True,
                    host_key=None) -> Path:
        """A HOME for the deploy process: its key (the authorized one unless ``authorized`` is
        false) and, if ``known``, a known_hosts line for this server (``host_key``, default its own)."""
        home = self.root / name
        ssh = home / ".ssh"
        ssh.mkdir(parents=True, mode=0o700)
        key = self.client_key if authorized else asyncssh.generate_private_key("ssh-ed25519")
        (ssh / "id_ed25519").write_bytes(key.export_private_key())
        (ssh / "id_ed25519").chmod(0o600)
        if known:
            recorded = (host_key or self.host_key).export_public_key().decode().strip()
            (ssh / "known_hosts").write_text(f"[127.0.0.1]:{self.port} {recorded}\n")
        return home

    def stop(self):
        async def close():
            self.acceptor.close()
            await self.acceptor.wait_closed()
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A real emulation package of a small C model (the fixture of tests/test_signals.py)."""
    from psqs.overlays.build import build

    root = tmp_path_factory.mktemp("deploy")
    return build(tiny_rtl_source(root, N_VECTORS, board=BOARD), BOARD, root / "pkg", emulation=True)


@pytest.fixture(scope="module")
def emulator(package):
    server = EmulatorServer.on_free_loopback(EmulatorConfig(board=BOARD, overlays=[package]))
    yield server
    server.stop()


@pytest.fixture
def make_board(tmp_path, emulator):
    boards = []

    def make(**options) -> LoopbackBoard:
        env = options.pop("env", None) or client_env(emulator.config.host, tmp_path / f"pynq{len(boards)}")
        boards.append(LoopbackBoard(options.pop("root", tmp_path / f"b{len(boards)}"), env, **options))
        return boards[-1]
    yield make
    for board in boards:
        board.stop()


def deploy(package, board: LoopbackBoard, home: Path, out: Path, *options, timeout=300):
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "PYNQ_REMOTE_DEVICES")}
    env["HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "psqs.deploy.cli", "deploy", str(package),
                           "--to", f"tester@127.0.0.1:{board.port}", "--out", str(out), "--python", sys.executable,
                           "--batch-sizes", "1,100", "--repeats", "2", "--warmup", "1", *options],
                          env=env, capture_output=True, text=True, timeout=timeout)


def installed(board: LoopbackBoard, kind: str) -> list[str]:
    where = board.sandbox / "psqs" / ("packages" if kind == "package" else "")
    if not where.is_dir():
        return []
    return sorted(p.name for p in where.iterdir() if p.is_dir() and (kind == "package" or p.name.startswith("psqs-")))


def test_deploy_end_to_end_is_bit_exact(package, make_board, tmp_path):
    board = make_board()
    home = board.client_home()
    plan = deploy(package, board, home, tmp_path / "dry", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "1 connect" in plan.stdout and "6 fetch" in plan.stdout
    assert not (tmp_path / "dry").exists() and list(board.sandbox.iterdir()) == []   # touched nothing

    proc = deploy(package, board, home, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "run_report.json").read_text())
    accuracy = report["accuracy"]
    assert accuracy["samples_in"] == accuracy["samples_out"] == accuracy["n"] == N_VECTORS
    assert accuracy["vs_csim"]["exact_samples"] == 1.0 and report["complete"]
    assert report["board"]["reported_board"] == PYNQ_BOARD
    assert {p.name for p in (tmp_path / "out" / "plots").iterdir()} >= {"latency_vs_batch.png", "roc_curves.png"}
    # the board's output came back line by line, and its report is the one fetched
    assert "  | " in proc.stdout and "exact vs C simulation 100.00%" in proc.stdout
    assert "probe      tester@127.0.0.1" in proc.stdout and f"board {PYNQ_BOARD}" in proc.stdout
    # the board ran the psqs that deploy installed, not this checkout
    [psqs_dir] = installed(board, "psqs")
    assert (board.sandbox / "psqs" / psqs_dir / "psqs" / "host" / "bench.py").is_file()
    [package_dir] = installed(board, "package")
    assert json.loads((board.sandbox / "psqs/packages" / package_dir / "manifest.json").read_text()) == \
        json.loads((package / "manifest.json").read_text())
    # a second deploy reuses both installs
    again = deploy(package, board, home, tmp_path / "out2")
    assert again.returncode == 0 and again.stdout.count("(already installed)") == 2, again.stdout[-2000:]


def one_error_line(proc) -> str:
    errors = [l for l in proc.stderr.splitlines() if l.startswith("psqs: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


def test_unknown_host_key_is_refused_unless_accepted_then_a_board_mismatch_is_named(package, make_board, tmp_path):
    board = make_board(board_name="Pynq-Z2")
    home = board.client_home(known=False)
    proc = deploy(package, board, home, tmp_path / "out")
    assert proc.returncode == 2 and "unknown host key" in one_error_line(proc)
    assert not (home / ".ssh/known_hosts").exists()

    proc = deploy(package, board, home, tmp_path / "out", "--accept-new-host-key")
    fingerprint = board.host_key.get_fingerprint("sha256")
    assert f"new host key {fingerprint}" in proc.stdout
    assert board.host_key.export_public_key().decode().split()[1] in (home / ".ssh/known_hosts").read_text()
    line = one_error_line(proc)
    assert proc.returncode == 2 and "built for zcu104 (pynq_board ZCU104)" in line and "the board is Pynq-Z2" in line
    assert installed(board, "package") == [] and installed(board, "psqs") == []


def test_a_changed_host_key_is_refused_even_with_accept_new(package, make_board, tmp_path):
    board = make_board()
    home = board.client_home(host_key=asyncssh.generate_private_key("ssh-ed25519"))
    proc = deploy(package, board, home, tmp_path / "out", "--accept-new-host-key")
    assert proc.returncode == 2 and "host key does not match" in one_error_line(proc)
    assert list(board.sandbox.iterdir()) == []


def test_a_key_the_board_does_not_authorize_is_permission_denied(package, make_board, tmp_path):
    board = make_board()
    proc = deploy(package, board, board.client_home(authorized=False), tmp_path / "out")
    assert proc.returncode == 2 and "permission denied" in one_error_line(proc)


def test_a_board_python_without_pynq_is_an_unsupported_image(package, make_board, tmp_path):
    board = make_board()
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "PYNQ_REMOTE_DEVICES")}
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "psqs.deploy.cli", "deploy", str(package),
                           "--to", f"tester@127.0.0.1:{board.port}", "--out", str(tmp_path / "out"),
                           "--python", str(bare / "bin" / "python")],
                          env={**env, "HOME": str(board.client_home())}, capture_output=True, text=True, timeout=120)
    line = one_error_line(proc)
    assert proc.returncode == 2 and "unsupported image" in line and "pynq is not installed" in line, line


def test_a_connection_dropped_mid_install_leaves_nothing_half_installed(package, make_board, tmp_path):
    dropping = make_board(drop_on=".hwh")
    home = dropping.client_home()
    proc = deploy(package, dropping, home, tmp_path / "out")
    line = one_error_line(proc)
    assert proc.returncode == 1 and "install package on tester@127.0.0.1" in line and "connection lost" in line, line
    assert installed(dropping, "package") == []
    staged = list((dropping.sandbox / "psqs" / ".staging").rglob("*.bit"))   # uploaded before the drop
    assert staged, "the upload should have begun"
    # the next deploy to the same board home cleans the staging area and installs completely
    board = make_board(root=dropping.root, env=dropping.env)
    proc = deploy(package, board, board.client_home("client_home2"), tmp_path / "out2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(installed(board, "package")) == 1
    assert not any((dropping.sandbox / "psqs" / ".staging").rglob("*"))


def test_a_board_side_bench_error_is_shown_in_one_line_and_the_partial_report_fetched(package, make_board, tmp_path):
    """The board's DMA hangs at MM2S transfer 6 (emulated fault): warm-up 1, batch size 1 = 2-4,
    batch size 10 = 5-7 (tests/test_host_e2e.py has the same run without SSH)."""
    faulty = EmulatorServer.on_free_loopback(EmulatorConfig(board=BOARD, overlays=[package],
                                                             faults=[Fault("hang", at_transfer=6)]))
    try:
        board = make_board(env=client_env(faulty.config.host, tmp_path / "faulty"))
        proc = deploy(package, board, board.client_home(), tmp_path / "out", "--batch-sizes", "1,10,100",
                      "--repeats", "3", "--timeout", "1")
    finally:
        faulty.stop()
    line = one_error_line(proc)
    assert proc.returncode == 1 and line.startswith("psqs: error: bench on tester@127.0.0.1:"), line
    assert "failed (exit 1): " in line and "batch size 10 repeat 2/3, MM2S transfer 6" in line, line
    partial = json.loads((tmp_path / "out" / "run_report.partial.json").read_text())
    assert [b["batch_size"] for b in partial["batches"]] == [1] and partial["error"]["mm2s_transfer"] == 6
    assert not (tmp_path / "out" / "run_report.json").exists()


def test_a_connection_dropped_mid_bench_is_resumed_and_the_run_completes(package, make_board, tmp_path):
    """The link drops 1 s into following the bench's output; the run on the board goes on, deploy
    reconnects, shows the rest of the output once, and fetches the complete report."""
    board = make_board(drop_exec=("tail -n +1 ", 1.0))
    proc = deploy(package, board, board.client_home(), tmp_path / "out", "--batch-sizes", "1,100,500",
                  "--repeats", "20")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "reconnect  bench on tester@127.0.0.1" in proc.stdout and "connection lost" in proc.stdout
    assert sum("tail -n +" in c for c in board.commands) >= 2
    assert proc.stdout.count("exact vs C simulation 100.00%") == 1
    report = json.loads((tmp_path / "out" / "run_report.json").read_text())
    assert report["complete"] and report["accuracy"]["vs_csim"]["exact_samples"] == 1.0
    assert report["accuracy"]["samples_in"] == report["accuracy"]["samples_out"] == N_VECTORS


def test_too_little_space_and_a_bad_target_are_refused(package, tmp_path):
    from psqs.deploy.board_probe import BoardInfo
    from psqs.deploy.deploy import DeployConfig, check_board, make_plan
    from psqs.deploy.ssh import Target
    from psqs.host.errors import PsqsError

    config = DeployConfig(package, Target.parse("xilinx@[::1]:2222"), tmp_path / "out")
    assert (config.target.host, config.target.port, str(config.target)) == ("::1", 2222, "xilinx@[::1]:2222")
    plan = make_plan(config)
    full = BoardInfo(PYNQ_BOARD, "3.10.4", "1.21.5", "3.0.1", plan.upload_bytes, "root")
    with pytest.raises(PsqsError, match=r"MiB free in the home directory, \d+ MiB needed"):
        check_board(config, plan, full)
    check_board(config, plan, dataclasses.replace(full, free_bytes=plan.upload_bytes + 2**30))
    for bad in ("board", "xilinx@", "xilinx@host:0", "xilinx@host:99999", "a@b@c"):
        with pytest.raises(PsqsError, match="--to"):
            Target.parse(bad)


def test_a_bench_past_its_deadline_is_stopped_on_the_board_and_its_partial_report_fetched(package, make_board,
                                                                                         tmp_path):
    board = make_board()
    t0 = time.monotonic()
    proc = deploy(package, board, board.client_home(), tmp_path / "out", "--repeats", "1000000", "--bench-timeout", "6")
    line = one_error_line(proc)
    assert proc.returncode == 1 and "bench on tester@127.0.0.1" in line and "not finished within 6 s" in line, line
    assert time.monotonic() - t0 < 60
    [run_dir] = (board.sandbox / "psqs" / "runs").iterdir()
    deadline = time.monotonic() + 30
    while not (run_dir / "bench.status").exists() and time.monotonic() < deadline:   # SIGTERM ends it
        time.sleep(0.2)
    assert (run_dir / "bench.status").read_text().strip() != "0"
    partial = json.loads((tmp_path / "out" / "run_report.partial.json").read_text())
    assert not partial["complete"]
