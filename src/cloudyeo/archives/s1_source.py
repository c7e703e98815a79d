"""Which Sentinel-1 product a config draws from, and whether cloudyeo may store it.

:func:`s1_source` answers from the validated config alone (no network), so a dataset can
refuse raw Level-1 GRD at plan time, before any extraction job runs
(:func:`check_s1_source`), and write the answer into its store attributes and dataset card
(:func:`s1_source_attrs`):

=============  ===================================================  ==========================
archive        Sentinel-1 product                                   physics
=============  ===================================================  ==========================
demo           the demo world's ``sentinel-1-grd`` items            sigma0, terrain, linear
               (:data:`DEMO_S1`; the demo world writes it)
stac-api       ``stac.collections.sentinel-1-grd`` or the preset's  the preset's
               mapping (:mod:`cloudyeo.archives.presets`)           ``s1_collections``: PC
                                                                    ``sentinel-1-rtc`` gamma0
                                                                    terrain-flattened; raw
                                                                    ``sentinel-1-grd`` refused;
                                                                    a collection the preset
                                                                    does not know: judged per
                                                                    item at the first search
earthengine    ``earthengine.collections.sentinel-1-grd``           ``earthengine.S1_PRODUCTS``
               (default ``COPERNICUS/S1_GRD``)                      (S1_GRD: sigma0, terrain,
                                                                    dB); others refused
sentinelhub    ``sentinel-1-grd`` through the Process API with      sigma0, terrain, linear
               ``backCoeff SIGMA0_ELLIPSOID``, orthorectified on
               the Copernicus 30 m DEM
=============  ===================================================  ==========================

Every adapter also checks each Sentinel-1 record it returns
(:func:`cloudyeo.archives.base.refuse_unstorable_sar`), so a collection judged per item is
refused at its first search too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cloudyeo.archives.base import S1Product, SarPhysicsError

S1_LOGICAL = "sentinel-1-grd"
SENTINELHUB_S1 = S1Product(
    "sigma0", "terrain", "linear",
    "Sentinel Hub Process API: backCoeff SIGMA0_ELLIPSOID, orthorectify on COPERNICUS_30, "
    "units LINEAR_POWER")
UNDECLARED = S1Product(None, None, None, "decided per item from what the items declare")
# reBEN BigEarthNet-S1 patches (CBEN with cben.s1_source: reference): GRD preprocessed by the
# BigEarthNet team with ESA SNAP (calibration to sigma0, Range-Doppler terrain correction,
# conversion to dB), 120 x 120 px at 10 m.
REBEN_S1 = S1Product("sigma0", "terrain", "dB",
                     "reBEN BigEarthNet-S1 patches: sigma0, terrain-corrected, dB (ESA SNAP)")


@dataclass(frozen=True)
class S1Source:
    """The Sentinel-1 product of a config: archive, service collection, physics, config key."""

    archive: str
    collection: str | None
    product: S1Product
    config_key: str
    known: bool  # False: the service's collection is judged per item at search time

    def attrs(self) -> dict[str, str]:
        return self.product.attrs(self.collection, self.archive)


# What the demo archive's Sentinel-1 is: sigma0 in linear power generated directly on the tiles'
# 10 m UTM grids with no layover or foreshortening, i.e. a calibrated, terrain-corrected product.
# The demo world (cloudyeo.demo.stac) writes what this declares on every S1 item.
DEMO_S1_COLLECTION = "sentinel-1-grd"
DEMO_S1 = S1Product("sigma0", "terrain", "linear", "cloudyeo demo world: synthetic sigma0 on the tiles' map grids")


def s1_source(config: Mapping[str, Any], archive: str | None = None) -> S1Source:
    """The Sentinel-1 product a validated config draws from (no network).

    ``archive`` overrides ``config["archive"]`` (Planet-CR takes Sentinel-1 from the ``stac``
    section whatever the archive is).
    """
    kind = archive or config.get("archive", "demo")
    if kind == "demo":
        return S1Source("demo", DEMO_S1_COLLECTION, DEMO_S1, "archive", True)
    if kind == "stac-api":
        from cloudyeo.archives.presets import get_preset

        stac = config.get("stac") or {}
        preset = get_preset(stac.get("preset", "earth-search"))
        mapping = {**preset.collections, **(stac.get("collections") or {})}
        key = f"stac.collections.{S1_LOGICAL}"
        server = mapping.get(S1_LOGICAL)
        if not server:
            raise SarPhysicsError(f"STAC preset {preset.name!r} has no Sentinel-1 collection; set "
                                  f"config key {key}")
        product = preset.s1_collections.get(server)
        if product is None:
            return S1Source(f"stac-api ({preset.name})", server, UNDECLARED, key, False)
        return S1Source(f"stac-api ({preset.name})", server, product,
                        f"{key} (or stac.preset)", True)
    if kind == "earthengine":
        from cloudyeo.archives.earthengine import COLLECTIONS, S1_PRODUCTS, UNKNOWN_S1

        ee = config.get("earthengine") or {}
        cid = {**COLLECTIONS, **(ee.get("collections") or {})}[S1_LOGICAL]
        return S1Source("earthengine", cid, S1_PRODUCTS.get(cid, UNKNOWN_S1),
                        f"earthengine.collections.{S1_LOGICAL}", True)
    if kind == "sentinelhub":
        preset = (config.get("sentinelhub") or {}).get("preset", "cdse")
        return S1Source(f"sentinelhub ({preset})", S1_LOGICAL, SENTINELHUB_S1, "sentinelhub", True)
    raise ValueError(f"unknown archive {kind!r} (config key archive)")


def check_s1_source(config: Mapping[str, Any], dataset: str, archive: str | None = None) -> S1Source:
    """:func:`s1_source`, raising :class:`SarPhysicsError` when it is known not storable.

    Call it where a dataset plans, so raw GRD is refused before any extraction.
    """
    src = s1_source(config, archive)
    problem = src.product.problem if src.known else None
    if problem:
        raise SarPhysicsError(
            f"{dataset}: Sentinel-1 from {src.archive} collection {src.collection!r}: {problem}"
            f" ({src.product.note}). cloudyeo refuses to store it as sigma0. Change config key "
            f"{src.config_key} to a calibrated, terrain-corrected collection (stac.preset: "
            f"planetary-computer maps it to sentinel-1-rtc), or use archive: earthengine "
            f"(COPERNICUS/S1_GRD) or archive: sentinelhub.")
    return src


def dataset_s1_source(config: Mapping[str, Any], dataset: str) -> S1Source:
    """The checked Sentinel-1 source of one dataset (``cben``, ``timeseries``, ``ssl4eo``,
    ``planetcr``): CBEN may take S1 from the reBEN reference, Planet-CR from its demo world or
    the ``stac`` section; the others from the archive. Raises :class:`SarPhysicsError` for a
    product known not storable.
    """
    if dataset == "cben" and (config.get("cben") or {}).get("s1_source") == "reference":
        return S1Source("reference (reBEN)", "BigEarthNet-S1", REBEN_S1, "cben.s1_source", True)
    archive = None
    if dataset == "planetcr":
        archive = "demo" if (config.get("planetcr") or {}).get("source", "demo") == "demo" else "stac-api"
    return check_s1_source(config, dataset, archive)


def s1_card_line(attrs: Mapping[str, Any]) -> str:
    """One dataset-card line saying what the stored Sentinel-1 was at the source."""
    return (f"- Sentinel-1 at the source: {attrs.get('s1_radiometry', 'unknown')} "
            f"({attrs.get('s1_radiometry_description', 'unknown')}), "
            f"{attrs.get('s1_geometry', 'unknown')} ({attrs.get('s1_geometry_description', 'unknown')}), "
            f"{attrs.get('s1_source_units', 'unknown')}; collection "
            f"`{attrs.get('s1_source_collection', 'unknown')}` from "
            f"{attrs.get('s1_source_archive', 'unknown')}. {attrs.get('s1_source_note', '')}".rstrip())


__all__ = ["REBEN_S1", "S1Source", "SENTINELHUB_S1", "UNDECLARED", "check_s1_source",
           "dataset_s1_source", "s1_card_line", "s1_source"]
