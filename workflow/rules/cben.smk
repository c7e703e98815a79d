# CBEN: plan (checkpoint) -> create store -> extract (one job per reference product) -> finalize.
from cloudyeo.store import marker_path

CBEN_CFG = stage_config(config, "cben")
CBEN_CODE = code_version("cben")
CBEN_STORE_CREATED = P.cben_store_created


checkpoint cben_plan:
    input:
        ARCHIVE_READY,
    output:
        manifest=P.cben_manifest,
        patches=P.cben_patches,
    params:
        cfg=CBEN_CFG,
        code=CBEN_CODE,
    resources:
        mem_mb=2000,
        runtime=60,
    log:
        f"{LOGS}/cben_plan.log",
    benchmark:
        f"{LOGS}/benchmarks/cben_plan.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo cben plan --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule cben_init_store:
    input:
        manifest=P.cben_manifest,
        patches=P.cben_patches,
    output:
        CBEN_STORE_CREATED,
    params:
        cfg=CBEN_CFG,
        code=CBEN_CODE,
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        f"{LOGS}/cben_init_store.log",
    benchmark:
        f"{LOGS}/benchmarks/cben_init_store.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo cben init-store --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule cben_extract:
    input:
        created=CBEN_STORE_CREATED,
        manifest=P.cben_manifest,
    output:
        P.cben / "parts" / "{product}.parquet",
    params:
        cfg=CBEN_CFG,
        code=CBEN_CODE,
    resources:
        mem_mb=2000,
        runtime=30,
    log:
        f"{LOGS}/cben_extract/{{product}}.log",
    benchmark:
        f"{LOGS}/benchmarks/cben_extract/{{product}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo cben extract --quiet --product {wildcards.product} "
        "--config-json {params.cfg:q} > {log} 2>&1"


rule cben_finalize:
    input:
        parts=cben_parts,
        created=CBEN_STORE_CREATED,
    output:
        index=P.cben / "index.parquet",
        table_ii=report(
            P.cben / "table_ii_cloud_statistics.csv",
            caption="../report/cben_table_ii.rst",
            category="CBEN",
        ),
        table_iii=report(
            P.cben / "table_iii_time_differences.csv",
            caption="../report/cben_table_iii.rst",
            category="CBEN",
        ),
        band_stats=P.cben / "band_statistics.csv",
        histogram=report(
            P.cben / "cloud_cover_histogram.png",
            caption="../report/cben_histogram.rst",
            category="CBEN",
        ),
        card=P.cben / "dataset_card.md",
        # Written last; any write to the store removes it, so an incomplete store reruns finalize.
        complete=marker_path(P.cben_store),
    params:
        cfg=CBEN_CFG,
        code=CBEN_CODE,
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    log:
        f"{LOGS}/cben_finalize.log",
    benchmark:
        f"{LOGS}/benchmarks/cben_finalize.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo cben finalize --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule cben:
    """Target: the whole CBEN dataset (snakemake --cores 2 cben)."""
    input:
        rules.cben_finalize.output,
