# Cloud removal (issue #6): SEN12MS-CR-TS-style time series, HCR&LC and Planet-CR.
#
#   cloud_removal_train[method, dataset] -> cloud_removal_evaluate[method, dataset]
#       -> cloud_removal_tables_<dataset>   (semantic recovery: evaluate[segmentation, planetcr]
#                                            reads every Planet-CR method's predictions)
#
# Methods are the blocks of `cloud_removal.methods` (the {method} wildcard); baselines have no
# train node. Each node's params are exactly what it depends on (cloudyeo.training.
# cloud_removal.node_config: the dataset identity, the seed and that one method's effective
# hyperparameters, canonical JSON), and the rule hands the same JSON to the CLI. So changing one
# method's setting reruns only its train and evaluate nodes (and the tables). The code version
# is per method kind (cloudyeo.provenance.STAGE_SOURCES["cloud_removal_<kind>"]).
# Killed training resumes from the newest epoch checkpoint (results/models/cloud_removal/
# <dataset>/<method>/checkpoints/), discarded when the params or the code changed (the checkpoint
# fingerprint of cloudyeo.training.runtime, as in the CBEN experiment).
# The device (cloud_removal.device) reaches the jobs through CLOUDYEO_DEVICE, set here at parse
# time, and threads through CLOUDYEO_THREADS: neither is a param, so changing them reruns nothing.
import os

from cloudyeo.report import cloud_removal as _crr
from cloudyeo.training import cloud_removal as _cr
from cloudyeo.training.runtime import DEVICE_ENV

CR_CFG = config["cloud_removal"]
os.environ[DEVICE_ENV] = CR_CFG["device"]
CR_DATASETS = [d for d in CR_CFG["datasets"] if d == "timeseries" or hasattr(rules, f"{d}_finalize")]
CR_METHODS = list(CR_CFG["methods"]) or ["__none__"]


rule cloud_removal_train:
    input:
        _cr_data,
    output:
        P.cloud_removal_models / "{dataset}" / "{method}" / "model.pt",
    wildcard_constraints:
        dataset="timeseries|planetcr",
        method="|".join(CR_METHODS),
    params:
        cfg=lambda w: _cr.node_config(config, w.method, w.dataset, "train"),
        code=_cr_code,
    threads: 1
    resources:
        mem_mb=_cr_res("mem_mb"),
        runtime=_cr_res("runtime"),
        gpu=_cr_res("gpu"),
    log:
        f"{LOGS}/cloud_removal/train/{{dataset}}/{{method}}.log",
    benchmark:
        f"{LOGS}/benchmarks/cloud_removal_train/{{dataset}}/{{method}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "CLOUDYEO_THREADS={threads} cloudyeo cloud-removal train --quiet --method {wildcards.method} "
        "--dataset {wildcards.dataset} --config-json {params.cfg:q} > {log} 2>&1"


rule cloud_removal_evaluate:
    input:
        _cr_eval_inputs,
    output:
        records=P.cloud_removal_eval / "{dataset}" / "{method}" / "records.csv",
        summary=P.cloud_removal_eval / "{dataset}" / "{method}" / "summary.json",
    wildcard_constraints:
        dataset="timeseries|planetcr",
        method="|".join(CR_METHODS),
    params:
        cfg=lambda w: _cr.node_config(config, w.method, w.dataset, "evaluate"),
        code=_cr_code,
    threads: 1
    resources:
        mem_mb=3000,
        runtime=30,
        gpu=lambda w: int(_cr_hp(w.method).get("gpu", 0)),
    log:
        f"{LOGS}/cloud_removal/evaluate/{{dataset}}/{{method}}.log",
    benchmark:
        f"{LOGS}/benchmarks/cloud_removal_evaluate/{{dataset}}/{{method}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "CLOUDYEO_THREADS={threads} cloudyeo cloud-removal evaluate --quiet --method {wildcards.method} "
        "--dataset {wildcards.dataset} --config-json {params.cfg:q} > {log} 2>&1"


CR_TS = _crr.table_paths(config, "timeseries")


rule cloud_removal_tables_timeseries:
    """SEN12MS-CR-TS Tables I, II, IV, V; HCR&LC Table 2 and F1 by cloud cover; panels."""
    input:
        _cr_records("timeseries"),
        P.timeseries / "manifest_test.parquet",
    output:
        **{k: v for k, v in CR_TS.items() if k not in ("hcr_f1_png", "panels", "sen12mscrts_table_i_csv",
                                                       "hcr_table_2_csv")},
        table_i=report(CR_TS["sen12mscrts_table_i_csv"], caption="../report/cloud_removal_timeseries.rst",
                       category="Cloud removal"),
        hcr=report(CR_TS["hcr_table_2_csv"], caption="../report/cloud_removal_hcr.rst",
                   category="Cloud removal"),
        f1=report(CR_TS["hcr_f1_png"], caption="../report/cloud_removal_hcr.rst", category="Cloud removal"),
        panels_png=report(CR_TS["panels"], caption="../report/cloud_removal_panels.rst",
                          category="Cloud removal"),
    params:
        cfg=_crr.table_config(config, "timeseries"),
        code=code_version("cloud_removal_report"),
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"{LOGS}/cloud_removal/tables_timeseries.log",
    benchmark:
        f"{LOGS}/benchmarks/cloud_removal_tables_timeseries.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo cloud-removal tables --quiet --dataset timeseries --config-json {params.cfg:q} > {log} 2>&1"


CR_PL = _crr.table_paths(config, "planetcr")


rule cloud_removal_tables_planetcr:
    """Planet-CR Table 2 (overall, cloudy/clear, per land-cover class) and Table 3 (semantic recovery)."""
    input:
        _cr_records("planetcr"),
    output:
        **{k: v for k, v in CR_PL.items() if k not in ("panels", "planetcr_table_2_csv", "planetcr_table_3_csv")},
        table_2=report(CR_PL["planetcr_table_2_csv"], caption="../report/cloud_removal_planetcr.rst",
                       category="Cloud removal"),
        table_3=report(CR_PL["planetcr_table_3_csv"], caption="../report/cloud_removal_planetcr.rst",
                       category="Cloud removal"),
        panels_png=report(CR_PL["panels"], caption="../report/cloud_removal_panels.rst",
                          category="Cloud removal"),
    params:
        cfg=_crr.table_config(config, "planetcr"),
        code=code_version("cloud_removal_report"),
    resources:
        mem_mb=2000,
        runtime=10,
    log:
        f"{LOGS}/cloud_removal/tables_planetcr.log",
    benchmark:
        f"{LOGS}/benchmarks/cloud_removal_tables_planetcr.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo cloud-removal tables --quiet --dataset planetcr --config-json {params.cfg:q} > {log} 2>&1"


CR_ALL = [CR_TS["summary"] if d == "timeseries" else CR_PL["summary"] for d in CR_DATASETS]


rule cloud_removal:
    """Target: every configured cloud-removal table (snakemake --cores 2 cloud_removal)."""
    input:
        CR_ALL,


rule cloud_removal_quick:
    """Target: the S1 acceptance check only — baselines and seq2point with / without S1 on the
    time series (about a third of the cloud-removal work)."""
    input:
        [P.cloud_removal_eval / "timeseries" / m / "records.csv"
         for m in ("least_cloudy", "mosaicing", "seq2point", "seq2point_nos1") if m in CR_CFG["methods"]],
