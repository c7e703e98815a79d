import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cloudyeo.config import ConfigError, load_config, paths, stage_config, validate_config

ROOT = Path(__file__).resolve().parents[1]


def test_default_config_is_valid_and_filled():
    cfg = load_config(ROOT / "config" / "config.yaml")
    assert cfg["archive"] == "demo"
    assert cfg["cben"]["search_days"] == 30
    assert cfg["stac"]["preset"] == "earth-search"  # filled from the schema default
    assert paths(cfg).reference == Path("resources/demo/reben")


@pytest.mark.parametrize("example", sorted((ROOT / "config" / "examples").glob("*.yaml")))
def test_example_configs_are_valid(example):
    cfg = load_config(example)
    assert cfg["archive"] != "demo"  # every example points at a real archive
    assert cfg["archive"] in ("stac-api", "earthengine", "sentinelhub")


@pytest.mark.parametrize(
    "bad, path",
    [
        ({"archive": "demo", "cben": {"serch_days": 3}}, "cben.serch_days"),
        ({"archive": "demo", "cben": {"search_days": "thirty"}}, "cben.search_days"),
        ({"archive": "ftp"}, "archive"),
        ({"archive": "demo", "demo": {"tile_size_px": 100}}, "demo.tile_size_px"),
        ({"archive": "demo", "cben": {"search_days": 60, "max_search_days": 30}}, "cben.max_search_days"),
        ({"archive": "stac-api", "stac": {"preset": "custom"}}, "stac.url"),
        ({"archive": "stac-api", "stac": {"preset": "custom", "url": None}}, "stac.url"),
        ({"archive": "stac-api", "stac": {"preset": "custom", "url": ""}}, "stac.url"),
    ],
)
def test_invalid_config_names_key_path(bad, path):
    with pytest.raises(ConfigError) as err:
        validate_config(bad)
    assert path in str(err.value)


def test_custom_stac_preset_needs_a_url_at_validation_not_at_plan_time():
    with pytest.raises(ConfigError) as err:
        validate_config({"archive": "stac-api", "stac": {"preset": "custom"}})
    assert "stac.url: 'url' is a required property" in str(err.value)
    assert "set stac.url to the STAC API root" in str(err.value)  # says why
    cfg = validate_config({"archive": "stac-api", "stac": {"preset": "custom", "url": "https://stac.example.org/v1"}})
    assert cfg["stac"]["url"] == "https://stac.example.org/v1"
    # the other presets bring their own URL: none needed
    for preset in ("earth-search", "cdse", "planetary-computer"):
        assert validate_config({"archive": "stac-api", "stac": {"preset": preset}})["stac"]["url"] is None


def test_package_schema_is_the_workflow_schema():
    package = ROOT / "src" / "cloudyeo" / "schemas" / "config.schema.yaml"
    assert package.read_text() == (ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text()


def test_stage_config_is_canonical_and_scoped():
    cfg = load_config(ROOT / "config" / "config.yaml")
    demo = json.loads(stage_config(cfg, "demo"))
    assert set(demo) == {"archive", "resources_dir", "demo"}
    assert stage_config(cfg, "demo_planet") == stage_config(json.loads(json.dumps(cfg)), "demo_planet")


def test_snakemake_rejects_invalid_config_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"archive": "demo", "cben": {"max_search_days": "a lot"}}))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--configfile", str(bad)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert "cben.max_search_days" in proc.stdout + proc.stderr


def test_store_codec_choices_match_the_store():
    from cloudyeo import store
    from cloudyeo.config import load_schema

    codecs = load_schema()["properties"]["cben"]["properties"]["store_codec"]["enum"]
    assert set(codecs) == set(store.CODECS)


def test_paths_follow_archive_kind_and_overrides():
    assert paths({"archive": "demo", "resources_dir": "r"}).climatology == Path("r/demo/climatology")
    assert paths({"archive": "stac-api", "resources_dir": "r"}).climatology == Path("r/climatology")
    assert paths({"archive": "stac-api", "climatology": {"dir": "/x"}}).climatology == Path("/x")
    assert paths({"archive": "stac-api", "reference": {"root": "/ben"}}).reference == Path("/ben")
    assert paths({"archive": "demo"}).catalog == Path("resources/demo/catalog/items.ndjson")
