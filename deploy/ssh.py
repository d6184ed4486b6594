"""The SSH side of ``psqs deploy``: one verified connection to a board, commands with deadlines.

asyncssh, because it is pure Python (no ``ssh``/``sshpass`` binary, no password ever typed or
piped) and because its server side is what the tests run against. Authentication is the user's
own: keys from ``~/.ssh`` and the agent (``SSH_AUTH_SOCK``), host keys from ``~/.ssh/known_hosts``.

Host keys follow OpenSSH's ``StrictHostKeyChecking=accept-new``: a host that is not in
known_hosts is refused unless ``--accept-new-host-key``, which prints the key's fingerprint and
appends it to ``~/.ssh/known_hosts`` (as ssh does, so that the next deploy and a plain ``ssh`` both
verify it); a host whose recorded key differs is always refused, with or without the option.

Every call has a deadline; every failure is one line naming the step and ``user@host:port``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import re
import shlex
from collections.abc import Callable
from pathlib import Path

from psqs.common.errors import PsqsError, RunFailed

DEFAULT_PORT = 22
_TARGET = re.compile(r"^(?P<user>[^@\s:]+)@(?P<host>\[[^\]]+\]|[^@\s:\[\]]+)(?::(?P<port>\d+))?$")


class DeployFailed(RunFailed):
    """A deploy step that failed on a board that was reachable and valid (exit status 1)."""


class ConnectionLost(DeployFailed):
    """The SSH connection dropped during a step."""


@dataclasses.dataclass(frozen=True)
class Target:
    """``USER@HOST[:PORT]`` (an IPv6 address in brackets)."""

    user: str
    host: str
    port: int = DEFAULT_PORT

    @classmethod
    def parse(cls, text: str) -> Target:
        m = _TARGET.match(text)
        port = int(m["port"]) if m and m["port"] else DEFAULT_PORT
        if not m or not 1 <= port <= 65535:
            raise PsqsError(f"--to {text!r}: expected USER@HOST[:PORT], e.g. xilinx@192.168.2.99")
        return cls(m["user"], m["host"].strip("[]"), port)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{self.port}"


def known_hosts_path() -> Path:
    return Path("~/.ssh/known_hosts").expanduser()


def _recorded_keys(target: Target) -> list:
    """The host keys known_hosts records for ``target`` (empty: an unknown host)."""
    import asyncssh

    path = known_hosts_path()
    if not path.is_file():
        return []
    trusted, _ca, revoked, *_ = asyncssh.read_known_hosts(str(path)).match(target.host, "", target.port)
    return [*trusted, *revoked]


def _record(target: Target, key) -> None:
    """Append ``key`` for ``target`` to known_hosts, in ssh's own host pattern."""
    pattern = target.host if target.port == DEFAULT_PORT else f"[{target.host}]:{target.port}"
    path = known_hosts_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(f"{pattern} {key.export_public_key('openssh').decode().strip()}\n")


