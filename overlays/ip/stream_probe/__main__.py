"""``python -m psqs.overlays.ip.stream_probe [--check]``: regenerate (or check) the generated files."""
from __future__ import annotations

import argparse
import logging
import sys

from . import IP_DIR, stale_files, write_generated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m psqs.overlays.ip.stream_probe",
                                     description=__doc__)
    parser.add_argument("--check", action="store_true",
                        help="only report stale files; exit 1 if any")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("stream_probe")
    if args.check:
        stale = stale_files()
        for rel in stale:
            log.error("stale: %s", IP_DIR / rel)
        return 1 if stale else 0
    changed = write_generated()
    log.info("%d file(s) changed under %s", len(changed), IP_DIR)
    return 0


if __name__ == "__main__":
    sys.exit(main())
