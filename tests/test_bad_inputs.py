"""Bad inputs across every subcommand, as a new user gives them: each is refused with one line.

Every row runs a real command line (``psqs ...`` through ``main()`` in this process, or in a child
process where the row needs its own environment or the command could otherwise serve forever) and
asserts the exit status (2 bad input, 1 failed run), exactly one line on stderr, starting
``psqs: error:`` and naming the option, file or tool, no traceback, and that nothing changed on
disk except the run's own outputs: the directory tree (paths, sizes, mtimes, sha256) of the row's
directory and of the shared artifacts is snapshotted before and after.

The artifacts (a tiny trained model, its HLS conversion and emulation overlay) are made once per
session; rows that damage one work on a copy. Issue 13 lists the inputs found on main.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from conftest import resign_manifest

from psqs.deploy.cli import main
from psqs.qap.data import FEATURES

pytestmark = pytest.mark.slow

TINY = dict(epochs=1, patience=1, batch_size=256, max_train=1000, test_vectors=100, widths=(8, 8, 8), bits=6)


@dataclass(frozen=True)
class Artifacts:
    root: Path
    data: Path
    model: Path
    hls: Path
    overlay: Path


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory, synthetic_npz) -> Artifacts:
    from psqs.hls import stage as hls_stage
    from psqs.overlays.build import build
    from psqs.qap import stage as qap_stage
    from psqs.qap.config import TrainConfig

    root = tmp_path_factory.mktemp("bad_inputs_artifacts")
    data = Path(shutil.copy(synthetic_npz, root / "jets.npz"))
    model = qap_stage.run(TrainConfig(data=str(data), **TINY), root / "model").path
    hls = hls_stage.run(model, root / "hls", hls_stage.options_for_board("pynq-z2"))
    overlay = build(hls, "pynq-z2", root / "overlay", emulation=True)
    return Artifacts(root, data, model, hls, overlay)


# --------------------------------------------------------------------------- row set-ups
# Each takes (row directory, artifacts) and makes the input the row needs inside the row directory.

def thesis(tmp: Path, art: Artifacts) -> None:
    """A directory that holds someone's work, not a psqs artifact."""
    (tmp / "thesis" / "figures").mkdir(parents=True)
    (tmp / "thesis" / "thesis.tex").write_text("\\documentclass{report}\n")
    (tmp / "thesis" / "figures" / "roc.pdf").write_bytes(b"%PDF-1.4\n")


def a_file(tmp: Path, art: Artifacts) -> None:
    (tmp / "afile").write_text("not a directory\n")


def empty_dir(tmp: Path, art: Artifacts) -> None:
    (tmp / "empty").mkdir()


