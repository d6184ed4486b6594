"""``psqs deploy`` against a real SSH server: asyncssh's server side on loopback, SFTP and exec,
acting as a PYNQ-Z2 running the PYNQ v2.7 image.

There is no sshd here, so the test runs one in-process (:class:`LoopbackBoard`): a generated host
key, public-key authentication against a client key written into a temporary ``HOME/.ssh`` (the
deploy subprocess gets that ``HOME``, so the user's real ``~/.ssh`` is never read or changed), SFTP
chrooted into a sandbox directory that is the board user's home, and exec requests run by a real
shell there (stdin forwarded, the command's process group ended when its channel closes, as sshd
does). The board names itself through a device-tree file under ``PSQS_BOARD_ROOT`` (the one test
hook, :mod:`psqs.common.board_identity`) and ``$BOARD``, as a PYNQ image does.

The board's Python (:func:`_board_image`) is an image-like environment (``make board-envs``)
without psqs — PYNQ v2.7's (Python 3.8, numpy 1.20.3, pynq 2.7.0) and, end to end, also v3.0.1's
(Python 3.10, numpy 1.21.5, pynq 3.0.1): deploy installs the board-side psqs itself. Its PL is
pynq's own on-board path over the emulated local device: the image's
``python`` is a wrapper that runs the bench (``python -u -m psqs.host ...``) under
``python -m psqs.deploy.emulator.local_device`` with the emulator's own packages (deploy,
board_configs, hls, overlays) after the installed psqs on ``PYTHONPATH``; every other command (probe,
checksums, staging, lock) runs on the image's Python as is. The emulated board's model is the
package's C library, so the bench's exact-vs-C-simulation figure is a real comparison.
"""
from __future__ import annotations

import asyncio
import dataclasses
import errno
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import asyncssh
import numpy as np
import pytest
from test_board_install import IMAGES
from test_emulator_support import fake_model_outputs, tiny_rtl_source

from psqs.deploy.emulator.local_device import environment

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
IMAGE = "py38-pynq27"           # PYNQ v2.7 (Python 3.8, numpy 1.20.3, pynq 2.7.0): the failure cases' image
N_VECTORS = 500
BOARD, PYNQ_BOARD = "pynq-z2", "Pynq-Z2"
HARNESS_PACKAGES = ("deploy", "board_configs", "hls", "overlays")   # the emulator's; common/host: deploy's
WRAPPER = """#!/bin/sh
# The board image's Python (test harness): the bench runs on the emulated local device, the PL.
if [ "$1" = -u ] && [ "$2" = -m ] && [ "$3" = psqs.host ]; then
    shift
    export PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{harness}"
    exec {python} -u -m psqs.deploy.emulator.local_device "$@"
fi
exec {python} "$@"
"""
SUDO = """#!/bin/sh
# passwordless sudo (test harness): the login is already the user it needs
[ "$1" = -n ] && shift
exec "$@"
"""


@dataclasses.dataclass
class BoardImage:
    python: Path      # the board's Python as deploy is told (--python): the wrapper
    real: Path        # the image environment's interpreter
    harness: Path
    site: Path        # the image pynq's private view (pynq keeps its PL state inside its package)
    versions: tuple   # (Python, numpy, pynq) as the image ships them


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """``images(name)``: the board Python of one PYNQ image (``make board-envs``), built once per module."""
    built = {}

    def get(name: str) -> BoardImage:
        if name not in built:
            built[name] = _board_image(REPO / ".venv-boards" / name, tmp_path_factory.mktemp(name))
        return built[name]
    return get


@pytest.fixture(scope="module")
def board_image(images) -> BoardImage:
    return images(IMAGE)


