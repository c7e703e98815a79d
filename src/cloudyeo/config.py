"""Load and validate the workflow configuration against the one JSON schema.

The schema lives in ``workflow/schemas/config.schema.yaml`` (symlinked into the package);
Snakemake and the package validate with the same file. Errors name the key path.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration value is missing, unknown or of the wrong type."""


@lru_cache(maxsize=1)
def _parsed_schema() -> dict[str, Any]:
    text = resources.files("cloudyeo").joinpath("schemas/config.schema.yaml").read_text()
    return yaml.safe_load(text)


def load_schema() -> dict[str, Any]:
    """The configuration schema (parsed once per process; each caller gets its own copy)."""
    return copy.deepcopy(_parsed_schema())


def _fill_defaults(instance: dict[str, Any], schema: dict[str, Any]) -> None:
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            _fill_defaults(instance[key], sub)


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        # The offending key is only named in the message; point at it.
        extra = sorted(
            set(error.instance) - set(error.schema.get("properties", {}))
        ) if isinstance(error.instance, dict) else []
        parts += extra[:1]
    elif error.validator == "required" and isinstance(error.instance, dict):
        # A missing key is only named in the message too (e.g. stac.url with preset custom).
        parts += [k for k in error.validator_value if k not in error.instance][:1]
    return ".".join(parts) or "<root>"


def _message(error: jsonschema.ValidationError) -> str:
    """jsonschema's message; for a conditional rule (``if``/``then``) also the rule's reason."""
    reason = error.schema.get("description") if isinstance(error.schema, dict) else None
    if reason and "then" in error.schema_path:
        return f"{error.message} ({reason})"
    return error.message


def validate_config(config: dict[str, Any]) -> dict[str, Any]:
    """Return a validated deep copy of ``config`` with defaults filled in.

    Raises :class:`ConfigError` naming every offending key path.
    """
    schema = load_schema()
    cfg = copy.deepcopy(config) if config else {}
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  {_key_path(e)}: {_message(e)}" for e in errors]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    _fill_defaults(cfg, schema)
    cben = cfg["cben"]
    if cben["max_search_days"] < cben["search_days"]:
        raise ConfigError(
            "invalid configuration:\n  cben.max_search_days: must be >= cben.search_days "
            f"({cben['max_search_days']} < {cben['search_days']})"
        )
    return cfg


@lru_cache(maxsize=1)
def _schema_defaults() -> dict[str, Any]:
    return validate_config({"archive": "demo"})


def section_defaults(section: str) -> dict[str, Any]:
    """One config section with nothing set: the schema's defaults (the one source of defaults)."""
    return copy.deepcopy(_schema_defaults()[section])


def load_config(path: str | Path | None = None, overrides: str | dict | None = None) -> dict[str, Any]:
    """Read a YAML config file (or start empty), merge JSON/dict overrides, validate."""
    cfg: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise ConfigError(f"config file not found: {path}")
        with path.open() as fh:
            cfg = yaml.safe_load(fh) or {}
        if not isinstance(cfg, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
    if overrides:
        extra = json.loads(overrides) if isinstance(overrides, str) else overrides
        cfg = deep_merge(cfg, extra)
    cfg.setdefault("archive", "demo")
    return validate_config(cfg)


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass(frozen=True)
class Paths:
    """Every location the workflow reads or writes, derived from one config."""

    resources: Path
    results: Path
    demo: Path
    reference: Path
    climatology: Path
    catalog: Path

    def dataset_dir(self, name: str) -> Path:
        """A dataset's plan, parts, index, tables, figures and card (its builder's path table)."""
        return self.results / "datasets" / name

    def dataset_store(self, name: str) -> Path:
        return self.results / "datasets" / f"{name}.zarr"

    @property
    def cben(self) -> Path:
        return self.dataset_dir("cben")

    @property
    def cben_store(self) -> Path:
        return self.dataset_store("cben")

    @property
    def demo_timeseries(self) -> Path:
        return self.resources / "demo-timeseries"

    @property
    def timeseries(self) -> Path:
        return self.dataset_dir("timeseries")

    @property
    def timeseries_store(self) -> Path:
        return self.dataset_store("timeseries")

    @property
    def ssl4eo(self) -> Path:
        return self.dataset_dir("ssl4eo")

    @property
    def ssl4eo_store(self) -> Path:
        return self.dataset_store("ssl4eo")

    @property
    def models(self) -> Path:
        """Checkpoints of the CBEN experiment: pretrain/<method>/, finetune/<method>/<set>/."""
        return self.results / "models"

    @property
    def cben_eval(self) -> Path:
        """Evaluation of the CBEN experiment (per-node metrics, Table VI)."""
        return self.results / "eval" / "cben"

    @property
    def demo_planet(self) -> Path:
        return self.resources / "demo-planet"

    @property
    def planetcr(self) -> Path:
        return self.dataset_dir("planetcr")

    @property
    def planetcr_store(self) -> Path:
        return self.dataset_store("planetcr")

    @property
    def cloud_removal_models(self) -> Path:
        """Trained cloud-removal models: ``<dataset>/<method>/model.pt``."""
        return self.results / "models" / "cloud_removal"

    @property
    def cloud_removal_eval(self) -> Path:
        """Cloud-removal evaluation: ``<dataset>/<method>/records.csv`` and the tables."""
        return self.results / "eval" / "cloud_removal"


def paths(cfg: Mapping[str, Any]) -> Paths:
    """Locations for a config; missing sections take the schema defaults."""
    resources_dir = Path(cfg.get("resources_dir", "resources"))
    demo = resources_dir / "demo"
    is_demo = cfg.get("archive", "demo") == "demo"
    reference = (cfg.get("reference") or {}).get("root") or (
        demo / "reben" if is_demo else resources_dir / "reben"
    )
    climatology = (cfg.get("climatology") or {}).get("dir") or (
        demo / "climatology" if is_demo else resources_dir / "climatology"
    )
    return Paths(
        resources=resources_dir,
        results=Path(cfg.get("results_dir", "results")),
        demo=demo,
        reference=Path(reference),
        climatology=Path(climatology),
        catalog=demo / "catalog" / "items.ndjson",
    )

# Which config sections each stage outside the dataset builders depends on (a builder declares
# its own: cloudyeo.datasets.builder.DatasetBuilder.sections). Rules pass exactly these through ``params:``
# so that changing a setting reruns the affected nodes only.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "demo": ("archive", "resources_dir", "demo"),
    "climatology": ("archive", "resources_dir", "climatology"),
    "demo_timeseries": ("archive", "resources_dir", "demo_timeseries"),
    "demo_planet": ("resources_dir", "demo_planet"),
    "demo_validate": ("resources_dir", "results_dir"),
}


def stage_config(cfg: dict[str, Any], stage: str) -> str:
    """The config subset a stage reads, as canonical JSON (stable across runs).

    Snakemake formats ``params`` *strings* as wildcard patterns: a rule whose config may hold a
    ``{name}`` (e.g. a URL template) passes ``lambda wildcards: stage_config(...)`` instead.
    """
    return json.dumps({k: cfg[k] for k in STAGE_SECTIONS[stage] if k in cfg}, sort_keys=True)
