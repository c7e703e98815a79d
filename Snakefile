# cloudyeo workflow: thin on purpose. Logic lives in the cloudyeo package (src/cloudyeo);
# rules call its CLI. Nothing here queries a service or scans folders at parse time.
import os

from snakemake.utils import min_version, validate

from cloudyeo.config import paths, stage_config, validate_config
from cloudyeo.datasets.builder import registry
from cloudyeo.provenance import code_version

# The oldest Snakemake the package declares (pyproject.toml: snakemake>=8.20); tested with 9.27.
min_version("8.20")


configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# The package check names the offending key path; Snakemake's own check fills defaults.
config.update(validate_config(config))
validate(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"), set_default=True)
P = paths(config)
# Every dataset builder (the package's and the config's dataset_builders), made from the config once.
DATASETS = {name: cls(config) for name, cls in registry(config).items()}
LOGS = "logs"


include: "workflow/rules/common.smk"
include: "workflow/rules/archive.smk"
include: "workflow/rules/dataset_inputs.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/cben_experiments.smk"
include: "workflow/rules/cloud_removal.smk"


rule all:
    input:
        DATASET_TARGETS,
        DEMO_VALIDATION,
        rules.cben_eval_table.output,
        CR_ALL,
    default_target: True
