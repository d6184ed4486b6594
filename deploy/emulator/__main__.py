"""``python -m psqs.deploy.emulator``: the same as ``psqs emulate``."""
from __future__ import annotations

import sys

from psqs.host import cli_common

cli_common.quiet_native_logs()   # before gRPC is imported (by .cli)

from psqs.common import interrupts  # noqa: E402

from .cli import __doc__ as usage  # noqa: E402
from .cli import add_arguments, run  # noqa: E402


def main(argv=None) -> int:
    interrupts.install()   # SIGINT/SIGTERM end the emulator within 2 s, even when stuck in C
    parser = cli_common.ArgumentParser(prog="python -m psqs.deploy.emulator", description=usage.splitlines()[0])
    add_arguments(parser)
    cli_common.add_common_options(parser)
    args = cli_common.parse(parser, argv)
    if isinstance(args, int):
        return args
    cli_common.configure_logging(args)
    return cli_common.run(run, args)


if __name__ == "__main__":
    sys.exit(main())
