"""Code versions per workflow stage, so that editing package code reruns what it affects.

Snakemake does not rerun a job when Python code it imports changes. Each rule therefore
carries ``params: code=code_version(stage)``: a hash of the source files that stage runs.
Editing one of them changes the param, and Snakemake's ``params`` rerun trigger reruns that
stage and everything downstream; ``snakemake --list-changes params`` shows which.
Hashing a few dozen small files costs milliseconds at parse time.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from . import __version__

PACKAGE = Path(__file__).resolve().parent
_COMMON = ("__init__.py", "config.py", "sentinel.py", "schemas")
# The demo world's shared generator code (each part adds its own module).
_DEMO = tuple(f"demo/{m}.py" for m in ("__init__", "world", "tiles", "schedule", "surface",
                                        "atmosphere", "climatology", "rasters", "stac"))

# The backbones and SSL methods of the CBEN experiment.
_BACKBONES = tuple(f"models/{m}.py" for m in ("registry", "resnet", "vit", "ssl"))

# Files and folders (relative to the package) whose code decides each stage's outputs.
STAGE_SOURCES: dict[str, tuple[str, ...]] = {
    "demo": (*_COMMON, *_DEMO, "grids.py"),
    "demo_timeseries": (*_COMMON, *_DEMO, "demo/timeseries.py"),
    "climatology": (*_COMMON, "climatology.py", "http.py"),
    "cben": (*_COMMON, "datasets/cben.py", "grids.py", "reben.py", "store.py", "archives",
             "climatology.py", "http.py", "report/__init__.py", "report/cards.py", "report/figures.py"),
    "timeseries": (*_COMMON, "datasets/timeseries.py", "grids.py", "store.py", "archives", "masks",
                   "http.py", "report/__init__.py", "report/cards.py", "report/timeseries_figures.py"),
    "ssl4eo": (*_COMMON, "datasets/ssl4eo.py", "grids.py", "store.py", "archives", "http.py",
               "report/__init__.py", "report/cards.py"),
    "demo_planet": (*_COMMON, "demo/planet", "demo/surface.py", "demo/tiles.py",
                    "demo/atmosphere.py", "demo/rasters.py", "landcover.py"),
    "planetcr": (*_COMMON, "datasets/planetcr.py", "datasets/planetcr_report.py", "landcover.py",
                 "grids.py", "store.py", "archives", "http.py", "demo/planet/aois.py"),
    # The CBEN experiment (issue #5): pretrain[method] -> finetune[method, set] -> evaluate -> table.
    # Files, not folders: other models and trainers (cloud removal) must not rerun these nodes.
    "pretrain": (*_COMMON, *_BACKBONES, "devices.py", "store.py", "datasets/ssl4eo_torch.py",
                 *(f"training/{m}.py" for m in ("augment", "normalization", "runtime", "experiments",
                                                "data", "schedule", "pretrain"))),
    "finetune": (*_COMMON, *_BACKBONES, "devices.py", "store.py", "datasets/cben_torch.py",
                 "metrics/classification.py",
                 *(f"training/{m}.py" for m in ("normalization", "runtime", "experiments", "data",
                                                "schedule", "finetune"))),
    "evaluate": (*_COMMON, *_BACKBONES, "devices.py", "store.py", "datasets/cben_torch.py",
                 "metrics/classification.py",
                 *(f"training/{m}.py" for m in ("normalization", "runtime", "experiments", "data",
                                                "finetune", "evaluate"))),
    "cben_eval_table": (*_COMMON, "report/cben_eval.py"),
}

# Cloud removal: one code version per method kind (cloud_removal_<kind>), so editing one network
# retrains only the methods built on it; cloud_removal_report is the tables rule.
_CR_COMMON = (*_COMMON, "metrics", "store.py", "training/runtime.py", "training/cloud_removal.py",
              "training/cloud_removal_data.py", "training/cloud_removal_eval.py",
              "models/cloud_removal/__init__.py", "models/cloud_removal/layers.py")
_CR_NET = "models/cloud_removal/"
STAGE_SOURCES.update({f"cloud_removal_{kind}": (*_CR_COMMON, *files) for kind, files in {
    "baseline": ("models/baselines.py",),
    "dsen2cr": (_CR_NET + "dsen2cr.py",),
    "seq2point": (_CR_NET + "seq2point.py",),
    "seq2seq": (_CR_NET + "seq2seq.py",),
    "hcrlc": (_CR_NET + "hcrlc.py", _CR_NET + "dsen2cr.py"),
    "hcr_then_lc": (_CR_NET + "hcrlc.py", _CR_NET + "dsen2cr.py", _CR_NET + "segmentation.py"),
    "aligncr": (_CR_NET + "aligncr.py",),
    "segmentation": (_CR_NET + "segmentation.py",),
    "report": ("report/cloud_removal.py",),
}.items()})


def _files(stage: str, root: Path) -> list[Path]:
    out: list[Path] = []
    for rel in STAGE_SOURCES[stage]:
        p = root / rel
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix in (".py", ".yaml") and f.is_file())
        elif p.exists():
            out.append(p)
    return out


@lru_cache(maxsize=None)
def code_version(stage: str, root: Path = PACKAGE) -> str:
    """``<package version>+<12 hex digits>`` over the stage's source files (paths and bytes)."""
    if stage not in STAGE_SOURCES:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGE_SOURCES)}")
    h = hashlib.sha256()
    for f in _files(stage, root):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(f.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"
