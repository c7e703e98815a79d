"""Command line: ``cloudyeo <stage> <verb>``. Snakemake rules call these; so can people."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import ConfigError, load_config, paths


def _load(args: argparse.Namespace) -> dict:
    return load_config(args.config, args.config_json)


def _config_validate(args):
    cfg = _load(args)
    print(f"configuration valid (archive: {cfg['archive']})")


def _demo_generate(args):
    from .demo import generate_world

    cfg = _load(args)
    out = Path(args.out) if args.out else paths(cfg).demo
    generate_world(cfg["demo"], out, progress=not args.quiet, workers=args.workers)


def _demo_generate_timeseries(args):
    from .demo.timeseries import generate_timeseries_world

    cfg = _load(args)
    out = Path(args.out) if args.out else paths(cfg).demo_timeseries
    generate_timeseries_world(cfg["demo_timeseries"], out, progress=not args.quiet, workers=args.workers)


def _climatology_download(args):
    from .climatology import download_earthenv

    cfg = _load(args)
    download_earthenv(cfg["climatology"]["url"], paths(cfg).climatology)


def _dataset(args):
    """``cloudyeo dataset <name> <verb>``: the generic drivers run the named builder."""
    from . import drivers
    from .datasets.builder import get_builder

    builder = get_builder(args.name, _load(args))
    progress = not args.quiet
    if args.verb == "plan":
        drivers.run_plan(builder, progress=progress)
    elif args.verb == "init":
        drivers.run_init(builder)
    elif args.verb == "extract":
        if not args.unit:
            raise ConfigError(f"cloudyeo dataset {args.name} extract needs --unit <{builder.unit_label}>")
        drivers.run_extract(builder, args.unit, progress=progress)
    else:
        for path in drivers.run_finalize(builder, progress=progress).values():
            print(path)


def _demo_generate_planet(args):
    from .demo.planet import generate_planet_world

    cfg = _load(args)
    out = Path(args.out) if args.out else paths(cfg).demo_planet
    generate_planet_world(cfg["demo_planet"], out, progress=not args.quiet, workers=args.workers)


def _demo_validate(args):
    from .demo.validation import measure
    from .report.demo_validation import write_page

    cfg = _load(args)
    p = paths(cfg)
    worlds = [Path(w) for w in args.world] if args.world else [w for w in (p.demo, p.demo_timeseries)
                                                                 if (w / "world.json").exists()]
    if not worlds:
        raise SystemExit(f"demo validate: no demo world under {p.demo} or {p.demo_timeseries} (generate it first)")
    planet = Path(args.planet_world) if args.planet_world else (
        p.demo_planet if (p.demo_planet / "world.json").exists() else None)
    out = Path(args.out) if args.out else p.results / "demo_validation"
    v = measure(worlds, planet, progress=not args.quiet)
    page = write_page(v.table, out, sigma0=v.sigma0, ndvi=v.ndvi, misregistration=v.misregistration,
                      parcels=v.parcels, examples=v.examples, landcover=v.landcover)
    held = int(v.table["holds"].sum())
    print(f"{page}: {held} of {len(v.table)} statistics within their published ranges")
    if args.strict and not v.all_hold:
        raise SystemExit("demo validate --strict: " + ", ".join(v.table.loc[~v.table["holds"], "key"]))


def _experiment(verb):
    """The CBEN experiment's nodes: pretrain[method], finetune[method, set], evaluate, table."""
    def run(args):
        import json

        cfg = _load(args)
        rt = dict(cfg["cben_experiments"]["runtime"])
        if args.runtime_json:  # the workflow's runtime settings (never part of a node's params)
            rt.update(json.loads(args.runtime_json))
        if args.device:
            rt["device"] = args.device
        if args.num_workers is not None:
            rt["num_workers"] = args.num_workers
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        kw = dict(device=rt["device"], num_workers=rt["num_workers"], progress=not args.quiet)
        train_kw = dict(keep_epoch_checkpoints=rt["keep_epoch_checkpoints"],
                        checkpoint_every_s=rt["checkpoint_every_s"])
        if verb == "pretrain":
            from .training.pretrain import pretrain

            pretrain(cfg, args.method, **train_kw, **kw)
        elif verb == "finetune":
            from .training.finetune import finetune

            finetune(cfg, args.method, args.train_set, **train_kw, **kw)
        else:
            from .training.evaluate import evaluate

            evaluate(cfg, args.method, args.train_set, args.test_set, **kw)
    return run


