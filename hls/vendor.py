"""Finding and running the vendor HLS tool (Vitis HLS or Vivado HLS), when the machine has one.

Nothing here is simulated: without the tool on PATH, synthesis is reported as not done, with
the reason, and no numbers are made up.
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

from psqs.common.errors import RunFailed, tool_failure

log = logging.getLogger(__name__)

HLS_TOOLS = {"Vitis": "vitis_hls", "Vivado": "vivado_hls"}


class VendorToolError(RunFailed, RuntimeError):
    """The vendor tool is missing or failed; the message says which and where its log is."""


def find_hls_tool(backend: str) -> str | None:
    return shutil.which(HLS_TOOLS[backend])


def tool_version(tool: str) -> str:
    """First ``vYYYY.N`` in ``tool -version`` (e.g. ``vitis_hls v2022.2 (64-bit)``)."""
    proc = subprocess.run([tool, "-version"], capture_output=True, text=True, timeout=300)
    match = re.search(r"v(\d{4}\.\d+)", proc.stdout + proc.stderr)
    return match.group(1) if match else "unknown"


def run_tcl(tool: str, script: str, cwd: Path, log_name: str = "vendor.log") -> Path:
    """Run ``tool -f script`` in ``cwd``, streaming its output to the log and to ``log_name``."""
    log_path = cwd / log_name
    log.info("running %s -f %s in %s (log: %s)", tool, script, cwd, log_path)
    with open(log_path, "w") as sink:
        proc = subprocess.Popen([tool, "-f", script], cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            sink.write(line)
            if line.startswith(("ERROR", "CRITICAL WARNING", "INFO: [HLS 200-")):
                log.info("%s: %s", Path(tool).name, line.rstrip())
        code = proc.wait()
    if code != 0:
        raise VendorToolError(tool_failure(Path(tool).name, f"running {script}", code, log_path.read_text()[-20000:],
                                           log_path))
    return log_path
