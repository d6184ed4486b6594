"""Two pynq 4.0 traps that affect every psqs user, handled in one place.

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
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

ZYNQ7_CLK_FREQ_PARAM = "PCW_ACT_FPGA{clk_id}_PERIPHERAL_FREQMHZ"


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
