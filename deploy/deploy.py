"""``psqs deploy PACKAGE --to USER@HOST[:PORT]``: a package to a board, its bench run there, the
report back.

Named steps over one :class:`DeployConfig`, run in order, each verified and with its own deadline
(FINN's build steps are the model): ``connect`` (keys/agent, known_hosts), ``probe`` (board name,
Python, numpy, pynq, free space, privilege; a package for another board, an unsupported image, too
little space or a login that is neither root nor has passwordless sudo — pynq's on-board path maps
``/dev/mem`` — is refused before anything is copied), ``install psqs`` and ``install package``
(staged, sha256-checked on the board, renamed: :mod:`.board_install`), ``bench`` (``python -m
psqs.host bench`` on the board, one at a time per board, its output streamed back line by line)
and ``fetch`` (report and plots, or the partial report of a failed run, into ``--out``).
``--dry-run`` prints the plan and connects to nothing.

On the board::

    ~/psqs/psqs-<version>-<sha12>/psqs/host/...     the board-side psqs (source copy)
    ~/psqs/packages/<package name>-<sha12>/         the overlay package
    ~/psqs/runs/<UTC time>-<random>/                run_report.json, plots/
    ~/psqs/.staging/<claim>/, <claim>.lock          uploads in progress (:mod:`.board_install`)
    ~/psqs/board.lock                               held by the running bench
"""
from __future__ import annotations

import asyncio
import dataclasses
import secrets
import time
from importlib.metadata import version
from pathlib import Path

from psqs.common.errors import PsqsError
from psqs.common.package import OverlayPackage

from . import board_install, board_probe, board_run
from .ssh import DeployFailed, Session, Target, quote, run, sftp_call

REPORT, PARTIAL, PLOTS = "run_report.json", "run_report.partial.json", "plots"
SPACE_MARGIN = 64 * 2**20   # bytes beyond the upload: run report, plots, pynq's own files


@dataclasses.dataclass
class DeployConfig:
    package: Path
    target: Target
    out: Path
    python: str = board_probe.PYNQ_PYTHON
    accept_new_host_key: bool = False
    bench_args: tuple[str, ...] = ()
    connect_timeout: float = 20.0
    step_timeout: float = 300.0        # probe, each install, fetch
    bench_timeout: float = 3600.0
    dry_run: bool = False


@dataclasses.dataclass
class Plan:
    """Everything decided locally, before connecting: what goes where."""

    package: OverlayPackage
    source: dict[str, Path]
    package_files: dict[str, Path]
    psqs_dir: str
    package_dir: str
    run_dir: str

    @property
    def upload_bytes(self) -> int:
        return sum(p.stat().st_size for p in [*self.source.values(), *self.package_files.values()])


def make_plan(config: DeployConfig) -> Plan:
    package = OverlayPackage(config.package)       # checks the manifest and every sha256 here first
    source, files = board_install.board_source(), board_install.package_files(config.package)
    _, source_id = board_install.digest_of(source)
    _, package_id = board_install.digest_of(files)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    return Plan(package, source, files, f"{board_install.ROOT}/psqs-{version('psqs')}-{source_id}",
                f"{board_install.ROOT}/packages/{package.name}-{package_id}",
                f"{board_install.ROOT}/runs/{stamp}-{secrets.token_hex(3)}")


