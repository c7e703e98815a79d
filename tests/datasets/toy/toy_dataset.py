"""A fifth, toy dataset made from this builder module alone: no rule text, no CLI code.

Three "scenes" of deterministic noise; one is skipped by the plan. Each scene is a unit of work
with two samples of a 1-band 8 x 8 float32 image; finalize writes an index, a table and a card.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from cloudyeo import store
from cloudyeo.datasets.builder import DatasetBuilder, StoreLayout, Summary, Table, WriteSamples

SCENES = ("scene-a", "scene-b", "scene-c")
PER_SCENE = 2


class ToyBuilder(DatasetBuilder):
    name = "toy_dataset"
    title = "Toy dataset"
    sections = ("results_dir",)
    outputs = {"index": "index.parquet", "stats": "statistics.csv", "card": "dataset_card.md"}
    archive_input = "none"

    def make_settings(self, cfg):
        return {"seed": 7}

    def plan(self, *, progress: bool = False) -> dict[str, pd.DataFrame]:
        skip = [None, "too cloudy", None]
        kept = np.cumsum([r is None for r in skip]) - 1
        return {"manifest": pd.DataFrame({
            "scene": SCENES, "skip_reason": skip,
            "sample_start": [int(k) * PER_SCENE if r is None else -1 for k, r in zip(kept, skip)],
        })}

    def units(self, plan):
        m = plan["manifest"]
        return m.loc[m["skip_reason"].isna(), "scene"].tolist()

    def layout(self, plan) -> StoreLayout:
        n = PER_SCENE * len(self.units(plan))
        variables = {"image": store.VariableSpec(("y", "x"), (8, 8), "float32", {"units": "1", "_FillValue": np.nan})}
        scenes = np.repeat(self.units(plan), PER_SCENE)
        return StoreLayout(n, variables, {"scene": (("sample",), scenes.astype(str))},
                           {"title": self.title, "code_version": self.code_version()}, "blosc-zstd1")

    def extract(self, unit: str, plan, write: WriteSamples, *, progress: bool = False) -> pd.DataFrame:
        row = plan["manifest"].set_index("scene").loc[unit]
        start = int(row["sample_start"])
        rng = np.random.default_rng([self.settings["seed"], SCENES.index(unit)])
        images = rng.random((PER_SCENE, 8, 8), dtype=np.float32)
        write(start, {"image": images})
        return pd.DataFrame({"sample": np.arange(start, start + PER_SCENE), "scene": unit,
                             "mean": images.mean(axis=(1, 2))})

    def sample_coords(self, plan, parts) -> dict[str, tuple]:
        return {"image_mean": (("sample",), parts.sort_values("sample")["mean"].to_numpy(np.float32))}

    def summarise(self, plan, parts, ds: Any, *, progress: bool = False) -> Summary:
        stats = pd.DataFrame({"samples": [int(ds.sizes["sample"])], "mean": [float(ds["image"].mean())]})
        return Summary(outputs={"index": parts, "stats": Table(stats, "%.6f", "Statistics")},
                       card=[("Variables", "- `image`: uniform noise in [0, 1)")],
                       complete_attrs={"n_samples": int(ds.sizes["sample"])})


BUILDER = ToyBuilder
