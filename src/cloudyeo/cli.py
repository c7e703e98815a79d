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


def _climatology_download(args):
    from .climatology import download_earthenv

    cfg = _load(args)
    download_earthenv(cfg["climatology"]["url"], paths(cfg).climatology)


def _cben_plan(args):
    from .datasets import cben

    cben.write_plan(_load(args))


def _cben_init_store(args):
    from .datasets import cben

    cben.init_store(_load(args))


def _cben_extract(args):
    from .datasets import cben

    cben.extract_product(_load(args), args.product, progress=not args.quiet)


def _cben_finalize(args):
    from .datasets import cben

    cben.finalize(_load(args))


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
    clim = stages.add_parser("climatology", help="EarthEnv cloud climatology").add_subparsers(dest="verb", required=True)
    verb(clim, "download", _climatology_download, "download the EarthEnv MODCF files")
    cben = stages.add_parser("cben", help="CBEN, a cloudy BigEarthNet").add_subparsers(dest="verb", required=True)
    verb(cben, "plan", _cben_plan, "choose a cloudy scene per reference product (manifest)")
    verb(cben, "init-store", _cben_init_store, "create the empty Zarr store from the plan")
    verb(cben, "extract", _cben_extract, "cut one product's patches into the store",
         **{"--product": dict(required=True, help="reference S2 product name")})
    verb(cben, "finalize", _cben_finalize, "statistics, index, dataset card; mark the store complete")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config is None and args.config_json is None and Path("config/config.yaml").exists():
        args.config = "config/config.yaml"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        args.func(args)
    except ConfigError as exc:
        print(f"cloudyeo: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
