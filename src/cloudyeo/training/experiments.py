"""The CBEN experiment as DAG nodes: settings, parameters and locations of every node.

The experiment of the CBEN paper (issue #5), one node per setting:

``pretrain[method]`` -> ``finetune[method, train_set]`` -> ``evaluate[method, train_set, test_set]``
-> ``table``, with ``method`` in moco2, moco3, mae and ``train_set``/``test_set`` in ben, cben.

Config (section ``cben_experiments``, validated by the one schema): ``pretrain.common`` holds the
settings every method shares and ``pretrain.<method>`` overrides them key by key (nested
``augment`` merged too); the same for ``finetune``. :func:`settings` returns the merged dict a node
runs with; :func:`experiment_params` the canonical JSON a Snakemake rule carries in ``params:``:
exactly what the node depends on, so that changing one setting reruns exactly the nodes that read it:

* pretrain[m]: the SSL4EO store's identity (its stage config, or the configured path), the seed and
  the merged pretrain settings of ``m`` (not the other methods' blocks);
* finetune[m, s]: pretrain[m]'s params plus the CBEN store's identity and the merged finetune
  settings of ``m``;
* evaluate[m, s, t]: finetune[m, s]'s params plus the ``evaluate`` block.

``runtime`` (device, workers) and ``resources`` never enter params: they change how a node runs,
not what it computes. The JSON is a valid configuration by itself (the pruned config): rules pass
it to ``cloudyeo ... --config-json`` so the job reads exactly what its params say.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cloudyeo.config import ConfigError, Paths, deep_merge, load_schema, paths, validate_config
from cloudyeo.training.runtime import checkpoint_fingerprint, node_params

METHODS = ("moco2", "moco3", "mae")
SETS = ("ben", "cben")
STAGES = ("pretrain", "finetune", "evaluate")
SECTION = "cben_experiments"
# Config keys outside ``cben_experiments`` that locate stores and results.
_LOCATION_KEYS = ("archive", "resources_dir", "results_dir")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")


def _validate_merged(merged: dict, stage: str, method: str) -> None:
    """Type-check a merged block against the schema of ``<stage>.common`` (overrides are only
    name-checked by the schema), so an error names e.g. ``cben_experiments.pretrain.mae.lr``."""
    import jsonschema

    schema = load_schema()["properties"][SECTION]["properties"][stage]["properties"]["common"]
    props = dict(schema["properties"])
    extra = {k: v for k, v in merged.items() if k not in props}
    sub = {**schema, "properties": props}
    errors = list(jsonschema.Draft202012Validator(sub).iter_errors(
        {k: v for k, v in merged.items() if k in props}))
    if errors:
        lines = [f"  {SECTION}.{stage}.{method}.{'.'.join(map(str, e.absolute_path))}: {e.message}"
                 for e in errors]
        raise ConfigError("invalid configuration:\n" + "\n".join(lines))
    if stage == "pretrain":
        for key in ("backbone", "backbone_kwargs", "hparams"):
            if key not in extra:
                raise ConfigError(f"invalid configuration:\n  {SECTION}.{stage}.{method}.{key}: missing")


def settings(cfg: dict[str, Any], stage: str, method: str) -> dict[str, Any]:
    """The merged settings of ``stage`` ("pretrain" or "finetune") for ``method``."""
    _check_method(method)
    if stage not in ("pretrain", "finetune"):
        raise ValueError(f"stage must be pretrain or finetune, got {stage!r}")
    block = cfg[SECTION][stage]
    merged = deep_merge(block["common"], block[method])
    _validate_merged(merged, stage, method)
    return merged


def pruned_config(cfg: dict[str, Any], stage: str, method: str) -> dict[str, Any]:
    """The part of the (validated) config that node ``stage[method, ...]`` depends on.

    A valid config by itself (the schema fills what was pruned with defaults, which the node
    does not read). Sets (``train_set``/``test_set``) are wildcards, not settings.
    """
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
    _check_method(method)
    exp = cfg[SECTION]
    out: dict[str, Any] = {k: cfg[k] for k in _LOCATION_KEYS if k in cfg}
    sub: dict[str, Any] = {"seed": exp["seed"]}
    # store identities: a configured path, or the config of the stage that builds the store
    stores = exp["stores"]
    sub["stores"] = {"ssl4eo": stores["ssl4eo"]}
    if stores["ssl4eo"] is None:
        out["ssl4eo"] = cfg["ssl4eo"]
    sub["pretrain"] = {"common": exp["pretrain"]["common"], method: exp["pretrain"][method]}
    if stage in ("finetune", "evaluate"):
        sub["stores"]["cben"] = stores["cben"]
        if stores["cben"] is None:
            for key in ("stac", "climatology", "reference", "cben"):
                if key in cfg:
                    out[key] = cfg[key]
        sub["finetune"] = {"common": exp["finetune"]["common"], method: exp["finetune"][method]}
    if stage == "evaluate":
        sub["evaluate"] = exp["evaluate"]
    sub["methods"] = [method]
    out[SECTION] = sub
    return out


def experiment_params(cfg: dict[str, Any], stage: str, method: str) -> str:
    """:func:`cloudyeo.training.runtime.node_params` of :func:`pruned_config`: a rule's ``params:`` value."""
    return node_params(pruned_config(cfg, stage, method))


