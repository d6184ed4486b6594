"""Where sweep units run: cluster options, the worker sizing rule, dask-jobqueue job scripts, a real
LocalCluster and a real worker started from a Slurm job script, licence semaphores, and the plain
batch scripts of ``psqs sweep --emit``."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from psqs.common.artifact import MANIFEST
from psqs.common.errors import PsqsError
from psqs.deploy.sweep import clusters, emit
from psqs.deploy.sweep.clusters import ClusterOptions, connect, parse_licences, size_workers, worker_env
from psqs.deploy.sweep.layout import SweepDir, Unit

GIB = 2**30


# -- options -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, option", [
    (dict(kind="sge"), "--cluster sge"),
    (dict(kind="scheduler"), "--scheduler"),
    (dict(kind="slurm", scheduler="tcp://h:8786"), "--scheduler tcp://h:8786"),
    (dict(kind="scheduler", scheduler="h:notaport"), "--scheduler h:notaport"),
    (dict(workers=0), "--workers 0"),
    (dict(kind="scheduler", scheduler="tcp://h:8786", workers=2), "--workers"),
    (dict(kind="slurm", cores=0), "--cores 0"),
    (dict(kind="slurm", memory="lots"), "--memory lots"),
    (dict(kind="slurm", memory="12"), "--memory 12"),
    (dict(kind="slurm", walltime="3h"), "--walltime 3h: must be HH:MM:SS"),
    (dict(kind="slurm", walltime="1:75:00"), "--walltime 1:75:00"),
    (dict(kind="slurm", queue="a b"), "--queue 'a b'"),
    (dict(kind="pbs", account='x"y'), "--account"),
    (dict(kind="slurm", job_extra=("a\nb",)), "--job-extra"),
    (dict(kind="htcondor", job_extra=("+Flavour",)), "--job-extra '+Flavour'"),
    (dict(kind="htcondor", queue="short"), "--queue short"),
    (dict(licences={"vivado": 0}), "--licences vivado=0"),
    (dict(licences={"2x": 1}), "--licences 2x"),
])
def test_option_errors_are_one_line_naming_the_option(kwargs, option):
    with pytest.raises(PsqsError) as err:
        ClusterOptions(**kwargs)
    assert str(err.value).startswith(option) and "\n" not in str(err.value)


@pytest.mark.parametrize("text, option", [
    ("vivado", "--licences 'vivado'"), ("vivado=two", "--licences vivado=two"),
    ("vivado=1,vivado=2", "--licences vivado: given twice"), ("vivado=-1", "--licences vivado=-1"),
    ("=3", "--licences "),
])
def test_licence_option_errors(text, option):
    with pytest.raises(PsqsError) as err:
        parse_licences(text)
    assert str(err.value).startswith(option) and "\n" not in str(err.value)


def test_licence_option_parses_names_and_counts():
    assert parse_licences("vivado=2, vitis=1") == {"vivado": 2, "vitis": 1}


@pytest.mark.parametrize("option, value", [("queue", "q"), ("account", "a"), ("walltime", "01:00:00"),
                                           ("job_extra", ("--exclusive",))])
def test_batch_options_refused_for_a_local_cluster(option, value):
    with pytest.raises(PsqsError, match=f"^--{option.replace('_', '-')}: only with --cluster"):
        with connect(ClusterOptions(**{option: value})):
            pass


# -- sizing ------------------------------------------------------------------------------------
@pytest.mark.parametrize("cpus", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("memory_gib", [0.5, 1.5, 4, 7, 64, 512])
def test_sizing_never_oversubscribes_cores_or_memory(cpus, memory_gib):
    s = size_workers(cpus, int(memory_gib * GIB))
    assert s.workers * s.tf_threads <= cpus
    # as many workers as both limits allow (at least one), every spare core to TensorFlow
    assert s.workers == max(1, min(cpus, int(memory_gib / 1.5)))
    assert s.tf_threads == cpus // s.workers


def test_sizing_with_a_user_worker_count_splits_the_cores():
    three = size_workers(8, 64 * GIB, workers=3)
    assert (three.workers, three.tf_threads) == (3, 2)
    assert size_workers(2, 64 * GIB, workers=4).tf_threads == 1


def test_machine_size_follows_cpu_affinity():
    """Under ``taskset -c 0`` the process may use one CPU whatever the machine has."""
    code = "from psqs.deploy.sweep.clusters import this_machine; print(this_machine()[0])"
    one = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.strip()
    assert one == "1"
    allowed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             check=True).stdout.strip()
    assert allowed == str(len(os.sched_getaffinity(0)))


def test_machine_memory_is_at_most_physical_memory():
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    total = int(meminfo["MemTotal"].split()[0]) * 1024
    assert 0 < clusters.this_machine()[1] <= total


# -- dask-jobqueue job scripts -----------------------------------------------------------------
def _jobqueue_options(kind):
    return ClusterOptions(kind=kind, cores=6, memory="5GiB", walltime="02:30:00", account="proj42",
                          queue=None if kind == "htcondor" else "shortq",
                          job_extra=(("requirements = (OpSysMajorVer == 9)",) if kind == "htcondor"
                                     else ("--exclusive",)))


@pytest.mark.parametrize("kind", ["slurm", "pbs", "htcondor"])
def test_jobqueue_script_carries_the_users_options_env_and_python(kind, tmp_path):
    script = clusters.job_script(_jobqueue_options(kind), tmp_path / "logs")
    sizing = size_workers(6, 5 * GIB)                    # 3 workers x 2 TensorFlow threads
    expected = {
        "slurm": ["#SBATCH -p shortq", "#SBATCH -A proj42", "#SBATCH -t 02:30:00", "#SBATCH --mem=5G",
                  "#SBATCH --cpus-per-task=6", "#SBATCH --exclusive"],
        "pbs": ["#PBS -q shortq", "#PBS -A proj42", "#PBS -l walltime=02:30:00",
                "#PBS -l select=1:ncpus=6:mem=5120MB", "#PBS --exclusive"],
        "htcondor": ["accounting_group = proj42", f"allowed_job_duration = {2 * 3600 + 30 * 60}",
                     f"MY.DaskWorkerMemory = {5 * GIB}", "RequestCpus = 6",
                     "requirements = (OpSysMajorVer == 9)"],
    }[kind]
    lines = script.splitlines()
    for line in expected:
        assert line in lines, (line, script)
    for name, value in worker_env(sizing.tf_threads).items():
        assert f"export {name}={value}" in script
    assert sizing.tf_threads == 2 and "export PSQS_TF_THREADS=2" in script
    assert f"{sys.executable} -m distributed.cli.dask_worker" in script
    assert f"--nthreads 1 " in script and f"--nworkers {sizing.workers} " in script
    if kind != "htcondor":
        subprocess.run(["bash", "-n"], input=script, text=True, check=True, timeout=30)


@pytest.mark.parametrize("kind", ["slurm", "pbs", "htcondor"])
def test_job_script_is_the_one_the_cluster_submits(kind, tmp_path, monkeypatch):
    """job_script() (no scheduler started) equals the running cluster's own job script but for
    the scheduler address dask-jobqueue fills in."""
    options = _jobqueue_options(kind)
    submit = {"slurm": "sbatch", "pbs": "qsub", "htcondor": "condor_submit"}[kind]
    (tmp_path / submit).write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / submit).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    cluster = clusters.jobqueue_cluster(ClusterOptions(**{**options.__dict__, "dashboard": False}), tmp_path)
    try:
        running = cluster.job_script()
        address = cluster.scheduler.address
    finally:
        cluster.close(timeout=30)
    assert address in running
    placeholder = "tcp://<insert-scheduler-address-here>:8786"
    assert running.replace(address, placeholder) == clusters.job_script(options, tmp_path)


def _fake_batch_system(bin_dir: Path, record: Path) -> None:
    """``sbatch`` that runs the job script in its own process group (its job id: that group) and
    ``scancel`` that ends it, so a job script written by dask-jobqueue starts a real worker here."""
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(textwrap.dedent(f"""\
        #!/bin/bash
        cp "$1" {record}
        setsid bash {record} > {record}.log 2>&1 < /dev/null &
        echo $! >> {record.parent}/jobs
        echo "Submitted batch job $!"
        """))
    (bin_dir / "scancel").write_text("#!/bin/bash\nfor j in \"$@\"; do kill -- -\"$j\" 2>/dev/null || true; done\n")
    for f in bin_dir.iterdir():
        f.chmod(0o755)


def test_slurm_worker_started_from_its_job_script_sees_the_env(tmp_path, monkeypatch):
    """connect() with --cluster slurm: the job script dask-jobqueue submits (run by a stand-in
    sbatch) starts a worker that joins the sweep's scheduler with the worker environment."""
    record = tmp_path / "submitted.sh"
    _fake_batch_system(tmp_path / "bin", record)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    options = ClusterOptions(kind="slurm", cores=2, memory="1.5GiB", workers=1, dashboard=False)
    with connect(options, log_directory=tmp_path / "logs") as (client, description):
        assert description.startswith("slurm: 1 job submitted, each 1 worker x 2 TensorFlow threads")
        client.wait_for_workers(1, timeout=90)
        seen = client.submit(lambda: {k: os.environ.get(k) for k in worker_env(1)},
                             pure=False).result(timeout=60)
        threads = client.submit(lambda: __import__("distributed").get_worker().state.nthreads,
                                pure=False).result(timeout=60)
    assert seen == worker_env(size_workers(2, int(1.5 * GIB)).tf_threads) == worker_env(2)
    assert threads == 1
    script = record.read_text()
    assert "#SBATCH --cpus-per-task=2" in script and f"{sys.executable} -m distributed.cli.dask_worker" in script
    # closing the cluster cancelled the job (scancel): the job's process group is gone
    (job,) = (int(p) for p in (tmp_path / "jobs").read_text().split())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and _group_alive(job):
        time.sleep(0.5)
    assert not _group_alive(job)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _stand_in(bin_dir: Path, sbatch: str) -> None:
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/bash\n" + sbatch)
    (bin_dir / "scancel").write_text('#!/bin/bash\necho "$@" >> "$(dirname "$0")/cancelled"\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)


def test_refused_submission_stops_at_once_with_the_batch_systems_words(tmp_path, monkeypatch):
    _stand_in(tmp_path / "bin",
              'echo "sbatch: error: Invalid account or account/partition combination specified" >&2\nexit 1\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    start = time.monotonic()
    with pytest.raises(PsqsError) as err:
        with connect(ClusterOptions(kind="slurm", account="nope", workers=2, dashboard=False)):
            pass
    assert str(err.value) == ("--cluster slurm: sbatch refused 2 of 2 jobs: sbatch: error: Invalid account "
                              "or account/partition combination specified")
    assert time.monotonic() - start < clusters.SUBMIT_TIMEOUT


def test_queued_jobs_do_not_hold_up_connect_and_are_cancelled(tmp_path, monkeypatch):
    """Jobs the batch system keeps pending: connect() returns once they are submitted; leaving it
    cancels each by the id the submit command printed."""
    _stand_in(tmp_path / "bin", 'touch "$(dirname "$0")/job$$"\necho "Submitted batch job $$"\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    start = time.monotonic()
    with connect(ClusterOptions(kind="slurm", workers=3, dashboard=False)) as (client, description):
        assert time.monotonic() - start < 30
        assert description.startswith("slurm: 3 jobs submitted") and "dashboard" not in description
        assert not client.scheduler_info()["workers"]
    submitted = sorted(p.name[3:] for p in (tmp_path / "bin").glob("job*"))
    assert len(submitted) == 3
    assert sorted((tmp_path / "bin" / "cancelled").read_text().split()) == submitted


def test_interrupt_inside_connect_stops_the_local_workers():
    with pytest.raises(KeyboardInterrupt):
        with connect(ClusterOptions(workers=1, dashboard=False)) as (client, _):
            pids = list(client.run(os.getpid).values())
            raise KeyboardInterrupt
    assert len(pids) == 1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and Path(f"/proc/{pids[0]}").exists():
        time.sleep(0.2)
    assert not Path(f"/proc/{pids[0]}").exists()


def test_jobqueue_without_its_submit_command_fails_at_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PsqsError, match=r"^--cluster pbs: qsub not found on PATH"):
        with connect(ClusterOptions(kind="pbs")):
            pass


# -- a real local cluster ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def local():
    with connect(ClusterOptions(workers=2, dashboard=True)) as (client, description):
        clusters.create_licences(client, {"one": 1, "two": 2})
        yield client, description


def test_local_workers_see_the_tensorflow_thread_env(local):
    client, description = local
    sizing = size_workers(*clusters.this_machine(), 2)
    envs = client.run(lambda: {k: os.environ.get(k) for k in worker_env(1)})
    assert len(envs) == 2
    assert all(env == worker_env(sizing.tf_threads) for env in envs.values())
    assert all(n == 1 for n in client.nthreads().values())
    assert description.startswith(f"local cluster: {sizing.describe()}")


def test_local_workers_do_not_run_dask_s_profiler(local):
    """WORKER_CONFIG reaches the worker processes (through the nanny's configuration, where the
    environment would come too late): no profile callbacks are scheduled in them."""
    client, _ = local
    callbacks = client.run(lambda dask_worker: sorted(dask_worker.periodic_callbacks))
    assert all("memory_monitor" in cbs and "profile" not in cbs and "profile-cycle" not in cbs
               for cbs in callbacks.values())


def test_local_dashboard_link_is_printed_and_serves(local):
    client, description = local
    link = re.search(r"dashboard (http://\S+)$", description).group(1)
    assert link == client.dashboard_link
    with urllib.request.urlopen(link, timeout=30) as response:
        assert response.status == 200


def _hold(name, i):
    from distributed import get_worker

    from psqs.deploy.sweep.clusters import licence

    with licence(name):
        start = time.time()
        time.sleep(0.8)
        return start, time.time(), get_worker().address


def _overlaps(held):
    intervals = sorted(h[:2] for h in held)
    return sum(b[0] < a[1] for a, b in zip(intervals, intervals[1:]))


def test_one_licence_is_never_held_twice_at_once(local):
    client, _ = local
    held = client.gather(client.map(_hold, ["one"] * 4, range(4), pure=False))
    assert _overlaps(held) == 0
    assert len({h[2] for h in held}) == 2          # both workers ran them, free to overlap but for it


def test_two_licences_are_held_at_once(local):
    client, _ = local
    intervals = client.gather(client.map(_hold, ["two"] * 4, range(4), pure=False))
    assert _overlaps(intervals) >= 1


def test_undeclared_licence_fails_with_one_line(local):
    client, _ = local
    with pytest.raises(PsqsError, match=r"^licence vitis: not declared for this sweep \(pass --licences vitis=N\)$"):
        client.submit(_hold, "vitis", 0, pure=False).result(timeout=60)


def test_licence_count_conflicting_with_the_schedulers_is_refused(local):
    client, _ = local
    with pytest.raises(PsqsError, match=r"^--licences one=3: this scheduler already counts 1"):
        clusters.create_licences(client, {"one": 3})


def test_joining_a_running_scheduler(local):
    client, _ = local
    address = client.scheduler.address
    with connect(ClusterOptions(kind="scheduler", scheduler=address)) as (joined, description):
        assert joined.submit(lambda: os.environ["PSQS_TF_THREADS"], pure=False).result(timeout=60) \
            == worker_env(size_workers(*clusters.this_machine(), 2).tf_threads)["PSQS_TF_THREADS"]
    assert description == f"scheduler {address}: 2 workers, dashboard {client.dashboard_link}"
    assert client.submit(lambda: 1, pure=False).result(timeout=60) == 1      # the cluster outlives the join


def test_scheduler_that_does_not_answer_fails_within_the_timeout():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]                       # bound, never listening: nobody answers
        start = time.monotonic()
        with pytest.raises(PsqsError) as err:
            with connect(ClusterOptions(kind="scheduler", scheduler=f"tcp://127.0.0.1:{port}")):
                pass
        elapsed = time.monotonic() - start
    message = str(err.value)
    assert message.startswith(f"--scheduler tcp://127.0.0.1:{port}: no Dask scheduler answered within 10 s")
    assert "\n" not in message and elapsed < clusters.CONNECT_TIMEOUT + 10


# -- --emit ------------------------------------------------------------------------------------
def _plan(root: Path):
    """Two chains of two steps, each checkpoint converted, then rtl, a Vivado build and a bench per
    convert; one convert already done (its artifact exists)."""
    units = []
    for c in range(2):
        chain = Unit(key=f"chain{c}", kind="chain", params={}, labels={"seed": c},
                     outputs=(f"artifacts/model/m{c}a", f"artifacts/model/m{c}b"))
        units.append(chain)
        for step in range(2):
            conv = Unit(key=f"conv{c}{step}", kind="convert", params={}, deps=(chain.key,),
                        outputs=(f"artifacts/hls/conv{c}{step}",))
            build = Unit(key=f"build{c}{step}", kind="build", params={}, deps=(conv.key,),
                         outputs=(f"artifacts/build/build{c}{step}",), licences={"vivado": 1})
            units += [conv, Unit(key=f"rtl{c}{step}", kind="rtl", params={}, deps=(conv.key,),
                                 outputs=(f"artifacts/rtl/rtl{c}{step}",)), build,
                      Unit(key=f"bench{c}{step}", kind="bench", params={}, deps=(build.key,),
                           outputs=(f"artifacts/bench/bench{c}{step}",))]
    done = root / "artifacts/hls/conv00"
    done.mkdir(parents=True)
    (done / MANIFEST).write_text("{}")
    return units


def _recorder(tmp_path: Path) -> list:
    """A stand-in for the unit command: writes its arguments and thread env to a file."""
    script = tmp_path / "record.py"
    script.write_text("import json, os, sys\n"
                      "json.dump({'argv': sys.argv[2:], 'threads': os.environ.get('PSQS_TF_THREADS')},"
                      " open(sys.argv[1], 'w'))\n")
    return [sys.executable, str(script), str(tmp_path / "ran.json")]


def _expected_groups(units, sweep):
    """Units per array, computed from the plan independently of emit: kind -> todo keys."""
    groups = {}
    for u in units:
        if not all((sweep.path / o / MANIFEST).is_file() for o in u.outputs):
            groups.setdefault(u.kind, []).append(u.key)
    return groups


def test_emit_slurm_arrays_licences_and_order(tmp_path):
    sweep = SweepDir(tmp_path / "sweep")
    units = _plan(sweep.path)
    options = ClusterOptions(cores=3, memory="6GiB", walltime="04:00:00", queue="long", account="lab")
    files = emit.emit(sweep, units, "slurm", options, command=_recorder(tmp_path))
    out = sweep.path / "jobs" / "slurm"
    assert set(files) == set(out.iterdir())
    expected = _expected_groups(units, sweep)
    names = {"chain": "0-chain", "convert": "1-convert", "rtl": "2-rtl", "build": "2-build-vivado", "bench": "3-bench"}
    for kind, keys in expected.items():
        script = (out / f"{names[kind]}.sh").read_text()
        subprocess.run(["bash", "-n", str(out / f"{names[kind]}.sh")], check=True, timeout=30)
        assert f"#SBATCH --array=1-{len(keys)}\n" in script
        assert (out / f"{names[kind]}.keys").read_text().split() == keys
        assert ("#SBATCH --licenses=vivado:1" in script) == (kind == "build")
        for line in ("#SBATCH --partition=long", "#SBATCH --account=lab", "#SBATCH --time=04:00:00",
                     "#SBATCH --mem=6144M", "#SBATCH --cpus-per-task=3",
                     f"#SBATCH --output={sweep.logs_dir.resolve()}/slurm-{names[kind]}-%A_%a.out"):
            assert line + "\n" in script
    assert "conv00" not in (out / "1-convert.keys").read_text()       # done: not emitted
    assert len(expected["convert"]) == 3
    # submit.sh: each level after every array of the previous level has ended (afterany)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/bash\nn=$(( $(wc -l < "$SBATCH_LOG" 2>/dev/null || echo 0) + 101 ))\n'
                                    'echo "$n $*" >> "$SBATCH_LOG"\necho "$n;cluster1"\n')
    (bin_dir / "sbatch").chmod(0o755)
    log = tmp_path / "sbatch.log"
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", SBATCH_LOG=str(log))
    subprocess.run(["bash", str(out / "submit.sh")], env=env, check=True, timeout=60, capture_output=True)
    submitted = {}
    for line in log.read_text().splitlines():
        job, *args = line.split()
        dep = next((a.split(":", 1)[1].split(":") for a in args if a.startswith("--dependency=afterany:")), [])
        submitted[args[-1][:-3]] = (job, dep)
    assert list(submitted) == ["0-chain", "1-convert", "2-build-vivado", "2-rtl", "3-bench"]
    assert submitted["0-chain"][1] == []
    assert submitted["1-convert"][1] == [submitted["0-chain"][0]]
    assert submitted["2-rtl"][1] == submitted["2-build-vivado"][1] == [submitted["1-convert"][0]]
    assert sorted(submitted["3-bench"][1]) == sorted([submitted["2-build-vivado"][0], submitted["2-rtl"][0]])


