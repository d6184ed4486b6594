"""The pipeline's import rules, checked on the source so that a shortcut cannot creep in.

Data flows forward only (qap -> hls -> overlays -> host run -> deploy), so code may only import
earlier stages. Two packages are shared by every stage: ``board_configs`` (configuration as data)
and ``host``, which defines the I/O contract and fixed-point semantics and must run alone on a
PYNQ image with numpy and pynq only, so it imports no other psqs package (``board_configs`` may
import ``host``: every expected failure derives from ``psqs.common.errors.PsqsError``).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ORDER = ["qap", "hls", "overlays", "host", "deploy"]
SHARED = {"board_configs", "common"}
BOARD_INSTALL = ("common", "host")
#: What a PYNQ image offers the board runtime (pynqmetadata and grpc, PYNQ.remote's transport,
#: are dependencies of pynq 4.0 itself); matplotlib is optional there and its import is guarded.
BOARD_THIRD_PARTY = {"numpy", "pynq", "pynqmetadata", "grpc", "matplotlib"}


def _imports(package: str) -> dict[str, set[str]]:
    """``{module file: absolute module names it imports}`` for one top-level folder.

    Relative imports are resolved against the file's own package (``from ..x import y`` in
    ``hls/rtl/stage.py`` is ``psqs.hls.x``), and ``from psqs import hls`` counts as ``psqs.hls``.
    """
    found = {}
    for file in sorted((REPO / package).rglob("*.py")):
        home = ["psqs", *file.relative_to(REPO).parts[:-1]]     # the package the file is in
        names = set()
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*home[: len(home) - node.level + 1], *([base] if base else [])])
                names.update(f"{base}.{alias.name}" if base == "psqs" else base for alias in node.names)
        found[str(file.relative_to(REPO))] = names
    return found


def _psqs_packages(names: set[str]) -> set[str]:
    return {name.split(".")[1] for name in names if name.startswith("psqs.")}


@pytest.mark.parametrize("package", ORDER + sorted(SHARED))
def test_imports_point_backwards_along_the_pipeline(package):
    # common is the lowest layer (its errors are every stage's base); board_configs may use it;
    # the board runtime sees nothing but the board install
    allowed = ({package, "common"} if package == "board_configs" else {package} if package in SHARED
               else set(BOARD_INSTALL) if package == "host" else SHARED | set(ORDER[: ORDER.index(package) + 1]))
    wrong = {file: sorted(_psqs_packages(names) - allowed)
             for file, names in _imports(package).items() if _psqs_packages(names) - allowed}
    assert not wrong, f"{package} may import only {sorted(allowed)}; found {wrong}"


@pytest.mark.parametrize("package", BOARD_INSTALL)
def test_the_board_install_needs_only_what_a_pynq_image_has(package):
    wrong = {}
    for file, names in _imports(package).items():
        third_party = {name.split(".")[0] for name in names} - set(sys.stdlib_module_names) - {"psqs"}
        if third_party - BOARD_THIRD_PARTY:
            wrong[file] = sorted(third_party - BOARD_THIRD_PARTY)
    assert not wrong, f"{package} must run on a PYNQ image (numpy + pynq): {wrong}"
