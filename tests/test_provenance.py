import dis
import functools
import re
import shutil
from pathlib import Path

import pytest

from cloudyeo.provenance import (
    PACKAGE,
    RESOURCES,
    STAGE_ENTRIES,
    STAGE_EXCLUDES,
    STAGE_SOURCES,
    code_version,
    direct_imports,
    import_closure,
    stage_sources,
)

REPO = PACKAGE.parent.parent


def test_code_version_is_stable_and_per_stage():
    assert code_version("cben") == code_version("cben")
    assert code_version("cben") != code_version("demo")
    with pytest.raises(KeyError, match="unknown stage"):
        code_version("nope")
    with pytest.raises(KeyError, match="unknown stage"):
        STAGE_SOURCES["nope"]


def test_editing_a_stage_source_changes_only_the_stages_using_it(tmp_path):
    root = tmp_path / "cloudyeo"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    before = {s: code_version(s, root) for s in STAGE_SOURCES}
    with open(root / "datasets" / "cben.py", "a") as fh:
        fh.write("\n# an edit\n")
    code_version.cache_clear()
    after = {s: code_version(s, root) for s in STAGE_SOURCES}
    assert after["cben"] != before["cben"]
    assert after["demo"] == before["demo"] and after["climatology"] == before["climatology"]


def _edit_changes(tmp_path, rel: str) -> set[str]:
    root = tmp_path / "cloudyeo"
    if not root.exists():
        shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    code_version.cache_clear()
    before = {s: code_version(s, root) for s in STAGE_ENTRIES}
    with open(root / rel, "a") as fh:
        fh.write("\n# an edit\n")
    code_version.cache_clear()
    after = {s: code_version(s, root) for s in STAGE_ENTRIES}
    code_version.cache_clear()
    return {s for s in STAGE_ENTRIES if after[s] != before[s]}


def test_the_files_the_hand_kept_table_missed_are_in():
    # every stage writes files, through cloudyeo.atomic
    for stage, files in STAGE_SOURCES.items():
        assert "atomic.py" in files, stage
        assert "__init__.py" in files and "config.py" in files or stage.startswith("demo"), stage
    # fine-tuning loads pretrained weights through training/pretrain.py
    for stage in ("finetune", "evaluate"):
        assert "training/pretrain.py" in STAGE_SOURCES[stage], stage
    # each stage holds its entry modules, the schema with config.py, and no CLI
    for stage, entries in STAGE_ENTRIES.items():
        files = STAGE_SOURCES[stage]
        for e in entries:
            rel = e.removeprefix("cloudyeo.").replace(".", "/")
            assert f"{rel}.py" in files or f"{rel}/__init__.py" in files, (stage, e)
        assert ("schemas/config.schema.yaml" in files) == ("config.py" in files), stage
        assert "cli.py" not in files, stage


def test_edits_rerun_what_runs_them(tmp_path):
    assert _edit_changes(tmp_path, "atomic.py") == set(STAGE_ENTRIES)
    assert _edit_changes(tmp_path, "training/pretrain.py") >= {"pretrain", "finetune", "evaluate"}
    # one cloud-removal network: only the methods built on it (and nothing of the CBEN experiment)
    assert _edit_changes(tmp_path, "models/cloud_removal/aligncr.py") == {"cloud_removal_aligncr"}
    assert _edit_changes(tmp_path, "models/cloud_removal/dsen2cr.py") == {
        "cloud_removal_dsen2cr", "cloud_removal_hcrlc", "cloud_removal_hcr_then_lc"}
    # the data file config.py reads
    assert "cben" in _edit_changes(tmp_path, "schemas/config.schema.yaml")


def test_every_data_file_of_the_package_is_claimed_by_a_module():
    data = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*")
            if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    claimed = {f for files in RESOURCES.values() for f in files}
    assert data <= claimed, f"data files no module claims in provenance.RESOURCES: {data - claimed}"
    for module, files in RESOURCES.items():
        assert direct_imports(module) is not None  # the module exists
        for f in files:
            assert (PACKAGE / f).is_file(), f


def test_every_stage_the_workflow_names_is_known():
    text = (REPO / "Snakefile").read_text() + "".join(
        p.read_text() for p in sorted((REPO / "workflow").rglob("*.smk")))
    named = set(re.findall(r'code_version\("([a-z0-9_]+)"\)', text))
    assert named, "no code_version(...) call found in the workflow"
    assert named <= set(STAGE_ENTRIES), named - set(STAGE_ENTRIES)
    # cloud_removal_<kind> for every method kind the configured methods use
    from cloudyeo.config import load_config
    from cloudyeo.training.cloud_removal import method_config

    for path in (REPO / "config").glob("*.yaml"):
        cfg = load_config(path)
        for name in cfg["cloud_removal"]["methods"]:
            kind = method_config(cfg, name)["kind"]
            assert f"cloud_removal_{kind}" in STAGE_ENTRIES, (path.name, name, kind)


