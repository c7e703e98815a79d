# Input, params and resource functions of the experiment stage files (the dataset rules' are in
# dataset_inputs.smk), kept here so each stage file holds
# only its rules (snakemake --lint: no functions mixed with rules). Included first; the names
# the functions read (P, checkpoints, the stage files' constants) are resolved when they are called.
from cloudyeo.store import marker_path
from cloudyeo.training import cloud_removal as _cr
from cloudyeo.training import experiments as _exp

# The software environment of all jobs, relative to the stage files, i.e. the package and its
# pinned dependencies. Used with `--software-deployment-method conda`, documentation otherwise.
CONDA_ENV = "../../envs/cloudyeo.yaml"


def archive_priority(archive_input):
    """An archive job's priority: the highest of the datasets that read it (builder.priority)."""
    return max((b.priority for b in DATASETS.values() if b.archive_input == archive_input), default=0)


# --- CBEN experiment (cben_experiments.smk) -------------------------------------------------------


def _exp_params(stage):
    return lambda wildcards: _exp.experiment_params(config, stage, wildcards.method)


def _ssl4eo_ready():
    """The SSL4EO store's completion mark: built by ssl4eo_finalize, or a configured store."""
    return marker_path(_exp.ssl4eo_store(config))


def _cben_ready():
    return marker_path(_exp.cben_store(config))


# --- cloud removal (cloud_removal.smk) ------------------------------------------------------------


def _cr_hp(method):
    return _cr.method_config(config, method)


def _cr_code(wildcards):
    """The code version of the method's kind (STAGE_SOURCES["cloud_removal_<kind>"])."""
    return code_version(f"cloud_removal_{_cr_hp(wildcards.method)['kind']}")


def _cr_data(wildcards):
    """The finished dataset: its completion mark (and, for the time series, its manifests)."""
    if wildcards.dataset == "timeseries":
        return [marker_path(P.timeseries_store),
                *[P.timeseries / f"manifest_{s}.parquet" for s in ("train", "validation", "test")]]
    return [marker_path(P.planetcr_store)]


def _cr_eval_inputs(wildcards):
    hp = _cr_hp(wildcards.method)
    out = _cr_data(wildcards)
    if hp["kind"] != "baseline":
        out.append(P.cloud_removal_models / wildcards.dataset / wildcards.method / "model.pt")
    if hp["kind"] == "segmentation":  # semantic recovery scores every method's predictions
        out += [P.cloud_removal_eval / wildcards.dataset / m / "records.csv"
                for m in _cr.methods_for(config, wildcards.dataset)
                if _cr_hp(m)["kind"] not in ("segmentation", "baseline")]
    return out


def _cr_res(key):
    """A resource of the method's train node (cloud_removal.common, overridden per method)."""
    return lambda wildcards: int(_cr_hp(wildcards.method)[key])


def _cr_records(dataset):
    return [P.cloud_removal_eval / dataset / m / "records.csv" for m in _cr.methods_for(config, dataset)]
