"""The schema is the one source of defaults; config/config.yaml holds only what the demo changes."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudyeo.config import load_schema, validate_config

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "config" / "config.yaml"


def schema_defaults() -> dict[str, Any]:
    """The configuration with nothing set: every section filled from the schema."""
    return validate_config({"archive": "demo"})


def repeated_defaults(given: dict[str, Any], defaults: dict[str, Any], schema: dict[str, Any], path: str = "") -> Iterator[str]:
    """Key paths of ``given`` whose value equals the schema default (required keys excepted)."""
    for key, value in given.items():
        where = f"{path}{key}"
        sub = schema.get("properties", {}).get(key, {})
        if key in schema.get("required", ()) or key not in defaults:
            continue
        if isinstance(value, dict) and value and isinstance(defaults[key], dict):
            yield from repeated_defaults(value, defaults[key], sub, where + ".")
        elif value == defaults[key] or ("default" in sub and value == sub["default"]):
            yield where


def test_demo_config_holds_only_what_differs_from_the_schema():
    given = yaml.safe_load(DEMO_CONFIG.read_text())
    repeats = list(repeated_defaults(given, schema_defaults(), load_schema()))
    assert not repeats, f"config/config.yaml repeats schema defaults (delete these lines): {repeats}"


def test_repeats_are_found_at_any_depth():
    schema = load_schema()
    given = {"archive": "demo", "cben": {"search_days": 30, "s1_source": "closest"},
             "timeseries": {"masks": {}, "manifest": {"cloud_range": {"train": [0, 50], "test": [0, 90]}}}}
    assert list(repeated_defaults(given, schema_defaults(), schema)) == [
        "cben.search_days", "timeseries.masks", "timeseries.manifest.cloud_range.train"]


def properties(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """(key path, key, property schema, object schema holding it) of every declared property, in
    nested objects, array items, maps (``*``) and ``anyOf`` alternatives."""
    for key, sub in schema.get("properties", {}).items():
        where = f"{path}{key}"
        yield where, key, sub, schema
        yield from properties(sub, where + ".")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from properties(schema["additionalProperties"], path + "*.")
    if isinstance(schema.get("items"), dict):
        yield from properties(schema["items"], path.rstrip(".") + "[].")
    for alternative in schema.get("anyOf", ()):
        yield from properties(alternative, path)


def _unset_is_defined(key: str, sub: dict[str, Any], parent: dict[str, Any]) -> bool:
    required = key in parent.get("required", ()) or key in parent.get("then", {}).get("required", ())
    return "default" in sub or required or str(sub.get("description", "")).lower().startswith("optional")


@pytest.mark.parametrize(
    "where, key, sub, parent",
    [pytest.param(*p, id=p[0]) for p in properties(load_schema())],
)
def test_every_property_has_a_default_or_is_required_or_optional(where, key, sub, parent):
    """An unset key means something: the schema default, an error (required), or what the
    property's description, starting with "optional", says."""
    assert _unset_is_defined(key, sub, parent), (
        f"{where}: give it a default, make it required, or start its description with 'optional:' "
        "and say what unset means")


def test_schema_defaults_are_valid_values():
    validate_config(schema_defaults())


@pytest.mark.parametrize("module, section", [
    ("cloudyeo.demo.world", "demo"),
    ("cloudyeo.demo.timeseries", "demo_timeseries"),
    ("cloudyeo.demo.planet.world", "demo_planet"),
])
def test_demo_generator_defaults_agree_with_the_schema(module, section):
    """The demo generators fill their own defaults when called without a config; they must be
    the schema's."""
    import importlib

    assert importlib.import_module(module).DEFAULT_CFG == schema_defaults()[section]


@pytest.mark.parametrize("module, cls, section", [
    ("cloudyeo.archives.stac_api", "StacApiArchive", ("stac",)),
    ("cloudyeo.archives.earthengine", "EarthEngineArchive", ("earthengine",)),
    ("cloudyeo.archives.sentinelhub", "SentinelHubArchive", ("sentinelhub",)),
    ("cloudyeo.archives.planet", "PlanetArchive", ("planetcr", "planet_api")),
])
def test_archive_constructor_defaults_agree_with_the_schema(module, cls, section):
    """Archives built in code without a config (keyword defaults; None: unset) behave as the
    schema's defaults say."""
    import importlib
    import inspect

    params = inspect.signature(getattr(importlib.import_module(module), cls).__init__).parameters
    defaults = schema_defaults()
    for key in section:
        defaults = defaults[key]
    differ = {k: (params[k].default, v) for k, v in defaults.items()
              if k in params and params[k].default is not None and params[k].default != v}
    assert not differ, f"{cls} keyword defaults differ from {'.'.join(section)} (code, schema): {differ}"
