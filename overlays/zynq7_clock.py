"""The one amendment psqs makes to a Zynq-7000 ``.hwh``: the PL clocks under the name pynq 4.0 reads.

pynqmetadata 0.2.0 (pynq 4.0.0) takes ``clock_dict[n]["frequency"]`` of *every* processing system
from the ZynqMP parameter ``PSU__CRL_APB__PL{n}_REF_CTRL__ACT_FREQMHZ``: its ``ZynqProcSysCore``
does not override ``clk_freq_param_name``. A Zynq-7000 handoff records the frequency as
``PCW_ACT_FPGA{n}_PERIPHERAL_FREQMHZ`` only, so the frequency reads ``None`` and a plain
``pynq.Overlay(...)`` dies in ``Clocks.set_pl_clk(0, clk_mhz=None)`` whenever pynq programs the
clocks (every download on the board). :mod:`psqs.host.pynq_compat` patches the class, but only
in a process that imports psqs; a user's own script does not.

So every package psqs writes carries, on the ``processing_system7`` MODULE, a copy of each
``PCW_ACT_FPGA{n}_PERIPHERAL_FREQMHZ`` under the ZynqMP name, with the same value: pynqmetadata
0.2.0 then finds the frequency the tools achieved, with no patch, and gets exactly what the patch
would give it. Nothing else reads that name on a Zynq-7000: pynq 2.7's own HWH parser and
pynqmetadata 0.1.x compute the clock from the divisors and look parameters up by name, so an
extra one changes nothing for them. ZynqMP handoffs already carry the name and are left alone.

The amendment is textual (a copy of the source parameter's line, renamed, right after it):
every other byte of a Vivado-written handoff stays as Vivado wrote it.
"""
from __future__ import annotations

import re
from pathlib import Path

SOURCE = "PCW_ACT_FPGA{n}_PERIPHERAL_FREQMHZ"
TARGET = "PSU__CRL_APB__PL{n}_REF_CTRL__ACT_FREQMHZ"
WHY = ("pynqmetadata 0.2.0 (pynq 4.0) reads a Zynq-7000 PL clock from the ZynqMP parameter "
       "PSU__CRL_APB__PL{n}_REF_CTRL__ACT_FREQMHZ; each PCW_ACT_FPGA{n}_PERIPHERAL_FREQMHZ is copied "
       "under that name so a plain pynq.Overlay gets the clock without psqs' patch")

_PS7_MODULE = re.compile(r'<MODULE\b[^>]*\bMODTYPE="processing_system7"[^>]*>.*?</MODULE>', re.S)


def _parameter(name: str) -> re.Pattern:
    """A whole PARAMETER line as Vivado (``"/>"``) or ElementTree (``" />"``) writes it; group 1 is the value."""
    return re.compile(rf'^[ \t]*<PARAMETER NAME="{re.escape(name)}" VALUE="([^"]*)"[ \t]*/>\r?\n', re.M)


def amend(text: str) -> tuple[str, dict[str, str]]:
    """``text`` with the ZynqMP-named copies added; and the copies it now carries (name -> value).

    Idempotent: a parameter already present is kept as it is (and reported). A handoff without a
    ``processing_system7`` MODULE (ZynqMP, Versal) comes back unchanged with ``{}``.
    """
    module = _PS7_MODULE.search(text)
    if module is None:
        return text, {}
    body, carried = module.group(0), {}
    for n in range(4):
        target = TARGET.format(n=n)
        present = _parameter(target).search(body)
        if present:
            carried[target] = present.group(1)
            continue
        source = _parameter(SOURCE.format(n=n)).search(body)
        if source is None:        # no achieved frequency recorded: nothing to copy, as the patch would find
            continue
        line = source.group(0).replace(SOURCE.format(n=n), target, 1)    # its indentation, spacing, line end
        body = body[:source.end()] + line + body[source.end():]
        carried[target] = source.group(1)
    return text[:module.start()] + body + text[module.end():], carried


def amend_file(path: Path) -> dict[str, str]:
    """Amend the handoff at ``path`` in place (bytes outside the added lines untouched, BOM and
    line endings included); returns what :func:`amend` returns as the copies it carries."""
    path = Path(path)
    text = path.read_bytes().decode("utf-8")
    amended, carried = amend(text)
    if amended != text:
        path.write_bytes(amended.encode("utf-8"))
    return carried