def fingerprint(cfg: dict[str, Any], stage: str, method: str, train_set: str | None = None) -> str:
    """The checkpoint fingerprint of node ``stage[method(, train_set)]``: its params and the code
    version of the stage; epoch checkpoints resume only when it matches."""
    params = experiment_params(cfg, stage, method) + ("" if train_set is None else f"|{train_set}")
    return checkpoint_fingerprint(params, stage)


def load_pruned(text: str) -> dict[str, Any]:
    """A config from :func:`experiment_params` JSON, validated (defaults filled)."""
    return validate_config(json.loads(text))


# ------------------------------------------------------------------------------- locations


def ssl4eo_store(cfg: dict[str, Any]) -> Path:
    path = cfg[SECTION]["stores"]["ssl4eo"]
    return Path(path) if path else paths(cfg).ssl4eo_store


def cben_store(cfg: dict[str, Any]) -> Path:
    path = cfg[SECTION]["stores"]["cben"]
    return Path(path) if path else paths(cfg).cben_store


def pretrain_dir(p: Paths, method: str) -> Path:
    return p.models / "pretrain" / method


def pretrain_outputs(p: Paths, method: str) -> dict[str, Path]:
    """model.pt (backbone + normalisation spec), model.json (summary), model.metrics.csv."""
    d = pretrain_dir(p, method)
    return {"model": d / "model.pt", "summary": d / "model.json", "metrics": d / "model.metrics.csv"}


def finetune_dir(p: Paths, method: str, train_set: str) -> Path:
    return p.models / "finetune" / method / train_set


def finetune_outputs(p: Paths, method: str, train_set: str) -> dict[str, Path]:
    d = finetune_dir(p, method, train_set)
    return {"model": d / "model.pt", "summary": d / "metrics.json", "metrics": d / "metrics.csv"}


def evaluate_outputs(p: Paths, method: str, train_set: str, test_set: str) -> dict[str, Path]:
    d = p.cben_eval / method
    stem = f"{train_set}_on_{test_set}"
    return {"metrics": d / f"{stem}.json", "scores": d / f"{stem}.npz"}


def table_outputs(p: Paths) -> dict[str, Path]:
    d = p.cben_eval
    return {
        "csv": d / "table_vi.csv",
        "markdown": d / "table_vi.md",
        "figure": d / "table_vi.png",
        "per_class": d / "per_class_ap.csv",
        "bins": d / "ap_by_cloud_fraction.csv",
        "bins_figure": d / "ap_by_cloud_fraction.png",
    }


def epochs_dir(output_dir: Path) -> Path:
    """Epoch checkpoints of a running job (not a rule output: they survive a killed job)."""
    return Path(output_dir) / "epochs"


def table_params(cfg: dict[str, Any]) -> str:
    """Params of the table node: where the evaluations are and which cells it collects."""
    exp = cfg[SECTION]
    pruned = {k: cfg[k] for k in _LOCATION_KEYS if k in cfg}
    pruned[SECTION] = {k: exp[k] for k in ("methods", "train_sets", "test_sets")}
    return json.dumps(pruned, sort_keys=True)
