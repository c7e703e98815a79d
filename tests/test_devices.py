import os
import subprocess
import sys
import textwrap

import pytest

from cloudyeo import devices


@pytest.fixture(autouse=True)
def _release_claims():
    """Claims in this process last for its life; a test's claims end with the test."""
    yield
    while devices._held:
        devices._held.pop().close()


def _claim_in_subprocess(lock_dir, n, hold_seconds=0.0):
    code = textwrap.dedent(f"""
        import os, sys, time
        from pathlib import Path
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        from cloudyeo.devices import claim_gpu
        try:
            gpu = claim_gpu({n}, Path({str(lock_dir)!r}))
        except RuntimeError as exc:
            print("ERR", exc, flush=True); sys.exit(0)
        print(gpu, os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
        time.sleep({hold_seconds})
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_concurrent_jobs_get_distinct_gpus_and_locks_free_on_exit(tmp_path):
    holders = [_claim_in_subprocess(tmp_path, 2, hold_seconds=3) for _ in range(2)]
    first = sorted(p.stdout.readline().split()[0] for p in holders)
    assert first == ["0", "1"]
    third = _claim_in_subprocess(tmp_path, 2)
    assert third.communicate(timeout=30)[0].startswith("ERR all 2 GPUs are claimed")
    for p in holders:
        p.communicate(timeout=30)  # waits, and closes the pipe
    again = _claim_in_subprocess(tmp_path, 2)
    assert again.communicate(timeout=30)[0].split()[0] == "0"


def test_nothing_claimed_when_slurm_or_user_chose(monkeypatch, tmp_path):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert devices.claim_gpu(4, tmp_path) is None
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "3"


def test_cpu_without_gpus(monkeypatch, tmp_path):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert devices.claim_gpu(0, tmp_path) is None
    import torch

    monkeypatch.setattr(devices, "claim_gpu", lambda: None)
    assert devices.torch_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_claim_counts_gpus_without_initialising_cuda(monkeypatch, tmp_path):
    """CUDA_VISIBLE_DEVICES is read once, when the driver starts: counting must not start it."""
    import torch

    def boom(*_a, **_k):
        raise AssertionError("CUDA initialised before the claim")

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", boom)
    monkeypatch.setattr(torch.cuda, "device_count", boom)
    monkeypatch.setattr(torch.version, "cuda", "12.8")  # pretend a CUDA build on this CPU box
    monkeypatch.setattr(devices, "_nvml_device_count", lambda: 2)
    first = devices.claim_gpu(lock_dir=tmp_path)
    assert first == 0 and os.environ["CUDA_VISIBLE_DEVICES"] == "0"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert devices.claim_gpu(lock_dir=tmp_path) == 1  # the first lock is still held
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")


def test_count_gpus_falls_back_to_nvidia_smi_then_zero(monkeypatch):
    import torch

    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(devices, "_nvml_device_count", lambda: None)
    monkeypatch.setattr(devices, "_smi_device_count", lambda: 3)
    assert devices.count_gpus() == 3
    monkeypatch.setattr(devices, "_smi_device_count", lambda: None)
    assert devices.count_gpus() == 0
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(devices, "_nvml_device_count", lambda: 4)
    assert devices.count_gpus() == 0  # a CPU build of torch never claims a GPU


def test_fresh_process_claim_leaves_cuda_uninitialised(tmp_path):
    code = textwrap.dedent(f"""
        import os
        from pathlib import Path
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        import torch
        from cloudyeo.devices import claim_gpu
        claim_gpu(lock_dir=Path({str(tmp_path)!r}))
        print(torch.cuda.is_initialized())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-1] == "False", out.stderr