def test_emitted_slurm_array_element_runs_its_units_key(tmp_path):
    sweep = SweepDir(tmp_path / "sweep")
    units = _plan(sweep.path)
    emit.emit(sweep, units, "slurm", ClusterOptions(cores=3), command=_recorder(tmp_path))
    keys = _expected_groups(units, sweep)["convert"]
    script = sweep.path / "jobs" / "slurm" / "1-convert.sh"
    for index in (1, 3):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PSQS_TF", "TF_NUM"))}
        subprocess.run(["bash", str(script)], env=dict(env, SLURM_ARRAY_TASK_ID=str(index)), check=True, timeout=60)
        ran = json.loads((tmp_path / "ran.json").read_text())
        assert ran == {"argv": [keys[index - 1]], "threads": "3"}
    beyond = subprocess.run(["bash", str(script)], env=dict(os.environ, SLURM_ARRAY_TASK_ID="9"),
                            capture_output=True, text=True, timeout=60)
    assert beyond.returncode == 2 and "no unit on line 9" in beyond.stderr


def test_emit_default_command_runs_one_unit_of_this_sweep(tmp_path):
    sweep = SweepDir(tmp_path / "sweep")
    emit.emit(sweep, _plan(sweep.path), "slurm", ClusterOptions())
    script = (sweep.path / "jobs" / "slurm" / "0-chain.sh").read_text()
    assert f"exec {sys.executable} -m psqs.deploy.cli sweep unit {sweep.path.resolve()} \"$KEY\"\n" in script