#: One bench at a time on a board (one PL): the bench holds ``~/psqs/board.lock`` from before it
#: programs the PL until it exits (the lock's descriptor survives ``exec``, so the bench keeps its
#: pid and a SIGTERM at the deadline reaches it); a second deploy's bench waits for it.
BOARD_LOCK = f"{board_install.ROOT}/board.lock"
LOCK_SCRIPT = r"""
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o600)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except BlockingIOError:
    print("psqs deploy: another bench is running on this board; waiting for it", flush=True)
    fcntl.flock(fd, fcntl.LOCK_EX)
os.set_inheritable(fd, True)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def bench_command(config: DeployConfig, plan: Plan, privilege: str) -> str:
    sudo = "sudo -n " if privilege == "sudo" else ""
    bench = (f"exec {sudo}env PYTHONPATH=\"$HOME/{plan.psqs_dir}${{PYTHONPATH:+:$PYTHONPATH}}\" "
             f"{quote(config.python)} -u -m psqs.host bench \"$HOME\"/{quote(plan.package_dir)} "
             f"--json {REPORT} --plots {PLOTS} {quote(*config.bench_args)}")
    return f"{quote(config.python)} -c {quote(LOCK_SCRIPT)} \"$HOME\"/{quote(BOARD_LOCK)} sh -c {quote(bench)}"


def describe_plan(config: DeployConfig, plan: Plan) -> str:
    board = plan.package.board
    return "\n".join([
        f"deploy {plan.package.name} (built for {board['name']}, pynq_board {board['pynq_board']}) to {config.target}",
        f"  1 connect   ssh {config.target} (keys/agent, {'accept a new host key' if config.accept_new_host_key else 'known hosts only'})",
        f"  2 probe     {config.python}: board, Python, numpy, pynq, free space, root/sudo",
        f"  3 install   psqs ({len(plan.source)} files) -> ~/{plan.psqs_dir}",
        f"  4 install   package ({len(plan.package_files)} files, {plan.upload_bytes / 2**20:.1f} MiB with psqs) "
        f"-> ~/{plan.package_dir}",
        f"  5 bench     in ~/{plan.run_dir} (detached; survives a dropped link; one bench per board at a time)",
        f"  6 fetch     ~/{plan.run_dir}/{{{REPORT},{PLOTS}/}} -> {config.out}",
    ])


def check_board(config: DeployConfig, plan: Plan, info: board_probe.BoardInfo) -> None:
    expected, target = plan.package.board["pynq_board"], config.target
    if info.board != expected:
        raise PsqsError(f"probe on {target}: package {plan.package.name} is built for {plan.package.board['name']} "
                        f"(pynq_board {expected}); the board is {info.board or 'unnamed (no pynq_board, no $BOARD)'}")
    problems = info.unsupported()
    if problems:
        raise PsqsError(f"probe on {target}: unsupported image ({'; '.join(problems)}) at {config.python}; "
                        f"supported: Python >= 3.8, numpy >= 1.20, pynq {'/'.join(board_probe.PYNQ_RELEASES)}")
    if info.privilege == "none":
        raise PsqsError(f"probe on {target}: {target.user} is not root and has no passwordless sudo; pynq's "
                        "on-board path maps /dev/mem: log in as root or allow passwordless sudo for this user")
    needed = plan.upload_bytes + SPACE_MARGIN
    if info.free_bytes < needed:
        raise PsqsError(f"probe on {target}: {info.free_bytes / 2**20:.0f} MiB free in the home directory, "
                        f"{needed / 2**20:.0f} MiB needed")


async def _fetch(conn, config: DeployConfig, plan: Plan, failed: bool) -> list[Path]:
    """Report and plots (or the partial report) into ``config.out``; returns what was fetched."""
    fetched = []
    async with conn.start_sftp_client() as sftp:
        names = [PARTIAL, REPORT] if failed else [REPORT]
        for name in names:
            remote = f"{plan.run_dir}/{name}"
            if await sftp_call(config.target, "fetch", config.step_timeout, sftp.exists(remote)):
                await sftp_call(config.target, "fetch", config.step_timeout, sftp.get(remote, str(config.out / name)))
                fetched.append(config.out / name)
        plots = f"{plan.run_dir}/{PLOTS}"
        if await sftp_call(config.target, "fetch", config.step_timeout, sftp.isdir(plots)):
            (config.out / PLOTS).mkdir(exist_ok=True)
            for name in sorted(await sftp_call(config.target, "fetch", config.step_timeout, sftp.listdir(plots))):
                if name not in (".", ".."):
                    await sftp_call(config.target, "fetch", config.step_timeout,
                                    sftp.get(f"{plots}/{name}", str(config.out / PLOTS / name)))
                    fetched.append(config.out / PLOTS / name)
    return fetched


def _board_error(output: str) -> str:
    """The board-side command's own one-line error (``psqs: error: ...``), else its last line."""
    lines = [l for l in output.splitlines() if l.strip()]
    mine = [l[len("psqs: error: "):] for l in lines if l.startswith("psqs: error: ")]
    return mine[-1] if mine else (lines[-1] if lines else "no output")


async def deploy(config: DeployConfig, say=print) -> int:
    if config.out.exists() and not config.out.is_dir():
        raise PsqsError(f"--out {config.out}: exists and is not a directory")
    plan = make_plan(config)
    if config.dry_run:
        say(describe_plan(config, plan))
        return 0
    config.out.mkdir(parents=True, exist_ok=True)
    target, t0 = config.target, time.monotonic()
    session = await Session(target, config.accept_new_host_key, config.connect_timeout, say).open()
    try:
        info = await board_probe.probe(session.conn, target, config.python, config.step_timeout)
        say(f"probe      {target}: {info.describe()}")
        check_board(config, plan, info)
        async with board_install.StagingArea(session.conn, target, config.python, config.step_timeout) as staging:
            if staging.stale:
                say(f"install    removed {staging.stale} staging area(s) of earlier, interrupted deploys")
            for what, files, final in (("psqs", plan.source, plan.psqs_dir),
                                       ("package", plan.package_files, plan.package_dir)):
                outcome = await board_install.install(session.conn, target, config.python, files, final, what,
                                                      staging, config.step_timeout)
                say(f"install    {what}: ~/{final} ({outcome})")
        status, output = await run(session.conn, target, "mkdir", f"mkdir -p {quote(plan.run_dir)}", config.step_timeout)
        if status != 0:
            raise DeployFailed(f"mkdir on {target}: {_board_error(output)}")
        say(f"bench      on {target} in ~/{plan.run_dir}")
        await board_run.start(session, plan.run_dir, bench_command(config, plan, info.privilege), config.step_timeout)
        try:
            status, output = await board_run.follow(session, plan.run_dir, config.bench_timeout, config.step_timeout,
                                                    on_line=lambda line: say(f"  | {line}"), say=say)
        except DeployFailed as exc:
            if session.conn is None:       # the link is gone for good; the bench is not
                raise DeployFailed(f"{exc}; the bench goes on on the board and writes its report into "
                                   f"~/{plan.run_dir}") from None
            await _fetch(session.conn, config, plan, failed=True)
            raise
        fetched = await _fetch(session.conn, config, plan, failed=status != 0)
        say(f"fetch      {len(fetched)} file(s) into {config.out}")
        if status != 0:
            raise DeployFailed(f"bench on {target} failed (exit {status}): {_board_error(output)}")
    finally:
        session.close()
    say(f"deploy     done in {time.monotonic() - t0:.1f} s")
    return 0


def run_deploy(config: DeployConfig) -> int:
    return asyncio.run(deploy(config))
