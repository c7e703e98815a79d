# Every dataset, generated from the builder registry (cloudyeo.datasets.builder): a plan checkpoint,
# an empty store, one extract job per unit of work, finalize, and a target named like the dataset.
# The rules call `cloudyeo dataset <name> <verb>`; outputs come from the builder's path table and
# each verb's params are the config it reads (the plan never sees store-only keys).
# A shell command runs after the loop has moved on: it reads the dataset from params, never from
# a loop variable (every other directive is evaluated here, in the loop).
DATASET_TARGETS = []

for _name, _builder in DATASETS.items():
    _paths = _builder.paths
    _code = _builder.code_version()

    checkpoint:
        name:
            f"{_name}_plan"
        input:
            ARCHIVE_INPUTS[_builder.archive_input],
        output:
            **{t: str(p) for t, p in _paths.plan.items()},
        params:
            dataset=_name,
            cfg=dataset_params(_builder, "plan"),
            code=_code,
        priority: _builder.priority
        resources:
            **_builder.job_resources("plan"),
        log:
            f"{LOGS}/{_name}_plan.log",
        benchmark:
            f"{LOGS}/benchmarks/{_name}_plan.tsv"
        conda:
            CONDA_ENV
        shell:
            "cloudyeo dataset {params.dataset} plan --quiet --config-json {params.cfg:q} > {log} 2>&1"

    rule:
        name:
            f"{_name}_init"
        input:
            **{t: str(p) for t, p in _paths.plan.items()},
        output:
            str(_paths.created),
        params:
            dataset=_name,
            cfg=dataset_params(_builder, "init"),
            code=_code,
        priority: _builder.priority
        resources:
            **_builder.job_resources("init"),
        log:
            f"{LOGS}/{_name}_init.log",
        benchmark:
            f"{LOGS}/benchmarks/{_name}_init.tsv"
        conda:
            CONDA_ENV
        shell:
            "cloudyeo dataset {params.dataset} init --quiet --config-json {params.cfg:q} > {log} 2>&1"

    rule:
        name:
            f"{_name}_extract"
        input:
            ARCHIVE_INPUTS[_builder.archive_input] if _builder.extract_reads_archive else [],
            created=str(_paths.created),
            manifest=str(_paths.manifest),
        output:
            str(_paths.parts / "{unit}.parquet"),
        wildcard_constraints:
            unit=_builder.unit_pattern,
        params:
            dataset=_name,
            cfg=dataset_params(_builder, "extract"),
            code=_code,
        threads: _builder.threads.get("extract", 1)
        priority: _builder.priority
        resources:
            **_builder.job_resources("extract"),
        log:
            f"{LOGS}/{_name}_extract/{{unit}}.log",
        benchmark:
            f"{LOGS}/benchmarks/{_name}_extract/{{unit}}.tsv"
        conda:
            CONDA_ENV
        shell:
            "CLOUDYEO_THREADS={threads} cloudyeo dataset {params.dataset} extract --quiet --unit {wildcards.unit} "
            "--config-json {params.cfg:q} > {log} 2>&1"

    rule:
        name:
            f"{_name}_finalize"
        input:
            parts=dataset_parts(_builder),
            created=str(_paths.created),
        output:
            **dataset_outputs(_builder),
        params:
            dataset=_name,
            cfg=dataset_params(_builder, "finalize"),
            code=_code,
        threads: _builder.threads.get("finalize", 1)
        priority: _builder.priority
        resources:
            **_builder.job_resources("finalize"),
        log:
            f"{LOGS}/{_name}_finalize.log",
        benchmark:
            f"{LOGS}/benchmarks/{_name}_finalize.tsv"
        conda:
            CONDA_ENV
        shell:
            "CLOUDYEO_THREADS={threads} cloudyeo dataset {params.dataset} finalize --quiet --config-json {params.cfg:q} > {log} 2>&1"

    rule:
        name:
            _name
        input:
            getattr(rules, f"{_name}_finalize").output,
        localrule: True

    DATASET_TARGETS += list(dataset_outputs(_builder).values())
