# The CBEN paper's experiment (issue #5): self-supervised pretraining on the SSL4EO store ->
# fine-tuning on BEN (clear) or CBEN (cloudy) -> AP on both test sets -> Table VI.
#
#   ssl_pretrain[method] -> cben_finetune[method, train_set] -> cben_evaluate[method, train_set,
#   test_set] -> cben_eval_table
#
# Each node's params are exactly the settings it depends on (cloudyeo.training.experiments.
# experiment_params: the pruned config, canonical JSON), so changing one fine-tuning setting reruns
# only the finetune and evaluate nodes that read it. Rules call the package CLI with that JSON.
# Runtime settings (device, workers, checkpoint interval) reach the jobs through the environment
# variable CLOUDYEO_RUNTIME_JSON (set here at parse time, which every job - on SLURM too - repeats;
# the shell passes it as --runtime-json), never through params or the shell text: they change how a
# node runs, not what it computes, so changing them reruns nothing.
import json
import os

from cloudyeo.training import experiments as _exp

EXP = config["cben_experiments"]
EXP_RUN = EXP["runtime"]
EXP_RES = EXP["resources"]
EXP_RUNTIME = json.dumps(EXP_RUN, sort_keys=True)
os.environ.update(CLOUDYEO_RUNTIME_JSON=EXP_RUNTIME)
EXP_METHODS = "|".join(_exp.METHODS)
EXP_SETS = "|".join(_exp.SETS)


rule ssl_pretrain:
    input:
        _ssl4eo_ready(),
    output:
        multiext(str(P.models / "pretrain" / "{method}" / "model"), ".pt", ".json", ".metrics.csv"),
    wildcard_constraints:
        method=EXP_METHODS,
    # Between-workflow cache (`snakemake --cache ssl_pretrain` with SNAKEMAKE_OUTPUT_CACHE set):
    # the key hashes params, code and inputs, so another workflow with the same settings and store
    # reuses the pretrained backbone instead of training it again.
    cache: "omit-software"
    params:
        cfg=_exp_params("pretrain"),
        code=code_version("pretrain"),
    threads: EXP_RES["threads"]
    resources:
        gpu=EXP_RES["gpu"],
        mem_mb=EXP_RES["pretrain"]["mem_mb"],
        runtime=EXP_RES["pretrain"]["runtime"],
    # No benchmark: Snakemake refuses it on cached rules (a cache hit has no run time to record);
    # model.json records the training time and throughput instead.
    log:
        f"{LOGS}/ssl_pretrain/{{method}}.log",
    conda:
        CONDA_ENV
    shell:
        "cloudyeo ssl pretrain --method {wildcards.method} --threads {threads} "
        "--runtime-json \"$CLOUDYEO_RUNTIME_JSON\" --config-json {params.cfg:q} > {log} 2>&1"


rule cben_finetune:
    input:
        pretrained=P.models / "pretrain" / "{method}" / "model.pt",
        store=_cben_ready(),
    output:
        model=P.models / "finetune" / "{method}" / "{train_set}" / "model.pt",
        summary=P.models / "finetune" / "{method}" / "{train_set}" / "metrics.json",
        metrics=P.models / "finetune" / "{method}" / "{train_set}" / "metrics.csv",
    wildcard_constraints:
        method=EXP_METHODS,
        train_set=EXP_SETS,
    params:
        cfg=_exp_params("finetune"),
        code=code_version("finetune"),
    threads: EXP_RES["threads"]
    resources:
        gpu=EXP_RES["gpu"],
        mem_mb=EXP_RES["finetune"]["mem_mb"],
        runtime=EXP_RES["finetune"]["runtime"],
    log:
        f"{LOGS}/cben_finetune/{{method}}_{{train_set}}.log",
    benchmark:
        f"{LOGS}/benchmarks/cben_finetune/{{method}}_{{train_set}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo cben-eval finetune --method {wildcards.method} --train-set {wildcards.train_set} "
        "--threads {threads} --runtime-json \"$CLOUDYEO_RUNTIME_JSON\" --config-json {params.cfg:q} > {log} 2>&1"


rule cben_evaluate:
    input:
        model=P.models / "finetune" / "{method}" / "{train_set}" / "model.pt",
        store=_cben_ready(),
    output:
        metrics=P.cben_eval / "{method}" / "{train_set}_on_{test_set}.json",
        scores=P.cben_eval / "{method}" / "{train_set}_on_{test_set}.npz",
    wildcard_constraints:
        method=EXP_METHODS,
        train_set=EXP_SETS,
        test_set=EXP_SETS,
    params:
        cfg=_exp_params("evaluate"),
        code=code_version("evaluate"),
    threads: EXP_RES["threads"]
    resources:
        gpu=EXP_RES["gpu"],
        mem_mb=EXP_RES["evaluate"]["mem_mb"],
        runtime=EXP_RES["evaluate"]["runtime"],
    log:
        f"{LOGS}/cben_evaluate/{{method}}_{{train_set}}_on_{{test_set}}.log",
    benchmark:
        f"{LOGS}/benchmarks/cben_evaluate/{{method}}_{{train_set}}_on_{{test_set}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo cben-eval evaluate --method {wildcards.method} --train-set {wildcards.train_set} "
        "--test-set {wildcards.test_set} --threads {threads} --runtime-json \"$CLOUDYEO_RUNTIME_JSON\" "
        "--config-json {params.cfg:q} > {log} 2>&1"


CBEN_EVAL_OUT = _exp.table_outputs(P)


rule cben_eval_table:
    input:
        expand(P.cben_eval / "{method}" / "{train_set}_on_{test_set}.json", method=EXP["methods"],
               train_set=EXP["train_sets"], test_set=EXP["test_sets"]),
    output:
        csv=report(CBEN_EVAL_OUT["csv"], caption="../report/cben_eval_table_vi.rst", category="CBEN experiment"),
        markdown=CBEN_EVAL_OUT["markdown"],
        figure=report(CBEN_EVAL_OUT["figure"], caption="../report/cben_eval_table_vi.rst",
                      category="CBEN experiment"),
        per_class=CBEN_EVAL_OUT["per_class"],
        bins=CBEN_EVAL_OUT["bins"],
        bins_figure=report(CBEN_EVAL_OUT["bins_figure"], caption="../report/cben_eval_bins.rst",
                           category="CBEN experiment"),
    params:
        cfg=_exp.table_params(config),
        code=code_version("cben_eval_table"),
    resources:
        mem_mb=1000,
        runtime=10,
    log:
        f"{LOGS}/cben_eval_table.log",
    benchmark:
        f"{LOGS}/benchmarks/cben_eval_table.tsv"
    conda:
        CONDA_ENV
    shell:
        "cloudyeo cben-eval table --quiet --config-json {params.cfg:q} > {log} 2>&1"