def data_variant(kind: str) -> Callable[[Path, Artifacts], None]:
    """Data files that are damaged or wrong in one way."""
    def make(tmp: Path, art: Artifacts) -> None:
        raw = art.data.read_bytes()
        if kind == "truncated":
            (tmp / "jets.npz").write_bytes(raw[: len(raw) // 2])
        elif kind == "corrupt":
            middle = len(raw) // 2
            (tmp / "jets.npz").write_bytes(raw[:middle] + bytes([raw[middle] ^ 0xFF]) + raw[middle + 1:])
        elif kind == "empty":
            (tmp / "jets.npz").write_bytes(b"")
        elif kind == "text":
            (tmp / "jets.npz").write_text("X,y\n1,2\n")
        else:
            with np.load(art.data) as npz:
                arrays = {k: npz[k] for k in npz.files}
            if kind == "no-labels":
                del arrays["y"]
            elif kind == "nan":
                arrays["X"][3, 5] = np.nan
            elif kind == "bad-classes":
                arrays["class_names"] = np.array(["a", "b", "c", "d", "e"])
            np.savez(tmp / "jets.npz", **arrays)
    return make


def sweep_spec(text: str) -> Callable[[Path, Artifacts], None]:
    """A sweep spec ``{tmp}/s.yaml`` (its data: the session's jets), plus someone's thesis beside it."""
    def make(tmp: Path, art: Artifacts) -> None:
        (tmp / "s.yaml").write_text(f"data: {art.data}\n" + text)
        thesis(tmp, art)
    return make


SPEC = "bits: [6]\nmethods: [qat]\nwidths: [8]\ntraining: {epochs: 1, max_train: 500}\n"


def csv_without_class(tmp: Path, art: Artifacts) -> None:
    (tmp / "jets.csv").write_text(",".join(FEATURES) + "\n" + ",".join(["1.0"] * len(FEATURES)) + "\n")


def artifact_copy(which: str, damage: Callable[[Path], None] | None = None, resign: bool = False):
    """A copy of one of the session's artifacts under the row directory, damaged by ``damage``
    (and, with ``resign``, given a manifest that matches the damage, so that the check behind
    the checksums is what refuses it)."""
    def make(tmp: Path, art: Artifacts) -> None:
        target = tmp / which
        shutil.copytree(getattr(art, which), target)
        if damage:
            damage(target)
        if resign:
            resign_manifest(target)
    return make


def edit_manifest(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        manifest = json.loads((directory / "manifest.json").read_text())
        edit(manifest)
        (directory / "manifest.json").write_text(json.dumps(manifest))
    return damage


def truncate(name: str) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        path = directory / name
        path.write_bytes(path.read_bytes()[:200])
    return damage


def append(name: str) -> Callable[[Path], None]:
    def damage(directory: Path) -> None:
        with open(next(directory.glob(name)), "ab") as f:
            f.write(b"\0")
    return damage


def lambda_model(tmp: Path, art: Artifacts) -> None:
    """The model with a Lambda layer whose code would create ``lambda-ran`` (see test_model_safety)."""
    from test_model_safety import _lambda_model, _with_model_file

    evil = _lambda_model(art.model, tmp / "lambda-ran")
    _with_model_file(art.model, tmp / "model", lambda p: evil.save(p, save_format="h5"))


def fake_vendor_tools(tmp: Path, art: Artifacts) -> None:
    """``vivado`` and ``vitis_hls`` that report their version and fail every run, as an unlicensed
    installation does."""
    (tmp / "bin").mkdir()
    for tool in ("vivado", "vitis_hls"):
        script = tmp / "bin" / tool
        script.write_text("#!/bin/sh\n"
                          f'if [ "$1" = "-version" ]; then echo "{tool} v2023.2 (64-bit)"; exit 0; fi\n'
                          "echo 'INFO: [Common 17-206] starting'\n"
                          "echo 'ERROR: [Common 17-345] A valid license was not found for feature HLS'\n"
                          "exit 1\n")
        script.chmod(script.stat().st_mode | stat.S_IXUSR)


def foreign_demo_model(tmp: Path, art: Artifacts) -> None:
    """A demo directory whose ``model`` subdirectory is someone's thesis."""
    thesis(tmp, art)
    (tmp / "demo").mkdir()
    (tmp / "thesis").rename(tmp / "demo" / "model")


# --------------------------------------------------------------------------- the table

@dataclass(frozen=True)
class Row:
    id: str
    args: str                     # the command line after "psqs", with {tmp} {data} {model} {hls} {overlay}
    status: int                   # 2 bad input, 1 failed run
    names: tuple[str, ...]        # what the error line must name
    setup: Callable | None = None
    env: dict = field(default_factory=dict)   # a child process with these variables ({tmp} expanded)
    spawn: bool = False           # a child process even without env
    outputs: tuple[str, ...] = ()  # what the run may create or change, relative to the row directory
    timeout: float = 300          # a child process still running then fails the row
    unset: tuple[str, ...] = ()   # environment variables the child process must not have


def R(id, args, status, *names, **kw) -> Row:
    return Row(id, args, status, names, **kw)


OUT = "--out {tmp}/out"
NO_GXX = {"PATH": "{tmp}/empty"}
ROWS = [
    # ---- train: data files
    R("train-data-missing", f"train {OUT} --data {{tmp}}/nope.npz", 2, "nope.npz", "no such file"),
    R("train-data-truncated", f"train {OUT} --data {{tmp}}/jets.npz", 2, "jets.npz", "not a readable .npz",
      setup=data_variant("truncated")),
    R("train-data-corrupt", f"train {OUT} --data {{tmp}}/jets.npz", 2, "jets.npz", "Bad CRC-32",
      setup=data_variant("corrupt")),
    R("train-data-empty", f"train {OUT} --data {{tmp}}/jets.npz", 2, "jets.npz", "not a readable .npz",
      setup=data_variant("empty")),
    R("train-data-text", f"train {OUT} --data {{tmp}}/jets.npz", 2, "jets.npz", "not a readable .npz",
      setup=data_variant("text")),
    R("train-data-no-labels", f"train {OUT} --data {{tmp}}/jets.npz", 2, "jets.npz", "'y'",
      setup=data_variant("no-labels")),
    R("train-data-nan", f"train {OUT} --data {{tmp}}/jets.npz", 2, "jets.npz", "non-finite",
      setup=data_variant("nan")),
    R("train-data-classes", f"train {OUT} --data {{tmp}}/jets.npz", 2, "jets.npz", "class_names",
      setup=data_variant("bad-classes")),
    R("train-data-csv-no-class", f"train {OUT} --data {{tmp}}/jets.csv", 2, "jets.csv", "'class'",
      setup=csv_without_class),
    R("train-data-suffix", f"train {OUT} --data {{tmp}}/afile", 2, "afile", "unsupported file type", setup=a_file),
    # ---- train: options
    R("train-l1-nan", f"train {OUT} --l1 nan", 2, "--l1", "finite"),
    R("train-l1-negative", f"train {OUT} --l1=-1e-4", 2, "--l1", ">= 0"),
    R("train-lr-inf", f"train {OUT} --lr inf", 2, "--lr", "finite"),
    R("train-lr-zero", f"train {OUT} --lr 0", 2, "--lr", "> 0"),
    R("train-bits", f"train {OUT} --bits 3 --data {{data}}", 2, "bits=3"),
    R("train-relu-integer", f"train {OUT} --bits 6 --relu-integer 6 --data {{data}}", 2, "relu_integer=6"),
    R("train-sparsity-range", f"train {OUT} --pruning imp-lt --sparsity 1.5", 2, "--sparsity", "[0, 1)"),
    R("train-sparsity-nan", f"train {OUT} --pruning imp-lt --sparsity nan", 2, "--sparsity", "finite"),
    R("train-sparsity-without-pruning", f"train {OUT} --sparsity 0.5 --data {{data}}", 2, "sparsity", "--pruning"),
    R("train-pruning-unknown", f"train {OUT} --pruning random", 2, "--pruning", "random"),
    R("train-epochs-zero", f"train {OUT} --epochs 0", 2, "--epochs", ">= 1"),
    R("train-batch-negative", f"train {OUT} --batch-size -5", 2, "--batch-size"),
    R("train-seed-negative", f"train {OUT} --seed -1", 2, "--seed"),
    R("train-widths-text", f"train {OUT} --widths 64,x", 2, "--widths", "64,x"),
    R("train-widths-zero", f"train {OUT} --widths 0,32", 2, "--widths"),
    R("train-max-train", f"train {OUT} --max-train 2 --data {{data}}", 2, "max_train=2"),
    R("train-test-vectors-zero", f"train {OUT} --test-vectors 0", 2, "--test-vectors"),
    R("train-epochs-float", f"train {OUT} --epochs 1.5", 2, "--epochs", "'1.5'"),
    R("train-unknown-option", f"train {OUT} --bitz 6", 2, "unrecognized arguments", "--bitz"),
    R("train-out-missing", "train --bits 6", 2, "--out"),
    R("train-out-exists", "train --out {tmp}/thesis --data {data}", 2, "thesis", "--force", setup=thesis),
    R("train-force-foreign-dir", "train --out {tmp}/thesis --force --data {data} --epochs 1 --max-train 500",
      2, "thesis", "thesis.tex", setup=thesis),
    R("train-quiet-after-subcommand", "train -q --l1 nan " + OUT, 2, "--l1"),
    # ---- convert: model directories, options, tools
    R("convert-model-missing", f"convert {{tmp}}/nothing {OUT}", 2, "nothing", "not a directory"),
    R("convert-not-an-artifact", f"convert {{tmp}}/thesis {OUT}", 2, "thesis", "manifest.json", setup=thesis),
    R("convert-wrong-kind", f"convert {{hls}} {OUT}", 2, "manifest.json", "psqs.hls"),
    R("convert-manifest-garbage", f"convert {{tmp}}/model {OUT}", 2, "manifest.json", "unreadable",
      setup=artifact_copy("model", lambda d: (d / "manifest.json").write_text("{not json"))),
    R("convert-manifest-newer", f"convert {{tmp}}/model {OUT}", 2, "manifest.json", "format_version 99",
      setup=artifact_copy("model", edit_manifest(lambda m: m.update(format_version=99)))),
    R("convert-manifest-no-files", f"convert {{tmp}}/model {OUT}", 2, "manifest.json", "'files'",
      setup=artifact_copy("model", edit_manifest(lambda m: m.pop("files")))),
    R("convert-sha-mismatch", f"convert {{tmp}}/model {OUT}", 2, "metrics.json", "sha256",
      setup=artifact_copy("model", append("metrics.json"))),
    R("convert-file-missing", f"convert {{tmp}}/model {OUT}", 2, "masks.npz", "missing",
      setup=artifact_copy("model", lambda d: (d / "masks.npz").unlink())),
    R("convert-extra-file", f"convert {{tmp}}/model {OUT}", 2, "notes.txt", "not in the manifest",
      setup=artifact_copy("model", lambda d: (d / "notes.txt").write_text("hi"))),
    R("convert-test-vectors-truncated", f"convert {{tmp}}/model {OUT}", 2, "test_vectors.npz",
      "not a readable .npz", setup=artifact_copy("model", truncate("test_vectors.npz"), resign=True)),
    R("convert-model-h5-truncated", f"convert {{tmp}}/model {OUT}", 2, "model.h5",
      setup=artifact_copy("model", truncate("model.h5"), resign=True)),
    R("convert-lambda-layer", f"convert {{tmp}}/model {OUT}", 2, "model.h5", "Lambda", setup=lambda_model),
    R("convert-reuse-zero", f"convert {{model}} {OUT} --reuse 0", 2, "--reuse"),
    R("convert-clock-nan", f"convert {{model}} {OUT} --clock-period nan", 2, "--clock-period", "finite"),
    R("convert-clock-range", f"convert {{model}} {OUT} --clock-period 1000", 2, "clock_period=1000"),
    R("convert-bus-width", f"convert {{model}} {OUT} --bus-width 12", 2, "bus_bits=12"),
    R("convert-interface-unknown", f"convert {{model}} {OUT} --interface hls4ml-double", 2, "--interface",
      "hls4ml-double", "hls4ml-float"),
    R("convert-board-unknown", f"convert {{model}} {OUT} --board pynq-z9", 2, "pynq-z9", "known boards"),
    R("convert-board-and-part", f"convert {{model}} {OUT} --board pynq-z2 --part xc7z020clg400-1", 2,
      "--part", "not allowed with"),
    R("convert-out-exists", "convert {model} --out {tmp}/thesis", 2, "thesis", "--force", setup=thesis),
    R("convert-no-gxx", f"convert {{model}} {OUT}", 2, "g++", "apt-get install g++", setup=empty_dir,
      env=NO_GXX),
    # ---- rtl
    R("rtl-source-missing", f"rtl {{tmp}}/nothing {OUT}", 2, "nothing"),
    R("rtl-wrong-kind", f"rtl {{overlay}} {OUT}", 2, "manifest.json", "psqs.overlay"),
    R("rtl-stage-depth", f"rtl {{hls}} {OUT} --stage-depth 0", 2, "--stage-depth"),
    R("rtl-clock-negative", f"rtl {{hls}} {OUT} --clock-period -1", 2, "--clock-period"),
    R("rtl-solver", f"rtl {{hls}} {OUT} --solver fastest", 2, "--solver", "fastest"),
    R("rtl-no-perl", f"rtl {{hls}} {OUT} --no-synth", 2, "perl", "apt-get install perl", setup=empty_dir,
      env=NO_GXX),
    # ---- build
    R("build-board-unknown", f"build {{hls}} --board pynq-z9 {OUT} --emulation", 2, "pynq-z9"),
    R("build-jobs-zero", f"build {{hls}} --board pynq-z2 {OUT} --jobs 0", 2, "--jobs"),
    R("build-name", f"build {{hls}} --board pynq-z2 {OUT} --emulation --name 9lives", 2, "--name", "9lives"),
    R("build-source-missing", f"build {{tmp}}/nothing --board pynq-z2 {OUT} --emulation", 2, "nothing"),
    R("build-wrong-kind", f"build {{overlay}} --board pynq-z2 {OUT} --emulation", 2, "overlay"),
    R("build-sha-mismatch", f"build {{tmp}}/hls --board pynq-z2 {OUT} --emulation", 2, "libpsqs_axis.so",
      "sha256", setup=artifact_copy("hls", append("csim/libpsqs_axis.so"))),
    R("build-no-vendor-tools", f"build {{hls}} --board pynq-z2 {OUT}", 2, "vivado", "settings64.sh",
      "--emulation", setup=empty_dir, env={"PATH": "{tmp}/empty:/usr/bin:/bin"}),
    R("build-vendor-tool-fails", f"build {{hls}} --board pynq-z2 {OUT}", 1, "vitis_hls failed",
      "valid license", setup=fake_vendor_tools, env={"PATH": "{tmp}/bin:/usr/bin:/bin"},
      outputs=("out.build",)),      # the vendor tools' work directory, with the log the error names
    R("build-no-tclsh", f"build {{hls}} --board pynq-z2 {OUT} --emulation", 2, "tclsh", "apt-get install tcl",
      setup=empty_dir, env=NO_GXX),
    R("build-out-under-a-file", f"build {{hls}} --board pynq-z2 --out {{tmp}}/afile/pkg --emulation", 2,
      "afile/pkg", "cannot be created", setup=a_file),
    R("build-out-unwritable", f"build {{hls}} --board pynq-z2 --out /proc/psqs-pkg --emulation", 2,
      "/proc/psqs-pkg", "cannot be created"),
    R("build-force-foreign-dir", "build {hls} --board pynq-z2 --out {tmp}/thesis --emulation --force", 2,
      "thesis", "thesis.tex", setup=thesis),
    # ---- emulate (child processes: a command that is not refused serves until killed)
    R("emulate-port-range", "emulate --port 99999", 2, "--port", "65535", spawn=True, timeout=45),
    R("emulate-port-zero", "emulate --port 0", 2, "--port", spawn=True, timeout=45),
    R("emulate-stream-capacity", "emulate --stream-capacity 0", 2, "--stream-capacity", spawn=True, timeout=45),
    R("emulate-fault-kind", "emulate --fault melt", 2, "--fault", "melt", spawn=True, timeout=45),
    R("emulate-fault-stall", "emulate --fault stall=0", 2, "--fault", "stall", spawn=True, timeout=45),
    R("emulate-fault-twice", "emulate --host 127.0.0.1 --port 1 --fault hang --fault no-tlast", 2, "no-tlast",
      "already armed", spawn=True, timeout=45),
    R("emulate-sandbox-file", "emulate --sandbox {tmp}/afile", 2, "--sandbox", "afile", setup=a_file, spawn=True,
      timeout=45),
    R("emulate-board-unknown", "emulate --board pynq-z9", 2, "pynq-z9", spawn=True, timeout=45),
    R("emulate-host-foreign", "emulate --host 192.0.2.1", 2, "192.0.2.1", spawn=True, timeout=45),
    R("emulate-overlays-missing", "emulate --overlays {tmp}/nothing --host 127.0.0.1 --port 1", 2, "nothing",
      spawn=True, timeout=45),
    R("emulate-overlays-no-package", "emulate --overlays {tmp}/thesis --host 127.0.0.1 --port 1", 2, "thesis",
      setup=thesis, spawn=True, timeout=45),
    # ---- bench
    R("bench-repeats-zero", "bench {overlay} --repeats 0", 2, "--repeats"),
    R("bench-warmup-negative", "bench {overlay} --warmup -1", 2, "--warmup"),
    R("bench-timeout-nan", "bench {overlay} --timeout nan", 2, "--timeout", "finite"),
    R("bench-timeout-zero", "bench {overlay} --timeout 0", 2, "--timeout"),
    R("bench-batch-sizes", "bench {overlay} --batch-sizes 1,0", 2, "--batch-sizes"),
    R("bench-package-missing", "bench {tmp}/nothing", 2, "nothing"),
    R("bench-wrong-kind", "bench {hls}", 2, "manifest.json", "psqs.hls"),
    R("bench-bit-tampered", "bench {tmp}/overlay", 2, ".bit", "sha256",
      setup=artifact_copy("overlay", append("*.bit"))),
    R("bench-manifest-missing", "bench {tmp}/overlay", 2, "manifest.json", "missing",
      setup=artifact_copy("overlay", lambda d: (d / "manifest.json").unlink())),
    R("bench-json-directory", "bench {overlay} --json {tmp}/thesis", 2, "--json", "thesis", setup=thesis),
    R("bench-json-unwritable", "bench {overlay} --json {tmp}/afile/run.json", 2, "--json", "afile", setup=a_file),
    R("bench-plots-file", "bench {overlay} --plots {tmp}/afile", 2, "--plots", "afile", setup=a_file),
    R("bench-no-board", "bench {overlay}", 1, "no board", "PYNQ_REMOTE_DEVICES", spawn=True,
      unset=("PYNQ_REMOTE_DEVICES",)),
    # ---- import-hls4ml (the project is read first; tests/test_hls4ml_import.py has the rows that need one)
    R("import-hls4ml-project-missing", f"import-hls4ml --project {{tmp}}/nope --bit {{tmp}}/d.bit "
      f"--hwh {{tmp}}/d.hwh {OUT}", 2, "nope", "not a directory"),
    R("import-hls4ml-project-empty", f"import-hls4ml --project {{tmp}}/empty --bit {{tmp}}/d.bit "
      f"--hwh {{tmp}}/d.hwh {OUT}", 2, "empty", "not an hls4ml project", "hls4ml_config.yml", setup=empty_dir),
    R("import-hls4ml-no-bit", f"import-hls4ml --project {{tmp}}/empty --hwh {{tmp}}/d.hwh {OUT}", 2, "--bit",
      setup=empty_dir),
    # ---- deploy (everything here is refused before any connection is attempted)
    R("deploy-target-no-user", "deploy {overlay} --to nohost --out {tmp}/out", 2, "--to", "USER@HOST"),
    R("deploy-target-port", "deploy {overlay} --to x@h:99999 --out {tmp}/out", 2, "--to", "x@h:99999"),
    R("deploy-connect-timeout-nan", "deploy {overlay} --to x@127.0.0.1:1 --connect-timeout nan --out {tmp}/out",
      2, "--connect-timeout", "finite"),
    R("deploy-repeats-zero", "deploy {overlay} --to x@127.0.0.1:1 --repeats 0 --out {tmp}/out", 2, "--repeats"),
    R("deploy-package-tampered", "deploy {tmp}/overlay --to x@127.0.0.1:1 --out {tmp}/out", 2, ".bit", "sha256",
      setup=artifact_copy("overlay", append("*.bit"))),
    # ---- demo
    R("demo-out-file", "demo --out {tmp}/afile", 2, "afile", setup=a_file),
    R("demo-bad-data", "demo --out {tmp}/demo", 2, "jets.npz", "not a readable .npz",
      setup=data_variant("truncated"), env={"PSQS_DATA": "{tmp}/jets.npz"}, outputs=("demo",)),
    R("demo-force-foreign-model-dir", "demo --out {tmp}/demo --force", 2, "model", "thesis.tex",
      setup=foreign_demo_model, env={"PSQS_DATA": "{data}"}),
    R("demo-unknown-board", "demo --board nope --out {tmp}/demo", 2, "nope.yaml", "unknown board"),
    R("demo-unknown-option", "demo --fast", 2, "unrecognized arguments", "--fast"),
    # ---- sweep (refused before any cluster starts or anything trains)
    R("sweep-spec-missing", "sweep {tmp}/nope.yaml --out {tmp}/s", 2, "nope.yaml", "cannot read the sweep spec"),
    R("sweep-spec-bad-method", "sweep {tmp}/s.yaml --out {tmp}/s", 2, "s.yaml", "methods[0]", "qap-imp",
      setup=sweep_spec("bits: [6]\nmethods: [qap-imp]\n")),
    R("sweep-spec-bad-yaml", "sweep {tmp}/s.yaml --out {tmp}/s", 2, "s.yaml", "not valid YAML",
      setup=sweep_spec("bits: [6\n")),
    R("sweep-spec-unknown-training", "sweep {tmp}/s.yaml --out {tmp}/s", 2, "training", "epochz",
      setup=sweep_spec("bits: [6]\nmethods: [qat]\ntraining: {epochz: 3}\n")),
    R("sweep-out-foreign", "sweep {tmp}/s.yaml --out {tmp}/thesis", 2, "--out", "thesis", "not a sweep directory",
      setup=sweep_spec(SPEC)),
    R("sweep-scheduler-bad", "sweep {tmp}/s.yaml --out {tmp}/s --scheduler nonsense::", 2, "--scheduler",
      setup=sweep_spec(SPEC)),
    R("sweep-scheduler-silent", "sweep {tmp}/s.yaml --out {tmp}/s --scheduler tcp://127.0.0.1:9", 2,
      "--scheduler", "no Dask scheduler answered", setup=sweep_spec(SPEC), outputs=("s",)),
    R("sweep-licences-bad", "sweep {tmp}/s.yaml --out {tmp}/s --licences vivado", 2, "--licences", "NAME=COUNT",
      setup=sweep_spec(SPEC)),
    R("sweep-walltime-local", "sweep {tmp}/s.yaml --out {tmp}/s --walltime 01:00:00", 2, "--walltime",
      setup=sweep_spec(SPEC)),
    R("sweep-cluster-bad-walltime", "sweep {tmp}/s.yaml --out {tmp}/s --cluster slurm --walltime 3h", 2,
      "--walltime 3h", "HH:MM:SS", setup=sweep_spec(SPEC)),
    R("sweep-data-missing", "sweep {tmp}/s.yaml --out {tmp}/s", 2, "nope.npz", "cannot read the data file",
      setup=lambda tmp, art: (tmp / "s.yaml").write_text(f"data: {tmp}/nope.npz\n" + SPEC)),
    R("sweep-status-not-a-sweep", "sweep status {tmp}/thesis", 2, "thesis", "not a sweep directory", setup=thesis),
    R("sweep-status-no-dir", "sweep status", 2, "psqs sweep status", "expects DIR"),
    R("sweep-unit-not-a-sweep", "sweep unit {tmp}/thesis abc", 2, "thesis", "not a sweep directory", setup=thesis),
    # ---- report
    R("report-not-a-sweep", "report {tmp}/thesis", 2, "thesis", "not a sweep directory", setup=thesis),
    R("report-missing", "report {tmp}/nope", 2, "nope", "no such directory"),
    R("no-subcommand", "", 2, "command"),
]


# --------------------------------------------------------------------------- the harness

def snapshot(*roots: Path) -> dict[str, tuple]:
    """Every path under ``roots``: kind, size, mtime and (files) sha256."""
    found = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))]:
            st = path.lstat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            found[str(path)] = (stat.S_IFMT(st.st_mode), st.st_size if digest else None,
                                st.st_mtime_ns if not stat.S_ISDIR(st.st_mode) else None, digest)
    return found


