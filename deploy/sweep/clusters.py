"""Where a sweep's units run: the Dask cluster the user names, and the licences tasks hold on it.

As in Dask's own tools, the user passes a cluster kind or a scheduler address and psqs starts
nothing of its own: a ``LocalCluster`` sized to this machine by default, an existing scheduler
(``--scheduler``), or workers started as batch jobs through dask-jobqueue (``--cluster
slurm|pbs|htcondor``; site defaults from dask-jobqueue's own ``jobqueue.yaml`` still apply to
what the command line leaves unset).

A worker runs one unit at a time (one Dask thread) and gives TensorFlow a thread pool of its own
(:func:`worker_env`); :func:`size_workers` chooses workers x threads so that they never ask for
more cores than there are. Vendor-tool licences (Vivado) are distributed semaphores
(:func:`create_licences` on the client, :func:`licence` inside a task).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from psqs.common.errors import PsqsError, RunFailed

#: What ``--cluster`` accepts; ``local`` and ``scheduler`` are what no ``--cluster`` and
#: ``--scheduler ADDRESS`` mean.
KINDS = ("local", "scheduler", "slurm", "pbs", "htcondor")
JOBQUEUE_KINDS = ("slurm", "pbs", "htcondor")

#: Memory one TensorFlow worker is given. A worker training the jet MLP with TensorFlow 2.14 and
#: QKeras peaks at ~0.55 GiB resident (measured: ``ru_maxrss`` after a 10,000-sample fit); a unit
#: also holds the jet data set and the test vectors, and convert/rtl units run hls4ml and g++ /
#: Verilator builds beside it. 1.5 GiB keeps a machine full of workers out of swap.
TF_WORKER_MEMORY = 1.5 * 2**30

#: Dask configuration of psqs's workers. The worker's profiler samples the task thread's Python
#: stack every 10 ms under the GIL; psqs's units are long Python-heavy tasks (TensorFlow tracing,
#: hls4ml), which it slowed by 5-10 % here (the smoke units 76-78 s without it vs 82-86 s with it,
#: one worker), and its only use is the dashboard's profile page.
WORKER_CONFIG = {"distributed.worker.profile.enabled": False}

#: Seconds to wait for a scheduler to answer (``--scheduler``), for the batch system to take the
#: jobs of a jobqueue cluster (not to run them), and for a client or cluster to close.
CONNECT_TIMEOUT = 10.0
SUBMIT_TIMEOUT = 120.0
CLOSE_TIMEOUT = 30.0

#: How long a task waits for a licence lease before it fails. Leases of a dead holder are freed
#: by the scheduler within distributed's lease timeout (30 s by default), so a wait this long means
#: builds queued behind few licences, or a build that hangs while it holds one.
LICENCE_WAIT = 24 * 3600.0

#: The scratch disk an HTCondor Dask worker asks for (dask-jobqueue requires one): artifacts go to
#: the shared sweep directory, a job's own disk holds only hls4ml / C-simulation build trees.
HTCONDOR_DISK = "4GiB"

#: Semaphore names on the scheduler, and the scheduler metadata key that records their counts so
#: that a task can open a semaphore with the count the client created it with (distributed
#: refuses a second ``Semaphore(name=...)`` whose ``max_leases`` differs: "Inconsistent max leases").
LICENCE_PREFIX = "psqs-licence-"
LICENCE_METADATA = "psqs-licences"

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")
_WALLTIME = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")


@dataclass(frozen=True)
class ClusterOptions:
    """What the command line says about where units run, validated once.

    ``workers``: worker processes of a local cluster (None: :func:`size_workers` chooses) or
    jobs to submit for slurm/pbs/htcondor (None: 1). ``cores``/``memory``: what one batch job
    asks for (dask-jobqueue jobs and ``--emit`` scripts). ``memory`` as Dask writes sizes
    (``8GiB``, ``16GB``). ``walltime`` HH:MM:SS. ``job_extra``: directives added verbatim
    (``#SBATCH <line>``, ``#PBS <line>``; ``KEY = VALUE`` for HTCondor). ``licences``: name ->
    how many builds may hold it at once.
    """

    kind: str = "local"
    scheduler: str | None = None
    workers: int | None = None
    cores: int = 4
    memory: str = "8GiB"
    queue: str | None = None
    account: str | None = None
    walltime: str | None = None
    job_extra: tuple = ()
    licences: dict = field(default_factory=dict)
    dashboard: bool = True

    def __post_init__(self):
        from dask.utils import parse_bytes

        if self.kind not in KINDS:
            raise PsqsError(f"--cluster {self.kind}: must be one of {', '.join(JOBQUEUE_KINDS)}")
        if self.kind == "scheduler" and not self.scheduler:
            raise PsqsError("--scheduler: give the address of a running Dask scheduler (tcp://host:8786)")
        if self.kind != "scheduler" and self.scheduler is not None:
            raise PsqsError(f"--scheduler {self.scheduler}: not together with --cluster {self.kind}")
        if self.scheduler is not None:
            _check_address(self.scheduler)
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise PsqsError(f"--workers {self.workers}: must be an integer >= 1")
        if self.workers is not None and self.kind == "scheduler":
            raise PsqsError("--workers: not with --scheduler (that cluster has its own workers)")
        if not isinstance(self.cores, int) or self.cores < 1:
            raise PsqsError(f"--cores {self.cores}: must be an integer >= 1")
        try:
            memory = parse_bytes(self.memory)
        except (ValueError, TypeError):
            raise PsqsError(f"--memory {self.memory}: not a size (e.g. 8GiB)") from None
        if memory < 2**20:
            raise PsqsError(f"--memory {self.memory}: must be at least 1MiB")
        if self.walltime is not None and not _WALLTIME.match(self.walltime):
            raise PsqsError(f"--walltime {self.walltime}: must be HH:MM:SS")
        for name, value in (("--queue", self.queue), ("--account", self.account)):
            if value is not None and not re.match(r"^[^\s'\"\\]+$", value):
                raise PsqsError(f"{name} {value!r}: must be one word without quotes")
        for line in self.job_extra:
            if not isinstance(line, str) or not line.strip() or "\n" in line:
                raise PsqsError(f"--job-extra {line!r}: must be one non-empty line")
        for name, count in self.licences.items():
            _check_licence(name, count)
        if self.kind in JOBQUEUE_KINDS:
            self.check_batch_system(self.kind)

    def check_batch_system(self, system: str) -> None:
        """What only some batch systems refuse (for ``--cluster`` and ``--emit`` alike)."""
        if system == "htcondor":
            if self.queue is not None:
                raise PsqsError(f"--queue {self.queue}: HTCondor has no queues (use --job-extra 'requirements = ...')")
            for line in self.job_extra:
                if "=" not in line:
                    raise PsqsError(f"--job-extra {line!r}: HTCondor directives are KEY = VALUE")

    @property
    def memory_bytes(self) -> int:
        from dask.utils import parse_bytes

        return int(parse_bytes(self.memory))

    @property
    def walltime_seconds(self) -> int | None:
        if self.walltime is None:
            return None
        h, m, s = (int(g) for g in _WALLTIME.match(self.walltime).groups())
        return 3600 * h + 60 * m + s

    def check_batch_options_unused(self) -> None:
        """Refuse batch-job options given for a cluster that submits no jobs, rather than ignore them."""
        if self.kind in JOBQUEUE_KINDS:
            return
        for name, value in (("--queue", self.queue), ("--account", self.account),
                            ("--walltime", self.walltime), ("--job-extra", self.job_extra or None)):
            if value is not None:
                raise PsqsError(f"{name}: only with --cluster {'|'.join(JOBQUEUE_KINDS)} or --emit")


def parse_licences(text: str) -> dict:
    """``vivado=2,vitis=1`` -> ``{"vivado": 2, "vitis": 1}`` (the ``--licences`` option)."""
    licences = {}
    for item in text.split(","):
        name, sep, count = item.strip().partition("=")
        if not sep:
            raise PsqsError(f"--licences {item.strip()!r}: expected NAME=COUNT (e.g. vivado=2)")
        name = name.strip()
        try:
            number = int(count)
        except ValueError:
            raise PsqsError(f"--licences {item.strip()}: {count!r} is not an integer") from None
        if name in licences:
            raise PsqsError(f"--licences {name}: given twice")
        _check_licence(name, number)
        licences[name] = number
    return licences


def _check_licence(name, count) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise PsqsError(f"--licences {name}: a name is letters, digits, '_', '.', '-' (starting with a letter)")
    if not isinstance(count, int) or count < 1:
        raise PsqsError(f"--licences {name}={count}: the count must be an integer >= 1")


def _check_address(address: str) -> None:
    from distributed.comm import parse_address
    from distributed.comm.addressing import parse_host_port

    try:
        _, location = parse_address(address)
        parse_host_port(location)
    except (ValueError, TypeError) as exc:
        raise PsqsError(f"--scheduler {address}: not a scheduler address like tcp://host:8786 ({exc})") from None


# -- sizing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizing:
    """Worker processes and the TensorFlow threads each gets, for ``cpus`` cores and ``memory`` bytes."""

    workers: int
    tf_threads: int
    cpus: int
    memory: int

    def describe(self) -> str:
        return (f"{self.workers} worker{'s' * (self.workers != 1)} x {self.tf_threads} TensorFlow "
                f"thread{'s' * (self.tf_threads != 1)} ({self.cpus} CPUs, {self.memory / 2**30:.1f} GiB)")


def size_workers(cpus: int, memory: int, workers: int | None = None) -> Sizing:
    """The one sizing rule, for this machine and for one batch job alike.

    As many single-task workers as there are cores, fewer if :data:`TF_WORKER_MEMORY` each would
    not fit; the cores left over go to each worker's TensorFlow thread pool, so workers x threads
    <= cores (the jet MLP trains faster as parallel independent units than with more intra-op
    threads per unit). ``workers`` given: the user's count, each with the cores it leaves.
    """
    if workers is None:
        workers = max(1, min(cpus, int(memory // TF_WORKER_MEMORY)))
    return Sizing(workers=workers, tf_threads=max(1, cpus // workers), cpus=cpus, memory=memory)


def this_machine() -> tuple[int, int]:
    """CPUs this process may run on (its affinity, as a batch slot or ``taskset`` sets it) and
    the memory it may use (distributed's limit: physical memory, cgroup and rlimit)."""
    from distributed.system import MEMORY_LIMIT

    return len(os.sched_getaffinity(0)), int(MEMORY_LIMIT)


def worker_env(tf_threads: int) -> dict:
    """The environment of a worker: TensorFlow reads ``TF_NUM_*`` when it creates its thread
    pools; ``PSQS_TF_THREADS`` is what a unit passes to ``tf.config.threading``; OpenMP code that
    a unit runs (compiled simulations) reads ``OMP_NUM_THREADS``. Inter-op 1: one model at a time.
    Dask's statistical profiler is off (:data:`WORKER_CONFIG`, as the environment a batch job's
    worker reads its Dask configuration from)."""
    t = str(tf_threads)
    return {"PSQS_TF_THREADS": t, "TF_NUM_INTRAOP_THREADS": t, "TF_NUM_INTEROP_THREADS": "1",
            "OMP_NUM_THREADS": t,
            **{"DASK_" + k.upper().replace(".", "__").replace("-", "_"): str(v) for k, v in WORKER_CONFIG.items()}}


# -- clusters ----------------------------------------------------------------------------------
@contextmanager
def connect(options: ClusterOptions, log_directory=None):
    """Yield ``(client, description)`` for the cluster ``options`` name; close both on exit
    (a KeyboardInterrupt included: jobqueue jobs are cancelled, local workers stopped).

    A jobqueue cluster is scaled to ``options.workers`` jobs and not waited for: jobs may queue
    for hours, and tasks start as workers join (``client.wait_for_workers(n, timeout=...)`` if a
    caller needs them). ``log_directory``: where jobqueue jobs write their logs.
    """
    from distributed import Client

    options.check_batch_options_unused()
    with ExitStack() as stack:
        if options.kind == "scheduler":
            client = _client(options.scheduler)
            stack.callback(client.close, timeout=CLOSE_TIMEOUT)
            where = f"scheduler {options.scheduler}: {len(client.scheduler_info(n_workers=-1)['workers'])} workers"
        else:
            if options.kind == "local":
                sizing = size_workers(*this_machine(), options.workers)
                cluster = _local_cluster(options, sizing)
                where = f"local cluster: {sizing.describe()}"
                stack.callback(_close_cluster, cluster)
            else:
                cluster = jobqueue_cluster(options, log_directory)
                stack.callback(_close_cluster, cluster)
                jobs = options.workers or 1
                cluster.scale(jobs=jobs)
                _wait_for_submissions(cluster, options.kind)
                where = (f"{options.kind}: {jobs} job{'s' * (jobs != 1)} submitted, each "
                         f"{job_sizing(options).describe()}")
            client = Client(cluster, timeout=CONNECT_TIMEOUT)
            stack.callback(client.close, timeout=CLOSE_TIMEOUT)
        link = dashboard_link(client) if options.dashboard or options.kind == "scheduler" else None
        yield client, where + (f", dashboard {link}" if link else "")


def _wait_for_submissions(cluster, kind: str) -> None:
    """Wait until every job has been handed to the batch system (not until it runs), so that a
    refused submission (bad account, queue, walltime) stops the sweep at once with the batch
    system's own words. dask-jobqueue adds the jobs to ``cluster.workers`` once each submission
    has returned; a refused one has no job id, and its error reaches tornado's log as a traceback,
    which is caught here instead."""
    from distributed.core import Status

    refusals = _SubmitErrors()
    log = logging.getLogger("tornado.application")
    log.addFilter(refusals)
    try:
        deadline = time.monotonic() + SUBMIT_TIMEOUT
        while set(cluster.worker_spec) - set(cluster.workers):
            if time.monotonic() > deadline:
                raise RunFailed(f"--cluster {kind}: the batch system took no job within {SUBMIT_TIMEOUT:g} s")
            time.sleep(0.1)
        refused = [job for job in cluster.workers.values() if job.job_id is None]
        if not refused:
            return
        for job in refused:
            job.status = Status.failed           # else closing the cluster asserts on it
        deadline = time.monotonic() + 5
        while not refusals.errors and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        log.removeFilter(refusals)
    submit = cluster.job_cls.submit_command.split()[0]
    said = f": {refusals.errors[0]}" if refusals.errors else ""
    raise PsqsError(f"--cluster {kind}: {submit} refused {len(refused)} of {len(cluster.workers)} jobs{said}")


class _SubmitErrors(logging.Filter):
    """Keep the last stderr line of each failed submit command instead of its logged traceback."""

    def __init__(self):
        super().__init__()
        self.errors: list = []

    def filter(self, record) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, RuntimeError) and "Command exited with non-zero exit code" in str(exc):
            lines = [line for line in str(exc).split("stderr:", 1)[-1].splitlines() if line.strip()]
            self.errors.append(lines[-1].strip() if lines else "no message")
            return False
        return True


def _client(address: str):
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PsqsError(f"--scheduler {address}: no Dask scheduler answered within "
                        f"{CONNECT_TIMEOUT:g} s ({reason})") from None


def _close_cluster(cluster) -> None:
    cluster.close(timeout=CLOSE_TIMEOUT)


def dashboard_link(client) -> str | None:
    """The scheduler's dashboard address, or None when it serves none."""
    try:
        return client.dashboard_link
    except (KeyError, AttributeError):
        return None


def _local_cluster(options: ClusterOptions, sizing: Sizing):
    """One process per worker (the GIL; TensorFlow's own pools), one task at a time each. The
    Nanny sets ``env`` in its worker process before the worker starts, so every task and every
    program a task runs sees it."""
    import dask
    from distributed import LocalCluster

    # a worker process takes its Dask configuration from its nanny's, not from ``env`` (too late)
    with dask.config.set(WORKER_CONFIG):
        return LocalCluster(n_workers=sizing.workers, threads_per_worker=1, processes=True,
                            env=worker_env(sizing.tf_threads),
                            silence_logs=logging.ERROR, scheduler_kwargs=_dashboard(options))


def _dashboard(options: ClusterOptions) -> dict:
    """Scheduler keywords: the dashboard on Dask's usual port (another free one if taken), or
    none; the scheduler's HTTP server then takes any free port, not the dashboard's."""
    return {"dashboard": options.dashboard, "dashboard_address": ":8787" if options.dashboard else ":0"}


def job_sizing(options: ClusterOptions) -> Sizing:
    """Workers in one batch job: the sizing rule applied to the job's cores and memory."""
    return size_workers(options.cores, options.memory_bytes)


def _jobqueue_class(kind: str):
    import dask_jobqueue

    return {"slurm": dask_jobqueue.SLURMCluster, "pbs": dask_jobqueue.PBSCluster,
            "htcondor": dask_jobqueue.HTCondorCluster}[kind]


def jobqueue_kwargs(options: ClusterOptions, log_directory=None) -> dict:
    """dask-jobqueue keywords for ``options``: per job, :func:`job_sizing`'s worker processes
    with one Dask thread each (dask-jobqueue's ``cores`` is Dask threads per job) while the job
    books all ``options.cores`` CPUs for their TensorFlow pools; the worker environment is
    exported in the job script; workers run this Python."""
    from dask_jobqueue.pbs import pbs_format_bytes_ceil

    sizing = job_sizing(options)
    kw = dict(cores=sizing.workers, processes=sizing.workers, memory=f"{options.memory_bytes}B",
              python=sys.executable, job_name="psqs-sweep",
              job_script_prologue=[f"export {k}={v}" for k, v in worker_env(sizing.tf_threads).items()],
              scheduler_options=_dashboard(options))
    if log_directory is not None:
        kw["log_directory"] = str(log_directory)
    if options.kind == "slurm":
        kw.update(job_cpu=options.cores, queue=options.queue, account=options.account,
                  walltime=options.walltime, job_extra_directives=list(options.job_extra))
    elif options.kind == "pbs":
        kw.update(queue=options.queue, account=options.account, walltime=options.walltime,
                  resource_spec=f"select=1:ncpus={options.cores}:mem={pbs_format_bytes_ceil(options.memory_bytes)}",
                  job_extra_directives=list(options.job_extra))
    else:
        extra = {"RequestCpus": options.cores}
        if options.account is not None:
            extra["accounting_group"] = options.account
        if options.walltime is not None:
            extra["allowed_job_duration"] = options.walltime_seconds
        for line in options.job_extra:
            key, _, value = line.partition("=")
            extra[key.strip()] = value.strip()
        kw.update(disk=HTCONDOR_DISK, job_extra_directives=extra)
    return kw


def jobqueue_cluster(options: ClusterOptions, log_directory=None):
    """The dask-jobqueue cluster for ``options`` (its scheduler started here; no job submitted
    until it is scaled). Refused at once when the batch system's submit command is missing."""
    cls = _jobqueue_class(options.kind)
    submit = cls.job_cls.submit_command.split()[0]
    if shutil.which(submit) is None:
        raise PsqsError(f"--cluster {options.kind}: {submit} not found on PATH (run the sweep where "
                        f"jobs can be submitted, or write batch scripts with --emit)")
    return cls(**jobqueue_kwargs(options, log_directory), silence_logs="error")


def job_script(options: ClusterOptions, log_directory=None) -> str:
    """The script dask-jobqueue submits for one worker job, without submitting anything (the
    scheduler address is dask-jobqueue's placeholder until a cluster runs)."""
    cls = _jobqueue_class(options.kind)
    kw = jobqueue_kwargs(options, log_directory)
    kw.pop("scheduler_options")
    return cls.job_cls("tcp://<insert-scheduler-address-here>:8786", name="dummy-name", **kw).job_script()


# -- licences ----------------------------------------------------------------------------------
def create_licences(client, licences: dict) -> None:
    """Create one semaphore per licence on the scheduler, before any task asks for one, and record
    the counts where tasks find them (:func:`licence`)."""
    from distributed import Semaphore

    for name, count in licences.items():
        known = client.get_metadata([LICENCE_METADATA, name], default=None)
        if known is not None and known != count:
            raise PsqsError(f"--licences {name}={count}: this scheduler already counts {known} "
                            f"{name} licences (another sweep on it?)")
        Semaphore(max_leases=count, name=LICENCE_PREFIX + name, scheduler_rpc=client.scheduler,
                  loop=client.loop).register()
        client.set_metadata([LICENCE_METADATA, name], count)


@contextmanager
def licence(name: str, timeout: float = LICENCE_WAIT):
    """Hold one ``name`` licence while the block runs, inside a task on a Dask worker.

    Outside a Dask worker (a unit run by a batch job from ``--emit``) this holds nothing: there
    the batch system counts licences (``--licenses`` / ``concurrency_limits``).
    """
    from distributed import Semaphore, get_client, get_worker

    try:
        get_worker()
    except ValueError:
        yield
        return
    count = get_client().get_metadata([LICENCE_METADATA, name], default=None)
    if count is None:
        raise PsqsError(f"licence {name}: not declared for this sweep (pass --licences {name}=N)")
    semaphore = Semaphore(max_leases=count, name=LICENCE_PREFIX + name)
    if not semaphore.acquire(timeout=timeout):
        raise RunFailed(f"licence {name}: none of its {count} leases came free within "
                        f"{timeout / 3600:g} h (builds holding it hang, or too few for the queue)")
    try:
        yield
    finally:
        semaphore.release()
