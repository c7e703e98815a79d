# Where scenes come from: the embedded demo world, or downloads for a real archive.

if config["archive"] == "demo":

    rule demo_world:
        output:
            world=P.demo / "world.json",
        params:
            cfg=stage_config(config, "demo"),
            code=code_version("demo"),
        threads: 2
        priority: archive_priority("archive")
        resources:
            mem_mb=4000,
            runtime=30,
        log:
            f"{LOGS}/demo_world.log",
        benchmark:
            f"{LOGS}/benchmarks/demo_world.tsv"
        conda:
            CONDA_ENV
        shell:
            "cloudyeo demo generate --quiet --workers {threads} --config-json {params.cfg:q} > {log} 2>&1"

    ARCHIVE_READY = [rules.demo_world.output.world]

    rule demo_timeseries:
        output:
            world=P.demo_timeseries / "world.json",
        params:
            cfg=stage_config(config, "demo_timeseries"),
            code=code_version("demo_timeseries"),
        threads: 2
        priority: archive_priority("timeseries_archive")
        resources:
            mem_mb=4000,
            runtime=30,
        log:
            f"{LOGS}/demo_timeseries.log",
        benchmark:
            f"{LOGS}/benchmarks/demo_timeseries.tsv"
        conda:
            CONDA_ENV
        shell:
            "cloudyeo demo generate-timeseries --quiet --workers {threads} --config-json {params.cfg:q} > {log} 2>&1"

    # The time-series and SSL4EO datasets read this part of the demo world.
    TIMESERIES_ARCHIVE_READY = [rules.demo_timeseries.output.world]

else:
    CLIMATOLOGY_FILES = [P.climatology / f"MODCF_monthlymean_{m:02d}.tif" for m in range(1, 13)] + [
        P.climatology / "MODCF_interannualSD.tif"
    ]

    rule climatology_download:
        output:
            CLIMATOLOGY_FILES,
        params:
            cfg=stage_config(config, "climatology"),
            code=code_version("climatology"),
        priority: archive_priority("archive")
        resources:
            mem_mb=1000,
            runtime=120,
        retries: 3
        log:
            f"{LOGS}/climatology_download.log",
        benchmark:
            f"{LOGS}/benchmarks/climatology_download.tsv"
        conda:
            CONDA_ENV
        shell:
            "cloudyeo climatology download --quiet --config-json {params.cfg:q} > {log} 2>&1"

    ARCHIVE_READY = CLIMATOLOGY_FILES
    TIMESERIES_ARCHIVE_READY = []

# The Planet-CR-style dataset reads this part of the demo world (or the Planet API).
if config["planetcr"]["source"] == "demo":

    rule demo_planet:
        output:
            world=P.demo_planet / "world.json",
        params:
            cfg=stage_config(config, "demo_planet"),
            code=code_version("demo_planet"),
        threads: 2
        priority: archive_priority("planet_archive")
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

# The demo world measured against the published statistics it is built to match (validation page).
if config["archive"] == "demo":

    rule demo_validate:
        input:
            ARCHIVE_READY,
            TIMESERIES_ARCHIVE_READY,
            PLANET_READY,
        output:
            page=P.results / "demo_validation" / "validation.md",
            table=P.results / "demo_validation" / "validation.csv",
        params:
            cfg=stage_config(config, "demo_validate"),
            code=code_version("demo_validate"),
        resources:
            mem_mb=3000,
            runtime=20,
        log:
            f"{LOGS}/demo_validate.log",
        conda:
            CONDA_ENV
        shell:
            "cloudyeo demo validate --quiet --config-json {params.cfg:q} > {log} 2>&1"

    DEMO_VALIDATION = rules.demo_validate.output
else:
    DEMO_VALIDATION = []