def changes(before: dict, after: dict, allowed: list[Path]) -> list[str]:
    def mine(path: str) -> bool:
        return any(path == str(a) or path.startswith(str(a) + os.sep) for a in allowed)

    changed = [p for p in set(before) | set(after) if before.get(p) != after.get(p) and not mine(p)]
    # a directory's own entry changes when the run creates an allowed output inside it
    return sorted(p for p in changed if not (p in before and p in after and before[p][0] == stat.S_IFDIR))


def run_row(row: Row, tmp: Path, art: Artifacts, capsys) -> tuple[int, str]:
    values = dict(tmp=tmp, data=art.data, model=art.model, hls=art.hls, overlay=art.overlay)
    argv = ["-q", *[a.format(**values) for a in shlex.split(row.args)]]
    if not (row.env or row.spawn):
        capsys.readouterr()
        try:
            status = main(argv)
        except SystemExit as exc:          # argparse's --help/--version only
            status = exc.code
        return status, capsys.readouterr().err
    # as a user's shell has it: not the test session's TF_CPP_MIN_LOG_LEVEL (conftest)
    env = {k: v for k, v in os.environ.items() if k not in (*row.unset, "TF_CPP_MIN_LOG_LEVEL")}
    env.update({k: v.format(**values) for k, v in row.env.items()})
    try:
        proc = subprocess.run([sys.executable, "-m", "psqs.deploy.cli", *argv], env=env, capture_output=True,
                              text=True, timeout=row.timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"still running after {exc.timeout} s (served or hung instead of refusing): {exc.stderr}")
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_is_one_line_naming_it(row, artifacts, tmp_path, capsys):
    if row.setup:
        row.setup(tmp_path, artifacts)
    roots = (tmp_path, artifacts.root)
    before = snapshot(*roots)
    status, err = run_row(row, tmp_path, artifacts, capsys)

    lines = err.strip().splitlines()
    assert "Traceback" not in err, err[-3000:]
    assert len(lines) == 1 and lines[0].startswith("psqs: error: "), err[-3000:]
    for name in row.names:
        assert name in lines[0], f"{name!r} not in {lines[0]!r}"
    assert status == row.status, lines[0]
    assert changes(before, snapshot(*roots), [tmp_path / o for o in row.outputs]) == []
    assert not (tmp_path / "lambda-ran").exists(), "the model file's code ran"


