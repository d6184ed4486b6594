"""psqs.host: the runtime that runs on the board (or drives one through PYNQ.remote).

It imports only numpy, pynq and the standard library, and nothing from the other psqs stages,
because a PYNQ image has no TensorFlow or hls4ml.

``from psqs.host import Accelerator`` works; the class is imported on first use (PEP 562), so
that the build stages, which import ``psqs.common.artifact`` and friends, do not load the runtime.
Neither imports pynq: pynq decides at import time whether it talks to a local or a remote board,
so :class:`Accelerator` imports it only when one is created.
"""

__all__ = ["Accelerator"]


def __getattr__(name: str):
    if name == "Accelerator":
        from .accelerator import Accelerator

        return Accelerator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
