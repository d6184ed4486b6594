"""The board install (``pip install .``) in environments shaped like the PYNQ SD images.

``make board-envs`` (``.ci/board_envs.sh``) builds, once, pyenv's Python with each image's numpy and
pynq: v2.7 (Python 3.8, numpy 1.20.3, pynq 2.7.0, no pynqmetadata), v3.0.1 and v3.1 (Python 3.10,
numpy 1.21.5, pynq 3.0.1 / 3.1.2 with pynqmetadata 0.1.x). Each test installs psqs' wheel from
this working tree there with no package index at all (so it can neither upgrade numpy nor fetch
yaml, TensorFlow …), then runs the board side in that interpreter and checks what it computes
against this venv's C simulation and the package's own test vectors.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_emulator_support import tiny_rtl_source


REPO = Path(__file__).resolve().parents[1]
ENVS_DIR = Path(os.environ.get("PSQS_BOARD_ENVS", REPO / ".venv-boards"))
PYENV = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
#: name -> (pyenv Python, the image's numpy, pynq, pynqmetadata or None); as in .ci/board_envs.sh
IMAGES = {
    "py38-pynq27": ("3.8.18", "1.20.3", "2.7.0", None),
    "py310-pynq301": ("3.10.13", "1.21.5", "3.0.1", "0.1.2"),
    "py310-pynq31": ("3.10.13", "1.21.5", "3.1.2", "0.1.9"),
}
TIMEOUT = 300

pytestmark = pytest.mark.slow


def _clean_pip_env() -> dict:
    """pip with no index, no find-links and no config: only what the environment already has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def run(python: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python ARGS`` in the environment's own directory (the work tree's psqs.egg-info must not
    shadow the installed metadata)."""
    proc = subprocess.run([str(python), *args], capture_output=True, text=True, timeout=TIMEOUT,
                          env=_clean_pip_env(), cwd=python.parent)
    if check and proc.returncode:
        raise AssertionError(f"{python} {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def envs() -> Path:
    """The image-like environments, built now if missing (cached otherwise; the script says why it
    skips one, e.g. pyenv's Python absent)."""
    subprocess.run(["bash", str(REPO / ".ci" / "board_envs.sh"), str(ENVS_DIR)], check=True, timeout=900)
    return ENVS_DIR


@pytest.fixture(scope="module")
def wheel(tmp_path_factory, envs) -> Path:
    """psqs' wheel, built from this working tree by the oldest image's Python (3.8) with no index."""
    python = envs / "py38-pynq27" / "bin" / "python"
    if not python.exists():
        pytest.skip(f"{python} not built: Python 3.8.18 missing from pyenv ({PYENV})")
    out = tmp_path_factory.mktemp("wheel")
    src = tmp_path_factory.mktemp("src") / "psqs"
    # a copy of the tracked sources, so that the build writes nothing into the work tree
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                           text=True, check=True).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes((REPO / name).read_bytes())
    run(python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(out), str(src))
    (built,) = out.glob("psqs-*.whl")
    return built


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A real emulation overlay package (psqs build, this venv) of the small C stand-in model."""
    from psqs.overlays.build import build

    root = tmp_path_factory.mktemp("board-install")
    return build(tiny_rtl_source(root, 300, seed=1, span=30000, cycles=False), "pynq-z2", root / "pkg",
                 emulation=True)


@pytest.fixture(scope="module", params=sorted(IMAGES))
def board_python(request, envs, wheel) -> Path:
    """One image-like environment with psqs freshly installed from the wheel (no index)."""
    name = request.param
    pyver, numpy_version, pynq_version, _ = IMAGES[name]
    python = envs / name / "bin" / "python"
    if not python.exists():
        pytest.skip(f"{name} not built: Python {pyver} missing from pyenv ({PYENV})")
    run(python, "-m", "pip", "uninstall", "--yes", "--quiet", "psqs", check=False)
    run(python, "-m", "pip", "install", "--quiet", str(wheel))
    versions = json.loads(run(python, "-c", "import json; from importlib import metadata as m; "
                                            "print(json.dumps({d: m.version(d) for d in ('numpy', 'pynq', 'psqs')}))").stdout)
    assert versions["numpy"] == numpy_version and versions["pynq"] == pynq_version, versions
    return python


def test_the_board_install_has_every_host_module_and_no_build_dependency(board_python):
    """Every module of psqs.host and psqs.common imports on the image's Python and numpy (3.9+
    syntax or stdlib at run time would fail here), and psqs asks for nothing but numpy (the
    no-index install above proves the image's numpy already satisfies it). ``rpc_deadlines``
    serves only the PYNQ.remote client, whose transport (grpc) comes with pynq >= 3.1."""
    out = run(board_python, "-c", """
import importlib, importlib.util as u, pkgutil, psqs.common, psqs.host
skip = {'__main__'} | (set() if u.find_spec('grpc') else {'rpc_deadlines'})
mods = sorted(f'{p.__name__}.{m.name}' for p in (psqs.common, psqs.host)
              for m in pkgutil.iter_modules(p.__path__) if m.name not in skip)
for m in mods:
    importlib.import_module(m)
from importlib import metadata
print(len(mods), [r for r in metadata.requires('psqs') if 'extra ==' not in r])
""").stdout.split(maxsplit=1)
    assert int(out[0]) >= 19 and out[1].strip() == "['numpy>=1.20']", out


def test_board_entry_point_and_console_script(board_python, package):
    """``python -m psqs.host`` and the ``psqs`` script work on the board install alone; a build
    command names the missing extra, and a bench without a board (this machine has no pynq device)
    gets as far as pynq's device discovery and says so in one line."""
    bin_dir = board_python.parent
    version = run(board_python, "-m", "psqs.host", "--version").stdout
    assert version.strip() == "python3 -m psqs.host 0.1.0", version
    assert "--batch-sizes" in run(board_python, "-m", "psqs.host", "bench", "--help").stdout
    assert run(bin_dir / "psqs", "--version").stdout.strip() == "psqs 0.1.0"
    assert "--batch-sizes" in run(bin_dir / "psqs", "bench", "--help").stdout
    # a build-server command: one line naming the extra, no traceback
    proc = run(bin_dir / "psqs", "train", "--out", "x", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("psqs: error: 'psqs train' needs the build-server install") \
        and "pip install 'psqs[build]'" in proc.stderr, proc.stderr
    proc = run(bin_dir / "psqs", "bench", str(package), "--batch-sizes", "1", "--repeats", "1", check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("psqs: error: pynq found no board"), proc.stderr


def test_board_side_codec_matches_the_c_simulation(board_python, package, tmp_path):
    """The image's Python and numpy verify the package (sha256s) and encode its test vectors; this
    venv's C simulation of the package computes on those bus bytes; the board side decodes the
    result, which must equal the package's C-simulation logits exactly."""
    from psqs.hls.csim import AxisLibrary
    from psqs.common.codec import FeatureEncoder
    from psqs.common.package import OverlayPackage

    encode = """
import sys, numpy as np
from psqs.common.codec import FeatureEncoder
from psqs.common.package import OverlayPackage
pkg = OverlayPackage(sys.argv[1])
X = pkg.test_vectors()['X']
layout = pkg.contract.input
out = np.zeros(len(X) * layout.bytes_per_sample, np.uint8)
saturated = FeatureEncoder(layout, *pkg.scaler)(X, out)
np.save(sys.argv[2], out)
print(saturated)
"""
    assert run(board_python, "-c", encode, str(package), str(tmp_path / "in.npy")).stdout.strip() == "0"
    board_bytes = np.load(tmp_path / "in.npy")
    pkg = OverlayPackage(package)
    mine = np.zeros_like(board_bytes)
    FeatureEncoder(pkg.contract.input, *pkg.scaler)(pkg.test_vectors()["X"], mine)
    np.testing.assert_array_equal(board_bytes, mine)           # same bytes on either numpy

    (library,) = (package / "emulation").rglob("*.so")
    out, last = AxisLibrary(library).transfer(board_bytes)
    np.save(tmp_path / "out.npy", out)
    decode = """
import sys, numpy as np
from psqs.common.codec import decode_bytes
from psqs.common.package import OverlayPackage
pkg = OverlayPackage(sys.argv[1])
expected = pkg.test_vectors()['csim_logits']
got = decode_bytes(pkg.contract.output, np.load(sys.argv[2]), len(expected))
print(int(np.count_nonzero(got != expected)), len(expected))
import json
from psqs.common.classification import evaluate
print(json.dumps(evaluate(got, pkg.test_vectors()['y'], list('twzqg'), 'test vectors')))
"""
    counts, accuracy = run(board_python, "-c", decode, str(package), str(tmp_path / "out.npy")).stdout.splitlines()
    assert counts.split() == ["0", "300"] and last[-1] == 1, counts
    # the accuracy figures (softmax, ROC, AUC, confusion) on the image's numpy and on this one
    from psqs.common.classification import evaluate

    mine = evaluate(pkg.test_vectors()["csim_logits"], pkg.test_vectors()["y"], list("twzqg"), "test vectors")
    assert json.loads(accuracy) == json.loads(json.dumps(mine))


COMPAT_PROBE = """
import logging, os
logging.basicConfig(level=logging.INFO, format='LOG %(name)s: %(message)s')
os.environ['PYNQ_REMOTE_DEVICES'] = '127.0.0.1'     # bound_remote_calls must not connect
from psqs.host import pynq_compat as c
print(c.installed('pynq'), c.installed('pynqmetadata'), c.zynq7_clock_bug_present(), c.apply(), c.apply())
c.bound_remote_calls(1.0)
c.bound_remote_calls(2.0)
"""


def _compat(python: Path) -> tuple[list[str], list[str]]:
    proc = subprocess.run([str(python), "-c", COMPAT_PROBE], capture_output=True, text=True, timeout=TIMEOUT,
                          cwd=python.parent)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split(), [line for line in proc.stderr.splitlines() if line.startswith("LOG ")]


def test_pynq_compat_is_a_no_op_on_the_images_pynq(board_python):
    """The images' pynq has nothing broken the way pynqmetadata 0.2.0 is: no patch, no log, and no
    ImportError/AttributeError (pynq 2.7 has no pynqmetadata, 0.1.x no clock lookup by name).
    Only pynq 3.1, the first with a PYNQ.remote client, gets its calls bounded (once)."""
    name = board_python.parent.parent.name
    _, _, pynq_version, metadata_version = IMAGES[name]
    printed, logs = _compat(board_python)
    assert printed == [pynq_version, str(metadata_version), "False", "False", "False"], printed
    bounded = [f"LOG psqs.host.pynq_compat: pynq {pynq_version}: PYNQ.remote calls bounded to 1 s "
               "(pynq sets no deadline)"]
    assert logs == (bounded if name == "py310-pynq31" else []), logs


def test_pynq_compat_patches_pynqmetadata_0_2_once_and_says_so():
    """This venv's pynq 4.0.0 / pynqmetadata 0.2.0 has the Zynq-7000 clock bug: patched by the first
    apply() only, with one INFO line naming the versions; afterwards the bug is gone."""
    from importlib import metadata

    printed, logs = _compat(Path(sys.executable))
    pynq_version, metadata_version = metadata.version("pynq"), metadata.version("pynqmetadata")
    assert printed == [pynq_version, metadata_version, "True", "True", "False"], printed
    assert logs[0] == (f"LOG psqs.host.pynq_compat: pynq {pynq_version} / pynqmetadata {metadata_version}: "
                       "patched ZynqProcSysCore.clk_freq_param_name to PCW_ACT_FPGA{clk_id}_PERIPHERAL_FREQMHZ "
                       "(Zynq-7000 PL clock read from the ZynqMP parameter)"), logs
    assert len(logs) == 2 and "PYNQ.remote calls bounded to 1 s" in logs[1], logs
