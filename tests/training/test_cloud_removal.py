"""Cloud-removal training, evaluation and tables on tiny fake stores in the real layouts.

The fake stores hold the arrays, dtypes, fill values and coordinates the readers use
(``timeseries.zarr`` + its manifests and ``index.parquet``; ``planetcr.zarr``), made from a few
land-cover blocks with class spectra, class-dependent S1 and random clouds. Training is a few
steps on 16-30 px crops: these tests check the plumbing (resume, params, metrics, tables), not
the learning.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import torch

from cloudyeo import store
from cloudyeo.config import ConfigError, paths, validate_config
from cloudyeo.metrics import cloud_region_masks, image_metrics
from cloudyeo.models.baselines import least_cloudy, mosaicing

H = 32
T = 6
TINY = {"width": 4, "blocks": 1, "depth": 2, "lr": 1e-3, "batch_size": 2, "crop": 16, "epochs": 2,
        "steps_per_epoch": 2}


def _methods():
    return {
        "least_cloudy": {"kind": "baseline", "baseline": "least_cloudy", "datasets": ["timeseries"]},
        "mosaicing": {"kind": "baseline", "baseline": "mosaicing", "datasets": ["timeseries"]},
        "identity": {"kind": "baseline", "baseline": "identity", "datasets": ["planetcr"]},
        "dsen2cr": {"kind": "dsen2cr", "datasets": ["timeseries", "planetcr"], **TINY, "crop": 20},
        "seq2point": {"kind": "seq2point", "datasets": ["timeseries"], **TINY},
        "seq2seq": {"kind": "seq2seq", "datasets": ["timeseries"], "input": "s1", **TINY, "batch_size": 1},
        "hcrlc_equal": {"kind": "hcrlc", "datasets": ["timeseries"], "weighting": "uncertainty",
                        "label_fraction": 0.5, "pretext_epochs": 1, **TINY},
        "hcr_then_lc": {"kind": "hcr_then_lc", "datasets": ["timeseries"], **TINY},
        "aligncr": {"kind": "aligncr", "datasets": ["planetcr"], **TINY, "crop": 20},
        "segmentation": {"kind": "segmentation", "datasets": ["planetcr"], **TINY, "crop": 20},
    }


def _config(base) -> dict:
    return validate_config({
        "archive": "demo", "resources_dir": str(base / "resources"), "results_dir": str(base / "results"),
        "timeseries": {"manifest": {"n_inputs": 3, "samples_per_patch": 2}},
        "cloud_removal": {"eval": {"window": 24, "overlap": 8, "n_inputs": [3, 4], "panels": 1},
                          "methods": _methods()},
    })


def _blocks(rng, h, w, classes):
    lc = np.zeros((h, w), np.uint8)
    for y in range(0, h, 8):
        for x in range(0, w, 8):
            lc[y:y + 8, x:x + 8] = rng.choice(classes)
    return lc


def _write_timeseries(cfg) -> None:
    """4 patches (2 train, 1 validation, 1 test) x 6 time points of 13 x 32 x 32."""
    import zarr

    p = paths(cfg)
    rng = np.random.default_rng(0)
    n_p, classes = 4, [0, 3, 7]
    spectra = {c: 0.05 + 0.4 * rng.random(13) for c in classes}
    g = zarr.open_group(str(p.timeseries_store), mode="w")
    s2 = g.create_array("s2", shape=(n_p, T, 13, H, H), dtype="int16", chunks=(1, 1, 13, H, H), fill_value=-32768,
                        attributes={"scale_factor": 1e-4, "add_offset": 0.0, "_FillValue": -32768})
    s1 = g.create_array("s1", shape=(n_p, T, 2, H, H), dtype="float32", chunks=(1, 1, 2, H, H))
    cm = g.create_array("cloud_mask", shape=(n_p, T, H, H), dtype="uint8", chunks=(1, 1, H, H), fill_value=255)
    lca = g.create_array("landcover", shape=(n_p, H, H), dtype="uint8", chunks=(1, H, H), fill_value=255)
    split = g.create_array("split", shape=(n_p,), dtype=str)
    split[:] = np.array(["train", "train", "validation", "test"])
    g.create_array("valid", shape=(n_p, T), dtype="bool")[:] = np.ones((n_p, T), bool)
    rows = []
    for pi in range(n_p):
        lc = _blocks(rng, H, H, classes)
        lc[:2, :2] = 255
        lca[pi] = lc
        for t in range(T):
            season = 1.0 + 0.3 * np.sin(t)
            table = np.stack([spectra.get(c, spectra[0]) for c in range(256)])  # class -> 13 bands
            refl = np.moveaxis(table[lc], -1, 0)
            refl = refl * season + 0.01 * rng.standard_normal(refl.shape)
            cov = 0.0 if t == 2 else rng.uniform(0.1, 0.9)
            cloud = rng.random((H // 8, H // 8)) < cov
            cloud = np.kron(cloud, np.ones((8, 8), bool))
            refl = np.where(cloud[None], 0.6, refl)
            raw = np.clip(refl * 1e4, 0, 20000).astype(np.int16)
            if pi == 3 and t == 4:
                raw[:, -3:, :] = -32768  # a partial scene (nodata rows)
                cloud[-3:, :] = True
            s2[pi, t] = raw
            k = lc.astype(np.float32)
            s1[pi, t] = np.stack([-15 + 3 * (k % 4) * season, -20 + 2 * (k % 3)]).astype(np.float32)
            cm[pi, t] = cloud.astype(np.uint8)
            rows.append({"patch": pi, "time": t, "split": str(split[pi]), "valid": True, "cloud_coverage": 100 * cloud.mean(),
                         "patch_id": f"R_{pi}", "roi": "R", "s2_datetime": pd.Timestamp("2018-01-01") + pd.Timedelta(days=10 * t)})
    p.timeseries.mkdir(parents=True, exist_ok=True)
    index = pd.DataFrame(rows)
    index.to_parquet(p.timeseries / "index.parquet")
    from cloudyeo.datasets.timeseries import sampling_manifest

    man = cfg["timeseries"]["manifest"]
    for sp in ("train", "validation", "test"):
        samples, _ = sampling_manifest(index, sp, n_inputs=3, samples_per_patch=2,
                                       cloud_range=tuple(man["cloud_range"][sp]) if sp != "train" else (0, 100),
                                       seed=0)
        samples.to_parquet(p.timeseries / f"manifest_{sp}.parquet")
    store.mark_complete(p.timeseries_store)


def _write_planetcr(cfg) -> None:
    """6 samples (4 train, 2 test): 4 x 30 x 30 optical at '3 m', 2 x 9 x 9 S1 and land cover at '10 m'."""
    import zarr

    p = paths(cfg)
    rng = np.random.default_rng(1)
    n, classes = 6, [0, 1, 3, 4]
    spectra = {c: 0.05 + 0.3 * rng.random(4) for c in classes}
    g = zarr.open_group(str(p.planetcr_store), mode="w")
    g.attrs["landcover_classes"] = ["urban", "agriculture", "rangeland", "forest", "water", "barren"]
    optical = {"scale_factor": 1e-4, "add_offset": 0.0, "_FillValue": 0}
    oc = g.create_array("optical_cloudy", shape=(n, 4, 30, 30), dtype="uint16", chunks=(1, 4, 30, 30), fill_value=0,
                        attributes=optical)
    ol = g.create_array("optical_clear", shape=(n, 4, 30, 30), dtype="uint16", chunks=(1, 4, 30, 30), fill_value=0,
                        attributes=optical)
    cm = g.create_array("cloud_mask", shape=(n, 30, 30), dtype="uint8", chunks=(1, 30, 30), fill_value=255)
    s1 = g.create_array("s1", shape=(n, 2, 9, 9), dtype="float32", chunks=(1, 2, 9, 9))
    lca = g.create_array("landcover", shape=(n, 9, 9), dtype="uint8", chunks=(1, 9, 9), fill_value=255)
    g.create_array("split", shape=(n,), dtype=str)[:] = np.array(["train"] * 4 + ["test"] * 2)
    g.create_array("sample_id", shape=(n,), dtype=str)[:] = np.array([f"s{i}" for i in range(n)])
    pct = g.create_array("cloud_percent", shape=(n,), dtype="float32")
    for i in range(n):
        lc = np.kron(rng.choice(classes, size=(3, 3)), np.ones((3, 3), int)).astype(np.uint8)
        lca[i] = lc
        hi = np.kron(lc, np.ones((10, 10), np.uint8))[:30 * 3:3, :30 * 3:3]  # 10/3 upsampling, nearest
        table = np.stack([spectra.get(c, spectra[0]) for c in range(256)])
        clear = np.moveaxis(table[hi], -1, 0)
        cloud = np.zeros((30, 30), bool)
        cloud[rng.integers(0, 15):, : rng.integers(10, 30)] = True
        ol[i] = (clear * 1e4).astype(np.uint16)
        oc[i] = (np.where(cloud[None], 0.55, clear) * 1e4).astype(np.uint16)
        cm[i] = cloud.astype(np.uint8)
        k = lc.astype(np.float32)
        s1[i] = np.stack([-12.0 - 2 * k, -18.0 - k]).astype(np.float32)
        pct[i] = 100 * cloud.mean()
    p.planetcr.mkdir(parents=True, exist_ok=True)
    store.mark_complete(p.planetcr_store)


@pytest.fixture(scope="module")
def cr(tmp_path_factory):
    base = tmp_path_factory.mktemp("cloud_removal")
    cfg = _config(base)
    _write_timeseries(cfg)
    _write_planetcr(cfg)
    torch.set_num_threads(1)
    return cfg


# --------------------------------------------------------------------------------- plumbing
def test_window_starts_and_sliding_window_cover_the_image_exactly():
    from cloudyeo.training.cloud_removal_eval import sliding_window, window_starts

    assert window_starts(256, 180, 32) == [0, 76]
    assert window_starts(300, 180, 32, align=10) == [0, 120]
    assert window_starts(100, 180, 32) == [0]
    for size, win, ov in [(256, 64, 16), (300, 160, 32), (37, 16, 4)]:
        starts = window_starts(size, win, ov)
        assert starts[0] == 0 and starts[-1] == size - win
        assert all(b - a <= win - ov for a, b in itertools.pairwise(starts))
    img = np.random.default_rng(0).random((3, 37, 29))
    seen = []

    def predict(win):
        y0, x0, h, w = win
        seen.append(win)
        return img[:, y0:y0 + h, x0:x0 + w]
    np.testing.assert_allclose(sliding_window(predict, (37, 29), 16, 4), img, atol=1e-12)
    assert len(seen) > 1  # a real sliding window, not one centre crop


def test_node_config_holds_only_its_own_method(cr):
    from cloudyeo.training.cloud_removal import node_config

    a = json.loads(node_config(cr, "seq2point", "timeseries"))
    assert list(a["cloud_removal"]["methods"]) == ["seq2point"]
    assert "eval" not in a["cloud_removal"]
    validate_config(a)  # the CLI receives it as a complete config
    changed = json.loads(json.dumps(cr))
    changed["cloud_removal"]["methods"]["dsen2cr"]["lr"] = 0.5
    assert node_config(changed, "seq2point", "timeseries") == node_config(cr, "seq2point", "timeseries")
    assert node_config(changed, "dsen2cr", "timeseries") != node_config(cr, "dsen2cr", "timeseries")
    changed["cloud_removal"]["methods"]["seq2point"]["mem_mb"] = 64000  # resources rerun nothing
    assert node_config(changed, "seq2point", "timeseries") == node_config(cr, "seq2point", "timeseries")
    from cloudyeo.report.cloud_removal import table_config

    assert table_config(changed, "planetcr") == table_config(cr, "planetcr")  # a time-series method changed
    assert table_config(changed, "timeseries") == table_config(cr, "timeseries")  # hyperparameters only
    validate_config(json.loads(table_config(cr, "timeseries")))
    changed["cloud_removal"]["eval"]["window"] = 64
    assert node_config(changed, "seq2point", "timeseries") == node_config(cr, "seq2point", "timeseries")
    assert node_config(changed, "seq2point", "timeseries", "evaluate") != node_config(cr, "seq2point", "timeseries", "evaluate")


def test_paper_preset_merges_and_validates(cr):
    from cloudyeo.training.cloud_removal import method_config

    cfg = json.loads(json.dumps(cr))
    cfg["cloud_removal"]["paper"] = {"dsen2cr": {"width": 256, "blocks": 16, "lr": 7e-5}}
    assert method_config(cfg, "dsen2cr")["width"] == TINY["width"]
    cfg["cloud_removal"]["preset"] = "paper"
    assert method_config(cfg, "dsen2cr")["width"] == 256
    cfg["cloud_removal"]["paper"]["dsen2cr"]["widht"] = 3
    with pytest.raises(ConfigError, match="cloud_removal.paper.dsen2cr"):
        method_config(cfg, "dsen2cr")


# --------------------------------------------------------------------------- time series
def test_baseline_records_match_a_direct_computation(cr):
    from cloudyeo.training.cloud_removal_data import TimeSeriesSource
    from cloudyeo.training.cloud_removal_eval import evaluate

    path = evaluate(cr, "mosaicing", "timeseries")
    rec = pd.read_csv(path)
    assert list(rec.columns[:2]) == ["method", "dataset"]
    for col in ("nrmse_all", "nrmse_cloudy", "nrmse_clear", "psnr", "ssim", "sam_deg", "mae"):
        assert col in rec
    assert sorted(rec["n_inputs"].unique()) == [3, 4]
    p = paths(cr)
    src = TimeSeriesSource(p.timeseries_store, p.timeseries)
    row = src.manifest("test").iloc[0]
    ins = list(row["inputs"])
    x = np.stack([np.nan_to_num(src.s2(int(row["patch"]), t)) for t in ins])
    m = np.stack([src.mask(int(row["patch"]), t) | ~np.isfinite(src.s2(int(row["patch"]), t)).all(0) for t in ins])
    y = src.s2(int(row["patch"]), int(row["target"]))
    valid = np.isfinite(y).all(0)
    _, clear = cloud_region_masks(m)
    pred = mosaicing(x, m, 0.5)
    got = rec[(rec["sample_id"] == row["sample_id"]) & (rec["n_inputs"] == 3)].iloc[0]
    y = np.nan_to_num(y)
    assert got["nrmse_all"] == pytest.approx(image_metrics(pred, y, valid)["nrmse"], rel=1e-9)
    if clear.any():
        assert got["nrmse_clear"] == pytest.approx(image_metrics(pred, y, clear & valid)["nrmse"], rel=1e-9)
        assert got["ssim_clear"] == pytest.approx(image_metrics(pred, y, clear & valid)["ssim"], rel=1e-9)
    # least cloudy: the input with the lowest cloud fraction
    evaluate(cr, "least_cloudy", "timeseries")
    lc = pd.read_csv(paths(cr).cloud_removal_eval / "timeseries" / "least_cloudy" / "records.csv")
    got = lc[(lc["sample_id"] == row["sample_id"]) & (lc["n_inputs"] == 3)].iloc[0]
    assert got["mae"] == pytest.approx(image_metrics(least_cloudy(x, m), y, valid)["mae"], rel=1e-9)


def test_killed_training_resumes_to_the_same_weights(cr, tmp_path):
    from cloudyeo.training.cloud_removal import Stopped, load_trained, train

    with pytest.raises(Stopped):
        train(cr, "dsen2cr", "timeseries", out_dir=tmp_path / "killed", stop_after_epoch=1)
    assert not (tmp_path / "killed" / "model.pt").exists()
    assert (tmp_path / "killed" / "checkpoints" / "main" / "epoch-0001.pt").exists()
    resumed = train(cr, "dsen2cr", "timeseries", out_dir=tmp_path / "killed")
    whole = train(cr, "dsen2cr", "timeseries", out_dir=tmp_path / "whole")
    log = pd.read_csv(tmp_path / "killed" / "train_log_main.csv")
    assert log["epoch"].tolist() == [1, 2]
    a, _ = load_trained(resumed)
    b, _ = load_trained(whole)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(va, vb, msg=k)


def test_changed_hyperparameters_discard_old_checkpoints(cr, tmp_path):
    from cloudyeo.training.cloud_removal import Stopped, train

    with pytest.raises(Stopped):
        train(cr, "dsen2cr", "timeseries", out_dir=tmp_path, stop_after_epoch=1)
    changed = json.loads(json.dumps(cr))
    changed["cloud_removal"]["methods"]["dsen2cr"]["lr"] = 5e-4
    train(changed, "dsen2cr", "timeseries", out_dir=tmp_path)
    assert pd.read_csv(tmp_path / "train_log_main.csv")["epoch"].tolist() == [1, 2]  # started afresh


@pytest.mark.parametrize("method", ["seq2point", "seq2seq", "hcrlc_equal", "hcr_then_lc"])
def test_time_series_methods_train_and_evaluate(cr, method):
    from cloudyeo.training.cloud_removal import train
    from cloudyeo.training.cloud_removal_eval import evaluate

    train(cr, method, "timeseries")
    rec = pd.read_csv(evaluate(cr, method, "timeseries"))
    assert len(rec) and rec["nrmse_all"].notna().all()
    out = paths(cr).cloud_removal_eval / "timeseries" / method
    assert (out / "panels.npz").exists() and (out / "summary.json").exists()
    if method.startswith("hcr"):
        assert rec["lc_f1"].between(0, 1).all() and (out / "lc_confusion.npz").exists()
    if method == "hcrlc_equal":
        summary = json.loads((paths(cr).cloud_removal_models / "timeseries" / method / "train_summary.json").read_text())
        assert summary["pretext"]["epochs"] == 1 and len(summary["labelled_patches"]) == 1
        assert len(summary["log_vars"]) == 2


def _class_from_s1(sar: torch.Tensor) -> torch.Tensor:
    """The fake store's class (0, 3 or 7) from its scaled S1 (N, 2, H, W): VH is -18 dB for 7 and
    -20 dB otherwise, VV -15 dB for 0 and at least -8.7 dB for 3 and 7 (``_write_timeseries``)."""
    vv, vh = sar[:, 0] * 25.0 - 25.0, sar[:, 1] * 25.0 - 25.0
    return torch.where(vh > -19.0, 7, torch.where(vv > -12.0, 3, 0))


class _OracleHCRLC(torch.nn.Module):
    """A multi-task stand-in whose LC logits are right wherever the land cover is known."""

    tasks = ("cr", "lc")

    def forward(self, optical, sar):
        logits = 10.0 * torch.nn.functional.one_hot(_class_from_s1(sar), 19).permute(0, 3, 1, 2).float()
        return {"cr": optical, "lc": logits}


def test_land_cover_targets_and_scores_keep_the_class_index(cr, tmp_path, monkeypatch):
    """Training batches pair each pixel with its own class, and the evaluation reads the LC
    channels after the 13 CR bands, takes the argmax over classes and skips 255: a perfect
    classifier scores 1 (HCR&LC's near-zero accuracy on the demo is not an indexing error)."""
    from cloudyeo.training import cloud_removal_eval
    from cloudyeo.training.cloud_removal import open_source, ts_single_batch

    src = open_source(cr, "timeseries")
    draw = ts_single_batch(src, src.manifest("train"), {"crop": 16, "batch_size": 4}, with_lc=True)
    for k in range(4):  # random windows, rotations and flips
        b = draw(np.random.default_rng(k))
        known = b["lc"] != 255
        assert known.any() and torch.equal(_class_from_s1(b["sar"])[known], b["lc"][known])
    monkeypatch.setattr(cloud_removal_eval, "load_trained", lambda path: (_OracleHCRLC(), {}))
    rec = pd.read_csv(cloud_removal_eval.evaluate(cr, "hcrlc_equal", "timeseries", out_dir=tmp_path))
    assert len(rec) and (rec["lc_oa"] == 1.0).all() and (rec["lc_f1"] == 1.0).all()
    assert (rec["lc_oa_seen"] == 1.0).all()
    cm = np.load(tmp_path / "lc_confusion.npz")["cms"].sum(axis=0)  # rows truth, columns prediction
    assert cm.sum() and (cm == np.diag(np.diag(cm))).all()


# ------------------------------------------------------------------------------ Planet-CR
def test_planetcr_methods_semantic_recovery_and_tables(cr):
    from cloudyeo.report.cloud_removal import table_paths, write_tables
    from cloudyeo.training.cloud_removal import train
    from cloudyeo.training.cloud_removal_eval import evaluate

    for m in ("identity", "dsen2cr", "aligncr", "segmentation"):
        if m != "identity":
            train(cr, m, "planetcr")
        evaluate(cr, m, "planetcr")
    out = paths(cr).cloud_removal_eval / "planetcr"
    ident = pd.read_csv(out / "identity" / "records.csv")
    assert ident["mae_clear"].max() < 1e-3  # the cloudy input equals the clear one outside clouds
    per_class = pd.read_csv(out / "aligncr" / "records_per_class.csv")
    assert set(per_class["class_name"]) <= {"urban", "agriculture", "forest", "water"}
    seg = pd.read_csv(out / "segmentation" / "records.csv")
    assert set(seg["source"]) == {"clear", "cloudy", "dsen2cr", "aligncr"}
    files = write_tables(cr, "planetcr")
    assert set(files) == set(table_paths(cr, "planetcr"))
    assert all(f.exists() for f in files.values())
    t2 = pd.read_csv(files["planetcr_table_2_csv"])
    assert t2["method"].tolist() == ["identity", "dsen2cr", "aligncr"]
    t3 = pd.read_csv(files["planetcr_table_3_csv"])
    assert t3["method"].tolist()[:2] == ["clear", "cloudy"] and t3["miou"].between(0, 1).all()


def test_time_series_tables(cr):
    from cloudyeo.report.cloud_removal import write_tables
    from cloudyeo.training.cloud_removal import method_config, methods_for, train
    from cloudyeo.training.cloud_removal_eval import evaluate

    for m in methods_for(cr, "timeseries"):
        out = paths(cr).cloud_removal_eval / "timeseries" / m / "records.csv"
        if not out.exists():
            if method_config(cr, m)["kind"] != "baseline":
                train(cr, m, "timeseries")
            evaluate(cr, m, "timeseries")
    files = write_tables(cr, "timeseries")
    assert all(f.exists() for f in files.values())
    t1 = pd.read_csv(files["sen12mscrts_table_i_csv"])
    assert list(t1.columns[:2]) == ["method", "dataset"]
    assert {"least_cloudy", "mosaicing", "seq2point", "dsen2cr"} <= set(t1["method"])
    t2 = pd.read_csv(files["sen12mscrts_table_ii_csv"])
    assert sorted(t2["n_inputs"].unique()) == [3, 4]
    assert pd.read_csv(files["sen12mscrts_table_v_csv"])["method"].tolist() == ["seq2seq"]
    hcr = pd.read_csv(files["hcr_table_2_csv"])
    assert {"lc_oa", "lc_oa_seen", "lc_f1", "lc_miou"} <= set(hcr.columns)
    lc = hcr.dropna(subset=["lc_oa"])
    assert len(lc) and ((lc["lc_oa_seen"] >= 0) & (lc["lc_oa_seen"] <= 1)).all()
    assert "classes no training ROI holds" in files["hcr_table_2_md"].read_text()


# ------------------------------------------------------------------------------- workflow
@pytest.mark.slow
def test_workflow_runs_and_a_changed_hyperparameter_reruns_only_its_nodes(tmp_path):
    """``snakemake cloud_removal_quick`` on the fake time series, then one seq2point setting changed."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    tiny = {"results_dir": str(tmp_path / "results"),
            "timeseries": {"manifest": {"n_inputs": 3, "samples_per_patch": 2}},
            "cloud_removal": {"datasets": ["timeseries"],
                              "eval": {"window": 24, "overlap": 8, "n_inputs": [3], "panels": 1},
                              "methods": {m: dict(_methods()[m]) for m in ("seq2point",)}}}
    tiny["cloud_removal"]["methods"]["seq2point_nos1"] = {**_methods()["seq2point"], "use_sar": False}
    _write_timeseries(validate_config({"archive": "demo", **tiny}))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))

    def smk(*args):
        cmd = [sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "--directory", str(tmp_path),
               "--configfile", str(tmp_path / "tiny.yaml"), "--cores", "2", "--allowed-rules",
               "cloud_removal_train", "cloud_removal_evaluate", "cloud_removal_quick", *args, "--",
               "cloud_removal_quick"]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout + proc.stderr

    smk()
    for m in ("least_cloudy", "mosaicing", "seq2point", "seq2point_nos1"):
        assert (tmp_path / "results/eval/cloud_removal/timeseries" / m / "records.csv").exists()
    # the evaluate command draws each method's panel (report layer) from what evaluation kept
    assert (tmp_path / "results/eval/cloud_removal/timeseries/seq2point/panel.png").exists()
    tiny["cloud_removal"].update(device="cpu", threads=2)  # how a job runs, not what it computes
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    assert "Nothing to be done" in smk("-n")
    tiny["cloud_removal"]["methods"]["seq2point"]["lr"] = 5e-4
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny))
    out = smk("-n")  # only seq2point's two nodes and the target: everything else is up to date
    jobs = dict(re.findall(r"^(cloud_removal_\w+)\s+(\d+)\s*$", out.split("Job stats:")[-1], flags=re.MULTILINE))
    assert jobs == {"cloud_removal_train": "1", "cloud_removal_evaluate": "1", "cloud_removal_quick": "1"}
    assert "method=seq2point\n" in out and "method=seq2point_nos1" not in out