def test_emit_htcondor_submit_files_and_dag(tmp_path):
    sweep = SweepDir(tmp_path / "sweep")
    units = _plan(sweep.path)
    options = ClusterOptions(cores=2, memory="3GiB", walltime="01:00:00", account="lab",
                             job_extra=("requirements = (OpSysMajorVer == 9)",))
    files = emit.emit(sweep, units, "htcondor", options, command=_recorder(tmp_path))
    out = sweep.path / "jobs" / "htcondor"
    assert set(files) == set(out.iterdir())
    expected = _expected_groups(units, sweep)
    names = {"chain": "0-chain", "convert": "1-convert", "rtl": "2-rtl", "build": "2-build-vivado", "bench": "3-bench"}
    for kind, keys in expected.items():
        sub = (out / f"{names[kind]}.sub").read_text().splitlines()
        assert sub[-1] == f"queue key from {(out / names[kind]).resolve()}.keys"
        assert (out / f"{names[kind]}.keys").read_text().split() == keys
        assert ("concurrency_limits = vivado:1" in sub) == (kind == "build")
        for line in ("request_cpus = 2", "request_memory = 3072", "allowed_job_duration = 3600",
                     "accounting_group = lab", "requirements = (OpSysMajorVer == 9)", "arguments = $(key)"):
            assert line in sub
    dag = (out / "sweep.dag").read_text().splitlines()
    parents = [line.split() for line in dag if line.startswith("PARENT")]
    order = [(p[1:p.index("CHILD")], p[p.index("CHILD") + 1:]) for p in parents]
    assert order == [(["0-chain"], ["1-convert"]), (["1-convert"], ["2-build-vivado", "2-rtl"]),
                     (["2-build-vivado", "2-rtl"], ["3-bench"])]
    assert sum(line.startswith("SCRIPT POST") and line.endswith("/bin/true") for line in dag) == 5
    subprocess.run(["bash", "-n", str(out / "run_unit.sh")], check=True, timeout=30)
    key = expected["bench"][2]
    subprocess.run([str(out / "run_unit.sh"), key], check=True, timeout=60)
    assert json.loads((tmp_path / "ran.json").read_text()) == {"argv": [key], "threads": "2"}


