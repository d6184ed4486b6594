"""The overlay packages an emulated board can be programmed with, recognized by their firmware.

pynq never tells the board which overlay it loads: it converts the ``.bit`` into the ``.bin``
the fpga_manager takes (header stripped, 32-bit words byte-swapped), uploads it unless
``/lib/firmware`` already holds a file of that name, and points the fpga_manager at it. The
emulator therefore recognizes a package by the sha256 of that ``.bin``, computed here from the
package's ``.bit`` and checked against the manifest's ``bitstream.bin_sha256``.

Serving a package also needs what the hardware description says about its DMA (from the
``.hwh``: address and stream widths, LENGTH register width, realignment engines) and a model of
the IP: the manifest's ``emulation_model`` names a shared library with the ABI of
:class:`psqs.hls.csim.AxisLibrary` (``kind`` ``csim``; ``rtl`` adds ``psqs_cycles()``). Stream IPs
between the DMA and the model are the manifest's ``streams`` (:mod:`.converters`; none: the DMA
meets the model directly), and any other IP the manifest lists is emulated as the AXI-Lite
register block its ``.hwh`` describes (:mod:`.hls_regs`), or not at all (its addresses decode
nowhere, with a warning).
"""
from __future__ import annotations

import hashlib
import logging
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from psqs.board_configs import Board, BoardConfigError, load_board
from psqs.common import stream_probe_regs
from psqs.common.artifact import MANIFEST, ArtifactError, peek_kind
from psqs.common.package import KIND, IpInstance, OverlayPackage
from psqs.overlays.from_hls4ml import hwh as user_hwh

from .converters import Chain
from .dma import DmaConfig
from .errors import PackageError
from .hls_regs import HlsRegisters
from .timing import StreamTiming

log = logging.getLogger(__name__)

MODEL_KINDS = ("csim", "rtl")


