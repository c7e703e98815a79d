"""Code versions per workflow stage, so that editing package code reruns what it affects.

Snakemake does not rerun a job when Python code it imports changes. Each rule therefore
carries ``params: code=code_version(stage)``: a hash of the source files that stage runs.
Editing one of them changes the param, and Snakemake's ``params`` rerun trigger reruns that
stage and everything downstream; ``snakemake --list-changes params`` shows which.

Which files a stage runs is not written by hand (a hand-kept list drifted: it missed
``atomic.py`` everywhere and ``pretrain.py`` for fine-tuning). :data:`STAGE_ENTRIES` names each
stage's *entry modules* - the modules the ``cloudyeo`` command of the stage's rules imports
(``cli.py`` itself only parses arguments and dispatches, so it is left out: editing it would
otherwise rerun the whole workflow). :func:`stage_sources` then follows the import graph:

* every ``import cloudyeo.x`` / ``from cloudyeo.x import y`` / ``from .x import y`` /
  ``from . import x`` anywhere in a module (module level *and* inside functions: lazy imports
  run too), read statically with :mod:`ast`, relative imports resolved against the module's
  package; ``from pkg import name`` counts ``pkg.name`` when that is a module;
* importing ``cloudyeo.a.b`` runs ``cloudyeo/__init__.py`` and ``cloudyeo/a/__init__.py``, so
  those files are included; what such an ``__init__`` re-exports is followed only where a module
  imports the package itself (``from cloudyeo.masks import f``), as a re-export decides nothing
  unless something names it (otherwise ``training/__init__.py``, which re-exports every trainer,
  would make every training stage depend on every network);
* transitively; the standard library and third-party packages are not ``cloudyeo.*`` and are
  not followed (their versions are the environment's business);
* data files a module reads (:data:`RESOURCES`, e.g. the config schema) join with the module.

One deliberate exception: ``models/cloud_removal/__init__.py`` imports every cloud-removal
network, but a method runs only its own. :data:`_CR_NETWORKS` lists each method kind's networks
and the others are cut from that kind's graph, so that editing one network retrains only the
methods built on it.

The graph of a few dozen small files is parsed and hashed in milliseconds at parse time.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Mapping
from functools import cache, lru_cache
from pathlib import Path

from . import __version__

PACKAGE = Path(__file__).resolve().parent
PACKAGE_NAME = "cloudyeo"

# Data files (relative to the package) read by a module, hashed with it.
RESOURCES: dict[str, tuple[str, ...]] = {
    "cloudyeo.config": ("schemas/config.schema.yaml",),
}

# Entry modules of each stage: what `cloudyeo <command>` imports for the stage's rules.
STAGE_ENTRIES: dict[str, tuple[str, ...]] = {
    "demo": ("cloudyeo.demo",),                                  # demo generate
    "demo_timeseries": ("cloudyeo.demo.timeseries",),            # demo generate-timeseries
    "climatology": ("cloudyeo.climatology",),                    # climatology download
    "cben": ("cloudyeo.drivers", "cloudyeo.datasets.cben"),  # cloudyeo dataset cben <verb>
    "timeseries": ("cloudyeo.drivers", "cloudyeo.datasets.timeseries"),  # cloudyeo dataset timeseries <verb>
    "ssl4eo": ("cloudyeo.drivers", "cloudyeo.datasets.ssl4eo"),  # cloudyeo dataset ssl4eo <verb>
    # A builder outside the package: the drivers, plus its own module file (builder.code_version).
    "datasets": ("cloudyeo.drivers",),
    "demo_planet": ("cloudyeo.demo.planet",),                    # demo generate-planet
    "demo_validate": ("cloudyeo.demo.validation", "cloudyeo.report.demo_validation"),  # demo validate
    "planetcr": ("cloudyeo.drivers", "cloudyeo.datasets.planetcr"),  # cloudyeo dataset planetcr <verb>
    # The CBEN experiment: pretrain[method] -> finetune[method, set] -> evaluate -> table.
    "pretrain": ("cloudyeo.training.pretrain",),                 # ssl pretrain
    "finetune": ("cloudyeo.training.finetune",),                 # cben-eval finetune
    "evaluate": ("cloudyeo.training.evaluate",),                 # cben-eval evaluate
    "cben_eval_table": ("cloudyeo.report.cben_eval", "cloudyeo.training.experiments"),
}

# Cloud removal: one code version per method kind (cloud_removal_<kind>, train and evaluate);
# cloud_removal_report is the tables rule.
_CR_ENTRIES = ("cloudyeo.training.cloud_removal", "cloudyeo.training.cloud_removal_eval")
_CR_NET = "cloudyeo.models.cloud_removal."
_CR_NETWORKS: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "dsen2cr": ("dsen2cr",),
    "seq2point": ("seq2point",),
    "seq2seq": ("seq2seq",),
    "hcrlc": ("hcrlc", "dsen2cr"),
    "hcr_then_lc": ("hcrlc", "dsen2cr", "segmentation"),
    "aligncr": ("aligncr",),
    "segmentation": ("segmentation",),
}
# Every network module (the shared layers.py is not one: every kind keeps it).
CR_NETWORK_MODULES = frozenset(_CR_NET + m for m in
                               ("aligncr", "dsen2cr", "hcrlc", "segmentation", "seq2point", "seq2seq"))
STAGE_ENTRIES.update({f"cloud_removal_{kind}": _CR_ENTRIES for kind in _CR_NETWORKS})
STAGE_ENTRIES["cloud_removal_report"] = ("cloudyeo.report.cloud_removal",)

# Modules cut from a stage's graph (see the module docstring).
STAGE_EXCLUDES: dict[str, frozenset[str]] = {
    f"cloud_removal_{kind}": CR_NETWORK_MODULES - {_CR_NET + n for n in nets}
    for kind, nets in _CR_NETWORKS.items()
}
STAGE_EXCLUDES["cloud_removal_report"] = CR_NETWORK_MODULES


# ----------------------------------------------------------------------------------------------
# The import graph
# ----------------------------------------------------------------------------------------------


def module_path(module: str, root: Path = PACKAGE) -> Path | None:
    """The file of ``cloudyeo.a.b`` under ``root`` (``a/b.py`` or ``a/b/__init__.py``), or None."""
    parts = module.split(".")
    if parts[0] != PACKAGE_NAME:
        return None
    base = root.joinpath(*parts[1:])
    for p in (base.with_suffix(".py") if len(parts) > 1 else None, base / "__init__.py"):
        if p is not None and p.is_file():
            return p
    return None


def _is_package(module: str, root: Path) -> bool:
    p = module_path(module, root)
    return p is not None and p.name == "__init__.py"


def _parents(module: str) -> list[str]:
    """``cloudyeo.a.b`` -> ``["cloudyeo", "cloudyeo.a"]`` (the packages importing it runs)."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def direct_imports(module: str, root: Path = PACKAGE) -> set[str]:
    """The ``cloudyeo.*`` modules that ``module``'s source imports anywhere (static, via ast).

    Relative imports are resolved against the module's package. ``from pkg import name`` adds
    ``pkg.name`` where that is a module, and ``pkg`` itself where ``name`` is not a module (a
    re-export, or ``*``); ``import pkg.mod`` adds ``pkg.mod``. Parent packages are not added
    here (see :func:`import_closure`). Only modules that exist under ``root`` are returned.
    """
    path = module_path(module, root)
    if path is None:
        raise KeyError(f"no module {module!r} under {root}")
    st = path.stat()
    return set(_direct_imports(module, str(path), str(root), st.st_mtime_ns, st.st_size))


