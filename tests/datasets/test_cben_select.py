import datetime as dt

from cloudyeo.archives.base import SceneRecord, SearchQuery, apply_filters
from cloudyeo.datasets.cben import choose_scene, select_scene

REF = dt.datetime(2017, 6, 13, 10, 10, 31, tzinfo=dt.UTC)


def scene(days, cloud, sid=None):
    when = REF + dt.timedelta(days=days)
    return SceneRecord(id=sid or f"S2_{days:+04d}", collection="sentinel-2-l2a", platform="sentinel-2a",
                       datetime=when, footprint={}, tile="33UUP", cloud_cover=cloud)


class FakeArchive:
    name = "fake"

    def __init__(self, scenes):
        self.scenes = scenes
        self.queries = []

    def search(self, query: SearchQuery):
        self.queries.append(query)
        return apply_filters(self.scenes, query)


def test_choose_closest_in_window_and_never_the_reference_itself():
    cands = [scene(0, 30.0), scene(10, 45.0), scene(-5, 80.0), scene(-15, 35.0)]
    best = choose_scene(cands, REF, 20.0, 50.0, 35.0)
    assert best.id == "S2_+010"


def test_ties_broken_by_distance_to_mean_then_id():
    a, b = scene(5, 40.0, "B"), scene(-5, 30.0, "A")
    assert choose_scene([a, b], REF, 20, 50, 31.0).id == "A"
    c, d = scene(5, 30.0, "D"), scene(-5, 30.0, "C")
    assert choose_scene([c, d], REF, 20, 50, 31.0).id == "C"


def test_window_widens_until_found():
    archive = FakeArchive([scene(-70, 33.0), scene(20, 90.0)])
    sel = select_scene(archive, "33UUP", REF, 20, 50, 35, search_days=30, max_search_days=90)
    assert sel.scene.id == "S2_-070"
    assert sel.search_attempts == 3 and sel.search_days == 90
    assert [q.end - q.start for q in archive.queries] == [dt.timedelta(days=2 * d) for d in (30, 60, 90)]


def test_skip_reason_when_nothing_qualifies():
    archive = FakeArchive([scene(10, 95.0)])
    sel = select_scene(archive, "33UUP", REF, 20, 50, 35, search_days=30, max_search_days=60)
    assert sel.scene is None
    assert "33UUP" in sel.skip_reason and "[20.0, 50.0]" in sel.skip_reason and "60 days" in sel.skip_reason


def test_client_side_filters_reapplied():
    other_tile = SceneRecord(id="x", collection="sentinel-2-l2a", platform="sentinel-2a",
                             datetime=REF, footprint={}, tile="32TNT", cloud_cover=40.0)
    q = SearchQuery("sentinel-2-l2a", REF - dt.timedelta(days=1), REF + dt.timedelta(days=1), tile="33UUP",
                    max_cloud_cover=50)
    assert apply_filters([other_tile, scene(0, 60.0), scene(0, 40.0, "ok")], q)[0].id == "ok"
