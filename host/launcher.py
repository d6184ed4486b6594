"""The ``psqs`` console script, which both installs carry.

On the build server (``pip install '.[build]'``) it is the whole pipeline's command line,
:mod:`psqs.deploy.cli`. A board install (``pip install .`` on a PYNQ image: numpy and pynq only)
carries the same script, but the build stages' modules import packages the image does not have
(yaml, jsonschema, TensorFlow …). There ``psqs bench`` is the board entry point
(``python3 -m psqs.host bench``), and every other command says in one line which extra it needs,
instead of an ImportError traceback.

The build command line is looked up by name, not imported: ``psqs.host`` depends on no other
stage (``tests/test_layering.py``); this module only dispatches to whichever is installed.
"""
from __future__ import annotations

import importlib
import importlib.util
import sys

from .cli_common import quiet_native_logs

#: The build server's command line (stage 5).
BUILD_CLI = "psqs.deploy.cli"
EXTRA = "build"


#: What only the build extra installs: a PYNQ image may well have yaml or jsonschema (Jupyter
#: brings them), so their presence alone does not make a build server.
BUILD_MODULES = ("tensorflow", "qkeras", "hls4ml", "yaml", "jsonschema")


def _build_cli():
    """The build command line's module, or the name of the build-extra module this install lacks
    (looked up without importing it: TensorFlow alone takes seconds)."""
    missing = next((m for m in BUILD_MODULES if importlib.util.find_spec(m) is None), None)
    if missing is not None:
        return None, missing
    return importlib.import_module(BUILD_CLI), None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    quiet_native_logs(argv)          # before either command line imports gRPC or TensorFlow
    cli, missing = _build_cli()
    if cli is not None:
        return cli.main(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in (None, "bench"):       # bench, --help, --version: the board command line
        from .cli import main as board_main

        return board_main(argv, prog="psqs")
    print(f"psqs: error: 'psqs {command}' needs the build-server install (no module {missing!r} here): "
          f"pip install 'psqs[{EXTRA}]'; this board install runs 'psqs bench PACKAGE' "
          "(or 'python3 -m psqs.host bench PACKAGE')", file=sys.stderr)
    return 2