@lru_cache(maxsize=4096)
def _direct_imports(module: str, path_str: str, root_str: str, mtime_ns: int,
                    size: int) -> frozenset[str]:
    """:func:`direct_imports` for one version of the file (keyed on its mtime and size)."""
    path, root = Path(path_str), Path(root_str)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=path_str)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package.split(".")
                if node.level - 1 >= len(anchor):
                    raise ImportError(f"{path}: relative import beyond the top-level package")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            subs = [f"{base}.{a.name}" for a in node.names if a.name != "*"]
            found.update(subs)
            # the package itself only where a name is not a submodule (a re-export, or *)
            if any(a.name == "*" or module_path(f"{base}.{a.name}", root) is None for a in node.names):
                found.add(base)
    return frozenset(m for m in found if module_path(m, root) is not None)


def import_closure(entries: tuple[str, ...] | list[str], root: Path = PACKAGE,
                   exclude: frozenset[str] | set[str] = frozenset()) -> set[str]:
    """Every ``cloudyeo.*`` module whose code running ``entries`` executes or calls.

    Transitive over :func:`direct_imports`. The parent packages of every module reached are
    included (their ``__init__`` runs) but their own imports are followed only where some
    module imports the package itself (``from cloudyeo.masks import f``): a package's
    re-exports decide nothing unless something names them. Modules in ``exclude`` are
    neither included nor followed.
    """
    followed: set[str] = set()
    included: set[str] = set()
    todo = list(entries)
    while todo:
        m = todo.pop()
        if m in followed or m in exclude:
            continue
        if module_path(m, root) is None:
            raise KeyError(f"stage entry or import {m!r} is not a module under {root}")
        followed.add(m)
        included.add(m)
        included.update(p for p in _parents(m) if p not in exclude)
        todo.extend(direct_imports(m, root))
    return included


def stage_sources(stage: str, root: Path = PACKAGE) -> tuple[str, ...]:
    """The files (relative to the package, sorted) whose code decides ``stage``'s outputs."""
    if stage not in STAGE_ENTRIES:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGE_ENTRIES)}")
    modules = import_closure(STAGE_ENTRIES[stage], root, STAGE_EXCLUDES.get(stage, frozenset()))
    files: set[str] = set()
    for m in modules:
        path = module_path(m, root)
        if path is None:
            raise KeyError(f"module {m!r} of stage {stage!r} is not a file under {root}")
        files.add(path.relative_to(root).as_posix())
        files.update(RESOURCES.get(m, ()))
    return tuple(sorted(files))


class _StageSources(Mapping):
    """Read-only ``{stage: files}``, computed from the import graph on each access (the parse of
    each file is cached by its mtime and size, so an edit is seen and a lookup is cheap)."""

    def __getitem__(self, stage: str) -> tuple[str, ...]:
        return stage_sources(stage)

    def __iter__(self):
        return iter(STAGE_ENTRIES)

    def __len__(self) -> int:
        return len(STAGE_ENTRIES)


# Files (relative to the package) whose code decides each stage's outputs, from the import graph.
STAGE_SOURCES: Mapping[str, tuple[str, ...]] = _StageSources()


def _files(stage: str, root: Path) -> list[Path]:
    return [root / rel for rel in stage_sources(stage, root)]


@cache
def code_version(stage: str, root: Path = PACKAGE) -> str:
    """``<package version>+<12 hex digits>`` over the stage's source files (paths and bytes)."""
    if stage not in STAGE_ENTRIES:
        raise KeyError(f"unknown stage {stage!r}; known: {sorted(STAGE_ENTRIES)}")
    h = hashlib.sha256()
    for f in _files(stage, root):
        h.update(f.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(f.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"
