import shutil

import pytest

from cloudyeo.provenance import PACKAGE, STAGE_SOURCES, code_version


def test_code_version_is_stable_and_per_stage():
    assert code_version("cben") == code_version("cben")
    assert code_version("cben") != code_version("demo")
    with pytest.raises(KeyError, match="unknown stage"):
        code_version("nope")


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
