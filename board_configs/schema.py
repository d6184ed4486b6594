"""The JSON Schema every board file must satisfy, generated from the facts of each PS family.

What a board file may say about its processing system is not a matter of taste: which PS IP a
part carries, which ports exist and how wide they can be, which address window a general-purpose
master decodes and how the ``.hwh`` names the PL clock parameters are properties of the silicon
(Zynq-7000 TRM UG585, Zynq UltraScale+ TRM UG1085). They are written once, in :data:`FAMILIES`, and
turned into ``if``/``then`` rules so that a board file cannot pair a Zynq-7000 part with a ZynqMP
port, or put its AXI-Lite slaves outside the window its master port reaches.

Subschemas carry an ``x-expect`` phrase ("a positive integer") that the loader turns into
messages of the form ``<file>: <field>: must be <x-expect>, got <value>``.
"""
from __future__ import annotations

GIB = 1 << 30

FAMILIES: dict[str, dict] = {
    "zynq": {
        "ps": "processing_system7",
        "arch": "armv7l",
        # xc7z<3 digits>[s]<package><pins>-<speed>, e.g. xc7z020clg400-1, xc7z007sclg225-1
        "part_pattern": r"^xc7z\d{3}s?[a-z]{3}\d{3,4}-[123]L?$",
        "part_example": "xc7z020clg400-1",
        "hp_ports": ["S_AXI_HP0", "S_AXI_HP1", "S_AXI_HP2", "S_AXI_HP3"],
        "hp_widths": [32, 64],
        # UG585 table 4-1: M_AXI_GP0 decodes 0x4000_0000-0x7FFF_FFFF, M_AXI_GP1 0x8000_0000-0xBFFF_FFFF
        "gp_ports": {"M_AXI_GP0": (0x4000_0000, GIB), "M_AXI_GP1": (0x8000_0000, GIB)},
        "gp_widths": [32],
        # UG585: DDR occupies at most 0x0000_0000-0x3FFF_FFFF
        "ddr_end": GIB,
        "clock_port": "FCLK_CLK{n}",
        "timing_clock": "clk_fpga_{n}",
        "param_prefix": "PCW_",
        # UG585 "PLL frequency control settings": IO PLL = PS_CLK x PLL_FDIV, PLL_FDIV 13..66
        "io_pll_fbdiv": (13, 66),
        "io_pll_post_div": 1,
    },
    "zynquplus": {
        "ps": "zynq_ultra_ps_e",
        "arch": "aarch64",
        # xczu<n><cg|eg|ev|dr>-<package>-<speed>-<temperature>, and the Kria SOM parts xck24/xck26
        "part_pattern": r"^(xczu\d{1,2}(cg|eg|ev|dr)|xck2[46])-[a-z]{4}\d{3,4}-[123](L|LV)?-[eic]$",
        "part_example": "xczu7ev-ffvc1156-2-e",
        "hp_ports": ["S_AXI_HP0_FPD", "S_AXI_HP1_FPD", "S_AXI_HP2_FPD", "S_AXI_HP3_FPD",
                     "S_AXI_HPC0_FPD", "S_AXI_HPC1_FPD"],
        "hp_widths": [32, 64, 128],
        # UG1085 table 10-1, the 32-bit ("low") windows of the PL master ports
        "gp_ports": {"M_AXI_HPM0_FPD": (0xA000_0000, 256 << 20),
                     "M_AXI_HPM1_FPD": (0xB000_0000, 256 << 20),
                     "M_AXI_HPM0_LPD": (0x8000_0000, 512 << 20)},
        "gp_widths": [32, 64, 128],
        # UG1085: "DDR low" is 0x0000_0000-0x7FFF_FFFF; DDR high starts at 0x8_0000_0000
        "ddr_end": 2 * GIB,
        "clock_port": "pl_clk{n}",
        "timing_clock": "clk_pl_{n}",
        "param_prefix": "PSU__",
        # UG1085 PLL control: IOPLL = PSS_REF_CLK x FBDIV (25..125) / 2, with DIV2 = 1 as in every
        # handoff seen (ZCU104, KV260, RFSoC)
        "io_pll_fbdiv": (25, 125),
        "io_pll_post_div": 2,
    },
}

# Parameters of the PS cell in a .hwh that describe PL clock n ({n} is substituted).
HWH_CLOCK_PARAMS = ("enable", "freq_mhz", "act_freq_mhz", "divisor0", "divisor1")
RESOURCES = ("LUT", "FF", "DSP", "BRAM_18K", "URAM")


def _str(pattern: str, expect: str) -> dict:
    return {"type": "string", "pattern": pattern, "x-expect": expect}


def _count(minimum: int) -> dict:
    expect = "a positive integer" if minimum > 0 else "a non-negative integer"
    return {"type": "integer", "minimum": minimum, "x-expect": expect}


def _obj(properties: dict, required=None) -> dict:
    return {"type": "object", "x-expect": "a mapping", "properties": properties,
            "required": list(properties if required is None else required),
            "additionalProperties": False}


