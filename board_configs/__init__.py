"""psqs.board_configs: the PYNQ boards psqs can target, one YAML file per board.

A board file holds what the overlay build and the board runtime must agree on and cannot look
up themselves: the Vivado part and board part, the PS ports the block design uses, the PL clock
and its names (in the ``.hwh`` that pynq reads and in Vivado's timing report), the DDR window DMA
buffers live in, what the board's PYNQ image reports about itself, and the part's capacity for
fit checks. Every file is validated once, when it is loaded, against :mod:`.schema`; a bad file is a
:class:`BoardConfigError` that names the file and the field, never a ``KeyError`` at build time.

PyYAML and jsonschema belong to the build install. Where they are absent (a PYNQ image's
environment running the emulated board of :mod:`psqs.deploy.emulator.local_device`), a board is
read from the JSON copy :func:`write_json` made of a validated file on the build side (JSON is
YAML, so it is the same board file); without jsonschema only the cross-field checks run.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from importlib import resources as importlib_resources
from pathlib import Path

from psqs.common.errors import PsqsError

from .schema import FAMILIES, SCHEMA

__all__ = ["DEFAULT_BOARD", "Board", "BoardConfigError", "board_names", "load_board", "write_json"]

#: The board every stage targets when none is named: the paper's (and hls4ml's) PYNQ-Z2.
DEFAULT_BOARD = "pynq-z2"

log = logging.getLogger(__name__)

class BoardConfigError(PsqsError, ValueError):
    """A board name is unknown or a board file is unreadable or invalid."""


@dataclass(frozen=True)
class Board:
    """One board, as loaded and validated from ``<name>.yaml``.

    ``clock_names`` holds name templates with ``{n}`` for the PL clock index; use
    :meth:`clock_name` to get the name for the design clock ``fclk``.
    """

    name: str
    description: str
    family: str                      # zynq | zynquplus
    part: str                        # Vivado part, e.g. xc7z020clg400-1
    board_part: str                  # Vivado board_part, e.g. tul.com.tw:pynq-z2:part0:1.0
    arch: str                        # what pynq reads from /proc/version: armv7l | aarch64
    pynq_board: str                  # /proc/device-tree/chosen/pynq_board on the PYNQ image
    pynq_remote: bool                # whether the board's PYNQ image can serve PYNQ.remote
    ps: str                          # processing_system7 | zynq_ultra_ps_e
    hp_port: str                     # PS slave port the DMA writes DDR through
    hp_data_width: int
    gp_port: str                     # PS master port for the AXI-Lite slaves
    gp_data_width: int
    pl_slave_base: int               # the gp_port's address window
    pl_slave_size: int
    fclk: int                        # PL clock driving the design
    fclk_mhz: float
    fclk_defaults_mhz: tuple[float, ...]
    ps_ref_mhz: float                # PS reference clock (PS_CLK / PSS_REF_CLK) of the board
    io_pll_fbdiv: int                # IO PLL multiplier the board preset programs
    clock_names: dict[str, str] = field(hash=False)
    ddr_base: int                    # physical DDR window DMA buffers can be allocated in
    ddr_size: int
    resources: dict[str, int] = field(hash=False)   # LUT, FF, DSP, BRAM_18K[, URAM]
    notes: str = ""
    source: Path | None = field(default=None, compare=False)

    def clock_name(self, key: str, n: int | None = None) -> str:
        """The name ``key`` (see ``clocks.names`` in the YAML) for PL clock ``n`` (default: fclk).

        E.g. ``clock_name("act_freq_mhz")`` is ``PCW_ACT_FPGA0_PERIPHERAL_FREQMHZ`` on PYNQ-Z2.
        """
        if key not in self.clock_names:
            raise KeyError(f"{self.name}: no clock name {key!r}; known: {', '.join(self.clock_names)}")
        return self.clock_names[key].format(n=self.fclk if n is None else n)

    @property
    def io_pll_mhz(self) -> float:
        """The IO PLL the PL clocks divide: the reference times the multiplier, over the family's
        fixed post-divider (UG1085: DIV2 on ZynqMP)."""
        return self.ps_ref_mhz * self.io_pll_fbdiv / FAMILIES[self.family]["io_pll_post_div"]

    @property
    def fclk_port(self) -> str:
        """The PS output pin of the design clock (FCLK_CLK0 / pl_clk0)."""
        return self.clock_name("port")

    @property
    def timing_clock(self) -> str:
        """The design clock's name in Vivado's timing reports (clk_fpga_0 / clk_pl_0)."""
        return self.clock_name("timing_clock")


def _board_files() -> dict[str, Path]:
    package = importlib_resources.files(__name__)
    return {Path(entry.name).stem: Path(str(entry))
            for entry in package.iterdir() if entry.name.endswith(".yaml")}


def board_names() -> list[str]:
    """The boards shipped with psqs (the stems of ``board_configs/*.yaml``), sorted."""
    return sorted(_board_files())


def load_board(name_or_path: str | Path) -> Board:
    """Load and validate a shipped board by name (``"pynq-z2"``) or any board file by path."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith((".yaml", ".yml", ".json")) or "/" in text:
        path = Path(name_or_path)
        if not path.is_file():
            raise BoardConfigError(f"{path}: no such board file")
    else:
        files = _board_files()
        if text not in files:
            raise BoardConfigError(
                f"{text}.yaml: unknown board; known boards: {', '.join(sorted(files))}")
        path = files[text]
    board = _parse(path)
    log.debug("board %s loaded from %s", board.name, path)
    return board


def write_json(name_or_path: str | Path, path: Path) -> Path:
    """The board ``name_or_path``, validated, as a JSON board file at ``path`` (named ``<board>.json``
    there): what :func:`load_board` reads where PyYAML is absent."""
    board = load_board(name_or_path)
    target = Path(path) / f"{board.name}.json"
    target.write_text(json.dumps(_read(board.source)), encoding="utf-8")
    return target


def _read(path: Path):
    where = path.name
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".json":
            return json.loads(text)
        import yaml
    except (OSError, UnicodeDecodeError) as exc:
        raise BoardConfigError(f"{where}: unreadable ({exc})") from None
    except json.JSONDecodeError as exc:
        raise BoardConfigError(f"{where}: not valid JSON at line {exc.lineno} ({exc.msg})") from None
    except ImportError:
        raise BoardConfigError(f"{where}: reading board YAML needs PyYAML, part of the build install "
                               "(pip install 'psqs[build]'); a board install reads a board.json instead") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise BoardConfigError(f"{where}: not valid YAML{at} ({problem})") from None


def _parse(path: Path) -> Board:
    where = path.name
    data = _read(path)
    if not isinstance(data, dict):
        raise BoardConfigError(f"{where}: must be a YAML mapping of fields, got {type(data).__name__}")
    problems = _schema_problems(data) or _cross_field_problems(data, path)
    if problems:
        raise BoardConfigError("\n".join(f"{where}: {p}" for p in problems))
    ps, clocks, ddr = data["ps"], data["clocks"], data["ddr"]
    return Board(
        name=data["name"], description=data["description"], family=data["family"],
        part=data["part"], board_part=data["board_part"], arch=data["arch"],
        pynq_board=data["pynq_board"], pynq_remote=data["pynq_remote"],
        ps=ps["ip"], hp_port=ps["hp_port"], hp_data_width=ps["hp_data_width"],
        gp_port=ps["gp_port"], gp_data_width=ps["gp_data_width"],
        pl_slave_base=ps["pl_slave_base"], pl_slave_size=ps["pl_slave_size"],
        fclk=clocks["fclk"], fclk_mhz=float(clocks["fclk_mhz"]),
        fclk_defaults_mhz=tuple(float(f) for f in clocks["defaults_mhz"]),
        ps_ref_mhz=float(clocks["ps_ref_mhz"]), io_pll_fbdiv=clocks["io_pll_fbdiv"],
        clock_names=dict(clocks["names"]),
        ddr_base=ddr["base"], ddr_size=ddr["size"],
        resources=dict(data["resources"]), notes=data.get("notes", ""), source=path)


def _field(path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _show(value, as_hex: bool) -> str:
    if as_hex and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:#x}"
    return repr(value)


def _schema_problems(data: dict) -> list[str]:
    """Every schema violation as ``<field>: <what is wrong>``, one per field, in schema order."""
    try:
        import jsonschema
    except ImportError:         # a board install: the JSON came from a validated file (see write_json)
        return []
    problems: dict[str, str] = {}
    for error in jsonschema.Draft202012Validator(SCHEMA).iter_errors(data):
        path = list(error.absolute_path)
        if error.validator == "required":
            for key in error.validator_value:
                if key not in error.instance:
                    problems.setdefault(_field([*path, key]), "required field is missing")
            continue
        if error.validator == "additionalProperties":
            allowed = list(error.schema.get("properties", {}))
            for key in sorted(set(error.instance) - set(allowed)):
                problems.setdefault(_field([*path, key]),
                                    f"unknown field (allowed: {', '.join(allowed)})")
            continue
        expect = error.schema.get("x-expect")
        if expect is None:  # a keyword without a phrase of its own: jsonschema's message
            problems.setdefault(_field(path), error.message)
            continue
        got = _show(error.instance, error.schema.get("x-hex", False))
        problems.setdefault(_field(path), f"must be {expect}, got {got}")
    return [f"{key}: {msg}" for key, msg in
            sorted(problems.items(), key=lambda kv: _ORDER.get(kv[0].split("[")[0], len(_ORDER)))]


def _field_order(schema: dict, prefix=()):
    """Field names in schema order, which is the order of the board files: stable messages."""
    for key, sub in schema.get("properties", {}).items():
        yield _field([*prefix, key])
        yield from _field_order(sub, (*prefix, key))


_ORDER = {key: i for i, key in enumerate(_field_order(SCHEMA))}


def _cross_field_problems(data: dict, path: Path) -> list[str]:
    """What JSON Schema cannot express: the file name and sums of fields."""
    problems = []
    if data["name"] != path.stem:
        problems.append(f"name: must equal the file name {path.stem!r}, got {data['name']!r}")
    ddr, family = data["ddr"], data["family"]
    end, limit = ddr["base"] + ddr["size"], FAMILIES[family]["ddr_end"]
    if end > limit:
        problems.append(f"ddr: base {ddr['base']:#x} + size {ddr['size']:#x} ends at {end:#x}, "
                        f"beyond the {family} DDR window ending at {limit:#x}")
    return problems
