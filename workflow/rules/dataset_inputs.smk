# Input, params and resource functions of the generated dataset rules (datasets.smk), kept apart
# so that file holds only rules (snakemake --lint). Each factory binds one builder.
from cloudyeo.drivers import read_plan
from cloudyeo.store import marker_path

# Which files a builder's ``archive_input`` stands for (archive.smk defines them).
ARCHIVE_INPUTS = {
    "archive": ARCHIVE_READY,
    "timeseries_archive": TIMESERIES_ARCHIVE_READY,
    "planet_archive": PLANET_READY,
    "none": [],
}


def dataset_params(builder, verb):
    """The config the verb reads, as a function: Snakemake would read a ``{tile}`` in a config
    string (a URL template) as a wildcard."""
    text = builder.params(verb)
    return lambda wildcards: text


def dataset_parts(builder):
    """One part file per unit of work the plan (a checkpoint) chose."""
    def parts(wildcards):
        getattr(checkpoints, f"{builder.name}_plan").get()
        return [str(builder.paths.part(u)) for u in builder.units(read_plan(builder))]
    return parts


def dataset_outputs(builder):
    """Finalize's outputs by name, report() captions where the builder declares them, and the
    store's completion mark last (any write to the store removes it)."""
    out = {}
    for name, path in builder.paths.outputs.items():
        if name in builder.report_outputs:
            caption, category = builder.report_outputs[name]
            out[name] = report(str(path), caption=f"../report/{caption}", category=category)
        else:
            out[name] = str(path)
    out["complete"] = str(marker_path(builder.paths.store))
    return out
