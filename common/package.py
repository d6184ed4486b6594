"""Overlay packages: what a board loads, and what the board emulator serves.

A package is an artifact directory (see :mod:`psqs.common.artifact`) of kind ``psqs.overlay``::

    <name>.bit          bitstream (for emulation builds: a valid .bit container marked as such)
    <name>.hwh          hardware handoff, read by pynq to find the IPs and their addresses
    manifest.json       board, I/O contract, IP addresses, timing, model identity, sha256 of files
    test_vectors.npz    raw features, labels, reference logits, C-simulation logits
    report.json        vendor figures (utilization, timing) or why there are none
    emulation/          what the board emulator needs to reproduce the model bit-exactly

This module reads packages on the board, so it uses only the standard library and numpy.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from . import npz
from .artifact import ArtifactError, read_manifest
from .contract import IOContract

KIND = "psqs.overlay"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class IpInstance:
    """One addressable IP of the block design, as pynq will see it in ``ip_dict``."""

    name: str          # full hierarchical name in the HWH (pynq's ip_dict key)
    vlnv: str
    base: int
    range: int


class OverlayPackage:
    """A verified overlay package (sha256 of every file checked on open)."""

    def __init__(self, path):
        self.path = Path(path)
        self.manifest = read_manifest(self.path, KIND, FORMAT_VERSION)
        for key in ("name", "board", "io", "ips", "dma", "probe", "timing", "model"):
            if key not in self.manifest:
                raise ArtifactError(f"{self.path / 'manifest.json'}: missing field {key!r}")

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def bitstream(self) -> Path:
        return self.path / f"{self.name}.bit"

    @property
    def hwh(self) -> Path:
        return self.path / f"{self.name}.hwh"

    @property
    def board(self) -> dict:
        return self.manifest["board"]

    @property
    def emulation(self) -> bool:
        return bool(self.manifest.get("emulation"))

    @cached_property
    def contract(self) -> IOContract:
        return IOContract.from_dict(self.manifest["io"], f"{self.path / 'manifest.json'}: io")

    @cached_property
    def ips(self) -> dict[str, IpInstance]:
        return {name: IpInstance(name, d["vlnv"], int(d["base"]), int(d["range"]))
                for name, d in self.manifest["ips"].items()}

    @property
    def dma(self) -> IpInstance:
        return self.ips[self.manifest["dma"]["name"]]

    @property
    def max_transfer_bytes(self) -> int:
        return int(self.manifest["dma"]["max_transfer_bytes"])

    @property
    def probe(self) -> IpInstance | None:
        """The stream probe, or None for an overlay built without one (an imported hls4ml build):
        then nothing in the fabric counts cycles and the bench reports no fabric figures."""
        probe = self.manifest["probe"]
        return self.ips[probe["name"]] if probe else None

    @property
    def timing(self) -> dict:
        return self.manifest["timing"]

    @property
    def scaler(self) -> tuple[np.ndarray, np.ndarray]:
        s = self.manifest["model"]["scaler"]
        return np.asarray(s["mean"], np.float64), np.asarray(s["scale"], np.float64)

    def test_vectors(self) -> dict[str, np.ndarray]:
        return npz.load(self.path / "test_vectors.npz", ArtifactError)
