"""SIGINT and SIGTERM end every psqs command within two seconds, leaving nothing behind.

Why this is needed: CPython runs a Python signal handler only in the main thread, between two
bytecodes. A command whose main thread is blocked inside C (a gRPC wait on a board that stopped
answering, hls4ml waiting for g++, a TensorFlow kernel) never gets there, so Ctrl-C did nothing,
and a SIGTERM killed the process outright, leaving its staging directories and its child
processes (the emulator, g++, Verilator) behind.

Design (:func:`install`, called first thing by every ``main()``):

- The main thread still gets the ordinary Python exceptions, so that ``with``/``finally`` blocks
  unwind as usual: SIGINT raises ``KeyboardInterrupt`` (the command line prints
  ``psqs: interrupted`` and exits 130), SIGTERM raises ``SystemExit(143)``. Exit statuses are the
  shell's convention, 128 + the signal number: 130 for SIGINT, 143 for SIGTERM.
- CPython's C-level handler writes the signal number to a wakeup file descriptor
  (:func:`signal.set_wakeup_fd`) the instant the signal arrives, whatever the main thread is
  doing. A watchdog thread reads it. If the process is still alive :data:`GRACE_S` later, the
  watchdog does the unwinding itself: it runs the registered cleanups (a stage's live staging
  directory, see :func:`cleanup`), terminates every descendant process, prints the one line and
  ends the process with ``os._exit``. A second signal skips the grace period.
- Not chosen: blocking the signals and taking them with ``sigwait`` in a thread. A blocked signal
  mask is inherited by every thread and survives ``exec``, so every child (g++, the emulator,
  a user's tool) would then ignore Ctrl-C from the terminal and the SIGTERM sent to clean it up.
- Descendants: the process becomes a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``), so a
  grandchild orphaned when its parent dies (``subprocess.run`` kills only its direct child on
  ``KeyboardInterrupt``; hls4ml's ``build_lib.sh`` leaves g++ and cc1plus running) is re-parented
  to psqs and stays visible in ``/proc/<pid>/task/*/children``. After a signal, descendants are
  terminated (SIGTERM, then SIGKILL) on either way out: at interpreter exit, or in the forced exit.
- After a signal the last atexit handler ends the process (``os._exit``, after flushing logs and
  stdio): the interpreter's teardown that would follow takes seconds with TensorFlow loaded, and
  no thread can act during it.

Calling :func:`install` twice, or from another thread, does nothing; a signal the parent process
set to "ignore" (a background job) stays ignored.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

#: How long the main thread may take to unwind after a signal before the watchdog ends the
#: process itself; with the descendants' :data:`KILL_WAIT_S` the command ends within 2 s.
GRACE_S = 1.2
KILL_WAIT_S = 0.3
STATUS = {signal.SIGINT: 130, signal.SIGTERM: 143}
LINE = {signal.SIGINT: "psqs: interrupted", signal.SIGTERM: "psqs: terminated"}
PR_SET_CHILD_SUBREAPER = 36

_lock = threading.RLock()            # held by a cleanup's critical section and by the forced exit
_cleanups: dict[int, Callable[[], None]] = {}
_received: list[int] = []
_installed = False


def install() -> None:
    """Route SIGINT/SIGTERM as the module docstring describes (once per process, main thread)."""
    global _installed
    if _installed or threading.current_thread() is not threading.main_thread():
        return
    _installed = True
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_system_exit)
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    _become_subreaper()
    atexit.register(_after_signal_at_exit)
    threading.Thread(target=_watch, args=(read_fd,), name="psqs-signals", daemon=True).start()


@contextlib.contextmanager
def cleanup(action: Callable[[], None]) -> Iterator[None]:
    """Run ``action`` if the process is ended by the watchdog while the block runs.

    ``action`` must be quick and safe to run at any point of the block (it may run in the
    watchdog thread while the main thread is stuck anywhere inside it).
    """
    key = id(action)
    with _lock:
        _cleanups[key] = action
    try:
        yield
    finally:
        with _lock:
            _cleanups.pop(key, None)


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A section the forced exit does not cut in two (e.g. the two renames of an artifact swap)."""
    with _lock:
        yield


def descendants(pid: int | None = None) -> list[int]:
    """Every live descendant of ``pid`` (default: this process), children first, via /proc."""
    found, todo = [], [os.getpid() if pid is None else pid]
    while todo:
        parent = todo.pop()
        for task in _listdir(f"/proc/{parent}/task"):
            try:
                children = Path(f"/proc/{parent}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.append(child)
                    todo.append(child)
    return found


def terminate_descendants(wait: float = KILL_WAIT_S) -> list[int]:
    """SIGTERM every descendant, SIGKILL those still running after ``wait`` seconds; returns the pids."""
    pids = descendants()
    _send(pids, signal.SIGTERM)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and any(is_running(p) for p in pids):
        time.sleep(0.02)
    _send([p for p in pids if is_running(p)], signal.SIGKILL)
    return pids


# -- internals ------------------------------------------------------------------------------

def _raise_system_exit(signum, frame):
    raise SystemExit(STATUS[signal.SIGTERM])


def _become_subreaper() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):   # not Linux: descendants are found while their parents live
        pass


def _watch(read_fd: int) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        for signum in data:
            if signum in STATUS:
                _on_signal(signal.Signals(signum))


def _on_signal(signum: signal.Signals) -> None:
    with _lock:
        first = not _received
        _received.append(signum)
    if signum == signal.SIGTERM and signal.getsignal(signum) is _raise_system_exit:
        _say(LINE[signum])      # the main thread leaves through SystemExit, which prints nothing
    if first:
        timer = threading.Timer(GRACE_S, _force_exit, args=(signum,))
        timer.daemon = True
        timer.start()
    else:
        _force_exit(signum)


def _force_exit(signum: signal.Signals) -> None:
    """The main thread did not finish in time: clean up on its behalf and end the process."""
    stuck = threading.main_thread().is_alive()   # False once main() returned (it said why)
    if stuck and signum == signal.SIGINT:
        _say(LINE[signum])
    if _lock.acquire(timeout=0.2):
        for action in list(_cleanups.values()):
            try:
                action()
            except Exception:   # nothing may keep the process from ending now
                pass
    with contextlib.suppress(Exception):
        terminate_descendants()
    os._exit(STATUS[signum])


def _after_signal_at_exit() -> None:
    """The main thread unwound in time. Still end the process here: what follows the last atexit
    handler (module teardown, TensorFlow's C++ destructors) takes seconds, and the watchdog
    cannot run then, since the interpreter no longer lets daemon threads take the GIL."""
    if not _received:
        return
    terminate_descendants()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(STATUS[_received[0]])


def _say(line: str) -> None:
    with contextlib.suppress(Exception):
        print(line, file=sys.stderr, flush=True)


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def is_running(pid: int) -> bool:
    """Alive and not a zombie (a zombie has ended; only its exit status is left)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _send(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