def _cben_eval_table(args):
    from .report.cben_eval import write_report
    from .training import experiments as ex

    cfg = _load(args)
    exp = cfg["cben_experiments"]
    p = paths(cfg)
    files = [ex.evaluate_outputs(p, m, a, b)["metrics"]
             for m in exp["methods"] for a in exp["train_sets"] for b in exp["test_sets"]]
    df = write_report(files, ex.table_outputs(p))
    print(df.to_string(index=False))


def _cloud_removal(verb):
    def run(args):
        cfg = _load(args)
        if args.threads:
            import os

            os.environ["CLOUDYEO_THREADS"] = str(args.threads)
        if verb == "train":
            from .training.cloud_removal import train

            train(cfg, args.method, args.dataset)
        elif verb == "evaluate":
            from .report.cloud_removal import method_panel
            from .training.cloud_removal_eval import evaluate

            records = evaluate(cfg, args.method, args.dataset)
            method_panel(records.parent, f"{args.method} on {args.dataset}")  # panel.png of panels.npz
        else:
            from .report.cloud_removal import write_tables

            for path in write_tables(cfg, args.dataset).values():
                print(path)
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cloudyeo", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="YAML config file (default: config/config.yaml if present)")
    common.add_argument("--config-json", help="JSON config (or overrides of --config); used by the workflow")
    common.add_argument("--quiet", action="store_true", help="no progress bars")
    stages = parser.add_subparsers(dest="stage", required=True)

    def verb(stage, name, func, help_, **extra):
        p = stage.add_parser(name, parents=[common], help=help_)
        for flag, kw in extra.items():
            p.add_argument(flag, **kw)
        p.set_defaults(func=func)

    config = stages.add_parser("config", help="configuration").add_subparsers(dest="verb", required=True)
    verb(config, "validate", _config_validate, "validate a config against the schema")
    demo = stages.add_parser("demo", help="the embedded demo world").add_subparsers(dest="verb", required=True)
    verb(demo, "generate", _demo_generate, "generate the deterministic demo archive",
         **{"--out": dict(help="output folder (default <resources_dir>/demo)"),
            "--workers": dict(type=int, default=None, help="processes (default: up to 2)")})
    verb(demo, "generate-timeseries", _demo_generate_timeseries,
         "generate the time-series part of the demo world (ROIs + SSL4EO locations)",
         **{"--out": dict(help="output folder (default <resources_dir>/demo-timeseries)"),
            "--workers": dict(type=int, default=None, help="processes (default: up to 2)")})
    verb(demo, "validate", _demo_validate,
         "measure the demo world against published statistics: validation page, table and figures",
         **{"--world": dict(action="append", help="a generated world folder (repeatable; default: the "
                                                   "config's demo and demo-timeseries worlds)"),
            "--planet-world": dict(default=None, help="the Planet-CR demo world (default: the config's, if built)"),
            "--out": dict(help="output folder (default <results_dir>/demo_validation)"),
            "--strict": dict(action="store_true", help="exit 1 when a statistic is outside its range")})
    clim = stages.add_parser("climatology", help="EarthEnv cloud climatology").add_subparsers(dest="verb", required=True)
    verb(clim, "download", _climatology_download, "download the EarthEnv MODCF files")
    ds = stages.add_parser("dataset", parents=[common],
                           help="build a dataset: plan | init | extract --unit U | finalize (every registered builder)")
    ds.add_argument("name", help="dataset builder name (cben, timeseries, ssl4eo, planetcr, or a config's dataset_builders)")
    ds.add_argument("verb", choices=["plan", "init", "extract", "finalize"])
    ds.add_argument("--unit", help="the unit of work for extract (a manifest's product, ROI or batch)")
    ds.set_defaults(func=_dataset)
    verb(demo, "generate-planet", _demo_generate_planet,
         "generate the Planet-CR demo world (PlanetScope + UDM2, Sentinel-1, WorldCover)",
         **{"--out": dict(help="output folder (default <resources_dir>/demo-planet)"),
            "--workers": dict(type=int, default=None, help="processes (default: up to 2)")})
    run_opts = {
        "--device": dict(default=None, help="auto | cpu | cuda | cuda:N (default: cben_experiments.runtime.device)"),
        "--num-workers": dict(type=int, default=None, help="DataLoader workers (default: from the config)"),
        "--threads": dict(type=int, default=None, help="torch CPU threads"),
        "--runtime-json": dict(default=None, help="JSON overrides of cben_experiments.runtime (the workflow's)"),
    }
    methods = dict(required=True, choices=["moco2", "moco3", "mae"], help="SSL method")
    sets = dict(required=True, choices=["ben", "cben"])
    sslp = stages.add_parser("ssl", help="self-supervised pretraining (CBEN experiment)").add_subparsers(
        dest="verb", required=True)
    verb(sslp, "pretrain", _experiment("pretrain"), "pretrain a backbone on the SSL4EO store",
         **{"--method": methods, **run_opts})
    ce = stages.add_parser("cben-eval", help="fine-tune on BEN/CBEN, evaluate, Table VI").add_subparsers(
        dest="verb", required=True)
    verb(ce, "finetune", _experiment("finetune"), "fine-tune a head on BEN or CBEN (best epoch by validation AP)",
         **{"--method": methods, "--train-set": sets, **run_opts})
    verb(ce, "evaluate", _experiment("evaluate"), "dataset-level AP of a fine-tuned model on a test set",
         **{"--method": methods, "--train-set": sets, "--test-set": sets, **run_opts})
    verb(ce, "table", _cben_eval_table, "the Table VI analogue (CSV, markdown, figures) from the evaluations")
    crp = stages.add_parser("cloud-removal", help="cloud removal: SEN12MS-CR-TS, HCR&LC, Planet-CR").add_subparsers(
        dest="verb", required=True)
    cr_node = {"--method": dict(required=True, help="a method of cloud_removal.methods, e.g. seq2point"),
               "--dataset": dict(required=True, choices=["timeseries", "planetcr"]),
               "--threads": dict(type=int, default=None, help="torch CPU threads")}
    verb(crp, "train", _cloud_removal("train"), "train one method on one dataset (resumes after a kill)",
         **cr_node)
    verb(crp, "evaluate", _cloud_removal("evaluate"), "score one method on the test split (full images)",
         **cr_node)
    verb(crp, "tables", _cloud_removal("tables"), "the papers' tables, figures and panels of one dataset",
         **{"--dataset": cr_node["--dataset"], "--threads": cr_node["--threads"]})
    return parser


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr with every record redacted, whichever logger wrote it.

    Signed URLs (Planetary Computer ``sig=``), bearer tokens and keys reach log files through
    third-party loggers (``rasterio._err`` relays GDAL's messages, which name the URL) and
    through tracebacks of chained exceptions. Hence: a redacting filter and formatter on the
    root handlers (message, args and traceback text, chained causes included), Python warnings
    routed through logging, and excepthooks (main and other threads) that print uncaught
    tracebacks redacted.
    """
    from .http import install_handler_redaction, redacting_excepthook

    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    install_handler_redaction(logging.getLogger())
    logging.captureWarnings(True)
    sys.excepthook = redacting_excepthook
    import threading

    threading.excepthook = lambda a: redacting_excepthook(a.exc_type, a.exc_value, a.exc_traceback)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config is None and args.config_json is None and Path("config/config.yaml").exists():
        args.config = "config/config.yaml"
    configure_logging()
    try:
        args.func(args)
    except ConfigError as exc:
        from .http import redact

        print(f"cloudyeo: {redact(exc)}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
