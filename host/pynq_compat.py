"""Three pynq 4.0 traps that affect every psqs user, handled in one place.

1. pynqmetadata 0.2.0 reads the PL clock frequency of a Zynq-7000 design from a ZynqMP parameter
   name (``ZynqProcSysCore`` does not override ``clk_freq_param_name``), so ``clock_dict`` says
   ``None`` and ``Overlay()`` dies in ``Clocks.set_pl_clk(0, clk_mhz=None)`` whenever it has to
   program the clocks itself — in remote mode on a PYNQ-Z1/Z2, say — although the HWH records
   ``PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ``. :func:`apply` gives the class the Zynq-7000 name, and
   only when the bug is present: a fixed pynqmetadata is left alone.
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
from pathlib import Path

log = logging.getLogger(__name__)

ZYNQ7_CLK_FREQ_PARAM = "PCW_ACT_FPGA{clk_id}_PERIPHERAL_FREQMHZ"

#: Seconds every PYNQ.remote call may take (trap 3); one value per process, as pynq's device is.
_rpc_timeout: float | None = None


def zynq7_clock_bug_present() -> bool:
    from pynqmetadata.models.proc_sys_core import ProcSysCore
    from pynqmetadata.models.zynq_proc_sys_core import ZynqProcSysCore

    return ZynqProcSysCore.clk_freq_param_name is ProcSysCore.clk_freq_param_name


def apply() -> bool:
    """Patch pynqmetadata's Zynq-7000 clock parameter name if (and only if) it is wrong.

    Returns True when the patch was applied by this call.
    """
    if not zynq7_clock_bug_present():
        return False
    from pynqmetadata.models.zynq_proc_sys_core import ZynqProcSysCore

    def clk_freq_param_name(self, clk_id: int) -> str:
        return ZYNQ7_CLK_FREQ_PARAM.format(clk_id=clk_id)

    ZynqProcSysCore.clk_freq_param_name = clk_freq_param_name
    log.debug("patched pynqmetadata ZynqProcSysCore.clk_freq_param_name (Zynq-7000 FCLK bug)")
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
    from pynq.pl_server import device, remote_device

    if remote_device.GrpcChannel.__init__ is not _bounded_channel_init:
        remote_device.GrpcChannel.__init__ = _bounded_channel_init
        log.debug("PYNQ.remote calls bounded to %g s", _rpc_timeout)
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
