"""What the demo world generators share: config sections with defaults, pixel tasks run in worker
processes, and the count of the files a world wrote."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

WORLD_FILE = "world.json"  # written last: a world without it is incomplete


def worker_count(workers: int | None) -> int:
    """``workers``, or by default min(2, CPUs)."""
    return int(workers) if workers else max(1, min(2, os.cpu_count() or 1))


def clear_world(out: Path, generated_dirs: Iterable[str]) -> Path:
    """Make ``out`` ready for a new world (its marker and ``generated_dirs`` removed); returns the marker's path."""
    out.mkdir(parents=True, exist_ok=True)
    world_path = out / WORLD_FILE
    world_path.unlink(missing_ok=True)
    for sub in generated_dirs:
        shutil.rmtree(out / sub, ignore_errors=True)
    return world_path


def with_defaults(section: str, defaults: Mapping[str, Any], cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """``defaults`` overridden by ``cfg``; a key ``defaults`` lacks is an error naming ``section.key``."""
    out = dict(defaults)
    for k, v in (cfg or {}).items():
        if k not in defaults:
            raise ValueError(f"{section}.{k}: unknown key (known: {', '.join(defaults)})")
        out[k] = v
    return out


def run_tasks(run: Callable[[tuple], dict[str, Any]], tasks: list[tuple], *, workers: int, progress: bool,
              desc: str, chunksize: int = 1) -> list[dict[str, Any]]:
    """``run`` over ``tasks``, in ``workers`` processes when more than one (results in completion order)."""
    from tqdm.auto import tqdm

    results: list[dict[str, Any]] = []
    with tqdm(total=len(tasks), desc=desc, unit="task", disable=not progress) as bar:
        if workers <= 1 or len(tasks) <= 1:
            for t in tasks:
                results.append(run(t))
                bar.update(1)
        else:
            with multiprocessing.get_context().Pool(workers) as pool:
                for res in pool.imap_unordered(run, tasks, chunksize=chunksize):
                    results.append(res)
                    bar.update(1)
    return results


def disk_usage(root: Path, exclude: Iterable[Path] = ()) -> tuple[int, int]:
    """(number of files, bytes) below ``root``, leaving out the files ``exclude`` names."""
    skip = {p.resolve() for p in exclude}
    n, size = 0, 0
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            if p.resolve() in skip:
                continue
            n += 1
            size += p.stat().st_size
    return n, size