def test_emit_nothing_when_all_done_and_large_groups_split(tmp_path, monkeypatch):
    sweep = SweepDir(tmp_path / "sweep")
    units = [Unit(key=f"b{i:03d}", kind="bench", params={}, outputs=(f"artifacts/bench/b{i:03d}",))
             for i in range(7)]
    monkeypatch.setattr(emit, "MAX_ARRAY", 3)
    emit.emit(sweep, units, "slurm", ClusterOptions())
    out = sweep.path / "jobs" / "slurm"
    arrays = sorted(p.name for p in out.glob("*.keys"))
    assert arrays == ["3-bench-part1.keys", "3-bench-part2.keys", "3-bench-part3.keys"]
    assert [len((out / a).read_text().split()) for a in arrays] == [3, 3, 1]
    for u in units:
        (sweep.path / u.outputs[0]).mkdir(parents=True)
        (sweep.path / u.outputs[0] / MANIFEST).write_text("{}")
    assert emit.emit(sweep, units, "slurm", ClusterOptions()) == []


def test_emit_refuses_what_the_batch_system_cannot_take(tmp_path):
    sweep = SweepDir(tmp_path / "sweep")
    trials = [Unit(key="t0", kind="trial", params={}, outputs=("artifacts/model/t0",)),
              Unit(key="t1", kind="trial", params={}, outputs=("artifacts/model/t1",), deps=("t0",))]
    with pytest.raises(PsqsError, match="^sweep plan: trial unit t1 waits for trial unit t0, which batch jobs"):
        emit.emit(sweep, trials, "slurm", ClusterOptions())
    with pytest.raises(PsqsError, match="^--emit lsf: must be one of slurm, htcondor$"):
        emit.emit(sweep, trials[:1], "lsf", ClusterOptions())
    with pytest.raises(PsqsError, match="^--queue short: HTCondor has no queues"):
        emit.emit(sweep, trials[:1], "htcondor", ClusterOptions(queue="short"))
    with pytest.raises(PsqsError, match="^--job-extra '--exclusive': HTCondor directives are KEY = VALUE$"):
        emit.emit(sweep, trials[:1], "htcondor", ClusterOptions(job_extra=("--exclusive",)))
    spaced = SweepDir(tmp_path / "my sweep")
    with pytest.raises(PsqsError, match="my sweep: batch directives cannot carry a path with spaces"):
        emit.emit(spaced, trials[:1], "slurm", ClusterOptions())
