"""Sweeps through submitit (hydra/launcher=submitit_local here; hydra/launcher=slurm on a real one-node Slurm
cluster where one can be started): one job per cell, and a job told to stop (SIGUSR2, as Slurm tells a job before its
time limit) saves a checkpoint, is requeued, and the requeued job finishes the run by resuming."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, THREADS
from test_sweeps import TINY_SFT

from rlexp.tracking import read_metrics

# long enough that a signal after its first checkpoint comes before its end, on any machine
LONG_SFT = [*TINY_SFT, "algo.max_steps=40", "algo.save_steps=2"]


def sweep_cli(*args: str) -> subprocess.Popen:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    argv = [sys.executable, "-m", "rlexp", "-m", *args, f"threads={THREADS}"]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_process(run_dir: Path) -> int:
    """The process that runs in `run_dir`, as its lock file names it."""
    return int((run_dir / ".lock").read_text().split()[-1])


def wait_for_checkpoint(process: subprocess.Popen, stage_dir: Path) -> None:
    """No time limit: a loaded machine is slow, not wrong."""
    while not list(stage_dir.glob("checkpoint-*/complete.json")):
        assert process.poll() is None, f"the sweep ended before a checkpoint: {process.communicate()[1][-3000:]}"
        time.sleep(0.05)


def cell_logs(sweep: Path, cell: int) -> str:
    """What the submitit job of a sweep's cell wrote, requeued or not (submitit appends to one log per job)."""
    logs = ["".join(p.read_text() for p in sorted(job.glob("*_log.*"))) for job in (sweep / ".submitit").iterdir()]
    (found,) = [log for log in logs if f"[rlexp] run directory: {sweep / str(cell)}\n" in log]
    return found


def assert_one_record_per_step(run_dir: Path, steps: int) -> None:
    logged = [r["step"] for r in read_metrics(run_dir) if "loss" in r]
    assert logged == list(range(1, steps + 1)), logged


def test_submitit_local_sweep_requeues_a_signalled_job_which_resumes(tmp_path):
    sweep = tmp_path / "sweep"
    process = sweep_cli("hydra/launcher=submitit_local", *LONG_SFT, "seed=0,1", f"hydra.sweep.dir={sweep}")
    wait_for_checkpoint(process, sweep / "0" / "sft")
    os.kill(run_process(sweep / "0"), signal.SIGUSR2)  # the submitit task running cell 0
    stdout, stderr = process.communicate()
    assert process.returncode == 0, stderr[-3000:]
    for cell in ("0", "1"):
        assert json.loads((sweep / cell / "summary.json").read_text())["status"] == "done"
        assert_one_record_per_step(sweep / cell, 40)
    logs = {cell: cell_logs(sweep, cell) for cell in (0, 1)}
    assert "Requeued job" in logs[0] and "Requeued job" not in logs[1]
    assert "[rlexp] SIGUSR2: stopping after this step with a checkpoint" in logs[0]
    assert "[rlexp] stage sft: single process, CPU; continuing from checkpoint-" in logs[0]
    assert (sweep / "report.md").is_file()


# -- a real Slurm: one node, this machine ------------------------------------------------------------------------------

SLURM_CONF = """\
ClusterName=rlexp-test
SlurmctldHost={host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
KillWait=10
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


def install_slurm() -> str:
    """Debian's slurm-wlm and munge, installed if missing; the reason they cannot be, else ''."""
    if all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        return ""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "Slurm is not installed, and installing it needs root and apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "slurm-wlm", "munge"]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            return f"apt-get could not install slurm-wlm and munge: {done.stderr.strip().splitlines()[-1:]}"
    return ""


def start_munge() -> subprocess.Popen | None:
    """munged, unless one runs already (Slurm's daemons and commands authenticate through it)."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return None
    Path("/run/munge").mkdir(exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    if not Path("/etc/munge/munge.key").is_file():
        subprocess.run(["mungekey", "--create"], check=True, capture_output=True)
        shutil.chown("/etc/munge/munge.key", "munge", "munge")
    return subprocess.Popen(["runuser", "-u", "munge", "--", "munged", "--foreground"], stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A one-node Slurm cluster on this machine (slurmctld and slurmd, no cgroups, no accounting): the environment
    that points Slurm's commands at it. Skipped, with the reason, where it cannot be started."""
    reason = install_slurm()
    if reason:
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    conf = folder / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=socket.gethostname(), dir=folder, cpus=os.cpu_count()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    munged = start_munge()
    daemons = [subprocess.Popen([daemon, "-D", "-f", str(conf)], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for daemon in ("slurmctld", "slurmd")]  # fmt: skip
    try:
        for _ in range(300):  # the node comes up in a few seconds; these are the checks, not a bound on the test
            idle = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True).stdout.strip()
            if idle == "idle" or any(d.poll() is not None for d in daemons):
                break
            time.sleep(0.2)
        if idle != "idle":
            logs = "".join(p.read_text()[-1000:] for p in folder.glob("*.log"))
            pytest.skip(f"Slurm did not start here (node state {idle!r}): {logs}")
        yield env
    finally:
        stop_cluster(env, [*daemons, *([munged] if munged else [])])


