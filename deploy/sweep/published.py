"""Published jet-tagger results the report draws next to the sweep's own: data, not measurements.

Each anchor is a figure from someone else's paper or tutorial, on real (not simulated) jets and on
its own split of them, with its hardware figure counted its own way (an HLS estimate, a Vivado
post-synthesis count). psqs measured none of them, so every figure that draws one says so
(:data:`LABEL`) and names the split; the two public splits (OpenML 42468 and the CERNBox file of
LogicNets) give accuracies about one point apart, and psqs's default data here is simulated, so an
anchor is a level to read the sweep against, never a point of the sweep.
"""
from __future__ import annotations

from dataclasses import dataclass

LABEL = "published, not measured here"

OPENML = "OpenML 42468 split"
CERNBOX = "CERNBox split (LogicNets')"

SPLIT_NOTE = ("Published figures use the OpenML 42468 or the CERNBox split of the real hls4ml jets; the two "
              "give accuracies about 1 point apart. psqs's default data here is simulated (particle-level "
              "Pythia 8 jets, not the hls4ml data set), so the sweep's accuracies are not comparable with "
              "them point for point.")


@dataclass(frozen=True)
class Anchor:
    """One published result: ``accuracy`` is a fraction; ``lut`` is None when the source gives none
    (then it is drawn as an accuracy level only)."""

    name: str
    accuracy: float
    lut: int | None
    lut_source: str | None
    split: str
    citation: str

    def label(self, with_lut: bool = False) -> str:
        """``DWN large, 76.30 % (6,302 LUT, Vivado), OpenML 42468 split: published, not measured here``."""
        lut = f" ({self.lut:,} LUT, {self.lut_source})" if with_lut and self.lut is not None else ""
        return f"{self.name}, {100 * self.accuracy:.2f} %{lut}, {self.split}: {LABEL}"


ANCHORS = (
    Anchor("hls4ml tutorial QKeras 6-bit pruned", 0.7612, 42_000, "HLS estimate, U250",
           OPENML, "hls4ml-tutorial part 4/7 (fastmachinelearning/hls4ml-tutorial), Vitis HLS report"),
    Anchor("LogicNets JSC-S", 0.688, 232, "Vivado",
           CERNBOX, "Umuroglu et al., LogicNets, FPL 2020 (arXiv:2004.03021)"),
    Anchor("LogicNets JSC-L", 0.726, 38_925, "Vivado",
           CERNBOX, "Umuroglu et al., LogicNets, FPL 2020 (arXiv:2004.03021)"),
    Anchor("PolyLUT-Add small", 0.72, 895, "Vivado",
           CERNBOX, "Lou et al., PolyLUT-Add, FPL 2024 (arXiv:2406.04910)"),
    Anchor("PolyLUT-Add large", 0.75, 36_484, "Vivado",
           CERNBOX, "Lou et al., PolyLUT-Add, FPL 2024 (arXiv:2406.04910)"),
    Anchor("NeuraLUT small", 0.72, None, None,
           CERNBOX, "Andronic & Constantinides, NeuraLUT, FPL 2024 (arXiv:2403.00849)"),
    Anchor("NeuraLUT large", 0.75, None, None,
           CERNBOX, "Andronic & Constantinides, NeuraLUT, FPL 2024 (arXiv:2403.00849)"),
    Anchor("DWN small", 0.737, 134, "Vivado",
           OPENML, "Bacellar et al., Differentiable Weightless Neural Networks, ICML 2024 (arXiv:2410.11112)"),
    Anchor("DWN large", 0.763, 6_302, "Vivado",
           OPENML, "Bacellar et al., Differentiable Weightless Neural Networks, ICML 2024 (arXiv:2410.11112)"),
)

#: The paper's headline (Hawks et al. 2021 / TinyML'21): 6-bit, 80 %-pruned QAP vs 32-bit dense.
PAPER_HEADLINE_RATIO = 50.0
PAPER_HEADLINE = ("paper: a 6-bit, 80 %-pruned QAP model has ~50x fewer BOPs than the 32-bit dense one with no "
                  "loss in performance (Hawks et al., Front. AI 4:676564, 2021)")
