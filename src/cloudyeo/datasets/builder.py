"""The dataset-builder protocol: what a dataset declares, once, so that one set of drivers
(:mod:`cloudyeo.drivers`), one CLI (``cloudyeo dataset <name> plan|init|extract|finalize``) and
one generated set of workflow rules (``workflow/rules/datasets.smk``) build it.

A builder declares

- its **settings**: the config sections it reads (``sections``; these become the rules'
  ``params``) and, among its own section's keys, those only the store reads
  (``store_keys``: a codec change reruns init/extract/finalize, never the archive search);
- its **plan**: metadata only, one or more tables (the first, the manifest, has a
  ``skip_reason`` column; GeoParquet when it holds geometries);
- its **units** of work, read back from the plan (a product, an ROI, a batch of locations);
- its **store layout**: variables, coordinates known at plan time, attributes, codec;
- ``extract(unit, write)``: the unit's samples, written through ``write(start, arrays)``
  into the unit's own sample rows, and a part table (one row per sample);
- what **finalize** summarises: per-sample coordinates learned during extraction, the index,
  tables, figures (named renderers of :mod:`cloudyeo.report`), the card's sections, and the
  attributes stored with the completion mark.

The drivers do the rest, once for every dataset: write the plan atomically, create the store,
mark it incomplete before any write, write the unit's samples then its part file, pack and
consolidate, write index/tables/figures/card, and mark the store complete last. A builder never
imports the report layer (figures are named, rendered by the drivers) nor the demo world.

Which builders exist: :data:`PACKAGE_BUILDERS` plus the modules a config lists under
``dataset_builders`` (a new dataset is one module; the workflow and CLI need no edit).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from ..config import ConfigError, paths
from ..provenance import STAGE_ENTRIES, code_version

# name -> module of the builders shipped with the package (imported on first use).
PACKAGE_BUILDERS: dict[str, str] = {
    "cben": "cloudyeo.datasets.cben",
    "timeseries": "cloudyeo.datasets.timeseries",
    "ssl4eo": "cloudyeo.datasets.ssl4eo",
    "planetcr": "cloudyeo.datasets.planetcr",
}
VERBS = ("plan", "init", "extract", "finalize")
# The archive prerequisites a builder may name (workflow/rules/archive.smk provides them).
ARCHIVE_INPUTS = ("archive", "timeseries_archive", "planet_archive", "none")

# Per-verb job resources (Snakemake resources: mem_mb, runtime in minutes); a builder overrides
# entries through ``resources`` or ``job_resources``.
DEFAULT_RESOURCES: dict[str, dict[str, int]] = {
    "plan": {"mem_mb": 2000, "runtime": 60},
    "init": {"mem_mb": 1000, "runtime": 10},
    "extract": {"mem_mb": 2000, "runtime": 30},
    "finalize": {"mem_mb": 4000, "runtime": 60},
}

WriteSamples = Callable[[int, dict[str, np.ndarray]], None]


class BuilderError(ConfigError):
    """A builder or its registry is misdeclared (names the builder and what is wrong)."""


@dataclass(frozen=True)
class StoreLayout:
    """Everything the store is created with (see :func:`cloudyeo.store.create_store`).

    ``initial`` holds samples known at plan time (e.g. labels), written from sample 0 when the
    store is created; ``record`` adds fields to the creation record.
    """

    n_samples: int
    variables: dict[str, Any]
    coords: dict[str, tuple]
    attrs: dict[str, Any]
    codec: str
    initial: dict[str, np.ndarray] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)
    sample_dim: str = "sample"  # the leading dimension's name ("patch" for the time series)


@dataclass(frozen=True)
class Table:
    """A CSV output of finalize, also shown in the card under ``title`` (when given)."""

    frame: pd.DataFrame
    float_format: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class Figure:
    """A figure output of finalize: a renderer of ``cloudyeo.report`` by name, with its data."""

    renderer: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Summary:
    """What finalize writes, besides the per-sample coordinates (see ``sample_coords``).

    ``outputs`` maps each finalize output name (a key of the builder's ``outputs``) to a
    ``pandas.DataFrame`` (parquet), a :class:`Table` (CSV), a :class:`Figure` or ``str`` (text).
    ``card`` lists the card's dataset-specific sections: (heading, markdown text or table).
    ``complete_attrs`` are stored with the completion mark.
    """

    outputs: dict[str, Any]
    card: list[tuple[str, Any]] = field(default_factory=list)
    complete_attrs: dict[str, Any] = field(default_factory=dict)
    licences: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DatasetPaths:
    """The files of one dataset: ``<results>/datasets/<name>/`` and ``<name>.zarr`` beside it."""

    root: Path
    store: Path
    plan: dict[str, Path]
    outputs: dict[str, Path]

    @property
    def created(self) -> Path:
        """The store's creation record (every extraction reruns after a new store)."""
        return self.root / "store.created.json"

    @property
    def parts(self) -> Path:
        return self.root / "parts"

    def part(self, unit: str) -> Path:
        return self.parts / f"{unit}.parquet"

    @property
    def manifest(self) -> Path:
        return next(iter(self.plan.values()))


class DatasetBuilder(ABC):
    """One dataset. Subclasses set the class attributes and implement the five methods."""

    name: ClassVar[str]
    title: ClassVar[str]
    sections: ClassVar[tuple[str, ...]]          # config sections read (the rules' params)
    store_keys: ClassVar[tuple[str, ...]] = ("store_codec", "store_shard_samples")
    plan_tables: ClassVar[tuple[str, ...]] = ("manifest",)
    outputs: ClassVar[dict[str, str]] = {}       # finalize output name -> file name
    report_outputs: ClassVar[dict[str, tuple[str, str]]] = {}  # name -> (caption file, category)
    unit_label: ClassVar[str] = "unit"           # what a unit is, for messages and --help
    unit_pattern: ClassVar[str] = r"[^/]+"       # the {unit} wildcard's constraint
    archive_input: ClassVar[str] = "archive"     # one of ARCHIVE_INPUTS
    extract_reads_archive: ClassVar[bool] = True  # does extract read files of the archive input?
    resources: ClassVar[dict[str, dict[str, int]]] = {}  # verb -> mem_mb/runtime overrides
    threads: ClassVar[dict[str, int]] = {"finalize": 2}
    # Snakemake `priority:` of the dataset's jobs and of its archive input's job (scheduling only,
    # never part of params): a dataset that feeds a long downstream chain goes first.
    priority: ClassVar[int] = 0

    def __init__(self, cfg: Mapping[str, Any]):
        self.cfg = cfg
        self.paths = dataset_paths(type(self), cfg)
        self.settings = self.make_settings(cfg)

    @property
    def section(self) -> dict[str, Any]:
        """The builder's own config section (named like the builder)."""
        return self.cfg[self.name]

    def make_settings(self, cfg: Mapping[str, Any]) -> Any:
        """Typed settings made from the config once; by default the builder's section."""
        return cfg.get(self.name)

    @abstractmethod
    def plan(self, *, progress: bool = False) -> dict[str, pd.DataFrame]:
        """Metadata only: the plan's tables, keyed like ``plan_tables`` (manifest first)."""

    @abstractmethod
    def units(self, plan: dict[str, pd.DataFrame]) -> list[str]:
        """The units of work the plan chose, in order (each gets one extract job)."""

    @abstractmethod
    def layout(self, plan: dict[str, pd.DataFrame]) -> StoreLayout:
        """The empty store: variables, plan-time coordinates, attributes, codec."""

    @abstractmethod
    def extract(self, unit: str, plan: dict[str, pd.DataFrame], write: WriteSamples, *,
                progress: bool = False) -> pd.DataFrame:
        """Write the unit's samples through ``write`` and return its part table."""

    def sample_coords(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame) -> dict[str, tuple]:
        """Per-sample coordinates learned during extraction (written before ``summarise``)."""
        return {}

    @abstractmethod
    def summarise(self, plan: dict[str, pd.DataFrame], parts: pd.DataFrame, ds: Any, *,
                  progress: bool = False) -> Summary:
        """Index, tables, figures and card of the packed store ``ds`` (an xarray Dataset)."""

    # -- what the drivers and the workflow read ------------------------------------------------

    @classmethod
    def code_version(cls) -> str:
        """The code that decides this dataset's outputs: the stage's import graph for the
        package's builders; the drivers' graph plus the module file for any other builder."""
        if cls.name in STAGE_ENTRIES:
            return code_version(cls.name)
        module = sys.modules[cls.__module__]
        digest = hashlib.sha256(Path(module.__file__ or "").read_bytes()).hexdigest()[:12]
        return f"{code_version('datasets')}.{digest}"

    def job_resources(self, verb: str) -> dict[str, int]:
        """The Snakemake resources of a verb's jobs (never part of params)."""
        return {**DEFAULT_RESOURCES[verb], **self.resources.get(verb, {})}

    def params(self, verb: str) -> str:
        """The config a verb reads, as canonical JSON: the rule's ``params`` and the CLI's
        ``--config-json``. The plan never sees the store-only keys."""
        if verb not in VERBS:
            raise BuilderError(f"{self.name}: unknown verb {verb!r} (one of {', '.join(VERBS)})")
        subset = {k: self.cfg[k] for k in self.sections if k in self.cfg}
        if self.name not in PACKAGE_BUILDERS:  # the CLI must find the builder's module again
            subset["dataset_builders"] = [type(self).__module__]
        if verb == "plan" and self.name in subset:
            subset[self.name] = {k: v for k, v in subset[self.name].items() if k not in self.store_keys}
        return json.dumps(subset, sort_keys=True)


def dataset_paths(builder: type[DatasetBuilder], cfg: Mapping[str, Any]) -> DatasetPaths:
    p = paths(dict(cfg))
    root = p.dataset_dir(builder.name)
    return DatasetPaths(
        root=root,
        store=p.dataset_store(builder.name),
        plan={t: root / f"{t}.parquet" for t in builder.plan_tables},
        outputs={k: root / v for k, v in builder.outputs.items()},
    )


def _check(cls: type[DatasetBuilder]) -> None:
    problems = []
    for attr in ("name", "title", "sections"):
        if not getattr(cls, attr, None):
            problems.append(f"no {attr}")
    if getattr(cls, "archive_input", None) not in ARCHIVE_INPUTS:
        problems.append(f"archive_input must be one of {ARCHIVE_INPUTS}")
    unknown = set(cls.report_outputs) - set(cls.outputs)
    if unknown:
        problems.append(f"report_outputs not in outputs: {sorted(unknown)}")
    if not cls.plan_tables:
        problems.append("no plan_tables")
    if not isinstance(cls.priority, int) or isinstance(cls.priority, bool):
        problems.append(f"priority must be an int, got {cls.priority!r}")
    if problems:
        raise BuilderError(f"dataset builder {cls.__module__}.{cls.__name__}: " + "; ".join(problems))


def builder_class(module: str) -> type[DatasetBuilder]:
    """The one :class:`DatasetBuilder` subclass a module defines as ``BUILDER``."""
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise BuilderError(f"dataset builder module {module!r} cannot be imported: {exc}") from exc
    cls = getattr(mod, "BUILDER", None)
    if not (isinstance(cls, type) and issubclass(cls, DatasetBuilder)):
        raise BuilderError(f"module {module!r} defines no BUILDER (a DatasetBuilder subclass)")
    _check(cls)
    return cls


def _modules(cfg: Mapping[str, Any]) -> dict[str, str]:
    """name -> module: the package's builders, then the config's ``dataset_builders`` (named by
    the module's last component)."""
    modules = dict(PACKAGE_BUILDERS)
    for module in cfg.get("dataset_builders") or ():
        name = module.rsplit(".", 1)[-1]
        if name in PACKAGE_BUILDERS:
            raise BuilderError(f"dataset_builders: {module} would shadow the package's dataset {name!r}")
        modules[name] = module
    return modules


def _load(name: str, module: str) -> type[DatasetBuilder]:
    cls = builder_class(module)
    if cls.name != name:
        raise BuilderError(f"{module}: BUILDER.name is {cls.name!r}, registered as {name!r}")
    return cls


def registry(cfg: Mapping[str, Any]) -> dict[str, type[DatasetBuilder]]:
    """name -> builder class: the package's builders, then the config's ``dataset_builders``."""
    return {name: _load(name, module) for name, module in _modules(cfg).items()}


def get_builder(name: str, cfg: Mapping[str, Any]) -> DatasetBuilder:
    """The builder ``name`` made from ``cfg`` (imports its module only, not every builder's)."""
    modules = _modules(cfg)
    if name not in modules:
        raise BuilderError(f"unknown dataset {name!r}; known: {', '.join(sorted(modules))}")
    return _load(name, modules[name])(cfg)
