"""``psqs sweep --emit slurm|htcondor``: plain batch scripts for sites without Dask.

Each array job runs units that may run together: units of one kind, at its pipeline level
(:data:`LEVELS`), with one licence need (a licence request is per job, so Vivado builds never
share an array with units that need none). Array element N runs
the unit on line N of the array's keys file, through the command that runs one unit
(``python -m psqs.deploy.cli sweep unit SWEEP_DIR KEY``), which finds everything else in the
sweep directory. Only units not done are emitted.

Levels are ordered with dependencies that run a level once the previous one has *ended*, however
its units ended (Slurm ``afterany``; a DAGMan POST script that always succeeds): one failed
unit must not cancel the others, and a unit whose inputs are missing fails on its own with an
error that names them.
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from psqs.common.errors import PsqsError

from .clusters import ClusterOptions, worker_env
from .layout import SweepDir, Unit

SYSTEMS = ("slurm", "htcondor")

#: The pipeline level of each unit kind: a level's arrays start once the previous level's ended.
LEVELS = {"chain": 0, "trial": 0, "convert": 1, "rtl": 2, "build": 2, "bench": 3}

#: Array elements per job: Slurm's default MaxArraySize is 1001 (indices 0-1000); larger groups
#: are split into several arrays of the same level.
MAX_ARRAY = 1000


@dataclass(frozen=True)
class Group:
    """Units that one array job runs: ``name`` also names its files."""

    name: str
    level: int
    licences: dict
    keys: tuple


def unit_command(sweep_dir: SweepDir) -> list:
    """The command line before the unit key that runs one unit of ``sweep_dir``."""
    return [sys.executable, "-m", "psqs.deploy.cli", "sweep", "unit", str(sweep_dir.path.resolve())]


def emit(sweep_dir: SweepDir, units: list[Unit], system: str, options: ClusterOptions,
         command: list | None = None) -> list:
    """Write the batch scripts for the units of ``units`` not done under ``SWEEP_DIR/jobs/<system>/``
    and return the files written (none when everything is done).

    ``command``: what runs one unit, before its key (default :func:`unit_command`).
    """
    if system not in SYSTEMS:
        raise PsqsError(f"--emit {system}: must be one of {', '.join(SYSTEMS)}")
    options.check_batch_system(system)
    if any(c.isspace() for c in str(sweep_dir.path.resolve())):
        raise PsqsError(f"{sweep_dir.path}: batch directives cannot carry a path with spaces; "
                        f"move the sweep directory")
    todo = [u for u in units if sweep_dir.state(u) != "done"]
    if not todo:
        return []
    out = sweep_dir.path / "jobs" / system
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():                # a previous emit's groups may no longer exist
        if old.suffix in (".sh", ".keys", ".sub", ".dag"):
            old.unlink()
    sweep_dir.logs_dir.mkdir(parents=True, exist_ok=True)
    command = list(command) if command is not None else unit_command(sweep_dir)
    groups = group_units(todo)
    files = []
    for group in groups:
        keys = out / f"{group.name}.keys"
        keys.write_text("".join(k + "\n" for k in group.keys))
        files.append(keys)
    if system == "slurm":
        files += _slurm(sweep_dir, out, groups, options, command)
    else:
        files += _htcondor(sweep_dir, out, groups, options, command)
    return files


def group_units(units: list[Unit]) -> list[Group]:
    """The arrays to run ``units`` in, in submission order (level, kind, licences)."""
    for unit in units:
        if unit.kind not in LEVELS:
            raise PsqsError(f"sweep plan: unit {unit.key} has unknown kind {unit.kind!r}")
    by_key = {u.key: u for u in units}
    for unit in units:
        for dep in (by_key[d] for d in unit.deps if d in by_key):
            if LEVELS[dep.kind] >= LEVELS[unit.kind]:
                raise PsqsError(f"sweep plan: {unit.kind} unit {unit.key} waits for {dep.kind} unit "
                                f"{dep.key}, which batch jobs do not run before it")

    buckets: dict = {}
    for unit in units:
        licences = tuple(sorted(unit.licences.items()))
        buckets.setdefault((LEVELS[unit.kind], unit.kind, licences), []).append(unit.key)
    groups = []
    for (lev, kind, licences), keys in sorted(buckets.items()):
        tag = "".join(f"-{n}{c if c > 1 else ''}" for n, c in licences)
        chunks = [keys[i:i + MAX_ARRAY] for i in range(0, len(keys), MAX_ARRAY)]
        for i, chunk in enumerate(chunks):
            part = f"-part{i + 1}" if len(chunks) > 1 else ""
            groups.append(Group(name=f"{lev}-{kind}{tag}{part}", level=lev, licences=dict(licences),
                                keys=tuple(chunk)))
    return groups


def _run_lines(options: ClusterOptions, command: list, key: str) -> list:
    """Shell lines that run one unit with the worker environment a Dask worker would give it:
    the job's cores all go to the one unit's TensorFlow pool."""
    env = [f"export {k}={v}" for k, v in worker_env(options.cores).items()]
    return env + [f"exec {' '.join(shlex.quote(c) for c in command)} {key}"]


def _slurm(sweep_dir: SweepDir, out: Path, groups: list, options: ClusterOptions, command: list) -> list:
    files = []
    logs = sweep_dir.logs_dir.resolve()
    for g in groups:
        lines = ["#!/bin/bash",
                 f"# psqs sweep {sweep_dir.path.resolve()}: {len(g.keys)} {g.name} unit(s); "
                 f"array index N runs the unit on line N of {g.name}.keys",
                 f"#SBATCH --job-name=psqs-{g.name}",
                 f"#SBATCH --array=1-{len(g.keys)}",
                 f"#SBATCH --output={logs}/slurm-{g.name}-%A_%a.out",
                 "#SBATCH --ntasks=1",
                 f"#SBATCH --cpus-per-task={options.cores}",
                 f"#SBATCH --mem={-(-options.memory_bytes // 2**20)}M"]
        if options.walltime is not None:
            lines.append(f"#SBATCH --time={options.walltime}")
        if options.queue is not None:
            lines.append(f"#SBATCH --partition={options.queue}")
        if options.account is not None:
            lines.append(f"#SBATCH --account={options.account}")
        if g.licences:
            lines.append("#SBATCH --licenses=" + ",".join(f"{n}:{c}" for n, c in g.licences.items()))
        lines += [f"#SBATCH {x}" for x in options.job_extra]
        lines += ["set -euo pipefail",
                  f'KEY=$(sed -n "${{SLURM_ARRAY_TASK_ID}}p" {shlex.quote(str((out / g.name).resolve()) + ".keys")})',
                  'if [ -z "$KEY" ]; then echo "no unit on line $SLURM_ARRAY_TASK_ID of the keys file" >&2; exit 2; fi']
        lines += _run_lines(options, command, '"$KEY"')
        script = out / f"{g.name}.sh"
        script.write_text("\n".join(lines) + "\n")
        files.append(script)
    submit = ["#!/bin/bash",
              "# Submit the sweep's arrays, each level once the previous level has ended (afterany:",
              "# a failed unit cancels nothing; a unit whose inputs are missing fails on its own).",
              "set -euo pipefail", 'cd "$(dirname "$0")"']
    previous: list = []
    for lev in sorted({g.level for g in groups}):
        ids = []
        for g in (g for g in groups if g.level == lev):
            var = "job_" + g.name.replace("-", "_")
            dep = f" --dependency=afterany:{':'.join('$' + p for p in previous)}" if previous else ""
            submit += [f"{var}=$(sbatch --parsable{dep} {g.name}.sh)", f"{var}=${{{var}%%;*}}",
                       f'echo "{g.name}: job ${var} ({len(g.keys)} units)"']
            ids.append(var)
        previous = ids
    path = out / "submit.sh"
    path.write_text("\n".join(submit) + "\n")
    path.chmod(0o755)
    return files + [path]


def _htcondor(sweep_dir: SweepDir, out: Path, groups: list, options: ClusterOptions, command: list) -> list:
    logs = sweep_dir.logs_dir.resolve()
    run = out / "run_unit.sh"
    run.write_text("\n".join(["#!/bin/bash", "# Run one unit of the sweep: run_unit.sh KEY",
                              "set -euo pipefail"] + _run_lines(options, command, '"$1"')) + "\n")
    run.chmod(0o755)
    files = [run]
    for g in groups:
        lines = [f"# psqs sweep {sweep_dir.path.resolve()}: {len(g.keys)} {g.name} unit(s)",
                 "universe = vanilla",
                 f"executable = {run.resolve()}",
                 "arguments = $(key)",
                 f"initialdir = {sweep_dir.path.resolve()}",
                 f"batch_name = psqs-{g.name}",
                 f"output = {logs}/condor-{g.name}-$(Cluster).$(Process).out",
                 f"error = {logs}/condor-{g.name}-$(Cluster).$(Process).err",
                 f"log = {logs}/condor-{g.name}.log",
                 f"request_cpus = {options.cores}",
                 f"request_memory = {-(-options.memory_bytes // 2**20)}"]
        if options.walltime is not None:
            lines.append(f"allowed_job_duration = {options.walltime_seconds}")
        if options.account is not None:
            lines.append(f"accounting_group = {options.account}")
        if g.licences:
            lines.append("concurrency_limits = " + ",".join(f"{n}:{c}" for n, c in g.licences.items()))
        lines += list(options.job_extra)
        lines.append(f"queue key from {(out / g.name).resolve()}.keys")
        sub = out / f"{g.name}.sub"
        sub.write_text("\n".join(lines) + "\n")
        files.append(sub)
    dag = ["# The sweep's arrays in level order; POST /bin/true: a level runs once the previous one",
           "# has ended, however its units ended."]
    for g in groups:
        dag += [f"JOB {g.name} {g.name}.sub DIR {out.resolve()}", f"SCRIPT POST {g.name} /bin/true"]
    levels = sorted({g.level for g in groups})
    for before, after in zip(levels, levels[1:]):
        dag.append(f"PARENT {' '.join(g.name for g in groups if g.level == before)} "
                   f"CHILD {' '.join(g.name for g in groups if g.level == after)}")
    path = out / "sweep.dag"
    path.write_text("\n".join(dag) + "\n")
    return files + [path]
