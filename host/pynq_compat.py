"""Three pynq traps that affect every psqs user, handled in one place, keyed by what is installed.

psqs runs on every PYNQ image's own pynq (2.7.0 without pynqmetadata, 3.0.1 and 3.1.x with
pynqmetadata 0.1.x, pip's 4.0.0 with 0.2.0), so each patch first checks that the installed version
has the defect, logs once at INFO what it patched (naming the versions), and is a no-op elsewhere;
nothing here raises on a version that lacks the patched module (:func:`installed`).

1. pynqmetadata 0.2.0 reads the PL clock frequency of a Zynq-7000 design from a ZynqMP parameter
   name (``ZynqProcSysCore`` does not override ``clk_freq_param_name``), so ``clock_dict`` says
   ``None`` and ``Overlay()`` dies in ``Clocks.set_pl_clk(0, clk_mhz=None)`` whenever it programs
   the clocks (every download, on the board or over PYNQ.remote), although the HWH records
   ``PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ``. A package psqs builds needs no patch: its ``.hwh`` also
   carries the value under the ZynqMP name (``psqs.overlays.zynq7_clock``). :func:`apply` is for
   any other handoff (a user's own Vivado design): it gives the class the Zynq-7000 name, and only
   when the bug is present: pynqmetadata 0.1.x (which computes clocks from the divisors and has no
   ``clk_freq_param_name``), no pynqmetadata at all (pynq 2.x) or a fixed one is left alone. The
   host still calls it, harmlessly, so that an older package (built before the amendment) loads.
2. pynq keeps its "current overlay" state in its own install directory (a global-state JSON and
   a pickled metadata cache) and reuses the cache whenever the ``.bit`` hash matches, whichever
   device it came from. :func:`clear_state` removes both, so a download always parses the HWH it
   was given; the host calls it before downloading, and tests call it around each run.
3. pynq's PYNQ.remote client calls the board without deadlines, so a board that stops answering
   hangs the host forever, and reports a failed call as a raw gRPC traceback.
   :func:`bound_remote_calls` gives every call a deadline and a one-line error naming the board
   and the call (:mod:`psqs.host.rpc_deadlines`); the accelerator calls it with its ``timeout``.
"""
from __future__ import annotations

import logging
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

ZYNQ7_CLK_FREQ_PARAM = "PCW_ACT_FPGA{clk_id}_PERIPHERAL_FREQMHZ"

#: Seconds every PYNQ.remote call may take (trap 3); one value per process, as pynq's device is.
_rpc_timeout: float | None = None


def installed(distribution: str) -> str | None:
    """The installed version of ``distribution`` (``pynq``, ``pynqmetadata``), or None."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def zynq7_clock_bug_present() -> bool:
    """Whether the installed pynqmetadata reads the Zynq-7000 PL clock from ZynqMP's parameter.

    Only a pynqmetadata whose ``ProcSysCore`` looks clocks up by parameter name (0.2.0) can have
    the bug; 0.1.x has no such lookup and pynq 2.x has no pynqmetadata.
    """
    try:
        from pynqmetadata.models.proc_sys_core import ProcSysCore
        from pynqmetadata.models.zynq_proc_sys_core import ZynqProcSysCore
    except ImportError:
        return False
    lookup = getattr(ProcSysCore, "clk_freq_param_name", None)
    return lookup is not None and getattr(ZynqProcSysCore, "clk_freq_param_name", None) is lookup


def apply() -> bool:
    """Patch pynqmetadata's Zynq-7000 clock parameter name if (and only if) it is wrong.

    Returns True when the patch was applied by this call (so it is logged once per process).
    """
    if not zynq7_clock_bug_present():
        return False
    from pynqmetadata.models.zynq_proc_sys_core import ZynqProcSysCore

    def clk_freq_param_name(self, clk_id: int) -> str:
        return ZYNQ7_CLK_FREQ_PARAM.format(clk_id=clk_id)

    ZynqProcSysCore.clk_freq_param_name = clk_freq_param_name
    log.info("pynq %s / pynqmetadata %s: patched ZynqProcSysCore.clk_freq_param_name to %s "
             "(Zynq-7000 PL clock read from the ZynqMP parameter)",
             installed("pynq"), installed("pynqmetadata"), ZYNQ7_CLK_FREQ_PARAM)
    return True


def state_files() -> list[Path]:
    """The files pynq writes into its install directory to remember the loaded overlay."""
    import pynq.pl_server

    state_dir = Path(pynq.pl_server.__file__).parent
    return sorted([state_dir / "_current_metadata.pkl", *state_dir.glob("global_pl_state_*.json")])


def clear_state() -> None:
    """Forget pynq's cached overlay state (see the module docstring, trap 2)."""
    import pynq.pl

    for path in state_files():
        path.unlink(missing_ok=True)
    # pynq.pl.PL also memoizes the unpickled cache on the class
    for attr in ("_dict_views_cached", "_dict_view_cache"):
        if attr in vars(pynq.pl.PL):
            delattr(pynq.pl.PL, attr)


def bound_remote_calls(timeout: float) -> None:
    """Give every gRPC call of pynq's PYNQ.remote client ``timeout`` seconds (trap 3).

    Takes effect for boards pynq connects to from now on (call it before the first
    ``pynq.Device.active_device``) and for boards already connected. A later call changes the
    deadline of all of them. Without ``PYNQ_REMOTE_DEVICES`` pynq talks to a local device and
    nothing is changed.
    """
    import os

    global _rpc_timeout
    _rpc_timeout = float(timeout)
    if not os.environ.get("PYNQ_REMOTE_DEVICES"):
        return
    try:
        from pynq.pl_server import device, remote_device
    except ImportError:             # pynq < 3.1: no PYNQ.remote client, no calls to bound
        return
    if remote_device.GrpcChannel.__init__ is not _bounded_channel_init:
        remote_device.GrpcChannel.__init__ = _bounded_channel_init
        log.info("pynq %s: PYNQ.remote calls bounded to %g s (pynq sets no deadline)",
                 installed("pynq"), _rpc_timeout)
    for board in vars(device.Device).get("_devices", []):     # connected before this call
        if isinstance(board, remote_device.RemoteDevice) and not getattr(board.client, "bounded", False):
            board.client.channel = _intercepted(board.client.channel, f"{board.ip_addr}:{board.port}")
            board.client.bounded = True
            board._stub = {name: type(stub)(board.client.channel) for name, stub in board._stub.items()}


def _intercepted(channel, address: str):
    import grpc

    from .rpc_deadlines import Deadlines

    return grpc.intercept_channel(channel, Deadlines(address, lambda: _rpc_timeout))


def _bounded_channel_init(self, ip_addr, port) -> None:
    """pynq's ``GrpcChannel.__init__`` (connect, wait until ready), with psqs' deadline for the
    wait and for every call, and an error that names the board."""
    import grpc

    from .rpc_deadlines import BoardCallFailed

    address = f"{ip_addr}:{port}"
    channel = grpc.insecure_channel(address)
    try:
        grpc.channel_ready_future(channel).result(timeout=_rpc_timeout)
    except grpc.FutureTimeoutError:
        channel.close()
        raise BoardCallFailed(f"board {address} did not answer the connection within {_rpc_timeout:g} s "
                              "(no PYNQ.remote board or psqs emulator there, or it is frozen)",
                              grpc.StatusCode.DEADLINE_EXCEEDED) from None
    self.channel = _intercepted(channel, address)
    self.bounded = True
