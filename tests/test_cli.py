"""The psqs command lines: one ``psqs: error:`` line naming the culprit, one exception base, the
options every command shares, a help line for every option, no TensorFlow noise.

The table of bad inputs across every subcommand is tests/test_bad_inputs.py.
"""
from __future__ import annotations

import argparse
import ast
import importlib
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from psqs.common.errors import PsqsError
from psqs.deploy.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]


def test_bad_data_path(tmp_path, capsys):
    assert main(["-q", "train", "--out", str(tmp_path / "m"), "--data", str(tmp_path / "nope.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("psqs: error: ") and "nope.npz: no such file" in err and "Traceback" not in err
    assert not (tmp_path / "m").exists()


def test_bad_option_value(tmp_path, capsys, synthetic_npz):
    assert main(["-q", "train", "--out", str(tmp_path / "m"), "--bits", "3", "--data", str(synthetic_npz)]) == 2
    assert "bits=3: must be in 4..16 or 32 (float)" in capsys.readouterr().err
    assert main(["-q", "train", "--out", str(tmp_path / "m"), "--pruning", "imp-lt", "--sparsity", "1.5",
                 "--data", str(synthetic_npz)]) == 2
    assert capsys.readouterr().err == ("psqs: error: psqs train: argument --sparsity: 1.5: must be in [0, 1) "
                                       "(see psqs train --help)\n")


def test_existing_output_needs_force(tmp_path, capsys, synthetic_npz):
    (tmp_path / "m").mkdir()
    assert main(["-q", "train", "--out", str(tmp_path / "m"), "--data", str(synthetic_npz),
                 "--epochs", "1", "--max-train", "500"]) == 2
    assert "already exists (pass --force" in capsys.readouterr().err


def test_debug_shows_the_traceback_and_still_the_one_line(tmp_path, capsys):
    assert main(["train", "--debug", "--out", str(tmp_path / "m"), "--data", str(tmp_path / "nope.npz")]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "DataError" in err
    assert err.splitlines()[-1].startswith("psqs: error: ") and "nope.npz: no such file" in err


def test_ctrl_c_is_one_line_and_status_130(tmp_path, capsys, monkeypatch):
    from psqs.qap import stage

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(stage, "run", interrupted)
    assert main(["-q", "train", "--out", str(tmp_path / "m")]) == 130
    assert capsys.readouterr().err == "psqs: interrupted\n"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"psqs {metadata.version('psqs')}"


@pytest.mark.parametrize("argv", [["-q", "--debug", "train", "--out", "m"], ["train", "-q", "--out", "m", "--debug"],
                                  ["-q", "train", "--debug", "--out", "m"]])
def test_common_options_before_or_after_the_subcommand(argv):
    args = build_parser().parse_args(argv)
    assert (args.quiet, args.debug, args.verbose) == (True, True, False)


def test_common_options_default_off_and_v_alone():
    args = build_parser().parse_args(["bench", "pkg", "-v"])
    assert (args.quiet, args.debug, args.verbose) == (False, False, True)
    args = build_parser().parse_args(["emulate"])
    assert (args.quiet, args.debug, args.verbose) == (False, False, False)


def _parsers():
    """Every parser of every psqs command line, with its name (subcommands included)."""
    from psqs.host.cli import add_bench_options
    from psqs.deploy.emulator.cli import add_arguments

    top = build_parser()
    found = [("psqs", top)]
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            found += [(f"psqs {name}", p) for name, p in action.choices.items()]
    bench = argparse.ArgumentParser()
    add_bench_options(bench)
    emulator = argparse.ArgumentParser()
    add_arguments(emulator)
    return found + [("python3 -m psqs.host bench", bench), ("python -m psqs.deploy.emulator", emulator)]


def test_every_option_has_a_help_line():
    missing = [f"{name}: {'/'.join(action.option_strings) or action.dest}"
               for name, parser in _parsers() for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction)
               and (not action.help or action.help == argparse.SUPPRESS)]
    assert not missing, f"options without a help line: {missing}"


#: Exception classes that are not expected failures of a command: the emulator's internal signals
#: (they become gRPC status codes and DMA status bits and never reach a command line).
INTERNAL = {"deploy/emulator/errors.py": {"EmulatorError", "BusError"}}


def _exception_classes():
    """Every class defined in psqs' source whose bases name an exception (``...Error``,
    ``...Exception``, ``...Timeout``, or another such class), with its module."""
    for folder in ("qap", "hls", "host", "overlays", "deploy", "board_configs"):
        for file in sorted((REPO / folder).rglob("*.py")):
            rel = file.relative_to(REPO).as_posix()
            for node in ast.parse(file.read_text()).body:
                if isinstance(node, ast.ClassDef) and any(
                        ast.unparse(b).split(".")[-1].endswith(("Error", "Exception", "Timeout", "Failed",
                                                               "Mismatch", "Missing", "NoBoard"))
                        for b in node.bases):
                    module = "psqs." + rel[:-3].replace("/", ".").removesuffix(".__init__")
                    yield rel, module, node.name


def test_every_expected_failure_derives_from_psqs_error():
    stray = []
    for rel, module, name in _exception_classes():
        cls = getattr(importlib.import_module(module), name)
        internal = any(issubclass(cls, getattr(importlib.import_module(module), n))
                       for n in INTERNAL.get(rel, ()))
        if not internal and not issubclass(cls, PsqsError):
            stray.append(f"{module}.{name}")
    assert not stray, f"expected failures not derived from psqs.common.errors.PsqsError: {stray}"


def test_no_command_line_keeps_its_own_list_of_user_errors():
    offenders = [p.relative_to(REPO).as_posix() for folder in ("hls", "host", "overlays", "deploy")
                 for p in (REPO / folder).rglob("*.py") if "USER_ERRORS" in p.read_text()]
    assert not offenders


def test_tensorflow_start_up_noise_is_not_shown(tmp_path, synthetic_npz):
    """``psqs train`` in a fresh process, without TF_CPP_MIN_LOG_LEVEL: no TensorFlow/CUDA lines."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")}
    proc = subprocess.run([sys.executable, "-m", "psqs.deploy.cli", "-q", "train", "--out", str(tmp_path / "m"),
                           "--data", str(synthetic_npz), "--epochs", "1", "--max-train", "300",
                           "--test-vectors", "20", "--widths", "8"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    noisy = [line for line in proc.stderr.splitlines()
             if any(word in line for word in ("tensorflow", "cuda", "cuDNN", "cuFFT", "cuBLAS", "TensorRT",
                                              "oneDNN", "absl", "cpu_feature_guard"))]
    assert not noisy, "\n".join(noisy)
    assert "accuracy" in proc.stdout