def bin_image(bit: bytes) -> bytes:
    """The fpga_manager image of a ``.bit`` file, as ``pynq``'s ``bit2bin`` makes it."""
    try:
        offset = 2 + struct.unpack(">h", bit[0:2])[0] + 2
        while True:
            key = bit[offset]
            offset += 1
            if key == 0x65:
                length = struct.unpack(">i", bit[offset:offset + 4])[0]
                offset += 4
                break
            if key not in (0x61, 0x62, 0x63, 0x64):
                raise ValueError(f"unknown header field 0x{key:02x}")
            offset += 2 + struct.unpack(">h", bit[offset:offset + 2])[0]
    except (IndexError, struct.error) as exc:
        raise ValueError(f"truncated .bit header ({exc})") from None
    if offset + length != len(bit) or length % 4:
        raise ValueError(f"bitstream length field {length} does not match the {len(bit) - offset} bytes "
                         "after the header, or is not a multiple of 4")
    return np.frombuffer(bit, dtype=">u4", count=length // 4, offset=offset).astype("<u4").tobytes()


def _handoff(path: Path) -> user_hwh.HandoffFile:
    try:
        return user_hwh.HandoffFile(path)
    except user_hwh.HwhImportError as exc:
        raise PackageError(str(exc)) from None


def _dma_config(handoff: user_hwh.HandoffFile, dma: IpInstance, where: str) -> DmaConfig:
    """The DMA's configuration as its ``.hwh`` gives it, read by the importer's rules (simple mode,
    both channels); a micro DMA, which the register model does not emulate, is refused here."""
    module = handoff.module(dma.name)
    if not dma.vlnv.startswith(user_hwh.DMA_VLNV_PREFIX) or module is None:
        raise PackageError(f"{where}: DMA {dma.name} ({dma.vlnv}) is not an AXI DMA described in {handoff.path.name}")
    try:
        d = handoff.dma(module)
    except user_hwh.HwhImportError as exc:
        raise PackageError(f"{where}: {exc}") from None
    if d.micro:
        raise PackageError(f"{where}: DMA {dma.name} is a micro DMA; only simple mode is emulated")
    return DmaConfig(addr_width=d.addr_width, length_width=d.length_width, mm2s_mm_bytes=d.mm2s_data_bits // 8,
                     s2mm_mm_bytes=d.s2mm_data_bits // 8, mm2s_stream_bytes=d.mm2s_stream_bits // 8,
                     s2mm_stream_bytes=d.s2mm_stream_bits // 8, mm2s_dre=d.mm2s_dre, s2mm_dre=d.s2mm_dre)


def _target_part(manifest_board) -> str | None:
    """The FPGA part a package's bitstream was built for (its board field: a name or a dict)."""
    target = manifest_board if isinstance(manifest_board, dict) else {"name": manifest_board}
    if target.get("part"):
        return str(target["part"])
    try:
        return load_board(str(target.get("name"))).part
    except BoardConfigError:
        return None


def _probe_depth(name: str, params: dict, contract, where: str) -> int:
    """The probe's FIFO_DEPTH from its ``.hwh`` parameters (default: the HDL's), after checking that
    its data widths are those of the streams it sits on."""
    hdl = {p.name: p for p in stream_probe_regs.HDL_PARAMETERS}
    try:
        values = {key: hdl[key].check(int(params.get(key.lower(), hdl[key].default))) for key in hdl}
    except (ValueError, stream_probe_regs.RegisterMapError) as exc:
        raise PackageError(f"{where}: probe {name}: {exc}") from None
    widths = (values["DATA_WIDTH_IN"], values["DATA_WIDTH_OUT"])
    if params and widths != (contract.input.bus_bits, contract.output.bus_bits):
        raise PackageError(f"{where}: probe {name} is {widths[0]}/{widths[1]} bits wide, the streams "
                           f"{contract.input.bus_bits}/{contract.output.bus_bits}")
    return values["FIFO_DEPTH"]


@dataclass
class ServedPackage:
    """A verified package, with everything the emulator needs to program a board with it."""

    package: OverlayPackage
    bin_sha256: str
    dma: IpInstance
    dma_config: DmaConfig
    probe: IpInstance | None
    probe_fifo_depth: int
    timing: StreamTiming
    model_kind: str
    library: Path
    streams: dict            # manifest ``streams``: {"mm2s": [hop, ...], "s2mm": [...]}
    register_blocks: list    # [(IpInstance, hwh.RegisterBlock)] of the IPs emulated as AXI-Lite registers

    @property
    def name(self) -> str:
        return self.package.name

    def chains(self) -> tuple[Chain, Chain]:
        """Fresh stream IPs (empty converters) for a download: MM2S side, S2MM side."""
        contract, where = self.package.contract, str(self.package.path / MANIFEST)
        return (Chain.of(self.streams.get("mm2s", []), self.dma_config.mm2s_stream_bytes, contract.input.bus_bytes,
                         f"{where}: streams.mm2s"),
                Chain.of(self.streams.get("s2mm", []), contract.output.bus_bytes, self.dma_config.s2mm_stream_bytes,
                         f"{where}: streams.s2mm"))

    def register_slaves(self) -> list[tuple[IpInstance, HlsRegisters]]:
        """Fresh register blocks (reset values) for a download."""
        return [(ip, HlsRegisters(ip.name, block)) for ip, block in self.register_blocks]

    def private_library(self, directory: Path) -> Path:
        """Copy the model library and its ``weights/`` into ``directory``, a path nothing else loaded:
        the dynamic loader shares one instance per path, and the library's streams are global."""
        directory.mkdir(parents=True)
        target = directory / self.library.name
        shutil.copy2(self.library, target)
        weights = self.library.parent / "weights"
        if weights.is_dir():
            shutil.copytree(weights, directory / "weights")
        return target


def load_package(path: Path, board: Board) -> ServedPackage:
    """Verify the package at ``path`` and derive what serving it takes; PackageError if it can't be."""
    package = OverlayPackage(path)          # verifies every file's sha256
    where = str(Path(path) / MANIFEST)
    m = package.manifest
    model = m.get("emulation_model")
    if not isinstance(model, dict) or model.get("kind") not in MODEL_KINDS or not model.get("library"):
        raise PackageError(f"{where}: no emulation_model {{kind: {'|'.join(MODEL_KINDS)}, library: ...}}; "
                           "build the package for emulation (psqs build --emulation)")
    library = (package.path / model["library"]).resolve()
    if package.path.resolve() not in library.parents or not library.is_file():
        raise PackageError(f"{where}: emulation_model.library {model['library']!r} is not a file inside the package")
    part = _target_part(package.board)
    if part != board.part:
        raise PackageError(f"{where}: a bitstream for part {part or 'unknown'} cannot program {board.name} ({board.part})")
    try:
        sha = hashlib.sha256(bin_image(package.bitstream.read_bytes())).hexdigest()
    except (OSError, ValueError) as exc:
        raise PackageError(f"{package.bitstream}: not a valid .bit file ({exc})") from None
    declared = (m.get("bitstream") or {}).get("bin_sha256")
    if declared is not None and declared != sha:
        raise PackageError(f"{where}: bitstream.bin_sha256 {declared[:16]}... does not match the .bit ({sha[:16]}...)")

    for ip in package.ips.values():
        end = ip.base + ip.range
        if not (board.pl_slave_base <= ip.base and end <= board.pl_slave_base + board.pl_slave_size):
            raise PackageError(f"{where}: IP {ip.name} at 0x{ip.base:x} lies outside {board.name}'s PL window")
    spans = sorted((ip.base, ip.base + ip.range, ip.name) for ip in package.ips.values())
    for (_, end, a), (start, _, b) in zip(spans, spans[1:]):
        if start < end:
            raise PackageError(f"{where}: IPs {a} and {b} overlap")

    handoff = _handoff(package.hwh)
    dma = package.dma
    dma_config = _dma_config(handoff, dma, where)
    if (1 << dma_config.length_width) - 1 != package.max_transfer_bytes:
        raise PackageError(f"{where}: dma.max_transfer_bytes {package.max_transfer_bytes} disagrees with the "
                           f"DMA's {dma_config.length_width}-bit LENGTH register")
    contract = package.contract
    streams = m.get("streams") or {}
    if not isinstance(streams, dict) or not all(isinstance(streams.get(k, []), list) for k in ("mm2s", "s2mm")):
        raise PackageError(f"{where}: streams must be {{mm2s: [hop, ...], s2mm: [hop, ...]}}")

    probe, depth = None, 0
    probe_name = (m.get("probe") or {}).get("name")
    if probe_name:
        probe = package.probe
        if probe.vlnv != stream_probe_regs.VLNV:
            raise PackageError(f"{where}: probe {probe.name} is {probe.vlnv}, not {stream_probe_regs.VLNV}")
        module = handoff.module(probe.name)
        depth = _probe_depth(probe.name, module.parameters if module else {}, contract, where)
    register_blocks = []
    for ip in package.ips.values():
        if ip.name in (dma.name, probe_name):
            continue
        block = _register_block(handoff, ip, where)
        if block is None:
            log.warning("%s: IP %s (%s) is not emulated; its addresses decode nowhere", package.name, ip.name, ip.vlnv)
        else:
            register_blocks.append((ip, block))

    t = package.timing
    try:
        timing = StreamTiming(contract.input.beats_per_sample, contract.output.beats_per_sample,
                              int(t["latency_cycles"]), contract.initiation_interval(int(t["ii_cycles"])))
    except (KeyError, TypeError, ValueError) as exc:
        raise PackageError(f"{where}: timing needs integer latency_cycles and ii_cycles ({exc})") from None
    served = ServedPackage(package, sha, dma, dma_config, probe, depth, timing, model["kind"], library, streams,
                           register_blocks)
    try:
        served.chains()
        served.register_slaves()
    except ValueError as exc:
        raise PackageError(str(exc)) from None
    return served


def _register_block(handoff: user_hwh.HandoffFile, ip: IpInstance, where: str) -> user_hwh.RegisterBlock | None:
    """The AXI-Lite registers of ``ip`` as the package's ``.hwh`` describes them (None: it
    describes none); its address must be the manifest's."""
    module = handoff.module(ip.name)
    if module is None:
        raise PackageError(f"{where}: IP {ip.name}: {handoff.path}: no IP {ip.name} in the design")
    try:
        block = handoff.registers(module)
    except user_hwh.HwhImportError as exc:
        raise PackageError(f"{where}: IP {ip.name}: {exc}") from None
    if block is None or not block.words:
        return None
    if (block.base, block.range) != (ip.base, ip.range):
        raise PackageError(f"{where}: IP {ip.name} at 0x{ip.base:x} (+0x{ip.range:x}), but {handoff.path.name} "
                           f"maps its {block.interface} at 0x{block.base:x} (+0x{block.range:x})")
    return block


def package_dirs(root: Path) -> list[Path]:
    """``root`` if it is an overlay package, else its immediate subdirectories that are; a root
    that holds none is an error naming what was looked for (and what was found instead)."""
    root = Path(root)
    if not root.is_dir():
        raise PackageError(f"{root}: no such directory")
    candidates = [root] if (root / MANIFEST).is_file() else sorted(p for p in root.iterdir() if p.is_dir())
    found, others = [], []
    for candidate in candidates:
        try:
            kind = peek_kind(candidate)
        except ArtifactError:
            if candidate == root:
                others.append(f"{root.name} (unreadable {MANIFEST})")
            continue
        if kind == KIND:
            found.append(candidate)
        else:
            others.append(f"{candidate.name or candidate} (kind {kind!r})")
    if not found:
        seen = f"; found {', '.join(others[:3])}{' ...' if len(others) > 3 else ''}" if others else ""
        raise PackageError(f"{root}: no overlay package (looked for a {MANIFEST} of kind {KIND!r} in {root} "
                           f"and in its immediate subdirectories{seen}); build one with `psqs build`")
    return found


class PackageCatalog:
    """The packages under the ``--overlays`` directories, indexed by firmware sha256.

    Directories are rescanned when a firmware is not recognized, so a package built while the
    emulator runs can be downloaded without restarting it; a rebuilt package (new content at the
    same path) replaces the old one.
    """

    def __init__(self, roots: list[Path], board: Board):
        self.roots, self.board = [Path(r) for r in roots], board
        self._by_sha: dict[str, ServedPackage] = {}
        self._stamps: dict[Path, str] = {}
        self.rescan(strict=True)

    def rescan(self, strict: bool = False) -> None:
        """Load new and changed packages; ``strict``: a bad one, or a root without any, is an
        error, else a warning."""
        paths = []
        for root in self.roots:
            try:
                paths += package_dirs(root)
            except PackageError as exc:
                if strict:
                    raise
                log.warning("rescan: %s", exc)
        for path in paths:
            try:
                stamp = hashlib.sha256((path / MANIFEST).read_bytes()).hexdigest()   # lists every file's sha256
            except OSError:
                continue                            # removed or being replaced: next rescan
            if self._stamps.get(path) == stamp:
                continue
            self._stamps[path] = stamp              # a failing package is not retried until it changes
            self._by_sha = {sha: p for sha, p in self._by_sha.items() if p.package.path != path}
            try:
                served = load_package(path, self.board)
            except (ArtifactError, PackageError) as exc:
                if strict:
                    raise
                log.warning("skipping %s: %s", path, exc)
                continue
            self._by_sha[served.bin_sha256] = served
            log.info("serving %s (%s) from %s", served.name, served.bin_sha256[:12], path)

    @property
    def packages(self) -> list[ServedPackage]:
        return list(self._by_sha.values())

    def find(self, sha256: str) -> ServedPackage | None:
        if sha256 not in self._by_sha:
            self.rescan()
        return self._by_sha.get(sha256)