def _board_image(image_env: Path, root: Path) -> BoardImage:
    """The image's environment *without psqs*: a venv of the image's interpreter whose
    site-packages links everything of ``image_env`` but psqs (which the board install tests put
    there), so that the board can only run the psqs that deploy installs."""
    image = image_env / "bin" / "python"
    if not image.exists():
        pytest.skip(f"{image} not built (make board-envs)")
    python, numpy_version, pynq_version, _ = IMAGES[image_env.name]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    subprocess.run([str(image), "-m", "venv", "--without-pip", str(root / "venv")], check=True, timeout=120, env=env)
    [source] = (image_env / "lib").glob("python3.*/site-packages")
    [target] = (root / "venv" / "lib").glob("python3.*/site-packages")
    for entry in source.iterdir():
        if not entry.name.lower().startswith(("psqs", "__editable__")) and entry.suffix != ".pth":
            (target / entry.name).symlink_to(entry)
    real = root / "venv" / "bin" / "python"
    check = subprocess.run([str(real), "-c", "import importlib.util as u, platform, numpy, pynq; print(u.find_spec("
                                             "'psqs'), platform.python_version(), numpy.__version__, pynq.__version__)"],
                           capture_output=True, text=True, timeout=120, env=env, cwd=root)
    assert check.stdout.split() == ["None", python, numpy_version, pynq_version], check.stdout + check.stderr
    harness = root / "harness"
    (harness / "psqs").mkdir(parents=True)
    for name in HARNESS_PACKAGES:
        (harness / "psqs" / name).symlink_to(REPO / name)
    site = subprocess.run([str(real), "-c", "import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
                                            "import client_env; print(client_env.private_pynq(Path(sys.argv[2])))",
                           str(REPO / "deploy" / "emulator"), str(root / "pynq")],
                          capture_output=True, text=True, timeout=120, env=env, check=True).stdout.strip()
    wrapper = root / "pynq-venv" / "bin" / "python"
    wrapper.parent.mkdir(parents=True)
    wrapper.write_text(WRAPPER.format(harness=harness, python=real))
    wrapper.chmod(0o755)
    return BoardImage(wrapper, real, harness, Path(site), (python, numpy_version, pynq_version))


