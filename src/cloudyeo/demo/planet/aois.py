"""Areas of interest (AOIs) of the Planet-CR demo world. How any AOI is placed on its 10 m
grid (:class:`~cloudyeo.aois.AoiSpec`, :func:`~cloudyeo.aois.place_aoi`) lives in
:mod:`cloudyeo.aois`, shared with the Planet-CR builder.

The known AOIs are spread over six continents, six UTM zones and both hemispheres; each has a
WorldCover class prior (codes 10 ... 100), a few codes it must contain (so that the default
world holds every WorldCover code, the ignored ones included) and a share of clear days.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloudyeo.aois import AoiSpec, place_aoi


@dataclass(frozen=True)
class AoiProfile:
    name: str
    continent: str
    lon: float
    lat: float
    priors: tuple[tuple[int, float], ...]  # WorldCover code -> weight
    must: tuple[int, ...]  # codes that appear in the AOI for sure
    clear_share: float  # probability that a PlanetScope acquisition is cloud-free
    relief_m: float = 50.0  # local relief (m): scales the terrain model's error (S1 misregistration)


KNOWN_AOIS: dict[str, AoiProfile] = {
    "kenya-nakuru": AoiProfile(
        "Nakuru, Kenya", "Africa", 36.07, -0.30,
        ((40, .30), (30, .25), (20, .15), (10, .10), (50, .10), (80, .05), (90, .05)),
        (20, 40, 50), 0.40, relief_m=300.0),
    "brazil-parana": AoiProfile(
        "Parana, Brazil", "South America", -51.50, -23.30,
        ((40, .35), (10, .25), (30, .15), (50, .10), (80, .08), (90, .07)),
        (10, 40, 80), 0.35, relief_m=150.0),
    "usa-iowa": AoiProfile(
        "Iowa, USA", "North America", -93.60, 42.00,
        ((40, .60), (30, .12), (50, .10), (10, .10), (80, .05), (90, .03)),
        (40, 50, 90), 0.45, relief_m=60.0),
    "swiss-alps": AoiProfile(
        "Valais Alps, Switzerland", "Europe", 7.90, 46.40,
        ((10, .25), (30, .25), (60, .15), (70, .12), (100, .08), (40, .05), (50, .05), (80, .05)),
        (60, 70, 100), 0.35, relief_m=2000.0),
    "indonesia-kalimantan": AoiProfile(
        "East Kalimantan, Indonesia", "Asia", 117.00, -1.00,
        ((10, .35), (95, .20), (80, .20), (90, .10), (40, .10), (50, .05)),
        (95, 80, 10), 0.25, relief_m=200.0),
    "australia-riverina": AoiProfile(
        "Riverina, Australia", "Oceania", 146.30, -34.80,
        ((40, .40), (30, .20), (60, .15), (20, .10), (10, .08), (80, .04), (90, .03)),
        (40, 60, 20), 0.50, relief_m=30.0),
    "india-punjab": AoiProfile(
        "Punjab, India", "Asia", 75.80, 30.90,
        ((40, .60), (50, .20), (80, .06), (30, .06), (10, .05), (60, .03)),
        (40, 50), 0.55, relief_m=20.0),
    "egypt-delta": AoiProfile(
        "Nile Delta, Egypt", "Africa", 31.00, 30.80,
        ((40, .45), (60, .20), (50, .20), (80, .10), (90, .05)),
        (40, 60, 50), 0.75, relief_m=10.0),
    "japan-hokkaido": AoiProfile(
        "Hokkaido, Japan", "Asia", 142.40, 43.60,
        ((10, .35), (40, .25), (30, .10), (50, .10), (80, .08), (90, .07), (100, .05)),
        (10, 40), 0.30, relief_m=400.0),
}


def known_aoi(aoi_id: str, size_px: int) -> AoiSpec:
    try:
        prof = KNOWN_AOIS[aoi_id]
    except KeyError:
        raise ValueError(f"unknown demo AOI {aoi_id!r}; known: {', '.join(KNOWN_AOIS)}") from None
    return place_aoi(aoi_id, prof.lon, prof.lat, size_px, name=prof.name, continent=prof.continent)


__all__ = ["AoiProfile", "KNOWN_AOIS", "known_aoi"]
