"""``psqs sweep SPEC``, ``psqs sweep status DIR`` and ``psqs sweep unit DIR KEY``.

``add_parser(subparsers)`` registers ``sweep`` on the ``psqs`` parser. The two words ``status``
and ``unit`` in SPEC's place select the other two forms (a spec file is never called that).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from psqs.common.cli_types import integer

from .spec import SpecError

FORMS = {"status": ("DIR",), "unit": ("DIR", "KEY")}


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep", help="the Ps and Qs study: bit widths x methods x sparsity steps x seeds on a Dask cluster",
        description="Run a sweep spec (YAML) as content-addressed units on Dask: a local cluster by default, "
                    "an existing one (--scheduler), or batch jobs through dask-jobqueue (--cluster); or write "
                    "plain batch scripts (--emit). A rerun skips what is done. Also: `psqs sweep status DIR` "
                    "(from the directory alone) and `psqs sweep unit DIR KEY` (one unit; what batch jobs run).")
    p.add_argument("spec", metavar="SPEC", help="sweep spec file (examples/sweeps/*.yaml), or `status` / `unit`")
    p.add_argument("rest", nargs="*", metavar="DIR [KEY]", help="for `status DIR` and `unit DIR KEY`")
    p.add_argument("--out", default="runs/sweep", help="sweep directory (default runs/sweep)")
    p.add_argument("--retry-failed", action="store_true", help="run the units that failed before again")
    p.add_argument("--json", action="store_true", help="status: print JSON")
    g = p.add_argument_group("where units run (default: a local cluster sized to this machine)")
    g.add_argument("--workers", type=integer(1), default=None,
                   help="local worker processes (default: one per core, memory permitting), or batch jobs to submit")
    g.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:8786)")
    g.add_argument("--cluster", choices=("slurm", "pbs", "htcondor"), default=None,
                   help="start workers as batch jobs through dask-jobqueue")
    g.add_argument("--emit", choices=("slurm", "htcondor"), default=None,
                   help="write plain batch scripts (one array job per group of units) into DIR/jobs and stop")
    g.add_argument("--cores", type=integer(1), default=4, help="cores per batch job (default 4)")
    g.add_argument("--memory", default="8GiB", help="memory per batch job (default 8GiB)")
    g.add_argument("--queue", default=None, help="batch queue / partition")
    g.add_argument("--account", default=None, help="batch account / project")
    g.add_argument("--walltime", default=None, help="batch job walltime HH:MM:SS")
    g.add_argument("--job-extra", action="append", default=[], help="extra batch directive (repeatable)")
    g.add_argument("--licences", default=None,
                   help="vendor-tool licences as NAME=COUNT[,NAME=COUNT] (e.g. vivado=2): builds hold one each")
    g.add_argument("--no-dashboard", action="store_true", help="local cluster without the Dask dashboard")
    p.set_defaults(func=run)
    return p


def cluster_options(args):
    from .clusters import ClusterOptions, parse_licences

    kind = "scheduler" if args.scheduler else (args.cluster or "local")
    return ClusterOptions(kind=kind, scheduler=args.scheduler, workers=args.workers, cores=args.cores,
                          memory=args.memory, queue=args.queue, account=args.account, walltime=args.walltime,
                          job_extra=tuple(args.job_extra),
                          licences=parse_licences(args.licences) if args.licences else {},
                          dashboard=not args.no_dashboard)


def run(args) -> int:
    if args.spec in FORMS:
        want = FORMS[args.spec]
        if len(args.rest) != len(want):
            raise SpecError(f"psqs sweep {args.spec}: expects {' '.join(want)}, got {args.rest or 'nothing'}")
        return status(args) if args.spec == "status" else unit(args)
    if args.rest:
        raise SpecError(f"psqs sweep {args.spec}: unexpected argument(s) {args.rest} (the directory is --out)")
    return sweep(args)


def status(args) -> int:
    from . import status as status_lib
    from .layout import SweepDir

    report = status_lib.collect(SweepDir(args.rest[0]))
    print(json.dumps(report, indent=2) if args.json else status_lib.render(report))
    return 0


def unit(args) -> int:
    from .units import run_one

    return run_one(Path(args.rest[0]), args.rest[1])


def planned(spec_path: Path, out: Path):
    """Validate the spec and plan it; returns (sweep, spec, units, data, sha). Nothing is written."""
    from . import plan
    from .layout import SweepDir
    from .spec import load

    spec = load(spec_path)
    sweep = SweepDir(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not sweep.plan_file.is_file())):
        raise SpecError(f"--out {out}: exists and is not a sweep directory (no {sweep.plan_file.name})")
    data, sha = plan.data_identity(spec)
    return sweep, spec, plan.build(spec, data, sha), data, sha


def sweep(args) -> int:
    import logging

    from . import engine, plan, search
    from .clusters import connect, create_licences

    import distributed      # noqa: F401 - its import sets its loggers' levels (dask config), then:

    if not (args.verbose or args.debug):      # the scheduler of a local cluster runs in this process
        logging.getLogger("distributed").setLevel(logging.ERROR)

    options = cluster_options(args)
    if args.emit and options.kind != "local":
        raise SpecError(f"--emit {args.emit}: writes scripts instead of running; not with --scheduler/--cluster")
    if not args.emit:
        options.check_batch_options_unused()
    sweep_dir, spec, units, data, sha = planned(Path(args.spec), Path(args.out))
    needed = sorted({name for u in units for name in u.licences} - set(options.licences))
    if needed and not args.emit:
        raise SpecError(f"--licences: the spec's builds need {', '.join(needed)} licences "
                        f"(pass --licences {needed[0]}=N)")
    plan.write(sweep_dir, spec, Path(args.spec).read_text(), units, data, sha)
    print(f"sweep      {sweep_dir.path}: {len(units)} units ({_count(units)})")
    if args.emit:
        from .emit import emit

        files = emit(sweep_dir, units, args.emit, options)
        scripts = [f for f in files if f.suffix in (".sh", ".sub", ".dag")]
        print(f"emitted    {len(scripts)} {args.emit} file(s) in {sweep_dir.path / 'jobs' / args.emit}"
              if files else "emitted    nothing: every unit is done")
        return 0
    with connect(options, log_directory=sweep_dir.logs_dir) as (client, where):
        print(f"cluster    {where}")
        create_licences(client, options.licences)
        outcome = engine.run(sweep_dir, units, client, retry_failed=args.retry_failed, quiet=args.quiet)
        searched = None
        if spec.search:
            workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
            searched = search.run(sweep_dir, spec, client, data, sha, workers,
                                  say=(lambda line: None) if args.quiet else print)
    print(f"finished   {len(outcome.done)} run, {outcome.skipped} already done, {len(outcome.failed)} failed now, "
          f"{len(outcome.left_failed)} failed before (not retried) in {outcome.seconds:.0f} s")
    for r in outcome.failed:
        print(f"failed     {r['unit']}: {r.get('error')}", file=sys.stderr)
    if searched:
        best = (f", best validation accuracy {searched['best_accuracy']:.4f} at {searched['best_bops']:.4g} BOPs"
                if searched["best_accuracy"] is not None else "")
        print(f"search     {searched['complete']} of {searched['trials']} trials{best}")
    print(f"next       psqs report {sweep_dir.path}   (status: psqs sweep status {sweep_dir.path})")
    return 0 if outcome.ok else 1


def _count(units) -> str:
    from collections import Counter

    return ", ".join(f"{n} {k}" for k, n in Counter(u.kind for u in units).items())
