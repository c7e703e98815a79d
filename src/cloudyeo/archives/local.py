"""A STAC catalog on disk: ``items.ndjson`` (+ ``collections.json``), e.g. the demo world.

Layout written by the demo generator::

    <resources_dir>/demo/catalog/items.ndjson      one STAC item per line, hrefs relative
    <resources_dir>/demo/catalog/collections.json  a JSON list of STAC collections

The file is read once and indexed by collection, tile and time; the items a query touches are
normalised with :func:`cloudyeo.archives.stac_items.item_to_record` (relative hrefs resolved
against the catalog folder) and filtered with :func:`cloudyeo.archives.base.apply_filters`.
Sentinel-1 items must declare storable physics (the demo world declares calibrated sigma0,
terrain-corrected, see :mod:`cloudyeo.demo.stac`); others raise
:class:`cloudyeo.archives.base.SarPhysicsError` on search, like every other adapter.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

from cloudyeo.archives.base import (
    SAR_CONFIG_KEYS,
    SceneRecord,
    SearchQuery,
    apply_filters,
    refuse_unstorable_sar,
)
from cloudyeo.archives.stac_items import extract_tile, item_to_record, parse_datetime

ITEMS_FILE = "items.ndjson"
COLLECTIONS_FILE = "collections.json"


class LocalStacArchive:
    """Answer :class:`SearchQuery` from a local STAC ndjson file."""

    name = "local"

    def __init__(self, catalog_path: str | os.PathLike[str]):
        path = Path(catalog_path)
        if path.is_dir():
            path = path / ITEMS_FILE
        self.items_path = path
        self.root = path.parent
        self._by_collection: dict[str, list[tuple[dt.datetime, int, dict[str, Any]]]] | None = None
        self._by_tile: dict[tuple[str, str], list[tuple[dt.datetime, int, dict[str, Any]]]] = {}
        self._records: dict[int, SceneRecord] = {}  # by line number
        self._collections: list[dict[str, Any]] | None = None

    def __repr__(self) -> str:
        return f"LocalStacArchive({str(self.items_path)!r})"

    # -- loading --------------------------------------------------------------------

    def _load(self) -> dict[str, list[tuple[dt.datetime, int, dict[str, Any]]]]:
        """Index the raw items by collection and tile; records are normalised on demand.

        Normalising every item costs ~10x the JSON parse, and one extraction job needs a
        handful of the thousands of items, so :meth:`search` normalises only the items whose
        collection, tile and time already match.
        """
        if self._by_collection is not None:
            return self._by_collection
        if not self.items_path.exists():
            raise FileNotFoundError(
                f"STAC catalog {self.items_path} not found; with archive: demo it is written by "
                f"the demo world generator (run the workflow's demo rule first)"
            )
        by_collection: dict[str, list] = defaultdict(list)
        by_tile: dict[tuple[str, str], list] = defaultdict(list)
        with open(self.items_path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    item = json.loads(line)
                    props = item["properties"]
                    when = parse_datetime(props.get("datetime") or props.get("start_datetime"))
                    collection = item["collection"]
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{self.items_path}:{lineno}: not a usable STAC item: {exc}") from exc
                if when is None:
                    raise ValueError(f"{self.items_path}:{lineno}: STAC item {item.get('id')} has no datetime")
                by_collection[collection].append((when, lineno, item))
                tile = extract_tile(props, item.get("id", ""))
                if tile:
                    by_tile[(collection, tile)].append((when, lineno, item))
        self._by_collection = dict(by_collection)
        self._by_tile = dict(by_tile)
        return self._by_collection

    def _record(self, lineno: int, item: dict[str, Any]) -> SceneRecord:
        record = self._records.get(lineno)
        if record is None:
            try:
                record = item_to_record(item, base_href=str(self.root.resolve()) + os.sep)
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{self.items_path}:{lineno}: not a usable STAC item: {exc}") from exc
            self._records[lineno] = record
        return record

    @property
    def collections(self) -> list[dict[str, Any]]:
        """The STAC collections from ``collections.json`` (empty when the file is absent)."""
        if self._collections is None:
            path = self.root / COLLECTIONS_FILE
            if path.exists():
                data = json.loads(path.read_text(encoding="utf-8"))
                self._collections = data if isinstance(data, list) else [data]
            else:
                self._collections = []
        return self._collections

    def records(self, collection: str | None = None) -> list[SceneRecord]:
        """All records (of one collection), in file order."""
        data = self._load()
        groups = data.values() if collection is None else [data.get(collection, ())]
        return [self._record(lineno, item) for group in groups for _, lineno, item in group]

    def __len__(self) -> int:
        return sum(len(v) for v in self._load().values())

    # -- the protocol ---------------------------------------------------------------

    def search(self, query: SearchQuery) -> list[SceneRecord]:
        data = self._load()
        if query.tile is not None:
            entries = self._by_tile.get((query.collection, query.tile), [])
        else:
            entries = data.get(query.collection, [])
        candidates = [self._record(lineno, item) for when, lineno, item in entries
                      if query.start <= when <= query.end]
        found = apply_filters(candidates, query)
        refuse_unstorable_sar(found, f"local catalog {self.items_path}", SAR_CONFIG_KEYS["local"])
        return found

    def sign_href(self, href: str, collection: str | None = None) -> str:
        """Local files need no signing."""
        return href


__all__ = ["COLLECTIONS_FILE", "ITEMS_FILE", "LocalStacArchive"]
