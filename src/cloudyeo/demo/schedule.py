"""When the demo satellites look at a tile, and what each acquisition is called.

Per tile: a fixed Sentinel-2 relative orbit and overpass time (~10:xx UTC, descending) on a
``s2_revisit_days`` grid alternating S2A/S2B, and Sentinel-1 (ascending, ~17:xx UTC) every
``s1_revisit_days`` alternating S1A/S1B. ``references_per_tile`` reference dates (forced clear,
processing baseline < 04.00) lie in 2017-06..2018-05, about 10 days apart; tiles are spread over
the seasons (the snowiest places get the summer). The archive spans
``[first reference - days_around_reference, last reference + days_around_reference]``.

Every scalar of an acquisition (names, baseline, target cloud cover, shadow offset...) is drawn
here from generators seeded by ``(seed, tile, date)``, so the pixel work is a pure function.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from cloudyeo.demo.atmosphere import SkyParams
from cloudyeo.demo.climatology import Climatology
from cloudyeo.demo.sar_geometry import geolocation_shift, track_incidence
from cloudyeo.demo.tiles import TileSpec, seeded_rng, stable_hash
from cloudyeo.sentinel import baseline_offset

UTC = dt.UTC
GRID_EPOCH = dt.date(2017, 1, 1)
SEASON_START = dt.date(2017, 6, 20)  # first reference slot; slots are spread over a year
REFERENCE_FIRST = dt.date(2017, 6, 1)  # references lie in 2017-06 .. 2018-05
REFERENCE_LAST = dt.date(2018, 5, 31)
REPROCESSED_BASELINE = "05.00"
REPROCESSED_FRACTION = 0.4
CLEAR_FRACTION = 0.10  # share of scenes drawn fully clear ...
OVERCAST_FRACTION = 0.07  # ... and fully overcast, besides the climatology-centred draw

# Orbit epochs (approximate) for plausible absolute orbit numbers.
_S2_EPOCH = {"S2A": dt.datetime(2015, 6, 23, tzinfo=UTC), "S2B": dt.datetime(2017, 3, 7, tzinfo=UTC)}
_S1_EPOCH = {"S1A": dt.datetime(2014, 4, 3, tzinfo=UTC), "S1B": dt.datetime(2016, 4, 25, tzinfo=UTC)}
_S2_ORBITS_PER_DAY = 14.3
_S1_ORBITS_PER_DAY = 175.0 / 12.0


def _stamp(t: dt.datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%S")


def iso(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class S2Acquisition:
    tile: str
    ordinal: int  # index on the tile's S2 revisit grid
    platform: str  # "S2A" / "S2B"
    sensing: dt.datetime  # UTC
    baseline: str  # "02.07", "03.00" or "05.00"
    relative_orbit: int
    absolute_orbit: int
    l2a_id: str
    l1c_id: str
    datatake: str  # truth mask name, shared by L1C and L2A
    is_reference: bool
    cloud_target: float  # percent
    sky: SkyParams
    # Availability quirks of real archives (None: a complete scene covering the whole tile).
    swath_edge: float | None = None  # nodata east of a slanted swath edge at this column fraction
    missing_band: str | None = None  # a band absent from the product (file and STAC asset)

    @property
    def offset_dn(self) -> float:
        """BOA_ADD_OFFSET / RADIO_ADD_OFFSET in DN (-1000 from baseline 04.00 on)."""
        return baseline_offset(self.baseline)


@dataclass(frozen=True)
class S1Acquisition:
    tile: str
    ordinal: int
    platform: str  # "S1A" / "S1B"
    start: dt.datetime
    stop: dt.datetime
    relative_orbit: int
    absolute_orbit: int
    datatake_id: int
    scene_id: str
    # Viewing geometry and geolocation (truth): the pass, the incidence angle at the tile's near
    # and far edge (degrees), and the product's absolute geolocation error (east, north; metres).
    orbit_state: str = "ascending"
    incidence_near: float = 37.0
    incidence_far: float = 37.0
    shift_m: tuple[float, float] = (0.0, 0.0)


@dataclass
class TileSchedule:
    tile: TileSpec
    references: list[dt.date]
    start: dt.date
    end: dt.date
    s2: list[S2Acquisition] = field(default_factory=list)
    s1: list[S1Acquisition] = field(default_factory=list)
    climatology: dict[int, tuple[float, float]] = field(default_factory=dict)  # month -> (mean, sd)

    def reference_acquisitions(self) -> list[S2Acquisition]:
        return [a for a in self.s2 if a.is_reference]

    def closest_s1(self, when: dt.datetime) -> S1Acquisition:
        return min(self.s1, key=lambda a: (abs((a.start - when).total_seconds()), a.start))


def season_slots(tiles: list[TileSpec], lats: dict[str, float]) -> dict[str, dt.date]:
    """Spread tiles over the year; the snowiest places get the slots closest to midsummer.

    Snowiness ranks by latitude plus relief (1 degree per 300 m), so alpine tiles are not
    given the snow-melt season, where two references 10 days apart would differ a lot.
    """
    from cloudyeo.demo.surface import COUNTRY_RELIEF

    n = len(tiles)
    slots = [SEASON_START + dt.timedelta(days=round(k * 365 / n)) for k in range(n)]

    def summer_distance(d: dt.date) -> float:
        doy = d.timetuple().tm_yday
        return abs(((doy - 196 + 182.5) % 365.0) - 182.5)

    slots.sort(key=lambda d: (summer_distance(d), d))
    def snowiness(t: TileSpec) -> float:
        return abs(lats[t.id]) + COUNTRY_RELIEF.get(t.country, (0.0, 400.0))[1] / 300.0

    order = sorted(tiles, key=lambda t: (-snowiness(t), t.id))
    return {t.id: slots[i] for i, t in enumerate(order)}


def _s2_time(tile: TileSpec, lon: float, seed: int) -> dt.time:
    rng = seeded_rng(seed, "s2-time", tile.id)
    minute = int(np.clip(round(40 - 2.0 * lon), 0, 59))
    return dt.time(10, minute, int(rng.integers(0, 60)))


def _s1_time(tile: TileSpec, lon: float, seed: int) -> dt.time:
    rng = seeded_rng(seed, "s1-time", tile.id)
    hour = 16 if lon > 10 else 17
    return dt.time(hour, int(rng.integers(0, 60)), int(rng.integers(0, 60)))


def _baseline(day: dt.date) -> str:
    return "02.07" if day < dt.date(2018, 1, 1) else "03.00"


def _draw_cloud_percent(rng: np.random.Generator, mean: float, sd: float) -> float:
    u = rng.random()
    if u < CLEAR_FRACTION:
        return 0.0
    if u < CLEAR_FRACTION + OVERCAST_FRACTION:
        return 100.0
    spread = max(2.0 * sd, 8.0)
    return float(np.clip(rng.normal(mean, spread), 0.0, 100.0))


def _sky(rng: np.random.Generator, cloud_percent: float, sun_doy: int, lat: float) -> SkyParams:
    if cloud_percent <= 0.0:
        return SkyParams(0.0, 0.0, 0.0, (0, 0), 0.0, float(rng.uniform(0.7, 1.3)))
    cirrus = 0.0
    if rng.random() < 0.45:
        cirrus = float(rng.uniform(0.05, 0.5))
    # Sun in the south-south-east at ~10:30 local time: shadows fall to the north-north-west,
    # longer when the sun is low (winter, high latitudes).
    noon_elev = 90.0 - lat + 23.44 * math.sin(2 * math.pi * (sun_doy - 81) / 365.0)
    length = float(np.clip(rng.uniform(15.0, 30.0) * (1.0 + (50.0 - noon_elev) / 60.0), 12.0, 64.0))
    azimuth = math.radians(float(rng.uniform(320.0, 345.0)))  # direction cloud -> shadow
    dr = int(round(-length * math.cos(azimuth)))  # north is up (negative rows)
    dc = int(round(length * math.sin(azimuth)))
    return SkyParams(
        cloud_fraction=cloud_percent / 100.0,
        cirrus_fraction=cirrus,
        cirrus_max=float(rng.uniform(0.08, 0.3)),
        shadow_offset=(dr, dc),
        shadow_strength=float(rng.uniform(0.45, 0.7)),
        aerosol=float(rng.uniform(0.7, 1.3)),
    )


def _absolute_orbit(epochs: dict, rate: float, platform: str, t: dt.datetime) -> int:
    return 1 + int((t - epochs[platform]).total_seconds() / 86400.0 * rate)


def grid_day(k: int, phase: int, revisit: int) -> dt.date:
    """Day of ordinal ``k`` on the revisit grid: every ``revisit`` days from GRID_EPOCH + ``phase``."""
    return GRID_EPOCH + dt.timedelta(days=phase + k * revisit)


def first_grid_ordinal(day: dt.date, phase: int, revisit: int) -> int:
    """The first ordinal of the revisit grid on or after ``day``."""
    return math.ceil(((day - GRID_EPOCH).days - phase) / revisit)


def revisit_grid(start: dt.date, end: dt.date, phase: int, revisit: int) -> Iterator[tuple[int, dt.date]]:
    """(ordinal, day) of the revisit grid from ``start`` to ``end`` (inclusive)."""
    k = first_grid_ordinal(start, phase, revisit)
    while (day := grid_day(k, phase, revisit)) <= end:
        yield k, day
        k += 1


def build_schedule(tile: TileSpec, cfg: dict, clim: Climatology, slot: dt.date) -> TileSchedule:
    seed = int(cfg["seed"])
    rev2 = int(cfg["s2_revisit_days"])
    rev1 = int(cfg["s1_revisit_days"])
    n_ref = int(cfg["references_per_tile"])
    around = int(cfg["days_around_reference"])
    lon, lat = tile.centre_lonlat
    rng = seeded_rng(seed, "schedule", tile.id)

    phase2 = int(rng.integers(0, rev2))
    jitter = int(rng.integers(0, 10))
    step = max(1, round(10 / rev2))
    target = slot + dt.timedelta(days=jitter)
    # Keep all references inside the reference year where they fit.
    latest_start = REFERENCE_LAST - dt.timedelta(days=(n_ref - 1) * step * rev2 + rev2)
    target = max(min(target, latest_start), REFERENCE_FIRST)
    k0 = first_grid_ordinal(target, phase2, rev2)
    ref_ordinals = [k0 + j * step for j in range(n_ref)]
    references = [grid_day(k, phase2, rev2) for k in ref_ordinals]
    start = references[0] - dt.timedelta(days=around)
    end = references[-1] + dt.timedelta(days=around)
    sched = TileSchedule(tile=tile, references=references, start=start, end=end)
    for m in range(1, 13):
        sched.climatology[m] = clim.at(lon, lat, m)

    t2 = _s2_time(tile, lon, seed)
    for k, day in revisit_grid(start, end, phase2, rev2):
        sched.s2.append(s2_acquisition(tile, seed, k, day, t2, sched.climatology, lat,
                                       is_reference=k in ref_ordinals))

    phase1 = int(rng.integers(0, rev1))
    t1 = _s1_time(tile, lon, seed)
    for k, day in revisit_grid(start, end, phase1, rev1):
        sched.s1.append(s1_acquisition(tile, seed, k, day, t1))
    return sched


def s2_acquisition(tile: TileSpec, seed: int, k: int, day: dt.date, overpass: dt.time,
                   climatology: dict[int, tuple[float, float]], lat: float, *,
                   is_reference: bool = False, **quirks) -> S2Acquisition:
    """One Sentinel-2 datatake on revisit-grid ordinal ``k``; every scalar seeded by the day."""
    platform = "S2A" if k % 2 == 0 else "S2B"
    sensing = dt.datetime.combine(day, overpass, tzinfo=UTC)
    r = seeded_rng(seed, "s2", tile.id, day.isoformat())
    reprocessed = (not is_reference) and r.random() < REPROCESSED_FRACTION
    baseline = REPROCESSED_BASELINE if reprocessed else _baseline(day)
    mean, sd = climatology[day.month]
    cloud = 0.0 if is_reference else _draw_cloud_percent(r, mean, sd)
    sky = _sky(r, cloud, day.timetuple().tm_yday, lat)
    if reprocessed:
        l2a_proc = dt.datetime(2023, 2, 1, tzinfo=UTC) + dt.timedelta(
            days=int(r.integers(0, 300)), seconds=int(r.integers(0, 86400)))
        l1c_proc = l2a_proc - dt.timedelta(seconds=int(r.integers(1800, 10800)))
    else:
        l1c_proc = sensing + dt.timedelta(seconds=int(r.integers(180, 900)))
        l2a_proc = sensing + dt.timedelta(seconds=int(r.integers(3600, 6 * 3600)))
    nbase = "N" + baseline.replace(".", "")
    rel = f"R{tile.s2_relative_orbit:03d}"
    return S2Acquisition(
        tile=tile.id, ordinal=k, platform=platform, sensing=sensing, baseline=baseline,
        relative_orbit=tile.s2_relative_orbit,
        absolute_orbit=_absolute_orbit(_S2_EPOCH, _S2_ORBITS_PER_DAY, platform, sensing),
        l2a_id=f"{platform}_MSIL2A_{_stamp(sensing)}_{nbase}_{rel}_T{tile.id}_{_stamp(l2a_proc)}",
        l1c_id=f"{platform}_MSIL1C_{_stamp(sensing)}_{nbase}_{rel}_T{tile.id}_{_stamp(l1c_proc)}",
        datatake=f"{platform}_{_stamp(sensing)}_T{tile.id}",
        is_reference=is_reference, cloud_target=cloud, sky=sky, **quirks,
    )


def s1_geometry(tile: TileSpec, orbit_state: str) -> tuple[int, float, float]:
    """Relative orbit and incidence angles (near, far) of a tile on its ascending or descending track."""
    orbit = (tile.s1_relative_orbit + 87) % 175 + 1 if orbit_state == "descending" else tile.s1_relative_orbit
    near, far = track_incidence(tile.id, orbit_state, tile.size_m)
    return orbit, near, far


def s1_acquisition(tile: TileSpec, seed: int, k: int, day: dt.date, overpass: dt.time) -> S1Acquisition:
    """One Sentinel-1 IW GRD acquisition on revisit-grid ordinal ``k``: even ordinals on the
    ascending track at ``overpass`` (evening), odd ones on the descending track 12 h earlier."""
    platform = "S1A" if k % 2 == 0 else "S1B"
    orbit_state = "ascending" if (k // 2) % 2 == 0 else "descending"
    if orbit_state == "descending":
        overpass = dt.time((overpass.hour + 12) % 24, overpass.minute, overpass.second)
    relative_orbit, near, far = s1_geometry(tile, orbit_state)
    t_start = dt.datetime.combine(day, overpass, tzinfo=UTC)
    t_stop = t_start + dt.timedelta(seconds=25)
    absorbit = _absolute_orbit(_S1_EPOCH, _S1_ORBITS_PER_DAY, platform, t_start)
    datatake = (absorbit * 0x2B + stable_hash("dt", tile.id, platform)) & 0xFFFFF
    uid = stable_hash(seed, "s1-uid", tile.id, day.isoformat()) & 0xFFFF
    scene_id = (f"{platform}_IW_GRDH_1SDV_{_stamp(t_start)}_{_stamp(t_stop)}_"
                f"{absorbit:06d}_{datatake:06X}_{uid:04X}")
    return S1Acquisition(
        tile=tile.id, ordinal=k, platform=platform, start=t_start, stop=t_stop,
        relative_orbit=relative_orbit, absolute_orbit=absorbit,
        datatake_id=datatake, scene_id=scene_id, orbit_state=orbit_state,
        incidence_near=round(near, 3), incidence_far=round(far, 3),
        shift_m=geolocation_shift(seed, tile.id, day.isoformat()),
    )