def test_the_table_covers_every_subcommand():
    from psqs.deploy.cli import build_parser

    commands = {a.dest: set(a.choices) for a in build_parser()._actions if a.dest == "command"}["command"]
    covered = {r.args.split()[0] for r in ROWS if r.args}
    assert commands <= covered and len(ROWS) >= 50


def test_a_yosys_failure_is_a_failed_run_named_in_one_line(monkeypatch, tmp_path):
    """yosys that runs and fails (here: a stand-in reporting a parse error) is RunFailed, exit 1,
    with the first error line on the message's first line (a CLI row would need minutes of RTL)."""
    from psqs.hls.rtl import cache, synth
    from psqs.common.errors import RunFailed

    monkeypatch.setenv("PSQS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(synth, "_yosys", lambda: [sys.executable, "-c", (
        "import sys; print('1. Executing Verilog-2005 frontend'); "
        "print('ERROR: syntax error, unexpected TOK_ENDMODULE', file=sys.stderr); sys.exit(1)")])
    with pytest.raises(synth.SynthError) as failure:
        synth.cell_counts({"top.v": "module top(); endmodule\n"}, "top", "synth -top top")
    assert isinstance(failure.value, RunFailed) and failure.value.exit_status == 1
    first = str(failure.value).splitlines()[0]
    assert first.startswith("yosys failed on top (exit 1): ERROR: syntax error, unexpected TOK_ENDMODULE")
    assert not list((tmp_path / "cache").rglob("*.tmp")) and cache is not None