async def connect(target: Target, accept_new_host_key: bool, timeout: float,
                  say: Callable[[str], None] = print):
    """An authenticated, host-verified asyncssh connection to ``target``."""
    import asyncssh

    options = dict(username=target.user, port=target.port, connect_timeout=timeout, login_timeout=timeout,
                   known_hosts=str(known_hosts_path()) if known_hosts_path().is_file() else (),
                   password=None, kbdint_auth=False)
    try:
        try:
            return await asyncio.wait_for(asyncssh.connect(target.host, **options), timeout * 2)
        except asyncssh.HostKeyNotVerifiable as exc:
            if _recorded_keys(target):
                raise PsqsError(f"ssh {target}: the host key does not match the one in {known_hosts_path()} "
                                "(refused; if the board was reinstalled, remove its line there)") from exc
            if not accept_new_host_key:
                raise PsqsError(f"ssh {target}: unknown host key (not in {known_hosts_path()}); "
                                "check it and pass --accept-new-host-key, or ssh to it once") from exc
            conn = await asyncio.wait_for(asyncssh.connect(target.host, **{**options, "known_hosts": None}),
                                          timeout * 2)
            key = conn.get_server_host_key()
            say(f"ssh {target}: new host key {key.get_fingerprint('sha256')} ({key.get_algorithm()}), "
                f"recorded in {known_hosts_path()}")
            _record(target, key)
            return conn
    except asyncssh.PermissionDenied as exc:
        raise PsqsError(f"ssh {target}: permission denied ({exc.reason}); put your public key in the "
                        "board's ~/.ssh/authorized_keys or load it into ssh-agent") from None
    except asyncio.TimeoutError:
        raise RunFailed(f"ssh {target}: no connection within {timeout:g} s") from None
    except (OSError, asyncssh.Error) as exc:
        raise RunFailed(f"ssh {target}: cannot connect: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    return (getattr(exc, "reason", None) or str(exc) or type(exc).__name__).strip().splitlines()[0]


async def run(conn, target: Target, step: str, command: str, timeout: float,
              on_line: Callable[[str], None] | None = None) -> tuple[int, str]:
    """Run ``command`` in the board's login shell, from its home directory; returns (exit status,
    merged output). ``on_line`` gets each output line as it arrives."""
    import asyncssh

    lines: list[str] = []

    async def go() -> int:
        async with conn.create_process(f"cd && {command}", stderr=asyncssh.STDOUT) as proc:
            async for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if on_line:
                    on_line(lines[-1])
            await proc.wait()
            return proc.exit_status if proc.exit_status is not None else 255
    try:
        status = await asyncio.wait_for(go(), timeout)
    except asyncio.TimeoutError:
        raise DeployFailed(f"{step} on {target}: no answer within {timeout:g} s") from None
    except (OSError, asyncssh.Error) as exc:
        raise ConnectionLost(f"{step} on {target}: connection lost: {_reason(exc)}") from None
    return status, "\n".join(lines)


def quote(*words: str) -> str:
    return " ".join(shlex.quote(str(w)) for w in words)


async def sftp_call(target: Target, step: str, timeout: float, coro):
    """Await an SFTP operation with a deadline, failures named by step and board."""
    import asyncssh

    try:
        return await asyncio.wait_for(coro, timeout)
    except asyncio.TimeoutError:
        raise DeployFailed(f"{step} on {target}: no answer within {timeout:g} s") from None
    except asyncssh.SFTPError as exc:
        if exc.code in (asyncssh.FX_CONNECTION_LOST, asyncssh.FX_NO_CONNECTION):
            raise ConnectionLost(f"{step} on {target}: connection lost: {_reason(exc)}") from None
        # the board answered and refused (no space, quota, permissions): the link is fine
        raise DeployFailed(f"{step} on {target}: the board refused the transfer: {_reason(exc)}") from None
    except (OSError, asyncssh.Error) as exc:
        raise ConnectionLost(f"{step} on {target}: connection lost: {_reason(exc)}") from None


class Session:
    """The connection to one board, re-opened after a drop (the host key is known by then)."""

    def __init__(self, target: Target, accept_new_host_key: bool, timeout: float, say: Callable[[str], None]):
        self.target, self.accept_new_host_key, self.timeout, self.say = target, accept_new_host_key, timeout, say
        self.conn = None

    async def open(self) -> Session:
        self.conn = await connect(self.target, self.accept_new_host_key, self.timeout, self.say)
        return self

    async def reconnect(self, attempts: int = 3) -> None:
        self.close()
        for attempt in range(attempts):
            try:
                self.conn = await connect(self.target, False, self.timeout, self.say)
                return
            except RunFailed as exc:
                failure = exc
                await asyncio.sleep(2.0 * (attempt + 1))
        raise ConnectionLost(f"reconnect to {self.target}: {failure}")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
