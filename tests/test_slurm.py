"""The workflow through the SLURM profile on a real single-node Slurm booted by the test.

Needs root and the Debian packages slurmctld, slurmd, slurm-client and munge (``.ci/run``
installs them). Every daemon started here is stopped by its PID.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from cloudyeo import store

ROOT = Path(__file__).resolve().parents[1]
DAEMONS = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun")

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need_slurm() -> None:
    missing = [d for d in DAEMONS if shutil.which(d) is None]
    reason = None
    if missing:
        reason = f"Slurm/munge binaries missing: {missing} (apt-get install slurmctld slurmd slurm-client munge)"
    elif os.geteuid() != 0:
        reason = "booting Slurm needs root"
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Slurm test: {reason}")
        pytest.skip(reason)


def _wait(predicate, what: str, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"timed out waiting for {what}")


def _stop(pid_file: Path) -> None:
    if not pid_file.exists():
        return
    pid = int(pid_file.read_text().split()[0])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A single-node Slurm cluster; yields the environment its clients need."""
    _need_slurm()
    base = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log", "munge"):
        (base / sub).mkdir()
    pids = {name: base / f"{name}.pid" for name in ("munged", "slurmctld", "slurmd")}
    host = socket.gethostname().split(".")[0]
    mem_mb = int(int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) / 1024 * 0.8)
    ctld_port = _free_port()
    conf = base / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=cloudyeo-test", f"SlurmctldHost={host}", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", "SlurmctldParameters=enable_configless",
        f"StateSaveLocation={base / 'state'}", f"SlurmdSpoolDir={base / 'spool'}",
        f"SlurmctldPidFile={pids['slurmctld']}", f"SlurmdPidFile={pids['slurmd']}",
        f"SlurmctldLogFile={base / 'log' / 'slurmctld.log'}", f"SlurmdLogFile={base / 'log' / 'slurmd.log'}",
        f"SlurmctldPort={ctld_port}", f"SlurmdPort={_free_port()}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none", "SchedulerType=sched/backfill",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory", "ReturnToService=2",
        "MpiDefault=none", "KillWait=5",
        f"NodeName={host} CPUs={os.cpu_count()} RealMemory={mem_mb} State=UNKNOWN",
        "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP", "",
    ]))
    env = dict(os.environ, SLURM_CONF=str(conf))
    started = []
    try:
        # Slurm talks through munge's default socket; reuse a running munged, else start one.
        if subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
            subprocess.run(["munged", "--force", f"--pid-file={pids['munged']}"], check=True)
            started.append("munged")
        subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
        started.append("slurmctld")
        # Configless slurmd: the job-step plugin strips SLURM_CONF before its inner srun, which
        # then finds the configuration slurmd caches under /run/slurm/conf.
        subprocess.run(["slurmd", "--conf-server", f"{host}:{ctld_port}"], check=True,
                       env={k: v for k, v in env.items() if k != "SLURM_CONF"})
        started.append("slurmd")
        _wait(lambda: subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
              .stdout.strip() == "idle", "the Slurm node to become idle")
        yield env
    finally:
        for name in ("slurmd", "slurmctld", "munged"):
            if name in started:
                _stop(pids[name])
        cache = Path("/run/slurm/conf")
        if cache.is_symlink() and str(base) in os.readlink(cache):
            cache.unlink()


def _snakemake(workdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    # The CBEN target (first: --configfile takes several values); the other datasets' rules go
    # through the same profile the same way.
    cmd = [sys.executable, "-m", "snakemake", "cben", "-s", str(ROOT / "Snakefile"), "--directory",
           str(workdir), "--configfile", str(workdir / "tiny.yaml"), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        logs = "\n".join(p.read_text()[-2000:] for p in sorted(workdir.glob(".snakemake/slurm_logs/**/*.log")))
        raise AssertionError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n{logs}")
    return proc


def test_workflow_through_the_slurm_profile_matches_a_local_run(slurm, tmp_path, tiny_demo):
    runs = {}
    for kind in ("local", "slurm"):
        wd = tmp_path / kind
        wd.mkdir()
        (wd / "tiny.yaml").write_text(yaml.safe_dump({"demo": tiny_demo}))
        runs[kind] = wd
    _snakemake(runs["local"], slurm, "--cores", "2")
    proc = _snakemake(
        runs["slurm"], slurm, "--workflow-profile", str(ROOT / "workflow/profiles/slurm"),
        "--slurm-no-account", "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
        "--jobs", "4",
    )
    submitted = (proc.stdout + proc.stderr).count("has been submitted with SLURM jobid")
    assert submitted >= 4  # demo world, plan, store, extracts, finalize: all went through sbatch

    cben = Path("results/datasets/cben")
    for name in ("manifest.parquet", "index.parquet"):
        a = pd.read_parquet(runs["local"] / cben / name)
        b = pd.read_parquet(runs["slurm"] / cben / name)
        pd.testing.assert_frame_equal(a, b)
    for name in ("table_ii_cloud_statistics.csv", "table_iii_time_differences.csv", "band_statistics.csv"):
        assert (runs["local"] / cben / name).read_text() == (runs["slurm"] / cben / name).read_text()
    a = store.open_store(runs["local"] / "results/datasets/cben.zarr")
    b = store.open_store(runs["slurm"] / "results/datasets/cben.zarr")
    for var in ("s2", "s2_reference", "s1", "labels", "cloud_fraction", "patch_id"):
        np.testing.assert_array_equal(a[var].values, b[var].values)
