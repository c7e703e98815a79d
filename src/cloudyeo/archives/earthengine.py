"""Sentinel-1/2 scenes from Google Earth Engine (``earthengine-api``), normalised to records.

SEN12MS-CR-TS and SSL4EO-S12 were collected through Earth Engine; this adapter searches the
same collections and cuts windows out of them on any target grid.

Collections (logical name -> Earth Engine id, overridable with ``earthengine.collections``):

==================  ==================================  =====================================
logical             Earth Engine image collection       server-side filters
==================  ==================================  =====================================
sentinel-2-l1c      ``COPERNICUS/S2_HARMONIZED``        ``CLOUDY_PIXEL_PERCENTAGE`` <=/>=,
sentinel-2-l2a      ``COPERNICUS/S2_SR_HARMONIZED``     ``MGRS_TILE`` ==
sentinel-1-grd      ``COPERNICUS/S1_GRD``               ``instrumentMode`` == IW,
                                                        ``transmitterReceiverPolarisation``
                                                        contains VV and VH
==================  ==================================  =====================================

Search (one ``value:compute`` call per page)::

    ee.ImageCollection(<id>)
      .filterDate(<start>, <end + 1 ms>)          # SearchQuery.end is inclusive
      .filterBounds(ee.Geometry(<intersects>, None, geodesic=False))   # when given
      .filter(<collection filters above>)
      .sort("system:index")                        # a total order, so pages never overlap
      .toList(<page_size>, <offset>).getInfo()

Pages are fetched with increasing ``offset`` until one comes back short. Every filter is
re-applied client-side (:func:`cloudyeo.archives.base.apply_filters`).

Records (from each image's ``getInfo`` dictionary):

==================  ========================================================================
record field        from
==================  ========================================================================
id                  ``properties["system:index"]`` (e.g. ``20220301T101019_20220301T101021_
                    T33UUP``; the image is ``<collection id>/<id>``)
datetime            ``system:time_start`` (ms, UTC)
footprint           ``system:footprint`` (a LinearRing, returned as a Polygon)
tile                ``MGRS_TILE`` (S2), else ``_T<tile>`` in the id / ``PRODUCT_ID``
cloud_cover         ``CLOUDY_PIXEL_PERCENTAGE``
shadow / cirrus     ``CLOUD_SHADOW_PERCENTAGE`` / ``THIN_CIRRUS_PERCENTAGE`` (L2A only)
processing_baseline ``PROCESSING_BASELINE`` ("04.00"), else ``_Nxxyy_`` in ``PRODUCT_ID``
radiometric_offset  **0** for the ``*_HARMONIZED`` collections: they already shifted the DNs of
                    baseline >= 04.00 scenes back by the -1000 ``BOA/RADIO_ADD_OFFSET``, so
                    reflectance = DN / 10000 for every scene (``quantification`` 10000);
                    other collections: :func:`cloudyeo.sentinel.radiometric_offset`
platform            ``SPACECRAFT_NAME`` ("Sentinel-2A") | ``"sentinel-1" + platform_number``
relative_orbit      ``SENSING_ORBIT_NUMBER`` (S2) | ``relativeOrbitNumber_start`` (S1)
orbit_state         ``SENSING_ORBIT_DIRECTION`` (S2) | ``orbitProperties_pass`` (S1), lower
polarizations       ``transmitterReceiverPolarisation`` (S1)
sar_units,          from :data:`S1_PRODUCTS` by the Earth Engine collection id:
sar_radiometry,     ``COPERNICUS/S1_GRD`` is sigma0 in dB (``quantification`` 1), processed by
sar_geometry        Google with the Sentinel-1 Toolbox (thermal noise removal, radiometric
                    calibration, terrain correction with SRTM 30 m / ASTER GDEM above 60 deg N):
                    ``sigma0``, ``terrain``, ``dB``; ``COPERNICUS/S1_GRD_FLOAT`` the same in
                    linear power. Any other collection: unknown (None), refused on search.
assets              one :class:`AssetInfo` per band, keyed by the project's band names
                    (``B1`` -> ``B01``, ``B8A``, ``SCL``, ``VV`` ...; other bands keep their
                    Earth Engine name) with the band's native EPSG, transform and shape;
                    ``href`` is ``ee://<collection id>/<id>#<ee band>`` (no credential)
==================  ========================================================================

Pixels: :meth:`EarthEngineArchive.read_window` sends ``ee.data.computePixels`` with
``grid = {dimensions, affineTransform, crsCode}`` equal to the target grid, ``fileFormat``
``NUMPY_NDARRAY`` (sent as ``NPY``) and ``bandIds``; the expression is
``ee.Image(<collection id>/<id>).select(<ee bands>, <names>)[.resample(mode)].toFloat()
.unmask(-32768, False)``. Earth Engine resamples nearest-neighbour unless told otherwise, so
``bilinear`` / ``bicubic`` add ``resample``. The result is float32 in the record's units
(Sentinel-2 DN, Sentinel-1 dB); masked pixels (outside the scene) are sent as -32768 and
returned as NaN, so a DN of 0 stays distinguishable from no data. Requests larger than
:data:`MAX_REQUEST_BYTES` are split into blocks.

Auth: a service-account key file, found at ``earthengine.service_account_key`` (config), else
the environment variables ``EE_SERVICE_ACCOUNT_KEY`` or ``GOOGLE_APPLICATION_CREDENTIALS``
(in that order). The key's contents never leave ``google-auth``; its private key (and id) are
registered with :func:`cloudyeo.http.register_secret`. No key -> :class:`AuthError` naming the
variables; a refused key (HTTP 401/403, or a failed token refresh) -> :class:`AuthError`
naming the place the key came from. The project is ``earthengine.project`` or the key's
``project_id``.

Transport and retries: the ``earthengine-api`` client itself (``googleapiclient``): HTTP 429
and 5xx, connection errors and timeouts are retried with exponential backoff
(``num_retries = earthengine.max_retries``, set with ``ee.data.setMaxRetries``); the
per-request deadline is ``earthengine.timeout_s`` (``ee.data.setDeadline``). Errors that
remain are raised as :class:`cloudyeo.http.HttpError` (redacted).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cloudyeo.archives.base import (
    AssetInfo,
    S1Product,
    SceneRecord,
    SearchQuery,
    normalise_and_filter,
)
from cloudyeo.archives.reading import block_transform, grid_blocks, window_request
from cloudyeo.archives.stac_items import normalise_platform, normalise_tile, parse_number
from cloudyeo.http import AuthError, HttpError, redact, register_secret
from cloudyeo.sentinel import radiometric_offset

log = logging.getLogger(__name__)

COLLECTIONS: dict[str, str] = {
    "sentinel-2-l1c": "COPERNICUS/S2_HARMONIZED",
    "sentinel-2-l2a": "COPERNICUS/S2_SR_HARMONIZED",
    "sentinel-1-grd": "COPERNICUS/S1_GRD",
}
# Sentinel-1 collections of Earth Engine and what their pixels are (the catalog pages of
# COPERNICUS/S1_GRD and COPERNICUS/S1_GRD_FLOAT).
_EE_S1_PROCESSING = ("Earth Engine: GRD processed with the Sentinel-1 Toolbox (orbit file, "
                     "border and thermal noise removal, radiometric calibration to sigma0, "
                     "terrain correction with SRTM 30 m or ASTER GDEM above 60 deg N)")
S1_PRODUCTS: dict[str, S1Product] = {
    "COPERNICUS/S1_GRD": S1Product("sigma0", "terrain", "dB", _EE_S1_PROCESSING + "; 10*log10"),
    "COPERNICUS/S1_GRD_FLOAT": S1Product("sigma0", "terrain", "linear", _EE_S1_PROCESSING),
}
UNKNOWN_S1 = S1Product(None, None, None)
KEY_ENVS: tuple[str, ...] = ("EE_SERVICE_ACCOUNT_KEY", "GOOGLE_APPLICATION_CREDENTIALS")
CONFIG_KEY = "earthengine.service_account_key"
S2_QUANTIFICATION = 10000.0
S1_INSTRUMENT_MODE = "IW"
S1_POLARIZATIONS: tuple[str, ...] = ("VV", "VH")
FILL = -32768.0  # what Earth Engine sends for masked pixels; replaced by NaN
RESAMPLING = {"nearest": None, "bilinear": "bilinear", "bicubic": "bicubic"}
# computePixels answers at most 48 MiB (and 32768 px a side); stay well below.
MAX_REQUEST_BYTES = 32 * 1024 * 1024
MAX_REQUEST_SIDE = 8192

_EE_S2_BAND_RE = re.compile(r"^B(\d{1,2}|8A)$")
_BASELINE_IN_ID_RE = re.compile(r"_N(\d{2})(\d{2})_")
_TILE_IN_ID_RE = re.compile(r"_T(\d{2}[C-X][A-Z]{2})(?:_|$)")


# --------------------------------------------------------------------------------------
# band names
# --------------------------------------------------------------------------------------


def band_to_ee(band: str) -> str:
    """Project band name -> Earth Engine band name (``B02`` -> ``B2``; others unchanged)."""
    m = re.fullmatch(r"B0(\d)", band.upper())
    if m:
        return f"B{m.group(1)}"
    return band


def band_from_ee(band: str) -> str:
    """Earth Engine band name -> project band name (``B2`` -> ``B02``; others unchanged)."""
    m = _EE_S2_BAND_RE.match(band)
    if m and m.group(1) != "8A":
        return f"B{int(m.group(1)):02d}"
    return band


# --------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------


def _baseline(props: Mapping[str, Any]) -> str | None:
    value = props.get("PROCESSING_BASELINE")
    if value not in (None, ""):
        try:
            return f"{float(value):05.2f}"
        except (TypeError, ValueError):
            return str(value).strip()
    m = _BASELINE_IN_ID_RE.search(str(props.get("PRODUCT_ID") or ""))
    if m and m.group(1) != "99":
        return f"{m.group(1)}.{m.group(2)}"
    return None


def _footprint(props: Mapping[str, Any]) -> dict[str, Any]:
    fp = props.get("system:footprint")
    if not isinstance(fp, Mapping) or "coordinates" not in fp:
        raise ValueError("no system:footprint")
    if fp.get("type") == "LinearRing":
        return {"type": "Polygon", "coordinates": [fp["coordinates"]]}
    return {"type": fp.get("type"), "coordinates": fp["coordinates"]}


def _assets(info: Mapping[str, Any], asset_id: str) -> dict[str, AssetInfo]:
    out: dict[str, AssetInfo] = {}
    for band in info.get("bands") or ():
        name = band.get("id")
        if not name:
            continue
        crs = str(band.get("crs") or "")
        epsg = int(crs.split(":", 1)[1]) if crs.upper().startswith("EPSG:") else None
        transform = band.get("crs_transform")
        dims = band.get("dimensions")
        out[band_from_ee(name)] = AssetInfo(
            href=f"ee://{asset_id}#{name}",
            epsg=epsg,
            transform=tuple(float(v) for v in transform[:6]) if transform else None,
            shape=(int(dims[1]), int(dims[0])) if dims else None,  # EE gives [width, height]
        )
    return out


def image_to_record(info: Mapping[str, Any], collection: str, collection_id: str) -> SceneRecord:
    """One image ``getInfo`` dictionary -> :class:`SceneRecord` (ValueError when unusable)."""
    props = info.get("properties") or {}
    index = props.get("system:index")
    if not index:
        raise ValueError("image without system:index")
    start = props.get("system:time_start")
    if start is None:
        raise ValueError("image without system:time_start")
    when = dt.datetime.fromtimestamp(int(start) / 1000.0, tz=dt.UTC)
    asset_id = f"{collection_id}/{index}"
    footprint = _footprint(props)
    assets = _assets(info, asset_id)
    if collection.startswith("sentinel-1"):
        number = str(props.get("platform_number") or "").strip().lower()
        pols = props.get("transmitterReceiverPolarisation") or ()
        if isinstance(pols, str):
            pols = [pols]
        rel = parse_number(props.get("relativeOrbitNumber_start"))
        orbit = props.get("orbitProperties_pass")
        product = S1_PRODUCTS.get(collection_id, UNKNOWN_S1)
        return SceneRecord(
            id=str(index),
            collection=collection,
            platform=f"sentinel-1{number}" if number else normalise_platform(None, str(index)),
            datetime=when,
            footprint=footprint,
            relative_orbit=int(rel) if rel is not None else None,
            orbit_state=str(orbit).lower() if orbit else None,
            instrument_mode=props.get("instrumentMode"),
            polarizations=tuple(str(p).upper() for p in pols),
            sar_units=product.units,
            sar_radiometry=product.radiometry,
            sar_geometry=product.geometry,
            radiometric_offset=0.0,
            quantification=1.0,
            assets=assets,
            source_collection=collection_id,
        )
    product_id = str(props.get("PRODUCT_ID") or "")
    tile = normalise_tile(props.get("MGRS_TILE"))
    if tile is None:
        m = _TILE_IN_ID_RE.search(str(index)) or _TILE_IN_ID_RE.search(product_id)
        tile = m.group(1) if m else None
    rel = parse_number(props.get("SENSING_ORBIT_NUMBER"))
    orbit = props.get("SENSING_ORBIT_DIRECTION")
    baseline = _baseline(props)
    return SceneRecord(
        id=str(index),
        collection=collection,
        platform=normalise_platform(props.get("SPACECRAFT_NAME"), product_id),
        datetime=when,
        footprint=footprint,
        tile=tile,
        cloud_cover=parse_number(props.get("CLOUDY_PIXEL_PERCENTAGE")),
        shadow_percent=parse_number(props.get("CLOUD_SHADOW_PERCENTAGE")),
        cirrus_percent=parse_number(props.get("THIN_CIRRUS_PERCENTAGE")),
        processing_baseline=baseline,
        # *_HARMONIZED: Earth Engine already removed the baseline-04.00 offset (rule 1 of
        # cloudyeo.sentinel.radiometric_offset); other collections follow the baseline rule.
        radiometric_offset=radiometric_offset(
            baseline, offset_applied=collection_id.upper().endswith("_HARMONIZED")),
        quantification=S2_QUANTIFICATION,
        relative_orbit=int(rel) if rel is not None else None,
        orbit_state=str(orbit).lower() if orbit else None,
        assets=assets,
        source_collection=collection_id,
    )


# --------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------


def _iso_ms(t: dt.datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    t = t.astimezone(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def ee_grid(epsg: int, transform: Sequence[float], shape: tuple[int, int]) -> dict[str, Any]:
    """The computePixels ``grid`` for a target grid (rasterio/GDAL affine order a..f)."""
    a, b, c, d, e, f = (float(v) for v in transform[:6])
    return {
        "dimensions": {"width": int(shape[1]), "height": int(shape[0])},
        "affineTransform": {"scaleX": a, "shearX": b, "translateX": c,
                            "shearY": d, "scaleY": e, "translateY": f},
        "crsCode": f"EPSG:{int(epsg)}",
    }


# --------------------------------------------------------------------------------------
# the adapter
# --------------------------------------------------------------------------------------


class EarthEngineArchive:
    """Search and read Sentinel-1/2 from Earth Engine (see the module docstring).

    Parameters
    ----------
    project:
        Google Cloud project registered for Earth Engine (default: the key's ``project_id``).
    service_account_key:
        Path of a service-account JSON key (default: ``EE_SERVICE_ACCOUNT_KEY`` or
        ``GOOGLE_APPLICATION_CREDENTIALS`` from ``env``).
    collections:
        Logical name -> Earth Engine collection id, merged over :data:`COLLECTIONS`.
    page_size:
        Images per ``toList`` page.
    max_retries, timeout_s:
        Passed to ``ee.data.setMaxRetries`` / ``ee.data.setDeadline`` after initialising.
    initialize:
        False when the caller has initialised ``ee`` already (tests, notebooks); no key is
        needed then.
    env:
        Where the key variables are read (default ``os.environ``).
    """

    name = "earthengine"

    def __init__(
        self,
        *,
        project: str | None = None,
        service_account_key: str | os.PathLike[str] | None = None,
        collections: Mapping[str, str] | None = None,
        page_size: int = 500,
        max_retries: int = 5,
        timeout_s: float = 120.0,
        instrument_mode: str = S1_INSTRUMENT_MODE,
        polarizations: Sequence[str] = S1_POLARIZATIONS,
        initialize: bool = True,
        env: Mapping[str, str] | None = None,
    ):
        self.project = project
        self.service_account_key = str(service_account_key) if service_account_key else None
        self.collections: dict[str, str] = {**COLLECTIONS, **dict(collections or {})}
        self.page_size = max(1, int(page_size))
        self.max_retries = int(max_retries)
        self.timeout_s = float(timeout_s)
        self.instrument_mode = instrument_mode
        self.polarizations = tuple(polarizations)
        self._env = os.environ if env is None else env
        self._initialized = not initialize
        self.credential_env: str = CONFIG_KEY if self.service_account_key else KEY_ENVS[-1]

    @classmethod
    def from_config(cls, config: Mapping[str, Any], **kwargs: Any) -> EarthEngineArchive:
        """Build from the whole validated config (its ``earthengine`` section) or the section."""
        sec = dict((config.get("earthengine") if "archive" in config else config) or {})
        args: dict[str, Any] = {}
        for key, conv in (("project", str), ("service_account_key", str), ("page_size", int),
                          ("max_retries", int), ("timeout_s", float)):
            if sec.get(key) is not None:
                args[key] = conv(sec[key])
        if sec.get("collections"):
            args["collections"] = dict(sec["collections"])
        return cls(**{**args, **kwargs})

    def __repr__(self) -> str:
        return f"EarthEngineArchive(project={self.project!r})"

    # -- auth -----------------------------------------------------------------------------

    def key_path(self) -> tuple[Path, str]:
        """The service-account key file and where its path came from (config key or env)."""
        if self.service_account_key:
            return Path(self.service_account_key).expanduser(), CONFIG_KEY
        for name in KEY_ENVS:
            value = (self._env.get(name) or "").strip()
            if value:
                return Path(value).expanduser(), name
        raise AuthError(
            "Earth Engine needs a service-account key: set the environment variable "
            f"{KEY_ENVS[-1]} (or {KEY_ENVS[0]}) to the path of its JSON key file, or the config "
            f"key {CONFIG_KEY} (none is set); no request was made",
            credential_env=KEY_ENVS[-1])

    def credentials(self) -> tuple[Any, str | None]:
        """google-auth service-account credentials and the key's project id."""
        import ee

        path, source = self.key_path()
        self.credential_env = source
        where = f"the key file named by {source}"
        try:
            key = json.loads(path.read_text())
        except FileNotFoundError:
            raise AuthError(f"{where} does not exist: {path}", credential_env=source) from None
        except (OSError, ValueError) as exc:
            raise AuthError(f"{where} ({path}) is not readable JSON: {type(exc).__name__}",
                            credential_env=source) from None
        if not isinstance(key, dict) or key.get("type") != "service_account" or \
                not key.get("client_email") or not key.get("private_key"):
            raise AuthError(f"{where} ({path}) is not a service-account key "
                            "(type, client_email and private_key are required)", credential_env=source)
        register_secret(key.get("private_key"))
        register_secret(key.get("private_key_id"))
        try:
            creds = ee.ServiceAccountCredentials(key["client_email"], key_file=str(path))
        except Exception as exc:  # noqa: BLE001 - malformed key material
            raise AuthError(f"{where} ({path}) was rejected by google-auth: "
                            f"{type(exc).__name__}", credential_env=source) from None
        return creds, key.get("project_id")

    def initialize(self) -> None:
        """Initialise ``ee`` with the service account (once per archive)."""
        if self._initialized:
            return
        import ee

        creds, key_project = self.credentials()
        project = self.project or key_project
        self._call(lambda: ee.Initialize(creds, project=project), "initialise Earth Engine")
        if hasattr(ee.data, "setMaxRetries"):  # older clients retry a fixed 5 times
            ee.data.setMaxRetries(self.max_retries)
        ee.data.setDeadline(int(self.timeout_s * 1000))
        self._initialized = True
        log.info("Earth Engine initialised for project %s", project)

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        """Run an Earth Engine call, translating its errors (redacted)."""
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - translated below
            raise self._translate(exc, what) from None

    def _translate(self, exc: BaseException, what: str) -> Exception:
        status = _http_status(exc)
        text = redact(str(exc))[:300]
        if status in (401, 403) or _is_refresh_error(exc):
            return AuthError(
                f"Earth Engine refused the service account while trying to {what}"
                f"{f' (HTTP {status})' if status else ''}: {text}; check the key file named by "
                f"{self.credential_env} and that its account is registered for Earth Engine",
                status=status, credential_env=self.credential_env)
        if status is not None:
            return HttpError(f"Earth Engine failed to {what} (HTTP {status}): {text}", status=status)
        return HttpError(f"Earth Engine failed to {what}: {type(exc).__name__}: {text}")

    # -- searching --------------------------------------------------------------------------

    def server_collection(self, logical: str) -> str:
        try:
            return self.collections[logical]
        except KeyError:
            raise ValueError(
                f"collection {logical!r} has no Earth Engine id; map it with config key "
                f"earthengine.collections") from None

    def build_collection(self, query: SearchQuery) -> Any:
        """The filtered, sorted ``ee.ImageCollection`` for a query (nothing is sent)."""
        import ee

        cid = self.server_collection(query.collection)
        end = query.end + dt.timedelta(milliseconds=1)  # filterDate's end is exclusive
        coll = ee.ImageCollection(cid).filterDate(_iso_ms(query.start), _iso_ms(end))
        if query.intersects is not None:
            coll = coll.filterBounds(ee.Geometry(dict(query.intersects), None, False))
        if query.collection.startswith("sentinel-1"):
            coll = coll.filter(ee.Filter.eq("instrumentMode", self.instrument_mode))
            for pol in self.polarizations:
                coll = coll.filter(ee.Filter.listContains("transmitterReceiverPolarisation", pol))
        else:
            if query.tile is not None:
                coll = coll.filter(ee.Filter.eq("MGRS_TILE", normalise_tile(query.tile) or query.tile))
            if query.max_cloud_cover is not None:
                coll = coll.filter(ee.Filter.lte("CLOUDY_PIXEL_PERCENTAGE", float(query.max_cloud_cover)))
            if query.min_cloud_cover is not None:
                coll = coll.filter(ee.Filter.gte("CLOUDY_PIXEL_PERCENTAGE", float(query.min_cloud_cover)))
        return coll.sort("system:index")

    def search_images(self, query: SearchQuery) -> list[dict[str, Any]]:
        """Image ``getInfo`` dictionaries for a query (all pages, server-side filters only)."""
        self.initialize()
        coll = self.build_collection(query)
        images: list[dict[str, Any]] = []

        def list_page(start: int) -> Any:
            return coll.toList(self.page_size, start).getInfo()

        offset = 0
        pages = 0
        while True:
            page = self._call(partial(list_page, offset),
                              f"list {self.server_collection(query.collection)}")
            pages += 1
            page = [p for p in page or [] if isinstance(p, dict)]
            images.extend(page)
            if len(page) < self.page_size:
                break
            offset += self.page_size
        log.info("Earth Engine %s: %d images in %d pages", self.server_collection(query.collection),
                 len(images), pages)
        return images

    def search(self, query: SearchQuery) -> list[SceneRecord]:
        cid = self.server_collection(query.collection)
        return normalise_and_filter(
            self.search_images(query),
            lambda info: image_to_record(info, query.collection, cid),
            query, "Earth Engine",
        )

    # -- pixels -----------------------------------------------------------------------------

    def image_expression(self, record: SceneRecord, bands: Sequence[str], resampling: str) -> Any:
        """``ee.Image(<id>).select(<ee bands>, <bands>)[.resample()].toFloat().unmask(FILL, False)``."""
        import ee

        if resampling not in RESAMPLING:
            raise ValueError(f"resampling must be one of {sorted(RESAMPLING)}, not {resampling!r}")
        image = ee.Image(f"{self.server_collection(record.collection)}/{record.id}")
        image = image.select([band_to_ee(b) for b in bands], list(bands))
        mode = RESAMPLING[resampling]
        if mode:
            image = image.resample(mode)
        return image.toFloat().unmask(FILL, False)

    def read_window(
        self,
        record: SceneRecord,
        bands: Sequence[str],
        *,
        epsg: int,
        transform: tuple[float, ...],
        shape: tuple[int, int],
        resampling: str = "bilinear",
    ) -> np.ndarray:
        """:meth:`~cloudyeo.archives.reading.WindowReader.read_window` (Sentinel-1 in dB)."""
        import ee

        bands, rows, cols = window_request(bands, shape)
        self.initialize()
        expression = self.image_expression(record, bands, resampling)
        per_px = 4 * len(bands)
        max_rows = max(1, min(MAX_REQUEST_SIDE, MAX_REQUEST_BYTES // (per_px * min(cols, MAX_REQUEST_SIDE))))
        out = np.zeros((len(bands), rows, cols), dtype=np.float32)
        for r0, c0, nr, nc in grid_blocks((rows, cols), max_rows, MAX_REQUEST_SIDE):
            request = {
                "expression": expression,
                "fileFormat": "NUMPY_NDARRAY",
                "grid": ee_grid(epsg, block_transform(transform, r0, c0), (nr, nc)),
                "bandIds": bands,
            }
            data = self._call(partial(ee.data.computePixels, request), f"compute pixels of {record.id}")
            out[:, r0:r0 + nr, c0:c0 + nc] = _stack(data, bands, (nr, nc), record.id)
        out[out == FILL] = np.nan
        return out


def _stack(data: Any, bands: Sequence[str], shape: tuple[int, int], scene: str) -> np.ndarray:
    arr = np.asarray(data)
    if arr.dtype.names:
        missing = [b for b in bands if b not in arr.dtype.names]
        if missing:
            raise HttpError(f"Earth Engine returned no {missing} for {scene}")
        arr = np.stack([arr[b] for b in bands])
    elif arr.ndim == 3 and arr.shape[-1] == len(bands):
        arr = np.moveaxis(arr, -1, 0)
    if arr.shape != (len(bands), *shape):
        raise HttpError(f"Earth Engine returned pixels of shape {arr.shape} for {scene}, "
                        f"expected {(len(bands), *shape)}")
    return arr


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status behind an Earth Engine error (EEException hides the HttpError)."""
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        resp = getattr(e, "resp", None)
        status = getattr(resp, "status", None) if resp is not None else getattr(e, "status_code", None)
        if status is not None:
            try:
                return int(status)
            except (TypeError, ValueError):
                return None
        e = e.__cause__ or e.__context__
    return None


def _is_refresh_error(exc: BaseException) -> bool:
    try:
        from google.auth.exceptions import RefreshError
    except ImportError:  # pragma: no cover
        return False
    e: BaseException | None = exc
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, RefreshError):
            return True
        e = e.__cause__ or e.__context__
    return False


__all__ = [
    "COLLECTIONS",
    "EarthEngineArchive",
    "KEY_ENVS",
    "band_from_ee",
    "band_to_ee",
    "ee_grid",
    "image_to_record",
]