def _family_rules(family: str, facts: dict) -> dict:
    """``if family == <family> then <what that family's silicon allows>``."""
    def const(value, expect: str) -> dict:
        return {"const": value, "x-expect": expect}

    gp_windows = [
        {"if": {"properties": {"gp_port": {"const": port}}, "required": ["gp_port"]},
         "then": {"properties": {
             "pl_slave_base": {**const(base, f"{base:#x}, the base of the {port} window"),
                               "x-hex": True},
             "pl_slave_size": {**const(size, f"{size:#x}, the size of the {port} window"),
                               "x-hex": True}}}}
        for port, (base, size) in facts["gp_ports"].items()]
    prefix = facts["param_prefix"]
    fbdiv_min, fbdiv_max = facts["io_pll_fbdiv"]
    param = _str(rf"^{prefix}[A-Z0-9_]*\{{n\}}[A-Z0-9_]*$",
                 f"a {facts['ps']} parameter name starting with {prefix} and containing {{n}}")
    return {
        "if": {"properties": {"family": {"const": family}}, "required": ["family"]},
        "then": {"properties": {
            "part": _str(facts["part_pattern"],
                         f"a {family} Vivado part string such as {facts['part_example']}"),
            "arch": const(facts["arch"], f"{facts['arch']!r} for family {family}"),
            "ps": {"properties": {
                "ip": const(facts["ps"], f"{facts['ps']!r} for family {family}"),
                "hp_port": {"enum": facts["hp_ports"],
                            "x-expect": f"one of {', '.join(facts['hp_ports'])}"},
                "hp_data_width": {"enum": facts["hp_widths"],
                                  "x-expect": f"one of {facts['hp_widths']} bits"},
                "gp_port": {"enum": list(facts["gp_ports"]),
                            "x-expect": f"one of {', '.join(facts['gp_ports'])}"},
                "gp_data_width": {"enum": facts["gp_widths"],
                                  "x-expect": f"one of {facts['gp_widths']} bits"}},
                "allOf": gp_windows},
            "clocks": {"properties": {
                "io_pll_fbdiv": {"type": "integer", "minimum": fbdiv_min, "maximum": fbdiv_max,
                                 "x-expect": f"an integer in {fbdiv_min}..{fbdiv_max} "
                                             f"(the {family} IO PLL multiplier)"},
                "names": {"properties": {
                    "port": const(facts["clock_port"], repr(facts["clock_port"])),
                    "timing_clock": const(facts["timing_clock"], repr(facts["timing_clock"])),
                    **{key: param for key in HWH_CLOCK_PARAMS}}}}},
            "ddr": {"properties": {
                "size": {"maximum": facts["ddr_end"], "x-hex": True,
                         "x-expect": f"at most {facts['ddr_end']:#x} (the {family} DDR window)"}}},
        }},
    }


def build_schema() -> dict:
    mhz = {"type": "number", "exclusiveMinimum": 0, "maximum": 1000,
           "x-expect": "a frequency in MHz in (0, 1000]"}
    text = {"type": "string", "minLength": 1, "x-expect": "a non-empty string"}
    schema = _obj({
        "name": _str(r"^[a-z0-9][a-z0-9-]*$", "a lower-case board name such as pynq-z2"),
        "description": text,
        "family": {"enum": list(FAMILIES), "x-expect": f"one of {', '.join(FAMILIES)}"},
        "part": _str(r"^x", "a Vivado part string"),
        "board_part": _str(r"^[a-z0-9.-]+:[a-z0-9_.-]+:part0:\d+\.\d+$",
                           "a Vivado board_part such as tul.com.tw:pynq-z2:part0:1.0"),
        "arch": {"enum": sorted({f["arch"] for f in FAMILIES.values()}),
                 "x-expect": "armv7l or aarch64"},
        "pynq_board": text,
        "pynq_remote": {"type": "boolean", "x-expect": "true or false"},
        "notes": text,
        "ps": _obj({
            "ip": {"enum": [f["ps"] for f in FAMILIES.values()],
                   "x-expect": f"one of {', '.join(f['ps'] for f in FAMILIES.values())}"},
            "hp_port": text,
            "hp_data_width": _count(1),
            "gp_port": text,
            "gp_data_width": _count(1),
            "pl_slave_base": {**_count(0), "x-hex": True},
            "pl_slave_size": {**_count(1), "x-hex": True},
        }),
        "clocks": _obj({
            "fclk": {"type": "integer", "minimum": 0, "maximum": 3,
                     "x-expect": "a PL clock index 0..3"},
            "fclk_mhz": mhz,
            "ps_ref_mhz": mhz,
            "io_pll_fbdiv": _count(1),
            "defaults_mhz": {"type": "array", "items": mhz, "minItems": 4, "maxItems": 4,
                             "x-expect": "a list of 4 frequencies in MHz (PL clocks 0..3)"},
            "names": _obj({key: {"type": "string", "pattern": r"\{n\}",
                                 "x-expect": "a name template containing {n}"}
                           for key in ("port", "timing_clock", *HWH_CLOCK_PARAMS)}),
        }),
        "ddr": _obj({
            "base": {**_count(0), "x-hex": True},
            "size": {**_count(1 << 20), "multipleOf": 1 << 20, "x-hex": True,
                     "x-expect": "a size in bytes, a whole number of MiB"},
        }),
        "resources": _obj({key: _count(0 if key == "URAM" else 1) for key in RESOURCES},
                          required=[r for r in RESOURCES if r != "URAM"]),
    }, required=["name", "description", "family", "part", "board_part", "arch", "pynq_board",
                 "pynq_remote", "ps", "clocks", "ddr", "resources"])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["allOf"] = [_family_rules(family, facts) for family, facts in FAMILIES.items()]
    return schema


SCHEMA = build_schema()
