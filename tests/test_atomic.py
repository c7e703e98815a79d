"""Atomic writes: all or nothing, and leftovers of killed writers cleaned on the next run."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from cloudyeo import atomic
from cloudyeo.atomic import (
    TMP_TAG,
    atomic_write,
    remove_stale_temporaries,
    write_parquet,
)

# A job that writes one per-unit parquet part through write_parquet; with "kill" it is killed
# (SIGKILL, like kill -9) in the middle of writing, with "hold" it writes and then waits for a
# line on stdin before finishing (a writer still running).
WRITER = textwrap.dedent(
    """
    import os, signal, sys
    import pandas as pd
    from cloudyeo import atomic

    mode, target = sys.argv[1], sys.argv[2]
    real = pd.DataFrame.to_parquet

    def to_parquet(df, tmp, **kw):
        with open(tmp, "wb") as fh:
            fh.write(b"PAR1 half a file")
            fh.flush()
        print(tmp, flush=True)
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.stdin.readline()
        real(df, tmp, **kw)

    pd.DataFrame.to_parquet = to_parquet
    atomic.write_parquet(pd.DataFrame({"unit": [target]}), target)
    """
)


def _writer(mode: str, target: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, mode, str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_killed_writer_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    parts = tmp_path / "parts"
    target = parts / "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP.parquet"
    proc = _writer("kill", target)
    tmp = Path(proc.stdout.readline().strip())
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert tmp.is_file() and not target.exists()  # what kill -9 leaves in parts/
    assert tmp.name.startswith(f".{target.name}.{TMP_TAG}") and tmp.name.endswith(".tmp")

    write_parquet(pd.DataFrame({"unit": ["rerun"]}), target)  # the rerun of that unit
    assert _temporaries(parts) == []
    assert pd.read_parquet(target)["unit"].tolist() == ["rerun"]


def test_leftovers_of_other_units_and_of_the_old_naming_go_too(tmp_path):
    parts = tmp_path / "parts"
    dead = _writer("kill", parts / "a.parquet")  # another unit, killed
    dead_tmp = Path(dead.stdout.readline().strip())
    dead.wait(timeout=60)
    legacy = parts / ".b.parquet.k2j3_h4x.tmp"  # what atomic_write named temporaries before
    legacy.write_bytes(b"half")
    legacy_other = parts / ".c.parquet.abcdefgh.tmp"  # old naming, another target: not judged
    legacy_other.write_bytes(b"half")
    foreign = [parts / ".b.parquet.tmp", parts / ".cache", parts / "b.parquet.tmp"]  # other tools
    for f in foreign:
        f.write_bytes(b"not ours")

    write_parquet(pd.DataFrame({"unit": ["b"]}), parts / "b.parquet")
    assert not dead_tmp.exists() and not legacy.exists()
    assert legacy_other.exists() and all(f.exists() for f in foreign)
    assert remove_stale_temporaries(parts, "c.parquet") == [legacy_other]


def test_a_running_writers_temporary_is_never_removed(tmp_path):
    parts = tmp_path / "parts"
    target = parts / "a.parquet"
    live = _writer("hold", target)
    try:
        tmp = Path(live.stdout.readline().strip())
        # Other jobs write into the same folder, and a rerun of the same unit cleans too: the
        # running writer holds its lock, so its file stays.
        write_parquet(pd.DataFrame({"unit": ["b"]}), parts / "b.parquet")
        assert remove_stale_temporaries(parts, "a.parquet") == []
        assert tmp.is_file()
    finally:
        live.stdin.write("go\n")
        live.stdin.close()
        assert live.wait(timeout=60) == 0
    assert pd.read_parquet(target)["unit"].tolist() == [str(target)]
    assert _temporaries(parts) == []


def test_a_temporary_removed_before_its_lock_is_replaced(tmp_path, monkeypatch):
    """A cleaner may remove a temporary between its creation and its writer's lock; the writer
    notices (the name no longer is its file) and takes a new one."""
    real_flock = atomic.fcntl.flock
    calls = []

    def flock(fd, op):
        if not calls and op == atomic.fcntl.LOCK_EX:  # the writer's first (blocking) lock
            name = next(p for p in (tmp_path / "out").iterdir() if TMP_TAG in p.name)
            assert remove_stale_temporaries(tmp_path / "out") == [name]  # the cleaner wins
        calls.append(op)
        return real_flock(fd, op)

    monkeypatch.setattr(atomic.fcntl, "flock", flock)
    seen = []
    atomic_write(tmp_path / "out" / "x.txt", lambda tmp: (seen.append(tmp), tmp.write_text("done")))
    assert (tmp_path / "out" / "x.txt").read_text() == "done"
    assert len(seen) == 1 and not seen[0].exists()
    assert _temporaries(tmp_path / "out") == []


def test_without_working_locks_only_old_leftovers_go(tmp_path, monkeypatch):
    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(atomic.fcntl, "flock", no_locks)
    folder = tmp_path / "parts"
    folder.mkdir()
    recent = folder / f".a.parquet.{TMP_TAG}abcd1234.tmp"
    old = folder / f".b.parquet.{TMP_TAG}efgh5678.tmp"
    for f in (recent, old):
        f.write_bytes(b"half")
    past = time.time() - atomic.STALE_WITHOUT_LOCKS_S - 60
    os.utime(old, (past, past))
    write_parquet(pd.DataFrame({"unit": ["c"]}), folder / "c.parquet")
    assert recent.exists() and not old.exists()
    assert pd.read_parquet(folder / "c.parquet")["unit"].tolist() == ["c"]


def test_failed_write_leaves_nothing(tmp_path):
    def fail(tmp):
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(tmp_path / "x.json", fail)
    assert list(tmp_path.iterdir()) == []