def test_relative_lazy_and_package_imports_on_a_toy_package(tmp_path):
    root = tmp_path / "cloudyeo"
    files = {
        "__init__.py": "",
        "a/__init__.py": "from cloudyeo.a.reexported import thing\n",
        "a/reexported.py": "thing = 1\n",
        "a/b.py": "import os\nimport numpy\nfrom . import c\nfrom ..d import f\n"
                  "def lazy():\n    from .sub import deep\n    import cloudyeo.e\n",
        "a/c.py": "from .. import d\n",
        "a/sub/__init__.py": "",
        "a/sub/deep.py": "from cloudyeo.a import thing\n",
        "d.py": "def f():\n    pass\n",
        "e.py": "",
        "unused.py": "import cloudyeo.a.b\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    assert direct_imports("cloudyeo.a.b", root) == {
        "cloudyeo.a.c", "cloudyeo.d", "cloudyeo.a.sub.deep", "cloudyeo.e"}
    assert direct_imports("cloudyeo.a.c", root) == {"cloudyeo.d"}
    # `from cloudyeo.a import thing` names a re-export: the package itself is followed
    assert direct_imports("cloudyeo.a.sub.deep", root) == {"cloudyeo.a"}
    assert import_closure(["cloudyeo.a.b"], root) == {
        "cloudyeo", "cloudyeo.a", "cloudyeo.a.b", "cloudyeo.a.c", "cloudyeo.d", "cloudyeo.e",
        "cloudyeo.a.sub", "cloudyeo.a.sub.deep", "cloudyeo.a.reexported"}
    assert import_closure(["cloudyeo.a.c"], root) == {"cloudyeo", "cloudyeo.a", "cloudyeo.a.c", "cloudyeo.d"}
    assert "cloudyeo.a.reexported" not in import_closure(["cloudyeo.a.c"], root)
    assert import_closure(["cloudyeo.a.b"], root, exclude={"cloudyeo.e"}) == import_closure(
        ["cloudyeo.a.b"], root) - {"cloudyeo.e"}
    with pytest.raises(KeyError, match="not a module"):
        import_closure(["cloudyeo.missing"], root)


# ----------------------------------------------------------------------------------------------
# Brute force: the same graph from the compiled bytecode (IMPORT_NAME), closed by fixed-point
# iteration over every module of the package, independently of provenance's ast walk
# ----------------------------------------------------------------------------------------------


def _all_modules(root: Path) -> dict[str, Path]:
    out = {}
    for p in root.rglob("*.py"):
        if "__pycache__" in p.parts:
            continue
        parts = list(p.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(["cloudyeo", *parts])] = p
    return out


def _bytecode_imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    found = set()
    stack = [compile(path.read_text(), str(path), "exec")]
    while stack:
        code = stack.pop()
        stack.extend(c for c in code.co_consts if hasattr(c, "co_code"))
        consts = []
        for ins in dis.get_instructions(code):
            if ins.opname == "IMPORT_NAME":
                level, fromlist = consts[-2], consts[-1]
                if level:
                    base_parts = package.split(".")[: len(package.split(".")) - (level - 1)]
                    target = ".".join(base_parts + ([ins.argval] if ins.argval else []))
                else:
                    target = ins.argval
                if fromlist:
                    subs = [f"{target}.{n}" for n in fromlist if n != "*"]
                    found.update(s for s in subs if s in modules)
                    if any(n == "*" or f"{target}.{n}" not in modules for n in fromlist):
                        found.add(target)
                else:
                    found.add(target)
            if ins.opname in ("LOAD_CONST", "LOAD_SMALL_INT"):  # the level: LOAD_SMALL_INT on 3.14
                consts.append(ins.argval)
    return {m for m in found if m in modules}


@functools.cache
def _bytecode_graph(root: Path) -> tuple[dict[str, Path], dict[str, set[str]]]:
    modules = _all_modules(root)
    return modules, {m: _bytecode_imports(m, p, modules) for m, p in modules.items()}


def _brute_force_sources(stage: str, root: Path) -> tuple[str, ...]:
    modules, edges = _bytecode_graph(root)
    exclude = STAGE_EXCLUDES.get(stage, frozenset())
    run = set(STAGE_ENTRIES[stage]) - exclude
    changed = True
    while changed:  # fixed point: add every import of every module that runs
        changed = False
        for m in list(run):
            new = edges[m] - run - exclude
            if new:
                run |= new
                changed = True
    files = set(run)
    for m in run:  # every parent package's __init__ runs too
        parts = m.split(".")
        files.update(".".join(parts[:i]) for i in range(1, len(parts)))
    files -= exclude
    rel = {modules[m].relative_to(root).as_posix() for m in files}
    for m in files:
        rel.update(RESOURCES.get(m, ()))
    return tuple(sorted(rel))


@pytest.mark.parametrize("stage", sorted(STAGE_ENTRIES))
def test_stage_sources_equal_a_brute_force_bytecode_closure(stage):
    assert stage_sources(stage) == _brute_force_sources(stage, PACKAGE)
    assert STAGE_SOURCES[stage] == stage_sources(stage)
