"""The package's layers, lowest first: a module may import its own layer and the layers below,
never a layer above (tests/test_layering.py checks every import, function-level ones included).

    utilities -> archives / masks / metrics / models -> datasets | demo -> training -> report
    -> drivers -> cli

``demo`` sits beside ``datasets``: it writes an archive like any other, so neither imports the
other, and only the CLI (and tests) import the demo.
"""

from __future__ import annotations

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("utilities", ("cloudyeo", "cloudyeo.aois", "cloudyeo.atomic", "cloudyeo.climatology", "cloudyeo.config",
                   "cloudyeo.devices", "cloudyeo.grids", "cloudyeo.http", "cloudyeo.landcover", "cloudyeo.layers",
                   "cloudyeo.provenance", "cloudyeo.reben", "cloudyeo.sentinel", "cloudyeo.store")),
    ("sources and building blocks", ("cloudyeo.archives", "cloudyeo.masks", "cloudyeo.metrics", "cloudyeo.models")),
    ("datasets and the demo world", ("cloudyeo.datasets", "cloudyeo.demo")),
    ("training", ("cloudyeo.training",)),
    ("report", ("cloudyeo.report",)),
    ("drivers", ("cloudyeo.drivers",)),
    ("cli", ("cloudyeo.cli", "cloudyeo.__main__")),
)

# Packages of one layer that must not import each other, and who alone may import the demo.
APART = (("cloudyeo.datasets", "cloudyeo.demo"),)
DEMO_IMPORTERS = ("cloudyeo.demo", "cloudyeo.cli")


def _owner(module: str) -> tuple[int, str] | None:
    """(layer index, the longest matching prefix) of a module."""
    best: tuple[int, str] | None = None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (i, prefix)
    return best


def layer_of(module: str) -> int:
    owner = _owner(module)
    if owner is None:
        raise KeyError(f"{module} is in no layer of cloudyeo.layers.LAYERS: add it where it belongs")
    return owner[0]


def _package(module: str, packages: tuple[str, ...]) -> str | None:
    return next((p for p in packages if module == p or module.startswith(p + ".")), None)


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported`` (None when it may)."""
    a, b = layer_of(importer), layer_of(imported)
    if b > a:
        return f"upward: {importer} ({LAYERS[a][0]}) imports {imported} ({LAYERS[b][0]})"
    if _package(imported, ("cloudyeo.demo",)) and not _package(importer, DEMO_IMPORTERS):
        return f"{importer} imports the demo world ({imported}); only {', '.join(DEMO_IMPORTERS)} may"
    for pair in APART:
        pa, pb = _package(importer, pair), _package(imported, pair)
        if pa and pb and pa != pb:
            return f"{importer} and {imported}: {pa} and {pb} sit side by side and never import each other"
    return None
