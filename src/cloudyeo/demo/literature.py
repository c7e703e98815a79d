"""Published physical statistics the demo world is built to match, with their sources.

One place for every number the world's realism rests on: the generator draws its parameters
inside these ranges and ``cloudyeo demo validate`` measures the written world against them. The
ranges were fixed from the sources below before any effect was measured on the world; they are
never adjusted to make a result come out.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCES: dict[str, str] = {
    "s1_handbook": "ESA (2013). Sentinel-1 User Handbook, GMES-S1OP-EOPG-TN-13-0001: IW swath "
                   "incidence 29.1-46.0 deg; GRDH IW 20 x 22 m resolution at 10 m spacing, ENL 4.4.",
    "schubert2017": "Schubert, A., Miranda, N., Geudtner, D., Small, D. (2017). Sentinel-1A/B combined "
                    "product geolocation accuracy. Remote Sensing 9(6), 607.",
    "gascon2017": "Gascon, F. et al. (2017). Copernicus Sentinel-2A calibration and products validation "
                  "status. Remote Sensing 9(6), 584 (multi-temporal co-registration < 0.3 px at 10 m; "
                  "absolute geolocation < 11 m, 2 sigma).",
    "planet_spec": "Planet Labs (2023). Planet Imagery Product Specifications: PlanetScope Ortho "
                   "Scene positional accuracy < 10 m RMSE.",
    "veloso2017": "Veloso, A. et al. (2017). Understanding the temporal behavior of crops using "
                  "Sentinel-1 and Sentinel-2-like data for agricultural applications. Remote Sensing "
                  "of Environment 199, 415-426.",
    "twele2016": "Twele, A., Cao, W., Plank, S., Martinis, S. (2016). Sentinel-1-based flood mapping: "
                 "a fully automated processing chain. Int. J. Remote Sensing 37(13), 2990-3004.",
    "frison2018": "Frison, P.-L. et al. (2018). Potential of Sentinel-1 data for monitoring temperate "
                  "mixed forest phenology. Remote Sensing 10(12), 2049.",
    "koppel2017": "Koppel, K., Zalite, K., Voormansik, K., Jagdhuber, T. (2017). Sensitivity of "
                  "Sentinel-1 backscatter to characteristics of buildings. Int. J. Remote Sensing "
                  "38(22), 6298-6318.",
    "nagler2016": "Nagler, T., Rott, H., Ripper, E., Bippus, G., Hetzenecker, M. (2016). Advancements "
                  "for snowmelt monitoring by means of Sentinel-1 SAR. Remote Sensing 8(4), 348.",
    "small2008": "Small, D., Schubert, A. (2008). Guide to ASAR geocoding. ESA RSL-ASAR-GC-AD, issue 1.0 "
                 "(a terrain-model height error dh displaces a point by dh / tan(incidence) in ground range).",
    "copdem": "Airbus Defence and Space for ESA. Copernicus DEM (COP-DEM) Product Handbook: absolute "
              "vertical accuracy < 4 m LE90; relative vertical accuracy < 2 m LE90 for slopes <= 20 %, "
              "< 4 m above (point-to-point within 1 x 1 deg); absolute horizontal accuracy < 6 m CE90.",
    "fao2020": "FAO (2020). Global Forest Resources Assessment 2020, forest area as a share of land "
               "area, 2020 (World Bank WDI AG.LND.FRST.ZS).",
    "mladenova2013": "Mladenova, I. E., Jackson, T. J., Bindlish, R., Hensley, S. (2013). Incidence "
                     "angle normalization of radar backscatter data. IEEE TGRS 51(3), 1791-1804.",
    "zhang2003": "Zhang, X. et al. (2003). Monitoring vegetation phenology using MODIS. Remote "
                 "Sensing of Environment 84(3), 471-475.",
    "sacks2010": "Sacks, W. J., Deryng, D., Foley, J. A., Ramankutty, N. (2010). Crop planting dates: "
                 "an analysis of global patterns. Global Ecology and Biogeography 19(5), 607-620.",
    "griffiths2020": "Griffiths, P., Nendel, C., Pickert, J., Hostert, P. (2020). Towards national-scale "
                     "characterization of grassland use intensity from integrated Sentinel-2 and "
                     "Landsat time series. Remote Sensing of Environment 238, 111124.",
    "lesiv2019": "Lesiv, M. et al. (2019). Estimating the global distribution of field size using "
                 "crowdsourcing. Global Change Biology 25(1), 174-186.",
}


@dataclass(frozen=True)
class Statistic:
    """One statistic of the world and its published range (inclusive)."""

    key: str
    description: str
    low: float
    high: float
    unit: str
    source: str  # a key of SOURCES

    def holds(self, value: float) -> bool:
        return self.low <= value <= self.high


def _s(key: str, description: str, low: float, high: float, unit: str, source: str) -> Statistic:
    return Statistic(key, description, low, high, unit, source)


INF = float("inf")

STATISTICS: tuple[Statistic, ...] = (
    # Sentinel-1 product and geometry.
    _s("s1_enl", "S1 equivalent number of looks over homogeneous fields (IW GRDH)", 3.8, 5.0, "looks",
       "s1_handbook"),
    _s("s1_incidence_min", "S1 incidence angle, smallest in the scenes", 29.1, 46.0, "deg", "s1_handbook"),
    _s("s1_incidence_max", "S1 incidence angle, largest in the scenes", 29.1, 46.0, "deg", "s1_handbook"),
    _s("s1_incidence_slope_vv", "d sigma0_VV / d incidence over crops and grass", -0.30, -0.05, "dB/deg",
       "mladenova2013"),
    # Sentinel-1 backscatter per class and state.
    _s("s1_vv_water", "sigma0 VV of open inland water (median)", -INF, -18.0, "dB", "twele2016"),
    _s("s1_vv_forest", "sigma0 VV of broad-leaved and mixed forest (median)", -9.0, -5.5, "dB", "frison2018"),
    _s("s1_vh_forest", "sigma0 VH of broad-leaved and mixed forest (median)", -15.0, -11.0, "dB", "frison2018"),
    _s("s1_vv_urban", "sigma0 VV of urban fabric (median)", -6.0, 5.0, "dB", "koppel2017"),
    _s("s1_vh_crop_bare", "sigma0 VH of arable land, bare season (median)", -26.0, -18.0, "dB", "veloso2017"),
    _s("s1_vh_crop_peak", "sigma0 VH of arable land, peak biomass (median)", -18.0, -12.0, "dB", "veloso2017"),
    _s("s1_vv_wet_snow_drop", "sigma0 VV drop of wet snow against the same ground snow-free", 2.0, 8.0, "dB",
       "nagler2016"),
    # Optical phenology (NDVI from clear L2A pixels).
    _s("ndvi_crop_peak", "NDVI of arable land at peak (90th percentile over the year)", 0.70, 0.92, "", "veloso2017"),
    _s("ndvi_crop_bare", "NDVI of arable land, bare soil (10th percentile over the year)", 0.05, 0.30, "", "veloso2017"),
    _s("ndvi_deciduous_summer", "NDVI of broad-leaved forest, June-August (median)", 0.70, 0.92, "", "zhang2003"),
    _s("ndvi_deciduous_winter", "NDVI of broad-leaved forest, December-February (median)", 0.15, 0.55, "",
       "zhang2003"),
    _s("ndvi_conifer_range", "NDVI seasonal amplitude of coniferous forest", 0.0, 0.25, "", "zhang2003"),
    _s("ndvi_water", "NDVI of open inland water (median)", -0.8, 0.05, "", "twele2016"),
    _s("crop_harvest_drop", "NDVI drop of a crop parcel across its harvest (one revisit)", 0.30, 0.90, "",
       "veloso2017"),
    _s("crop_harvest_doy", "harvest day of year of summer crops (median), temperate Europe", 180.0, 260.0, "doy",
       "sacks2010"),
    _s("grass_mowing_events", "mowing events per managed grassland parcel and year (median)", 1.0, 5.0,
       "events", "griffiths2020"),
    # Landscape structure.
    _s("parcel_median_ha", "median agricultural parcel size, Europe", 0.64, 16.0, "ha", "lesiv2019"),
    _s("forest_share_gap", "tile forest share (broad-leaved, coniferous, mixed forest, transitional woodland) "
       "vs its country's forest share, median absolute difference (tolerance for one ~5 km landscape: ours)",
       0.0, 20.0, "points", "fao2020"),
    # Misregistration.
    _s("s1_shift_p95_m", "S1 absolute geolocation error, 95th percentile", 0.0, 10.0, "m", "schubert2017"),
    _s("s2_s1_shift_p95_m", "S2 vs S1 co-registration error over gentle terrain (relief < 1000 m), 95th "
       "percentile", 0.0, 15.0, "m", "gascon2017"),
    _s("s2_s1_relief_p95_m", "S2 vs S1 displacement in high relief (>= 1000 m), 95th percentile: terrain "
       "distortion of 1-3 S1 pixels", 10.0, 40.0, "m", "small2008"),
    _s("planet_s1_shift_p95_m", "PlanetScope vs S1 offset (geolocation + terrain), 95th percentile", 3.0, 30.0,
       "m", "planet_spec"),
)

# Forest area, % of land area in 2020 (fao2020), for the countries of the demo tiles.
FOREST_SHARE_PERCENT: dict[str, float] = {
    "Finland": 73.7, "Austria": 47.3, "Switzerland": 32.1, "Portugal": 36.1, "Belgium": 22.8,
    "Ireland": 11.4, "Lithuania": 35.1, "Serbia": 31.1, "Luxembourg": 35.7,
}

BY_KEY: dict[str, Statistic] = {s.key: s for s in STATISTICS}


def cite(source: str) -> str:
    """The full reference of a source key."""
    return SOURCES[source]
