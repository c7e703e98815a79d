# Planet-CR-style quartets: demo world (or the Planet API) -> plan (checkpoint) -> store ->
# extract (one job per batch of AOIs) -> finalize. Logic in cloudyeo.datasets.planetcr; rules
# call `cloudyeo planetcr <verb>`. Nothing here queries a service at parse time.
from cloudyeo.store import marker_path

PLANETCR_CFG = stage_config(config, "planetcr")
PLANETCR_CODE = code_version("planetcr")
PLANETCR_CREATED = P.planetcr_store_created

if config["planetcr"]["source"] == "demo":

    rule demo_planet:
        output:
            world=P.demo_planet / "world.json",
        params:
            cfg=stage_config(config, "demo_planet"),
            code=code_version("demo_planet"),
        threads: 2
        resources:
            mem_mb=3000,
            runtime=20,
        log:
            f"{LOGS}/demo_planet.log",
        benchmark:
            f"{LOGS}/benchmarks/demo_planet.tsv"
        conda:
            CONDA_ENV
        shell:
            "cloudyeo demo generate-planet --quiet --workers {threads} "
            "--config-json {params.cfg:q} > {log} 2>&1"

    PLANET_READY = [rules.demo_planet.output.world]

else:
    PLANET_READY = []


checkpoint planetcr_plan:
    input:
        PLANET_READY,
    output:
        manifest=P.planetcr_manifest,
        scenes=P.planetcr_scenes,
    params:
        cfg=PLANETCR_CFG,
        code=PLANETCR_CODE,
    resources:
        mem_mb=2000,
        # planet-api: UDM2 activation + download of every candidate scene
        runtime=30 if config["planetcr"]["source"] == "demo" else 240,
    log:
        f"{LOGS}/planetcr_plan.log",
    benchmark:
        f"{LOGS}/benchmarks/planetcr_plan.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo planetcr plan --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule planetcr_init_store:
    input:
        manifest=P.planetcr_manifest,
    output:
        PLANETCR_CREATED,
    params:
        cfg=PLANETCR_CFG,
        code=PLANETCR_CODE,
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        f"{LOGS}/planetcr_init_store.log",
    benchmark:
        f"{LOGS}/benchmarks/planetcr_init_store.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo planetcr init-store --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule planetcr_extract:
    input:
        PLANET_READY,
        created=PLANETCR_CREATED,
        manifest=P.planetcr_manifest,
    output:
        P.planetcr / "parts" / "{batch}.parquet",
    wildcard_constraints:
        batch=r"batch-\d{3}",
    params:
        cfg=PLANETCR_CFG,
        code=PLANETCR_CODE,
    resources:
        # a batch of aois_per_batch AOIs: ~1.7 MB per sample in memory, at most 5 bins x
        # samples_per_bin samples
        mem_mb=3000,
        runtime=30 if config["planetcr"]["source"] == "demo" else 240,
    log:
        f"{LOGS}/planetcr_extract/{{batch}}.log",
    benchmark:
        f"{LOGS}/benchmarks/planetcr_extract/{{batch}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo planetcr extract --quiet --batch {wildcards.batch} "
        "--config-json {params.cfg:q} > {log} 2>&1"


rule planetcr_finalize:
    input:
        parts=planetcr_parts,
        created=PLANETCR_CREATED,
        scenes=P.planetcr_scenes,
    output:
        index=P.planetcr / "index.parquet",
        stats=report(
            P.planetcr / "statistics.csv",
            caption="../report/planetcr_statistics.rst",
            category="Planet-CR",
        ),
        band_stats=P.planetcr / "band_statistics.csv",
        skips=P.planetcr / "skip_reasons.csv",
        distributions=report(
            P.planetcr / "distributions.png",
            caption="../report/planetcr_distributions.rst",
            category="Planet-CR",
        ),
        examples=report(
            P.planetcr / "example_quartets.png",
            caption="../report/planetcr_examples.rst",
            category="Planet-CR",
        ),
        card=P.planetcr / "dataset_card.md",
        # Written last; any write to the store removes it, so an incomplete store reruns finalize.
        complete=marker_path(P.planetcr_store),
    params:
        cfg=PLANETCR_CFG,
        code=PLANETCR_CODE,
    threads: 2
    resources:
        mem_mb=3000,
        runtime=30,
    log:
        f"{LOGS}/planetcr_finalize.log",
    benchmark:
        f"{LOGS}/benchmarks/planetcr_finalize.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo planetcr finalize --quiet --config-json {params.cfg:q} > {log} 2>&1"


rule planetcr:
    """Target: the whole Planet-CR-style dataset (snakemake --cores 2 planetcr)."""
    input:
        rules.planetcr_finalize.output,
