# SSL4EO-S12-style four-season set: plan (checkpoint) -> store -> extract (one job per batch of
# locations) -> finalize. Logic in cloudyeo.datasets.ssl4eo; rules call `cloudyeo ssl4eo <verb>`.
from cloudyeo.datasets import ssl4eo as _ssl4eo
from cloudyeo.store import marker_path

SSL4EO_CFG = stage_config(config, "ssl4eo")
SSL4EO_CODE = code_version("ssl4eo")
SSL4EO_MANIFEST = _ssl4eo.manifest_path(P)
SSL4EO_CREATED = _ssl4eo.store_created_path(P)
SSL4EO_OUT = _ssl4eo.finalize_outputs(P)


checkpoint ssl4eo_plan:
    input:
        TIMESERIES_ARCHIVE_READY,
    output:
        manifest=SSL4EO_MANIFEST,
    params:
        cfg=SSL4EO_CFG,
        code=SSL4EO_CODE,
    resources:
        mem_mb=2000,
        runtime=60,
    log:
        f"{LOGS}/ssl4eo_plan.log",
    benchmark:
        f"{LOGS}/benchmarks/ssl4eo_plan.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo ssl4eo plan --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule ssl4eo_init_store:
    input:
        manifest=SSL4EO_MANIFEST,
    output:
        SSL4EO_CREATED,
    params:
        cfg=SSL4EO_CFG,
        code=SSL4EO_CODE,
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        f"{LOGS}/ssl4eo_init_store.log",
    benchmark:
        f"{LOGS}/benchmarks/ssl4eo_init_store.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo ssl4eo init-store --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule ssl4eo_extract:
    input:
        TIMESERIES_ARCHIVE_READY,
        created=SSL4EO_CREATED,
        manifest=SSL4EO_MANIFEST,
    output:
        P.ssl4eo / "parts" / "batch-{batch}.parquet",
    wildcard_constraints:
        batch=r"\d{4}",
    params:
        cfg=SSL4EO_CFG,
        code=SSL4EO_CODE,
    resources:
        # one batch of locations_per_job locations x seasons x (13 + 12 + 2) bands in memory
        mem_mb=3000,
        runtime=30,
    log:
        f"{LOGS}/ssl4eo_extract/batch-{{batch}}.log",
    benchmark:
        f"{LOGS}/benchmarks/ssl4eo_extract/batch-{{batch}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo ssl4eo extract --quiet --batch {wildcards.batch} "
        "--config-json {params.cfg:q} > {log} 2>&1"


rule ssl4eo_finalize:
    input:
        parts=ssl4eo_parts,
        created=SSL4EO_CREATED,
        manifest=SSL4EO_MANIFEST,
    output:
        index=SSL4EO_OUT["index"],
        availability=report(
            SSL4EO_OUT["availability"],
            caption="../report/ssl4eo_availability.rst",
            category="SSL4EO",
        ),
        band_stats=SSL4EO_OUT["band_stats"],
        histogram=report(
            SSL4EO_OUT["histogram"],
            caption="../report/ssl4eo_histogram.rst",
            category="SSL4EO",
        ),
        examples=report(
            SSL4EO_OUT["examples"],
            caption="../report/ssl4eo_examples.rst",
            category="SSL4EO",
        ),
        card=SSL4EO_OUT["card"],
        # Written last; any write to the store removes it, so an incomplete store reruns finalize.
        complete=marker_path(P.ssl4eo_store),
    params:
        cfg=SSL4EO_CFG,
        code=SSL4EO_CODE,
    threads: 2
    resources:
        mem_mb=4000,
        runtime=60,
    log:
        f"{LOGS}/ssl4eo_finalize.log",
    benchmark:
        f"{LOGS}/benchmarks/ssl4eo_finalize.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo ssl4eo finalize --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule ssl4eo:
    """Target: the whole SSL4EO-style dataset (snakemake --cores 2 ssl4eo)."""
    input:
        rules.ssl4eo_finalize.output,
