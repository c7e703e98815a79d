"""One-way layering (cloudyeo.layers): no upward import, no demo import outside the CLI, no
import cycle between modules. Imports are read statically (module and function level)."""

from __future__ import annotations

import pytest

from cloudyeo.layers import layer_of, violation
from cloudyeo.provenance import PACKAGE, direct_imports


def _modules() -> list[str]:
    out = []
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = list(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out.append(".".join(parts))
    return out


MODULES = _modules()
GRAPH = {m: sorted(d for d in direct_imports(m) if d != m) for m in MODULES}


def test_every_module_has_a_layer():
    missing = []
    for m in MODULES:
        try:
            layer_of(m)
        except KeyError:
            missing.append(m)
    assert not missing, f"modules in no layer: {missing}"


def test_no_upward_or_sideways_import():
    problems = [v for m, deps in GRAPH.items() for d in deps if (v := violation(m, d))]
    assert not problems, "\n".join(problems)


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph.get(root, ())))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(graph.get(nxt, ()))))
                elif nxt in on:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return out


def test_no_import_cycle():
    # A package's __init__ re-exporting its modules is not a cycle of logic: edges into a
    # package __init__ from its own submodules are left out.
    graph = {m: [d for d in deps if not m.startswith(d + ".")] for m, deps in GRAPH.items()}
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("importer, imported, ok", [
    ("cloudyeo.datasets.cben", "cloudyeo.report.cben_figures", False),
    ("cloudyeo.datasets.planetcr", "cloudyeo.demo.planet", False),
    ("cloudyeo.training.pretrain", "cloudyeo.datasets.reader", True),
    ("cloudyeo.cli", "cloudyeo.demo", True),
    ("cloudyeo.demo.world", "cloudyeo.datasets.common", False),
])
def test_rules_on_examples(importer, imported, ok):
    assert (violation(importer, imported) is None) is ok


def test_the_checks_see_imports_and_cycles():
    assert "cloudyeo.store" in GRAPH["cloudyeo.datasets.cben"]
    assert "cloudyeo.report.dataset_card" in GRAPH["cloudyeo.drivers"]  # a function-level import
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]
