"""The demo surface: land cover, spectra with phenology, snow and SAR backscatter.

Per tile (fixed over time, seeded by ``(seed, tile)``):

* an elevation field (relief per country) that drives snow and alpine land cover;
* regions (domain-warped Voronoi cells, ~800 m) that each get one BigEarthNet-19 class drawn from
  country priors (neighbours often share a class), split into parcels (~150 m fields) that carry
  their own crop calendar and brightness;
* linear features drawn over the parcels: a meandering river (inland water, with a floodplain),
  straight roads (road networks are "Industrial or commercial units" in the BigEarthNet-19
  nomenclature) and settlements (urban fabric) where roads meet;
* parcel events: crops are sown, green up, ripen and are harvested on their own date (an abrupt
  change); managed grassland is mown one to four times a year; the floodplain floods once in some
  years (seen the same day by Sentinel-2 and Sentinel-1);
* a fixed per-pixel texture for optical and SAR, and hedgerows/ditches on agricultural parcel edges.

Per date (a pure function of the tile and the day of year): 13-band surface reflectance (BOA),
mixing per-class "green" and "off-season" endmember spectra by each parcel's greenness, snow from a
seasonal snow line against elevation, floods, and class-specific sigma0 (dB) for VV/VH at the
acquisition's incidence angle (wet snow dark, dry snow nearly transparent). The published ranges
these follow are in :mod:`cloudyeo.demo.literature`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter, zoom
from scipy.spatial import cKDTree

from cloudyeo.demo.sar_geometry import DEM_ERROR_SCALE_PX, dem_error_field
from cloudyeo.demo.tiles import PIXEL_M, TileSpec, stable_hash
from cloudyeo.sentinel import BEN19_CLASSES, S2_L1C_BANDS

N_CLASSES = len(BEN19_CLASSES)
N_BANDS = len(S2_L1C_BANDS)  # 13, B10 included (its BOA value is unused)
BAND_INDEX = {b: i for i, b in enumerate(S2_L1C_BANDS)}
WATER_CLASSES = (17, 18)

# Endmember reflectances, bands B01..B12 in S2_L1C_BANDS order (B10 slot unused: 0).
_E = {
    "leaf":      [.025, .030, .060, .030, .090, .270, .340, .370, .390, .380, 0, .190, .090],
    "bark":      [.040, .050, .070, .080, .100, .130, .150, .170, .180, .180, 0, .220, .150],
    "conifer":   [.020, .020, .040, .022, .060, .160, .200, .220, .230, .220, 0, .110, .050],
    "crop":      [.030, .035, .070, .035, .110, .320, .410, .450, .470, .460, 0, .220, .100],
    "grass":     [.035, .040, .080, .045, .120, .290, .360, .400, .420, .410, 0, .230, .110],
    "dry_grass": [.060, .070, .100, .130, .170, .210, .230, .250, .260, .260, 0, .330, .240],
    "soil":      [.070, .080, .110, .150, .180, .200, .220, .240, .250, .250, 0, .320, .260],
    "shrub":     [.040, .045, .070, .070, .100, .170, .200, .220, .230, .230, 0, .240, .160],
    "wetveg":    [.030, .035, .060, .040, .080, .170, .210, .230, .240, .230, 0, .140, .070],
    "rock":      [.110, .130, .160, .180, .200, .210, .220, .230, .235, .235, 0, .280, .230],
    "urban":     [.090, .100, .120, .130, .150, .160, .170, .180, .190, .190, 0, .210, .190],
    "industrial": [.130, .150, .170, .180, .200, .210, .220, .220, .230, .230, 0, .260, .250],
    "water":     [.060, .055, .050, .030, .025, .015, .012, .010, .009, .007, 0, .004, .003],
    "marine":    [.070, .065, .055, .025, .015, .010, .008, .006, .005, .004, 0, .002, .002],
    "sand":      [.140, .170, .240, .290, .320, .340, .360, .370, .380, .380, 0, .450, .400],
    "snow":      [.850, .860, .850, .830, .810, .790, .770, .750, .740, .650, 0, .080, .060],
}
ENDMEMBERS = {k: np.asarray(v, dtype=np.float64) for k, v in _E.items()}

# Class -> components (weight, green endmember, off-season endmember, phenology type).
CLASS_COMPONENTS: dict[int, list[tuple[float, str, str, str]]] = {
    0: [(0.7, "urban", "urban", "static"), (0.3, "grass", "dry_grass", "grass")],
    1: [(0.9, "industrial", "industrial", "static"), (0.1, "grass", "dry_grass", "grass")],
    2: [(1.0, "crop", "soil", "crop")],
    3: [(0.55, "leaf", "soil", "deciduous"), (0.45, "grass", "soil", "grass")],
    4: [(1.0, "grass", "dry_grass", "grass")],
    5: [(0.5, "crop", "soil", "crop"), (0.3, "grass", "dry_grass", "grass"),
        (0.2, "leaf", "bark", "deciduous")],
    6: [(0.45, "crop", "soil", "crop"), (0.3, "leaf", "bark", "deciduous"),
        (0.25, "shrub", "dry_grass", "evergreen")],
    7: [(0.4, "leaf", "shrub", "evergreen"), (0.6, "grass", "dry_grass", "grass")],
    8: [(1.0, "leaf", "bark", "deciduous")],
    9: [(1.0, "conifer", "conifer", "evergreen")],
    10: [(0.5, "leaf", "bark", "deciduous"), (0.5, "conifer", "conifer", "evergreen")],
    11: [(0.45, "dry_grass", "dry_grass", "static"), (0.3, "grass", "dry_grass", "grass"),
         (0.25, "rock", "rock", "static")],
    12: [(0.6, "shrub", "dry_grass", "evergreen"), (0.4, "grass", "dry_grass", "grass")],
    13: [(0.4, "leaf", "bark", "deciduous"), (0.3, "shrub", "dry_grass", "evergreen"),
         (0.3, "grass", "dry_grass", "grass")],
    14: [(1.0, "sand", "sand", "static")],
    15: [(0.7, "wetveg", "dry_grass", "grass"), (0.3, "water", "water", "static")],
    16: [(0.5, "wetveg", "dry_grass", "grass"), (0.5, "water", "water", "static")],
    17: [(1.0, "water", "water", "static")],
    18: [(1.0, "marine", "marine", "static")],
}
# Relative amplitude of the fixed per-pixel optical texture, per class.
TEXTURE_AMP = np.array([0.10, 0.09, 0.025, 0.06, 0.025, 0.05, 0.06, 0.06, 0.04, 0.04, 0.045,
                        0.06, 0.05, 0.055, 0.035, 0.04, 0.04, 0.012, 0.008])
# SAR sigma0 (dB): VV green, VH green, VV off-season, VH off-season, texture (dB).
SAR_DB = np.array([
    [-1.0, -8.0, -1.0, -8.0, 3.0],      # urban fabric
    [0.0, -9.0, 0.0, -9.0, 3.5],        # industrial
    [-9.0, -15.0, -13.0, -21.0, 1.0],   # arable
    [-9.0, -15.5, -10.0, -17.0, 1.5],   # permanent crops
    [-10.0, -16.0, -11.5, -18.0, 1.0],  # pastures
    [-9.8, -16.0, -11.5, -18.5, 1.3],   # complex cultivation
    [-9.2, -15.5, -10.5, -17.0, 1.3],   # agriculture + natural vegetation
    [-9.0, -15.5, -9.8, -16.5, 1.2],    # agro-forestry
    [-7.0, -12.5, -8.5, -14.5, 1.0],    # broad-leaved forest
    [-7.5, -13.0, -7.8, -13.4, 1.0],    # coniferous forest
    [-7.2, -12.8, -8.0, -14.0, 1.0],    # mixed forest
    [-11.5, -19.0, -12.5, -20.0, 1.5],  # natural grassland, sparse
    [-9.5, -16.0, -10.0, -16.8, 1.2],   # moors, heath, sclerophyllous
    [-8.6, -14.5, -9.6, -16.0, 1.2],    # transitional woodland
    [-18.0, -27.0, -18.0, -27.0, 1.0],  # beaches, dunes, sands
    [-12.0, -18.5, -13.5, -20.0, 1.5],  # inland wetlands
    [-14.0, -21.0, -15.0, -22.0, 1.5],  # coastal wetlands
    [-22.0, -28.0, -22.0, -28.0, 0.8],  # inland waters
    [-20.0, -27.0, -20.0, -27.0, 0.6],  # marine waters
])
SAR_WATER_WIND_DB = 2.5  # per-acquisition sigma of the wind roughening of water
# Incidence-angle dependence of sigma0 (dB per degree, both polarisations) per class around the
# reference angle SAR_REF_INCIDENCE (Mladenova et al. 2013: C band, -0.05 to -0.3 dB/deg; water
# falls fastest, forest and built-up slowest).
SAR_REF_INCIDENCE = 37.0
SAR_SLOPE = np.array([-0.08, -0.08, -0.20, -0.15, -0.18, -0.18, -0.15, -0.12, -0.10, -0.09, -0.10,
                      -0.18, -0.14, -0.12, -0.22, -0.20, -0.22, -0.30, -0.30])
SAR_EDGE_DB = (1.5, 2.0)  # hedgerows and ditches on agricultural parcel edges (VV, VH)
SAR_ROAD_DB = (-16.0, -24.0)  # smooth asphalt: specular, dark (VV, VH)
SAR_WET_SNOW_DB = 3.5  # wet snow: absorbing (Nagler et al. 2016: > 2-3 dB below snow-free)
SAR_DRY_SNOW_DB = 0.5  # dry snow: nearly transparent at C band

# Linear features and parcel events.
FEATURE_NONE, FEATURE_ROAD, FEATURE_RIVER, FEATURE_SETTLEMENT = 0, 1, 2, 3
ROAD_CLASS, RIVER_CLASS, SETTLEMENT_CLASS, PASTURE_CLASS, ARABLE_CLASS = 1, 17, 0, 4, 2
MOWN_CLASSES = (4,)  # managed grassland (Griffiths et al. 2020: mostly 2-4 cuts a year)
MAX_MOWINGS = 4
HARVEST_LAG_DAYS = (25.0, 50.0)  # peak greenness -> harvest (ripening)
FLOOD_YEAR_PROBABILITY = 0.6  # a tile with a river floods in a given year

# Class priors per country (class index -> weight), BigEarthNet-like landscapes.
COUNTRY_PRIORS: dict[str, dict[int, float]] = {
    "Finland": {9: 0.34, 10: 0.2, 13: 0.14, 17: 0.1, 15: 0.08, 2: 0.06, 8: 0.03, 4: 0.02, 0: 0.03},
    "Portugal": {3: 0.15, 12: 0.15, 7: 0.11, 8: 0.12, 0: 0.1, 5: 0.1, 6: 0.1, 13: 0.08, 9: 0.05,
                 1: 0.03, 17: 0.02},
    "Austria": {2: 0.25, 4: 0.15, 9: 0.16, 8: 0.1, 10: 0.08, 0: 0.08, 1: 0.05, 5: 0.06, 6: 0.04,
                17: 0.02, 15: 0.01},
    "Switzerland": {11: 0.16, 9: 0.2, 4: 0.2, 17: 0.08, 10: 0.08, 8: 0.06, 0: 0.06, 6: 0.05,
                    2: 0.05, 13: 0.05, 1: 0.02},
    "Belgium": {2: 0.3, 4: 0.2, 0: 0.14, 1: 0.07, 5: 0.08, 8: 0.1, 10: 0.06, 17: 0.03, 9: 0.02},
    "Ireland": {4: 0.45, 15: 0.12, 12: 0.1, 9: 0.1, 2: 0.06, 0: 0.05, 17: 0.04, 13: 0.05,
                11: 0.03},
    "Kosovo": {2: 0.22, 8: 0.22, 5: 0.14, 6: 0.12, 4: 0.1, 0: 0.07, 13: 0.06, 9: 0.04, 1: 0.03},
    "Lithuania": {2: 0.3, 10: 0.16, 9: 0.12, 4: 0.12, 8: 0.06, 15: 0.06, 17: 0.06, 0: 0.05,
                  13: 0.07},
    "Luxembourg": {2: 0.25, 4: 0.22, 8: 0.2, 10: 0.08, 0: 0.12, 1: 0.06, 5: 0.05, 9: 0.02},
    "Serbia": {2: 0.35, 8: 0.16, 5: 0.13, 6: 0.1, 4: 0.07, 0: 0.08, 13: 0.05, 1: 0.03, 17: 0.03},
}
# Elevation (base m, relief m) per country.
COUNTRY_RELIEF: dict[str, tuple[float, float]] = {
    "Finland": (80.0, 120.0), "Portugal": (150.0, 500.0), "Austria": (300.0, 500.0),
    "Switzerland": (450.0, 2300.0), "Belgium": (60.0, 150.0), "Ireland": (50.0, 300.0),
    "Kosovo": (400.0, 1000.0), "Lithuania": (80.0, 100.0), "Luxembourg": (250.0, 250.0),
    "Serbia": (150.0, 700.0),
}
DEFAULT_RELIEF = (200.0, 400.0)  # (base, relief) m outside the listed countries
AGRI_CLASSES = (2, 3, 5, 6)
LOWLAND_CLASSES = (0, 1, 2, 3, 5, 14, 16, 18)


def _sig(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def region_classes(rng: np.random.Generator, seeds: np.ndarray, inherit_share: float, inherit_distance: float,
                   draw: Callable[[int], Any], dtype: Any) -> np.ndarray:
    """A class per Voronoi region (``seeds``, in order): with probability ``inherit_share`` a region takes
    the class of its nearest earlier region when that lies within ``inherit_distance``, else ``draw(i)``."""
    out = np.zeros(len(seeds), dtype=dtype)
    for i in range(len(seeds)):
        if i > 0 and rng.random() < inherit_share:
            d = np.hypot(*(seeds[:i] - seeds[i]).T)
            j = int(np.argmin(d))
            if d[j] < inherit_distance:
                out[i] = out[j]
                continue
        out[i] = draw(i)
    return out


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma: float,
                 down: int = 1) -> np.ndarray:
    """Gaussian-filtered white noise, std 1, correlation length ``sigma`` pixels.

    Large sigmas are computed on a grid ``down`` times coarser and zoomed (cheap).
    """
    h, w = shape
    sh, sw = -(-h // down) + 2, -(-w // down) + 2
    white = rng.standard_normal((sh, sw))
    f = gaussian_filter(white, sigma / down, mode="wrap")
    if down > 1:
        f = zoom(f, down, order=1)
    f = f[:h, :w]
    f = f - f.mean()
    sd = f.std()
    return (f / sd if sd > 0 else f).astype(np.float32)


def elevation_field(rng: np.random.Generator, shape: tuple[int, int], base: float, relief: float) -> np.ndarray:
    """Terrain (m): mostly large-scale, a little detail; spans ``base`` .. ``base + relief``."""
    e = 0.75 * smooth_field(rng, shape, 90.0, down=8) + 0.25 * smooth_field(rng, shape, 25.0, down=4)
    e = (e - e.min()) / max(float(e.max() - e.min()), 1e-6)
    return (base + relief * e).astype(np.float32)


# --------------------------------------------------------------------------------------
# the static tile surface
# --------------------------------------------------------------------------------------


@dataclass
class TileSurface:
    tile: TileSpec
    lat: float
    elevation: np.ndarray  # (H, W) float32, metres
    landcover: np.ndarray  # (H, W) uint8 class index
    parcel: np.ndarray  # (H, W) int32 parcel index
    parcel_class: np.ndarray  # (P,) int
    parcel_offset: np.ndarray  # (P,) days, phenology shift
    parcel_crop_peak: np.ndarray  # (P,) day of year of the crop peak
    parcel_bright: np.ndarray  # (P,) brightness factor
    parcel_sar_db: np.ndarray  # (P,) dB offset
    texture: np.ndarray  # (H, W) float32, multiplicative (mean ~1)
    sar_texture: np.ndarray  # (H, W) float32, dB
    snow_noise: np.ndarray  # (H, W) float32, metres added to elevation for the snow line
    feature: np.ndarray  # (H, W) uint8 FEATURE_* (roads, river, settlements)
    edge: np.ndarray  # (H, W) bool, agricultural parcel boundary (hedgerows, ditches)
    parcel_harvest: np.ndarray  # (P,) days after the crop peak the parcel is harvested
    parcel_mowing: np.ndarray  # (P, MAX_MOWINGS) day of year of each cut, NaN: none
    floodplain: np.ndarray  # (H, W) bool, pixels a flood covers
    flood_doy: float  # first day of the flood (NaN: no flood)
    flood_days: float  # its duration
    dem_error: np.ndarray  # (H, W) float32, metres: the terrain model's height error (S1 geocoding)

    def flooded(self, doy: float) -> np.ndarray | None:
        """The flooded pixels on a day of year, or None when there is no flood that day."""
        if not np.isfinite(self.flood_doy) or not 0.0 <= doy - self.flood_doy < self.flood_days:
            return None
        return self.floodplain


def _class_weights(country: str, elev: float) -> np.ndarray:
    pri = COUNTRY_PRIORS.get(country, COUNTRY_PRIORS["Austria"])
    w = np.zeros(N_CLASSES)
    for k, v in pri.items():
        w[k] = v
    mountain = _sig((elev - 1700.0) / 120.0)
    montane = _sig((elev - 1000.0) / 150.0) * (1.0 - mountain)
    lowland = 1.0 - _sig((elev - 1200.0) / 150.0)
    w[11] = (w[11] + 0.02 * mountain) * (1.0 + 12.0 * mountain)
    w[9] *= 1.0 + 2.0 * montane
    w[4] *= 1.0 + 0.5 * montane
    for c in LOWLAND_CLASSES:
        w[c] *= lowland
    w[17] *= 0.3 + 0.7 * lowland
    return w / w.sum()


@lru_cache(maxsize=6)
def tile_surface(tile: TileSpec, seed: int) -> TileSurface:
    """Build (once per process) the static surface of a tile."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), stable_hash(tile.id), 1]))
    n = tile.size_px
    shape = (n, n)
    area_km2 = (tile.size_m / 1000.0) ** 2
    lon, lat = tile.centre_lonlat
    base, relief = COUNTRY_RELIEF.get(tile.country, DEFAULT_RELIEF)

    elevation = elevation_field(rng, shape, base, relief)

    # Regions: warped Voronoi cells; neighbours often inherit the class (larger coherent areas).
    pad = 40.0
    n_regions = max(6, int(round(area_km2 * 1.6)))
    seeds = rng.uniform(-pad, n + pad, size=(n_regions, 2))
    warp_r = 10.0 * smooth_field(rng, shape, 14.0, down=2)
    warp_c = 10.0 * smooth_field(rng, shape, 14.0, down=2)
    rr, cc = np.mgrid[0:n, 0:n].astype(np.float32)
    pts = np.stack([(rr + warp_r).ravel(), (cc + warp_c).ravel()], axis=1)
    _, region = cKDTree(seeds).query(pts, workers=1)
    region = region.reshape(shape).astype(np.int32)

    def draw_class(i: int) -> int:
        sr, sc = (int(np.clip(v, 0, n - 1)) for v in seeds[i])
        return rng.choice(N_CLASSES, p=_class_weights(tile.country, float(elevation[sr, sc])))

    region_class = region_classes(rng, seeds, 0.5, 70.0, draw_class, np.int64)

    # Parcels: a finer, unwarped Voronoi (fields ~150 m) intersected with the regions.
    n_fields = max(10, int(round(area_km2 * 40.0)))
    fseeds = rng.uniform(0, n, size=(n_fields, 2))
    _, field = cKDTree(fseeds).query(np.stack([rr.ravel(), cc.ravel()], axis=1), workers=1)
    key = region.ravel().astype(np.int64) * n_fields + field
    uniq, parcel = np.unique(key, return_inverse=True)
    parcel = parcel.reshape(shape).astype(np.int32)
    p_region = (uniq // n_fields).astype(np.int64)
    p_class = region_class[p_region]
    n_p = len(uniq)
    is_agri = np.isin(p_class, AGRI_CLASSES)
    # Non-agricultural parcels share their region's parameters.
    reg_offset = rng.normal(0.0, 4.0, n_regions)
    reg_bright = rng.normal(1.0, 0.04, n_regions)
    reg_sar = rng.normal(0.0, 0.6, n_regions)
    p_offset = np.where(is_agri, rng.normal(0.0, 8.0, n_p), reg_offset[p_region])
    p_bright = np.where(is_agri, rng.normal(1.0, 0.07, n_p), reg_bright[p_region])
    p_sar = np.where(is_agri, rng.normal(0.0, 1.0, n_p), reg_sar[p_region])
    mediterranean = lat < 44.0
    shift = (lat - 48.0) * 1.0
    winter_peak, summer_peak = (105.0, 190.0) if mediterranean else (150.0 + shift, 200.0 + shift)
    p_peak = np.where(rng.random(n_p) < 0.55, winter_peak, summer_peak)

    # Linear features and settlements become parcels of their own (own draws: the rest of the
    # surface does not depend on them).
    frng = np.random.default_rng(np.random.SeedSequence([int(seed), stable_hash(tile.id), 2]))
    feature, floodplain = draw_features(frng, shape)
    parcel, extra_class = _feature_parcels(parcel, feature, n_p)
    n_new = len(extra_class)
    p_class = np.concatenate([p_class, extra_class])
    p_offset = np.concatenate([p_offset, np.zeros(n_new)])
    p_bright = np.concatenate([p_bright, frng.normal(1.0, 0.04, n_new)])
    p_sar = np.concatenate([p_sar, np.zeros(n_new)])
    p_peak = np.concatenate([p_peak, np.full(n_new, summer_peak)])
    n_p += n_new
    landcover = p_class[parcel].astype(np.uint8)
    edge = _agricultural_edges(parcel, landcover, feature)
    p_harvest = frng.uniform(*HARVEST_LAG_DAYS, n_p)
    p_mowing = mowing_dates(frng, p_class, lat)
    floodplain &= ~np.isin(landcover, (0, 1, 17, 18)) & (feature == FEATURE_NONE)
    has_flood = floodplain.any() and frng.random() < FLOOD_YEAR_PROBABILITY
    flood_doy = float(frng.uniform(20.0, 340.0)) if has_flood else float("nan")
    flood_days = float(frng.uniform(5.0, 15.0))
    dem_error = dem_error_field(frng, smooth_field(frng, shape, DEM_ERROR_SCALE_PX, down=4), elevation,
                                float(PIXEL_M))

    # Fixed textures.
    tex_white = smooth_field(rng, shape, 1.2)
    tex_large = smooth_field(rng, shape, 20.0, down=4)
    texture = 1.0 + TEXTURE_AMP[landcover] * tex_white + 0.03 * tex_large
    texture = np.clip(texture, 0.6, 1.5).astype(np.float32)
    sar_texture = (SAR_DB[landcover, 4] * smooth_field(rng, shape, 1.0)).astype(np.float32)
    snow_noise = (80.0 * smooth_field(rng, shape, 8.0, down=2)).astype(np.float32)

    return TileSurface(
        tile=tile, lat=lat, elevation=elevation, landcover=landcover, parcel=parcel,
        parcel_class=p_class, parcel_offset=p_offset, parcel_crop_peak=p_peak,
        parcel_bright=p_bright, parcel_sar_db=p_sar, texture=texture, sar_texture=sar_texture,
        snow_noise=snow_noise, feature=feature, edge=edge, parcel_harvest=p_harvest,
        parcel_mowing=p_mowing, floodplain=floodplain, flood_doy=flood_doy, flood_days=flood_days,
        dem_error=dem_error,
    )


def _polyline_distance(points: np.ndarray, pts: np.ndarray, limit: float) -> np.ndarray:
    """Distance (pixels) from each of ``pts`` (N, 2 row/col) to a polyline, inf beyond ``limit``."""
    dense = []
    for a, b in zip(points[:-1], points[1:], strict=False):
        n = max(2, int(np.ceil(np.hypot(*(b - a)) * 2.0)))
        dense.append(a + np.linspace(0.0, 1.0, n)[:, None] * (b - a))
    d, _ = cKDTree(np.concatenate(dense)).query(pts, distance_upper_bound=limit, workers=1)
    return d


def draw_features(rng: np.random.Generator, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Feature map (FEATURE_*) and floodplain of a tile: one meandering river 20-50 m wide with a
    floodplain of 80-250 m, two to four straight roads (one pixel), and settlements (80-250 m
    across) on the roads."""
    h, w = shape
    rr, cc = np.mgrid[0:h, 0:w]
    pts = np.stack([rr.ravel(), cc.ravel()], axis=1).astype(np.float64)
    feature = np.zeros(h * w, dtype=np.uint8)
    size = float(max(h, w))

    # Settlements: blobs centred on road points (drawn first, roads and river go over them).
    roads = []
    for _ in range(int(rng.integers(2, 5))):
        centre = rng.uniform(0.1, 0.9, 2) * (h, w)
        angle = rng.uniform(0.0, np.pi)
        d = np.array([np.sin(angle), np.cos(angle)]) * size * 1.5
        roads.append(np.stack([centre - d, centre + d]))
    for _ in range(int(rng.integers(1, 4))):
        road = roads[int(rng.integers(len(roads)))]
        centre = road[0] + rng.uniform(0.4, 0.6) * (road[1] - road[0])
        radius = rng.uniform(4.0, 12.5)
        wobble = 1.0 + 0.3 * np.sin(np.arctan2(pts[:, 0] - centre[0], pts[:, 1] - centre[1]) * 3
                                    + rng.uniform(0, 2 * np.pi))
        feature[np.hypot(*(pts - centre).T) < radius * wobble] = FEATURE_SETTLEMENT

    # River: enters on one side, meanders across.
    start = np.array([rng.uniform(0.15, 0.85) * h, -5.0])
    heading = rng.uniform(-0.4, 0.4)
    step, n_steps = 4.0, int(2.5 * size / 4.0)
    bend = np.cumsum(rng.normal(0.0, 0.12, n_steps))
    angles = heading + 0.6 * np.sin(np.arange(n_steps) / rng.uniform(6.0, 12.0)) + 0.3 * np.tanh(bend)
    river = start + np.cumsum(step * np.stack([np.sin(angles), np.cos(angles)], axis=1), axis=0)
    river = np.concatenate([start[None], river])
    half_width = rng.uniform(1.0, 2.5)
    plain = rng.uniform(8.0, 25.0)
    d_river = _polyline_distance(river, pts, plain * 1.5)
    noise = smooth_field(rng, shape, 12.0, down=2).ravel()
    floodplain = d_river < plain * (1.0 + 0.35 * noise)
    feature[d_river <= half_width] = FEATURE_RIVER

    for road in roads:
        feature[_polyline_distance(road, pts, 1.0) <= 0.55] = FEATURE_ROAD
    return feature.reshape(shape), floodplain.reshape(shape) & (feature.reshape(shape) == FEATURE_NONE)


def _feature_parcels(parcel: np.ndarray, feature: np.ndarray, n_p: int) -> tuple[np.ndarray, np.ndarray]:
    """Give the river, the roads and the settlements one parcel each (after the ``n_p`` fields);
    returns the parcel map and the new parcels' classes."""
    parcel = parcel.copy()
    classes: list[int] = []
    for code, cls in ((FEATURE_SETTLEMENT, SETTLEMENT_CLASS), (FEATURE_RIVER, RIVER_CLASS),
                      (FEATURE_ROAD, ROAD_CLASS)):
        sel = feature == code
        if sel.any():
            parcel[sel] = n_p + len(classes)
            classes.append(cls)
    return parcel, np.asarray(classes, dtype=np.int64)


def _agricultural_edges(parcel: np.ndarray, landcover: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """Pixels on the boundary between two agricultural or grassland parcels (hedgerows, ditches)."""
    farm = np.isin(landcover, AGRI_CLASSES + (PASTURE_CLASS,)) & (feature == FEATURE_NONE)
    edge = np.zeros(parcel.shape, dtype=bool)
    down = (parcel[1:] != parcel[:-1]) & farm[1:] & farm[:-1]
    right = (parcel[:, 1:] != parcel[:, :-1]) & farm[:, 1:] & farm[:, :-1]
    edge[1:] |= down
    edge[:, 1:] |= right
    return edge


def mowing_dates(rng: np.random.Generator, parcel_class: np.ndarray, lat: float) -> np.ndarray:
    """(P, MAX_MOWINGS) day of year of each cut of managed grassland (NaN: none): one to four cuts,
    the first from mid-May (later further north), then every 35-55 days."""
    out = np.full((len(parcel_class), MAX_MOWINGS), np.nan)
    mown = np.flatnonzero(np.isin(parcel_class, MOWN_CLASSES))
    first = 135.0 + 1.5 * (lat - 48.0)
    for p in mown:
        day = first + rng.uniform(-10.0, 20.0)
        for k in range(int(rng.integers(1, MAX_MOWINGS + 1))):
            if day > 280.0:
                break
            out[p, k] = day
            day += rng.uniform(35.0, 55.0)
    return out


# --------------------------------------------------------------------------------------
# phenology, snow
# --------------------------------------------------------------------------------------


def _circ(d: np.ndarray) -> np.ndarray:
    """Signed day difference wrapped to [-182.5, 182.5)."""
    return (d + 182.5) % 365.0 - 182.5


def phenology(kind: str, doy: float, lat: float, offset: np.ndarray, crop_peak: np.ndarray,
              harvest: np.ndarray | None = None, mowing: np.ndarray | None = None) -> np.ndarray:
    """Greenness 0..1 per parcel for a phenology type.

    Crops green up over ~2 months to their peak, ripen (greenness falls to ~0.55) and are
    harvested ``harvest`` days after the peak: greenness drops to bare soil at once and stays there
    until the next green-up. Grass with ``mowing`` dates loses 60 % of its greenness on each cut
    and grows back over ~3 weeks.
    """
    offset = np.asarray(offset, dtype=np.float64)
    mediterranean = lat < 44.0
    if kind == "static":
        return np.ones_like(offset)
    if kind == "evergreen":
        summer = 0.5 - 0.5 * np.cos(2 * np.pi * (doy - 20.0 - offset) / 365.0)
        return 0.8 + 0.2 * summer
    if kind == "deciduous":
        shift = (lat - 48.0) * 1.0
        up = 120.0 + shift + offset
        down = 295.0 - shift + offset
        return 0.05 + 0.95 * _sig((doy - up) / 18.0) * _sig((down - doy) / 18.0)
    if kind == "crop":
        d = _circ(doy - (crop_peak + offset))
        lag = np.full_like(d, 40.0) if harvest is None else np.asarray(harvest, dtype=np.float64)
        rising = 0.04 + 0.96 * np.exp(-0.5 * (np.minimum(d, 0.0) / 32.0) ** 2)
        ripening = 1.0 - 0.45 * np.clip(d / lag, 0.0, 1.0)
        return np.where(d < 0, rising, np.where(d < lag, 0.04 + 0.96 * ripening, 0.04))
    if kind == "grass":
        peak = 95.0 if mediterranean else 170.0 + (lat - 48.0)
        d = _circ(doy - (peak + offset))
        g = 0.3 + 0.65 * np.exp(-0.5 * (d / 75.0) ** 2)
        if mowing is not None:
            since = doy - np.asarray(mowing, dtype=np.float64)  # (P, k) days since each cut
            since = np.where(since >= 0, since, np.inf)
            last = np.min(since, axis=1)
            g = g * (1.0 - 0.6 * np.exp(-np.where(np.isfinite(last), last, 1e9) / 20.0))
        return g
    raise ValueError(f"unknown phenology type {kind!r}")


def parcel_greenness(surf: TileSurface, kind: str, sel: np.ndarray, doy: float) -> np.ndarray:
    """Greenness of the parcels ``sel`` (bool mask over parcels) for one phenology component."""
    mowing = surf.parcel_mowing[sel] if kind == "grass" else None
    return phenology(kind, doy, surf.lat, surf.parcel_offset[sel], surf.parcel_crop_peak[sel],
                     surf.parcel_harvest[sel], mowing)


def parcel_state(surf: TileSurface, doy: float) -> np.ndarray:
    """(P,) greenness of every parcel on a day of year, from its class's main component (what
    drives its backscatter: biomass, bare soil after harvest, a mown meadow)."""
    g = np.ones(len(surf.parcel_class))
    for c in np.unique(surf.parcel_class):
        sel = surf.parcel_class == c
        g[sel] = parcel_greenness(surf, CLASS_COMPONENTS[int(c)][0][3], sel, doy)
    return g


def snow_line_m(doy: float, lat: float) -> float:
    """Altitude (m) above which the ground is snow covered on a day of year."""
    # Winter minimum of the snow line: snow every winter in Finland and in the Alps above
    # ~1000 m, never on the lowlands of central and southern Europe.
    winter_min = float(np.interp(lat, [38, 44, 47, 50, 55, 61, 70],
                                 [1800, 1300, 1000, 800, -200, -1500, -2500]))
    span = 3000.0 + max(0.0, lat - 46.0) * 150.0
    return winter_min + span * (1.0 - np.cos(2 * np.pi * (doy - 35.0) / 365.0)) / 2.0


def snow_fraction(surf: TileSurface, doy: float) -> np.ndarray:
    """Ground snow cover 0..1 per pixel."""
    line = snow_line_m(doy, surf.lat)
    s = np.clip((surf.elevation + surf.snow_noise - line) / 150.0 + 0.5, 0.0, 1.0)
    return s.astype(np.float32)


# --------------------------------------------------------------------------------------
# per-date surface reflectance and backscatter
# --------------------------------------------------------------------------------------


def _doy(when: dt.date | dt.datetime) -> float:
    return float(when.timetuple().tm_yday)


def parcel_spectra(surf: TileSurface, doy: float) -> np.ndarray:
    """(P, 13) surface reflectance per parcel on a day of year (before texture and snow)."""
    out = np.zeros((len(surf.parcel_class), N_BANDS))
    for c in np.unique(surf.parcel_class):
        sel = surf.parcel_class == c
        spec = np.zeros((int(sel.sum()), N_BANDS))
        for w, green, off, kind in CLASS_COMPONENTS[int(c)]:
            g = parcel_greenness(surf, kind, sel, doy)
            spec += w * (g[:, None] * ENDMEMBERS[green] + (1.0 - g[:, None]) * ENDMEMBERS[off])
        out[sel] = spec * surf.parcel_bright[sel, None]
    return out


def water_mask(surf: TileSurface, doy: float) -> np.ndarray:
    """Open surface water on a day of year: inland and marine water classes (the river included)
    and, on flood days, the floodplain."""
    water = np.isin(surf.landcover, WATER_CLASSES)
    flooded = surf.flooded(doy)
    return water | flooded if flooded is not None else water


def surface_reflectance(surf: TileSurface, when: dt.date | dt.datetime
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free clear-sky BOA reflectance (13, H, W) float32 at 10 m, ground snow (H, W) 0..1 and
    open water (H, W) bool."""
    doy = _doy(when)
    table = parcel_spectra(surf, doy).T.astype(np.float32)  # (13, P)
    refl = table[:, surf.parcel] * surf.texture[None]
    flooded = surf.flooded(doy)
    if flooded is not None:  # turbid flood water over the floodplain
        turbid = (1.4 * ENDMEMBERS["water"]).astype(np.float32)[:, None]
        refl[:, flooded] = turbid
    snow = snow_fraction(surf, doy)
    if snow.any():
        visible = snow.copy()
        lc = surf.landcover
        visible[lc == 9] *= 0.5
        visible[(lc == 8) | (lc == 10)] *= 0.75
        snow_spec = ENDMEMBERS["snow"].astype(np.float32)[:, None, None]
        refl = refl * (1.0 - visible[None]) + visible[None] * snow_spec * (0.95 + 0.05 * surf.texture[None])
    refl[BAND_INDEX["B10"]] = 0.0
    return refl.astype(np.float32), snow, water_mask(surf, doy)


def sar_sigma0_db(surf: TileSurface, when: dt.date | dt.datetime, rng: np.random.Generator,
                  incidence: np.ndarray | float = SAR_REF_INCIDENCE) -> np.ndarray:
    """Mean sigma0 (dB) for VV and VH, (2, H, W) float32, before speckle, at ``incidence`` degrees
    (scalar or broadcastable to (H, W)).

    ``rng`` draws the acquisition's conditions: wind over water, soil moisture of bare fields.
    """
    doy = _doy(when)
    g = parcel_state(surf, doy)
    pc = surf.parcel_class
    vv = g * SAR_DB[pc, 0] + (1 - g) * SAR_DB[pc, 2] + surf.parcel_sar_db
    vh = g * SAR_DB[pc, 1] + (1 - g) * SAR_DB[pc, 3] + surf.parcel_sar_db
    moisture = rng.normal(0.0, 1.0)  # soil moisture of this day, shared by bare fields
    bare = np.isin(pc, (2, 4, 5, 11)) * (1.0 - g)
    vv = vv + 1.5 * moisture * bare
    vh = vh + 1.2 * moisture * bare
    wind = rng.normal(0.0, SAR_WATER_WIND_DB)
    water_wind = np.abs(wind)  # wind only roughens (brightens) calm water
    out = np.stack([vv[surf.parcel], vh[surf.parcel]]).astype(np.float32)
    road = surf.feature == FEATURE_ROAD
    out[0][road], out[1][road] = SAR_ROAD_DB
    out[0][surf.edge] += SAR_EDGE_DB[0]
    out[1][surf.edge] += SAR_EDGE_DB[1]
    flooded = surf.flooded(doy)
    if flooded is not None:
        out[0][flooded], out[1][flooded] = SAR_DB[RIVER_CLASS, 0], SAR_DB[RIVER_CLASS, 1]
    water = water_mask(surf, doy) | (surf.landcover == 16)
    out[0][water] += water_wind
    out[1][water] += 0.6 * water_wind
    out += surf.sar_texture[None]
    out += (SAR_SLOPE[surf.landcover] * (np.asarray(incidence, dtype=np.float32) - SAR_REF_INCIDENCE))[None]
    snow = snow_fraction(surf, doy)
    if snow.any():
        out -= (snow * np.where(snow_is_wet(surf, doy), SAR_WET_SNOW_DB, SAR_DRY_SNOW_DB))[None]
    return out.astype(np.float32)


def snow_is_wet(surf: TileSurface, doy: float) -> np.ndarray:
    """Melting (wet) snow: while the snow line rises in spring, within 700 m above it."""
    line = snow_line_m(doy, surf.lat)
    rising = np.sin(2 * np.pi * (doy - 35.0) / 365.0) > 0
    return rising & (surf.elevation + surf.snow_noise - line < 700.0)
