"""The bench on the board, detached from the SSH session, so that a dropped link does not end it.

The run starts under ``setsid nohup`` in its run directory and writes ``bench.log`` (its merged
output), ``bench.pid`` (the shell that waits for it), ``bench.child`` (the bench) and, when it
ends, ``bench.status`` (its exit status). deploy follows the log with ``tail -f --pid`` and shows
each line as it arrives; when the connection drops it reconnects and continues from the first line
it has not shown, and the run itself never notices. At the bench deadline the bench gets SIGTERM,
on which ``psqs bench`` writes its partial report (the waiting shell then records its status).
"""
from __future__ import annotations

import time
from collections.abc import Callable

from .ssh import ConnectionLost, DeployFailed, Session, quote, run

LOG, PID, CHILD, STATUS = "bench.log", "bench.pid", "bench.child", "bench.status"
PID_WAIT_S = 10
STOP_WAIT_S = 10     # psqs bench ends within 2 s of SIGTERM, writing its partial report


def _in(run_dir: str, command: str) -> str:
    return f"cd {quote(run_dir)} && {command}"


async def start(session: Session, run_dir: str, command: str, timeout: float) -> None:
    inner = f"echo $$ > {PID}; {command} > {LOG} 2>&1 & echo $! > {CHILD}; wait $!; echo $? > {STATUS}"
    status, output = await run(session.conn, session.target, "bench",
                               _in(run_dir, f"setsid nohup sh -c {quote(inner)} > /dev/null 2>&1 < /dev/null &"),
                               timeout)
    if status != 0:
        raise DeployFailed(f"bench on {session.target}: could not start it ({output.strip()[-300:] or status})")


def _follow_command(run_dir: str, seen: int) -> str:
    wait_pid = (f"i=0; while [ ! -s {PID} ] && [ $i -lt {PID_WAIT_S * 10} ]; do sleep 0.1; i=$((i+1)); done; "
                f"touch {LOG}")
    return _in(run_dir, f"{wait_pid}; tail -n +{seen + 1} -f --pid=\"$(cat {PID})\" {LOG}")


async def follow(session: Session, run_dir: str, timeout: float, step_timeout: float,
                 on_line: Callable[[str], None], say: Callable[[str], None]) -> tuple[int, str]:
    """Show the run's output until it ends; returns (its exit status, its whole output)."""
    lines: list[str] = []

    def seen_line(line: str) -> None:
        lines.append(line)
        on_line(line)
    deadline = time.monotonic() + timeout
    while True:
        try:
            await run(session.conn, session.target, "bench", _follow_command(run_dir, len(lines)),
                      max(deadline - time.monotonic(), 0.1), on_line=seen_line)
            break
        except ConnectionLost as exc:
            say(f"reconnect  {exc}")
            await session.reconnect()
        except DeployFailed:
            if time.monotonic() < deadline:
                raise
            stop = (f"kill -TERM \"$(cat {CHILD})\"; i=0; "
                    f"while [ ! -f {STATUS} ] && [ $i -lt {STOP_WAIT_S * 10} ]; do sleep 0.1; i=$((i+1)); done")
            await run(session.conn, session.target, "bench", _in(run_dir, stop), step_timeout)
            raise DeployFailed(f"bench on {session.target}: not finished within {timeout:g} s; stopped it "
                               f"(its partial report, if any, is fetched)") from None
    status, output = await run(session.conn, session.target, "bench", _in(run_dir, f"cat {STATUS}"), step_timeout)
    return (int(output.strip()) if status == 0 and output.strip().isdigit() else 255), "\n".join(lines)
