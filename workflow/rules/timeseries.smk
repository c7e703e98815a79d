# SEN12MS-CR-TS-style time series: plan (checkpoint) -> store -> extract (one job per ROI) -> finalize.
# A function, not a string: the config holds a URL template with "{tile}", which Snakemake
# would otherwise read as a wildcard.
_TS_CFG_TEXT = stage_config(config, "timeseries")
TS_CFG = lambda wildcards: _TS_CFG_TEXT
TS_CODE = code_version("timeseries")


checkpoint timeseries_plan:
    input:
        TIMESERIES_ARCHIVE_READY,
    output:
        plan=P.timeseries / "plan.parquet",
        patches=P.timeseries / "patches.parquet",
    params:
        cfg=TS_CFG,
        code=TS_CODE,
    resources:
        mem_mb=2000,
        runtime=60,
    log:
        f"{LOGS}/timeseries_plan.log",
    benchmark:
        f"{LOGS}/benchmarks/timeseries_plan.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo timeseries plan --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule timeseries_init_store:
    input:
        plan=P.timeseries / "plan.parquet",
        patches=P.timeseries / "patches.parquet",
    output:
        P.timeseries / "store.created.json",
    params:
        cfg=TS_CFG,
        code=TS_CODE,
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        f"{LOGS}/timeseries_init_store.log",
    benchmark:
        f"{LOGS}/benchmarks/timeseries_init_store.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo timeseries init-store --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule timeseries_extract:
    input:
        created=P.timeseries / "store.created.json",
        plan=P.timeseries / "plan.parquet",
    output:
        P.timeseries / "parts" / "{roi}.parquet",
    params:
        cfg=TS_CFG,
        code=TS_CODE,
    threads: 2
    resources:
        mem_mb=6000,
        runtime=120,
    log:
        f"{LOGS}/timeseries_extract/{{roi}}.log",
    benchmark:
        f"{LOGS}/benchmarks/timeseries_extract/{{roi}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "CLOUDYEO_THREADS={threads} cloudyeo timeseries extract --quiet --roi {wildcards.roi} "
        "--config-json {params.cfg:q} > {log} 2>&1"


rule timeseries_finalize:
    input:
        parts=timeseries_parts,
        created=P.timeseries / "store.created.json",
    output:
        index=P.timeseries / "index.parquet",
        manifests=[P.timeseries / f"manifest_{split}.parquet" for split in ("train", "validation", "test")],
        coverage=report(
            P.timeseries / "cloud_coverage_by_split.png",
            caption="../report/timeseries_coverage.rst",
            category="Time series",
        ),
        dt=report(
            P.timeseries / "dt_s1_s2_histogram.png",
            caption="../report/timeseries_dt.rst",
            category="Time series",
        ),
        example=report(
            P.timeseries / "example_series.png",
            caption="../report/timeseries_example.rst",
            category="Time series",
        ),
        card=P.timeseries / "dataset_card.md",
        complete=marker_path(P.timeseries_store),
    params:
        cfg=TS_CFG,
        code=TS_CODE,
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    log:
        f"{LOGS}/timeseries_finalize.log",
    benchmark:
        f"{LOGS}/benchmarks/timeseries_finalize.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo timeseries finalize --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule timeseries:
    """Target: the whole time-series dataset (snakemake --cores 2 timeseries)."""
    input:
        rules.timeseries_finalize.output,