def stop_cluster(env: dict, processes: list[subprocess.Popen]) -> None:
    """Cancel what still runs (a job whose result is in may still be exiting), then stop the daemons; one that does
    not stop when asked is killed."""
    subprocess.run(["scancel", "--user", "root"], env=env, capture_output=True)
    for _ in range(300):
        if not subprocess.run(["squeue", "-h"], env=env, capture_output=True, text=True).stdout.strip():
            break
        time.sleep(0.2)
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def release_requeued(env: dict, sweep: Path) -> None:
    """Slurm holds a requeued job for two minutes before it may start again: let the sweep's requeued jobs start
    now (only the test's time changes; what runs is the same)."""
    jobs = subprocess.run(["squeue", "-h", "-t", "PD", "-o", "%i %r"], env=env, capture_output=True, text=True).stdout
    for line in jobs.splitlines():
        job, reason = line.split(maxsplit=1)
        if reason == "BeginTime":
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, capture_output=True)


def test_a_slurm_sweep_runs_its_cells_and_a_cell_past_its_time_limit_is_requeued_and_resumes(slurm, tmp_path):
    sweep = tmp_path / "sweep"
    # cell 0 ends well within the time limit; cell 1, about two minutes of steps on an idle machine, does not: Slurm
    # sends SIGUSR2 30 s before the limit (or up to 60 s earlier: Slurm checks time limits every 30 s or so), which
    # leaves a loaded machine a minute to start the run and take some steps in each job
    env = {**slurm, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    argv = [sys.executable, "-m", "rlexp", "-m", "hydra/launcher=slurm", *TINY_SFT, "algo.max_steps=4,3000", "algo.save_steps=200",
            "algo.per_device_train_batch_size=16", f"threads={THREADS}",
            "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=30", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while process.poll() is None:
        release_requeued(slurm, sweep)
        time.sleep(1)
    stdout, stderr = process.communicate()
    print(f"the Slurm sweep took {time.monotonic() - started:.0f} s")
    assert process.returncode == 0, stderr[-3000:]
    for cell, steps in ((0, 4), (1, 3000)):
        assert json.loads((sweep / str(cell) / "summary.json").read_text())["status"] == "done"
        assert_one_record_per_step(sweep / str(cell), steps)
    logs = cell_logs(sweep, 1)
    assert "Requeued job" in logs and "Requeued job" not in cell_logs(sweep, 0)
    assert "continuing from checkpoint-" in logs
    assert (sweep / "report.md").is_file()


# -- several nodes: each node's task reads its own rank where it starts ------------------------------------------------


def test_each_node_of_a_slurm_job_launches_its_ranks_with_its_own_node_rank(monkeypatch):
    from rlexp import launch

    hostnames = subprocess.CompletedProcess([], 0, stdout="gpu-a07\ngpu-a08\n")
    monkeypatch.setattr(
        launch.subprocess, "run", lambda argv, **kw: hostnames if argv[:3] == ["scontrol", "show", "hostnames"] else None
    )
    config = {"launcher": {"name": "ddp", "num_processes": 4}, "precision": "bf16"}
    settings = {}
    for node in ("0", "1"):
        monkeypatch.setenv("SLURM_JOB_NUM_NODES", "2")
        monkeypatch.setenv("SLURM_NODEID", node)
        monkeypatch.setenv("SLURM_JOB_NODELIST", "gpu-a[07-08]")
        monkeypatch.setenv("SLURM_JOB_ID", "4242")
        settings[node] = launch.accelerate_settings(config, launch.SlurmNodes.here())
    for node, s in settings.items():
        assert (s["num_machines"], s["machine_rank"], s["num_processes"]) == (2, int(node), 8)
        assert (s["main_process_ip"], s["main_process_port"]) == ("gpu-a07", 24242)


def test_outside_a_several_node_slurm_job_a_launch_is_one_machine(monkeypatch):
    from rlexp import launch

    for name in ("SLURM_JOB_NUM_NODES", "SLURM_NNODES", "SLURM_NODEID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_JOB_NUM_NODES", "1")  # a one-node job is a machine like any other
    settings = launch.accelerate_settings(
        {"launcher": {"name": "ddp", "num_processes": 2}, "precision": "no"}, launch.SlurmNodes.here()
    )
    assert (settings["num_machines"], settings["machine_rank"], settings["num_processes"]) == (1, 0, 2)
    assert "main_process_ip" not in settings
