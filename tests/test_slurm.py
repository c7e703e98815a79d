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


MUNGE_SOCKET_DIR = Path("/run/munge")  # munge's and Slurm's auth/munge default socket directory
SLURM_RUN_DIR = Path("/run/slurm")  # configless slurmd links its cached configuration here


def _munge_works() -> bool:
    return subprocess.run(["munge", "-n"], capture_output=True).returncode == 0


def _start_munged(base: Path, pid_file: Path, created: list[Path]) -> bool:
    """Make the default munge socket answer; True when this fixture started munged.

    A working munged (a configured node) is reused and nothing is touched. Otherwise, as on a
    machine where munge was just installed by apt-get and never started, everything munged needs
    is made here: the socket directory (created only if absent, recorded in ``created``), and a
    fresh key, log and PRNG seed file under ``base``. munged runs as root (like the Slurm daemons
    here), so root owns what it reads; it refuses a key owned by anyone else, which is why the
    package's /etc/munge/munge.key (owned by the munge user) is never used, nor changed.
    """
    if _munge_works():
        return False
    state = base / "munge"
    state.mkdir(mode=0o700)
    key = state / "munge.key"
    fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.urandom(128))  # the size mungekey writes by default (1024 bits)
    if not MUNGE_SOCKET_DIR.exists():
        MUNGE_SOCKET_DIR.mkdir(parents=True)
        created.append(MUNGE_SOCKET_DIR)
    # munged requires the socket directory to be searchable by all and writable only by its owner.
    if MUNGE_SOCKET_DIR in created:
        MUNGE_SOCKET_DIR.chmod(0o755)
    proc = subprocess.run(
        ["munged", "--force", f"--key-file={key}", f"--pid-file={pid_file}",
         f"--log-file={state / 'munged.log'}", f"--seed-file={state / 'munged.seed'}"],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        log = (state / "munged.log").read_text() if (state / "munged.log").exists() else ""
        raise RuntimeError(f"munged did not start (rc {proc.returncode}): {proc.stderr.strip()}\n{log[-2000:]}")
    _wait(_munge_works, "munged to answer on its socket", timeout=20)
    return True


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """A single-node Slurm cluster; yields the environment its clients need.

    Works on a machine where the packages were just installed and no daemon ever ran: whatever
    munged and slurmd need and is missing is created (state, spool and log directories under the
    test's temporary folder; /run/munge and /run/slurm when absent) and afterwards the daemons
    started here are stopped by PID and only what was created here is removed.
    """
    _need_slurm()
    base = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "log"):
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
    started: list[str] = []
    created: list[Path] = []
    try:
        if _start_munged(base, pids["munged"], created):
            started.append("munged")
        if not SLURM_RUN_DIR.exists():
            SLURM_RUN_DIR.mkdir(mode=0o755, parents=True)
            created.append(SLURM_RUN_DIR)
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
        cache = SLURM_RUN_DIR / "conf"
        if cache.is_symlink() and str(base) in os.readlink(cache):
            cache.unlink()
        for path in reversed(created):
            shutil.rmtree(path, ignore_errors=True)


def _snakemake_cmd(workdir: Path, *args: str) -> list[str]:
    # The CBEN target (first: --configfile takes several values); the other datasets' rules go
    # through the same profile the same way.
    return [sys.executable, "-m", "snakemake", "cben", "-s", str(ROOT / "Snakefile"), "--directory",
            str(workdir), "--configfile", str(workdir / "tiny.yaml"), *args]


def _check(proc: subprocess.CompletedProcess, workdir: Path) -> subprocess.CompletedProcess:
    if proc.returncode != 0:
        logs = "\n".join(p.read_text()[-2000:] for p in sorted(workdir.glob(".snakemake/slurm_logs/**/*.log")))
        raise AssertionError(f"{' '.join(proc.args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}\n{logs}")
    return proc


def _snakemake(workdir: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return _check(subprocess.run(_snakemake_cmd(workdir, *args), env=env, capture_output=True, text=True), workdir)


def test_workflow_through_the_slurm_profile_matches_a_local_run(slurm, tmp_path, tiny_demo):
    runs = {}
    for kind in ("local", "slurm"):
        wd = tmp_path / kind
        wd.mkdir()
        (wd / "tiny.yaml").write_text(yaml.safe_dump({"demo": tiny_demo}))
        runs[kind] = wd
    # The local reference runs while the Slurm run (mostly waiting on sbatch and squeue) goes on.
    local = subprocess.Popen(_snakemake_cmd(runs["local"], "--cores", "1"), env=slurm,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = _snakemake(
        runs["slurm"], slurm, "--workflow-profile", str(ROOT / "workflow/profiles/slurm"),
        "--slurm-no-account", "--slurm-status-command", "squeue",
        "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
        "--jobs", "4",
    )
    out, err = local.communicate()
    _check(subprocess.CompletedProcess(local.args, local.returncode, out, err), runs["local"])
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
