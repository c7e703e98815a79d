"""Evaluation node and Table VI: dataset-level AP equals scikit-learn's, every test sample counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import average_precision_score

from cloudyeo.config import validate_config
from cloudyeo.models.registry import build_backbone
from cloudyeo.report.cben_eval import TABLE_COLUMNS, write_report
from cloudyeo.training import experiments as ex
from cloudyeo.training.data import ssl4eo_normalization
from cloudyeo.training.finetune import MultiLabelClassifier
from cloudyeo.training.runtime import save_checkpoint
from cloudyeo.training.synthetic import write_cben_store, write_ssl4eo_store


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """Fine-tuned checkpoints (untrained heads) for two sets, evaluated on both test sets."""
    from cloudyeo.training.evaluate import evaluate

    torch.set_num_threads(1)
    base = tmp_path_factory.mktemp("eval")
    # 11 patches: 3 in the test split with a batch size of 2, so the last batch is partial
    write_cben_store(base / "cben.zarr", n=11, px=16, splits=("train", "test", "validation", "train"))
    write_ssl4eo_store(base / "ssl4eo.zarr", n=2, px=16)
    cfg = validate_config({"archive": "demo", "results_dir": str(base / "results"), "cben_experiments": {
        "methods": ["moco2"], "stores": {"ssl4eo": str(base / "ssl4eo.zarr"), "cben": str(base / "cben.zarr")},
        "evaluate": {"batch_size": 2, "cloud_bins": [0.0, 0.5, 1.0]}}})
    spec = ssl4eo_normalization(base / "ssl4eo.zarr")
    p = ex.paths(cfg)
    for i, train_set in enumerate(("ben", "cben")):
        torch.manual_seed(i)
        model = MultiLabelClassifier(build_backbone("resnet_small", 14, width=0.125), 19)
        save_checkpoint(ex.finetune_outputs(p, "moco2", train_set)["model"], model, normalization=spec,
                        extra={"input_size": 16, "best_epoch": 0, "validation": {}, "fingerprint": "f"})
    results = {(a, b): evaluate(cfg, "moco2", a, b, progress=False) for a in ("ben", "cben") for b in ("ben", "cben")}
    return cfg, results


def test_ap_equals_scikit_learn_over_the_whole_test_split(evaluated):
    cfg, results = evaluated
    p = ex.paths(cfg)
    from cloudyeo import store

    n_test = int((store.open_store(ex.cben_store(cfg))["split"].values == "test").sum())
    for (a, b), r in results.items():
        assert r["n_samples"] == n_test == r["test_split_size"] == 3
        z = np.load(ex.evaluate_outputs(p, "moco2", a, b)["scores"])
        y, s = z["labels"], z["scores"]
        assert y.shape == (3, 19) and len(set(z["patch_id"])) == 3
        assert r["ap_micro"] == pytest.approx(100 * average_precision_score(y, s, average="micro"))
        with np.errstate(all="ignore"), pytest.warns(UserWarning):  # classes without a positive
            per_class = average_precision_score(y, s, average=None)
        assert r["ap_macro"] == pytest.approx(100 * np.mean(per_class))
        assert list(r["per_class"].values()) == pytest.approx(list(100 * per_class))
        assert sum(b_["n_samples"] for b_ in r["cloud_bins"]) == 3


def test_table_vi_has_one_row_per_cell(evaluated, tmp_path):
    cfg, results = evaluated
    p = ex.paths(cfg)
    files = [ex.evaluate_outputs(p, "moco2", a, b)["metrics"] for a in ("ben", "cben") for b in ("ben", "cben")]
    outs = ex.table_outputs(ex.paths({"results_dir": str(tmp_path)}))
    write_report(files, outs)
    df = pd.read_csv(outs["csv"])
    assert list(df.columns) == TABLE_COLUMNS
    assert list(zip(df["finetuned_on"], df["tested_on"])) == [("ben", "ben"), ("ben", "cben"), ("cben", "ben"),
                                                               ("cben", "cben")]
    assert (df["method"] == "moco2").all() and (df["n_samples"] == 3).all()
    row = df[(df["finetuned_on"] == "cben") & (df["tested_on"] == "ben")].iloc[0]
    assert row["ap_micro"] == pytest.approx(results[("cben", "ben")]["ap_micro"], abs=0.005)
    md = outs["markdown"].read_text()
    assert "| MoCo v2 | BEN |" in md and "share of the loss recovered" in md
    for key in ("figure", "bins_figure", "per_class", "bins"):
        assert outs[key].stat().st_size > 0