class LoopbackBoard:
    """An SSH server on 127.0.0.1 (random port) in a thread of its own, acting as a PYNQ-Z2 whose
    device tree names it ``board_name`` and whose home is ``sandbox``.

    ``drop_on`` aborts the connection when the client opens a file whose path contains it (a link
    lost mid-upload); ``drop_exec`` = (text, seconds) aborts it that many seconds after the first
    command containing text; ``quota`` makes SFTP writes beyond that many bytes fail with ENOSPC
    (a full SD card); ``open_delay`` slows every SFTP open (a slow link); ``refuse_after_drop``
    accepts no connection after ``drop_exec`` (a board gone for good); ``login`` is ``root``,
    ``sudo`` (an unprivileged user, in its own user namespace, with passwordless sudo) or
    ``none`` (the same without sudo)."""

    def __init__(self, root: Path, env: dict, board_name: str = PYNQ_BOARD, drop_on: str | None = None,
                 drop_exec: tuple[str, float] | None = None, quota: int | None = None, open_delay: float = 0.0,
                 login: str = "root", python: Path | None = None, refuse_after_drop: bool = False):
        self.python = python     # the board's Python, as deploy is told (--python)
        self.root, self.sandbox = root, root / "board_home"
        self.sandbox.mkdir(parents=True, exist_ok=True)
        tree = root / "board_root" / "proc/device-tree/chosen"
        tree.mkdir(parents=True, exist_ok=True)
        (tree / "pynq_board").write_bytes(board_name.encode() + b"\0")
        self.env = {**env, "HOME": str(self.sandbox), "PSQS_BOARD_ROOT": str(root / "board_root")}
        if login == "sudo":
            bin_dir = root / "bin"
            bin_dir.mkdir(exist_ok=True)
            (bin_dir / "sudo").write_text(SUDO)
            (bin_dir / "sudo").chmod(0o755)
            self.env["PATH"] = f"{bin_dir}:{self.env['PATH']}"
        self.login = login
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.drop_on, self.drop_exec, self.quota, self.open_delay = drop_on, drop_exec, quota, open_delay
        self.refuse_after_drop = refuse_after_drop
        self.commands, self.opened, self.written, self.running = [], [], 0, set()
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

            async def open(self, path, pflags, attrs):
                board.opened.append(os.fsdecode(path))
                if board.drop_on and board.drop_on.encode() in path:
                    self.connection.abort()
                    raise asyncssh.SFTPConnectionLost("dropped by the test")
                await asyncio.sleep(board.open_delay)
                return super().open(path, pflags, attrs)

            def write(self, file_obj, offset, data):
                board.written += len(data)
                if board.quota is not None and board.written > board.quota:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                return super().write(file_obj, offset, data)

        return await asyncssh.create_server(
            asyncssh.SSHServer, "127.0.0.1", 0, server_host_keys=[self.host_key],
            authorized_client_keys=asyncssh.import_authorized_keys(
                self.client_key.export_public_key().decode()),
            sftp_factory=Sftp, process_factory=self._exec, password_auth=False, kbdint_auth=False)

    async def _exec(self, process):
        self.commands.append(process.command)
        if self.drop_exec and self.drop_exec[0] in process.command:
            self.loop.call_later(self.drop_exec[1], self._drop, process.channel.get_connection())
            self.drop_exec = None
        shell = ["/bin/sh", "-c", process.command or "true"]
        if self.login != "root":          # euid 65534 in a user namespace of its own: not root
            shell = ["unshare", "--user", *shell]
        proc = await asyncio.create_subprocess_exec(
            *shell, cwd=self.sandbox, env=self.env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True)

        async def pump(reader, writer):
            while chunk := await reader.read(65536):
                writer.write(chunk.decode(errors="replace"))

        async def feed():
            try:
                while data := await process.stdin.read(65536):
                    proc.stdin.write(data.encode())
            except (OSError, asyncssh.Error):
                pass
            finally:
                proc.stdin.close()     # EOF, as sshd gives the command when the client or the link ends

        feeder = asyncio.ensure_future(feed())
        self.running.add(proc)
        try:
            await asyncio.gather(pump(proc.stdout, process.stdout), pump(proc.stderr, process.stderr))
            process.exit(await proc.wait())
        except (OSError, asyncssh.Error):
            pass          # the client closed the channel (as sshd does, the shell's group is ended below)
        finally:
            feeder.cancel()
            if proc.returncode is None:
                try:
                    await asyncio.wait_for(proc.wait(), 10)     # stdin is closed: let it clean up
                except asyncio.TimeoutError:
                    os.killpg(proc.pid, 9)
                    await proc.wait()
            self.running.discard(proc)

    def _drop(self, connection) -> None:
        connection.abort()
        if self.refuse_after_drop:       # the board is gone (powered off, off the network)
            self.acceptor.close()

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
            for proc in self.running:            # commands still running (a bench past its test)
                os.killpg(proc.pid, 9)
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if others:
                await asyncio.wait(others, timeout=15)
        asyncio.run_coroutine_threadsafe(close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A real emulation package for the PYNQ-Z2 of a small C model (the fixture of tests/test_signals.py)."""
    from psqs.overlays.build import build

    root = tmp_path_factory.mktemp("deploy")
    return build(tiny_rtl_source(root, N_VECTORS, board=BOARD), BOARD, root / "pkg", emulation=True)


@pytest.fixture
def make_board(tmp_path, package, board_image):
    """Boards on the emulated local PYNQ-Z2 (``faults``: emulator fault specs, e.g. ``hang@6``)."""
    boards = []

    def make(**options) -> LoopbackBoard:
        root, image = options.pop("root", tmp_path / f"b{len(boards)}"), options.pop("image", board_image)
        env = options.pop("env", None) or environment(
            BOARD, [package], root / "emulated", faults=options.pop("faults", ()), pynq_site=image.site,
            base={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        boards.append(LoopbackBoard(root, env, python=image.python, **options))
        return boards[-1]
    yield make
    for board in boards:
        board.stop()


def deploy_command(package, board: LoopbackBoard, out: Path, python: Path, *options) -> list[str]:
    return [sys.executable, "-m", "psqs.deploy.cli", "deploy", str(package), "--to", f"tester@127.0.0.1:{board.port}",
            "--out", str(out), "--python", str(python), "--batch-sizes", "1,100", "--repeats", "2", "--warmup", "1",
            *options]


def client_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "PYNQ_REMOTE_DEVICES")}
    env["HOME"] = str(home)
    return env


def deploy(package, board: LoopbackBoard, home: Path, out: Path, *options, python: Path | None = None,
           timeout=300):
    started = time.monotonic()
    proc = subprocess.run(deploy_command(package, board, out, python or board.python, *options),
                          env=client_env(home), capture_output=True, text=True, timeout=timeout)
    proc.seconds = time.monotonic() - started
    print(f"deploy took {proc.seconds:.1f} s (measured)")
    return proc


def staging_left(board: LoopbackBoard, wait: float = 15.0) -> list[str]:
    """What is in the board's staging area once its claim holders have seen EOF (within ``wait`` s)."""
    staging = board.sandbox / "psqs" / ".staging"
    deadline = time.monotonic() + wait
    while True:
        left = sorted(p.name for p in staging.iterdir()) if staging.is_dir() else []
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def assert_bit_exact(report: dict, package: Path) -> None:
    """The bench's own comparison is complete and exact, and the C-simulation reference it used is
    the stand-in model's outputs, recomputed here from the package's inputs."""
    accuracy = report["accuracy"]
    assert accuracy["samples_in"] == accuracy["samples_out"] == accuracy["n"] == N_VECTORS
    assert accuracy["vs_csim"]["exact_samples"] == 1.0 and report["complete"]
    vectors = np.load(package / "test_vectors.npz")
    assert np.array_equal(vectors["csim_logits"], fake_model_outputs(np.rint(vectors["X"] * 1024).astype(np.int16)))


def installed(board: LoopbackBoard, kind: str) -> list[str]:
    where = board.sandbox / "psqs" / ("packages" if kind == "package" else "")
    if not where.is_dir():
        return []
    return sorted(p.name for p in where.iterdir() if p.is_dir() and (kind == "package" or p.name.startswith("psqs-")))


@pytest.mark.parametrize("image_name", ["py38-pynq27", "py310-pynq301"])
def test_deploy_end_to_end_is_bit_exact(package, make_board, images, tmp_path, image_name):
    image = images(image_name)
    board = make_board(image=image)
    home = board.client_home()
    plan = deploy(package, board, home, tmp_path / "dry", "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert "1 connect" in plan.stdout and "6 fetch" in plan.stdout
    assert not (tmp_path / "dry").exists() and list(board.sandbox.iterdir()) == []   # touched nothing

    proc = deploy(package, board, home, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "run_report.json").read_text())
    assert_bit_exact(report, package)
    # the image's own Python, numpy and pynq ran it, on pynq's on-board path (no PYNQ.remote)
    python, numpy_version, pynq_version = image.versions
    assert (report["versions"]["python"], report["versions"]["numpy"], report["versions"]["pynq"]) == image.versions
    assert report["board"]["remote"] is None and report["board"]["reported_board"] == PYNQ_BOARD
    # these image-like environments have no matplotlib (optional on a board): the bench makes no plots
    assert not (tmp_path / "out" / "plots").exists() and "no plots" in proc.stdout
    # the board's output came back line by line, and its report is the one fetched
    assert "  | " in proc.stdout and "exact vs C simulation 100.00%" in proc.stdout
    assert f"board {PYNQ_BOARD}, Python {python}, numpy {numpy_version}, pynq {pynq_version}" in proc.stdout
    # the board ran the psqs that deploy installed (the image has none), and nothing is left staged
    [psqs_dir] = installed(board, "psqs")
    assert (board.sandbox / "psqs" / psqs_dir / "psqs" / "host" / "bench.py").is_file()
    assert (board.sandbox / "psqs" / psqs_dir / "psqs" / "common" / "board_identity.py").is_file()
    [package_dir] = installed(board, "package")
    assert json.loads((board.sandbox / "psqs/packages" / package_dir / "manifest.json").read_text()) == \
        json.loads((package / "manifest.json").read_text())
    assert staging_left(board) == []
    # a second deploy reuses both installs
    again = deploy(package, board, home, tmp_path / "out2")
    assert again.returncode == 0 and again.stdout.count("(already installed)") == 2, again.stdout[-2000:]
    assert_bit_exact(json.loads((tmp_path / "out2" / "run_report.json").read_text()), package)


def one_error_line(proc) -> str:
    errors = [l for l in proc.stderr.splitlines() if l.startswith("psqs: error:")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


def test_unknown_host_key_is_refused_unless_accepted_then_a_board_mismatch_is_named(package, make_board, tmp_path):
    board = make_board(board_name="ZCU104")      # the device tree wins over $BOARD (Pynq-Z2)
    home = board.client_home(known=False)
    proc = deploy(package, board, home, tmp_path / "out")
    assert proc.returncode == 2 and "unknown host key" in one_error_line(proc)
    assert not (home / ".ssh/known_hosts").exists()

    proc = deploy(package, board, home, tmp_path / "out", "--accept-new-host-key")
    fingerprint = board.host_key.get_fingerprint("sha256")
    assert f"new host key {fingerprint}" in proc.stdout
    assert board.host_key.export_public_key().decode().split()[1] in (home / ".ssh/known_hosts").read_text()
    line = one_error_line(proc)
    assert proc.returncode == 2 and "built for pynq-z2 (pynq_board Pynq-Z2)" in line and "the board is ZCU104" in line
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
    assert list(board.sandbox.iterdir()) == []


def test_a_board_python_without_pynq_is_an_unsupported_image(package, make_board, board_image, tmp_path):
    """The image's interpreter in a venv of its own: Python 3.8, no numpy, no pynq."""
    board = make_board()
    bare = tmp_path / "bare"
    subprocess.run([str(board_image.real), "-m", "venv", "--without-pip", str(bare)], check=True, timeout=120)
    proc = deploy(package, board, board.client_home(), tmp_path / "out", python=bare / "bin" / "python")
    line = one_error_line(proc)
    assert proc.returncode == 2 and "unsupported image" in line and "pynq is not installed" in line, line
    assert "numpy is not installed" in line and installed(board, "psqs") == []


def test_a_login_without_root_or_passwordless_sudo_is_refused_before_anything_is_copied(package, make_board,
                                                                                        tmp_path):
    board = make_board(login="none")
    proc = deploy(package, board, board.client_home(), tmp_path / "out")
    line = one_error_line(proc)
    assert proc.returncode == 2 and "tester is not root and has no passwordless sudo" in line, line
    assert "/dev/mem" in line and list(board.sandbox.iterdir()) == []


def test_a_full_disk_fails_the_upload_in_one_line_and_leaves_nothing_half_installed(package, make_board, tmp_path):
    """SFTP writes fail with ENOSPC after the board-side psqs and half of the package."""
    from psqs.deploy.board_install import board_source, package_files

    psqs_bytes = sum(p.stat().st_size for p in board_source().values())
    package_bytes = sum(p.stat().st_size for p in package_files(package).values())
    board = make_board(quota=psqs_bytes + package_bytes // 2)
    proc = deploy(package, board, board.client_home(), tmp_path / "out")
    line = one_error_line(proc)
    assert proc.returncode == 1 and "install package on tester@127.0.0.1" in line, line
    assert "the board refused the transfer" in line and "No space left on device" in line, line
    assert len(installed(board, "psqs")) == 1 and installed(board, "package") == []
    assert staging_left(board) == [] and not (board.sandbox / "psqs" / "runs").exists()


def test_a_connection_dropped_mid_install_leaves_nothing_half_installed(package, make_board, tmp_path):
    dropping = make_board(drop_on=".hwh")
    home = dropping.client_home()
    proc = deploy(package, dropping, home, tmp_path / "out")
    line = one_error_line(proc)
    assert proc.returncode == 1 and "install package on tester@127.0.0.1" in line and "connection lost" in line, line
    assert installed(dropping, "package") == []
    assert any(".staging/" in p and p.endswith(".bit") for p in dropping.opened), "the upload should have begun"
    # the board's claim holder saw EOF and removed what was staged
    assert staging_left(dropping) == []
    # the next deploy to the same board home installs completely
    board = make_board(root=dropping.root, env=dropping.env)
    proc = deploy(package, board, board.client_home("client_home2"), tmp_path / "out2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(installed(board, "package")) == 1 and staging_left(board) == []


def test_two_concurrent_deploys_to_one_board_both_succeed(package, make_board, tmp_path):
    """Deploy B starts while A uploads (every SFTP open is slowed): B removes only the staging
    area a killed deploy left (no lock held), never A's; exactly one of them installs each tree."""
    board = make_board(open_delay=0.05)
    stale = board.sandbox / "psqs" / ".staging" / "0123456789ab" / "package"
    stale.mkdir(parents=True)
    (stale / "overlay.bit").write_bytes(b"left by a killed deploy")
    home = board.client_home()
    started = time.monotonic()
    a = subprocess.Popen(deploy_command(package, board, tmp_path / "a", board.python), env=client_env(home),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    for line in a.stdout:                       # until A has begun its upload
        lines.append(line)
        if line.startswith("install    removed"):
            break
    assert lines and lines[-1].startswith("install    removed"), lines
    b = subprocess.run(deploy_command(package, board, tmp_path / "b", board.python), env=client_env(home),
                       capture_output=True, text=True, timeout=300)
    a_out, a_err = a.communicate(timeout=300)
    a_out = "".join(lines) + a_out
    print(f"two concurrent deploys took {time.monotonic() - started:.1f} s (measured)")
    assert a.returncode == 0, a_out[-3000:] + a_err[-3000:]
    assert b.returncode == 0, b.stdout[-3000:] + b.stderr[-3000:]
    assert "removed 1 staging area(s)" in a_out and "removed" not in b.stdout
    # B claimed its staging area while A's upload was under way (before A verified anything)
    claims = [i for i, c in enumerate(board.commands) if "PSQS-CLAIMED" in c]
    a_token = shlex.split(board.commands[claims[0]])[-1]
    a_verified = next(i for i, c in enumerate(board.commands) if f".staging/{a_token}/" in c)
    assert len(claims) == 2 and claims[0] < claims[1] < a_verified, board.commands
    for what in ("psqs", "package"):
        outcomes = [l.rsplit("(", 1)[1] for out in (a_out, b.stdout) for l in out.splitlines()
                    if l.startswith(f"install    {what}:")]
        assert sorted(outcomes) == ["already installed)", "installed)"], (what, outcomes)
    for out in ("a", "b"):
        assert_bit_exact(json.loads((tmp_path / out / "run_report.json").read_text()), package)
    assert staging_left(board) == [] and len(list((board.sandbox / "psqs" / "runs").iterdir())) == 2


def test_a_board_side_bench_error_is_shown_in_one_line_and_the_partial_report_fetched(package, make_board, tmp_path):
    """The board's DMA hangs at MM2S transfer 6 (emulated fault): warm-up 1, batch size 1 = 2-4,
    batch size 10 = 5-7 (tests/test_host_e2e.py has the same run without SSH)."""
    board = make_board(faults=["hang@6"])
    proc = deploy(package, board, board.client_home(), tmp_path / "out", "--batch-sizes", "1,10,100",
                  "--repeats", "3", "--timeout", "1")
    line = one_error_line(proc)
    assert proc.returncode == 1 and line.startswith("psqs: error: bench on tester@127.0.0.1:"), line
    assert "failed (exit 1): " in line and "batch size 10 repeat 2/3, MM2S transfer 6" in line, line
    partial = json.loads((tmp_path / "out" / "run_report.partial.json").read_text())
    assert [b["batch_size"] for b in partial["batches"]] == [1] and partial["error"]["mm2s_transfer"] == 6
    assert not (tmp_path / "out" / "run_report.json").exists()


def test_a_connection_dropped_mid_bench_is_resumed_and_the_run_completes(package, make_board, tmp_path):
    """The link drops 1 s into following the bench's output; the run on the board goes on, deploy
    reconnects, shows the rest of the output once, and fetches the complete report. The login is
    an unprivileged user with passwordless sudo, so the bench runs through ``sudo -n``."""
    board = make_board(drop_exec=("tail -n +1 ", 1.0), login="sudo")
    proc = deploy(package, board, board.client_home(), tmp_path / "out", "--batch-sizes", "1,100,500",
                  "--repeats", "20")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert ", sudo" in proc.stdout and any("sudo -n env" in c for c in board.commands)
    assert "reconnect  bench on tester@127.0.0.1" in proc.stdout and "connection lost" in proc.stdout
    assert sum("tail -n +" in c for c in board.commands) >= 2
    assert proc.stdout.count("exact vs C simulation 100.00%") == 1
    assert_bit_exact(json.loads((tmp_path / "out" / "run_report.json").read_text()), package)


def test_a_connection_dropped_mid_bench_for_good_names_where_the_run_goes_on(package, make_board, tmp_path):
    """The board accepts no connection after the drop: deploy gives up after its reconnects, in one
    line naming the run directory, and the bench, detached, finishes there with its full report."""
    board = make_board(drop_exec=("tail -n +1 ", 1.0), refuse_after_drop=True)
    proc = deploy(package, board, board.client_home(), tmp_path / "out", "--batch-sizes", "1,100,500",
                  "--repeats", "20", "--connect-timeout", "2")
    line = one_error_line(proc)
    [run_dir] = (board.sandbox / "psqs" / "runs").iterdir()
    assert proc.returncode == 1 and "reconnect to tester@127.0.0.1" in line, line
    assert f"the bench goes on on the board and writes its report into ~/psqs/runs/{run_dir.name}" in line, line
    assert not (tmp_path / "out" / "run_report.json").exists()
    deadline = time.monotonic() + 120
    while not (run_dir / "bench.status").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert (run_dir / "bench.status").read_text().strip() == "0"
    assert_bit_exact(json.loads((run_dir / "run_report.json").read_text()), package)


def test_too_little_space_and_a_bad_target_are_refused(package, tmp_path):
    from psqs.deploy.board_probe import BoardInfo
    from psqs.deploy.deploy import DeployConfig, check_board, make_plan
    from psqs.deploy.ssh import Target
    from psqs.common.errors import PsqsError

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
