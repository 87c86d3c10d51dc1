"""Places: positions kept as ints, a Where made only when asked."""

from __future__ import annotations

from array import array

import pytest

from lumozbatch.core.where import Places, Where


def test_places_of_a_manifest_list_make_its_items_wheres() -> None:
    places = Places("m.yaml", ("jobs", 0, "matrix", "seed"), array("i", [9, 13, 9, 16]))
    assert len(places) == 2
    assert places[1] == Where("m.yaml", 9, 16, "jobs[0].matrix.seed[1]", ("jobs", 0, "matrix", "seed", 1))
    assert places[-1] == places[1]
    assert str(places[0].diag("bad")) == "m.yaml:9:13: jobs[0].matrix.seed[0]: bad"
    with pytest.raises(IndexError):
        places[2]


def test_places_of_a_source_have_no_manifest_path() -> None:
    places = Places("s.txt", None, array("i", [1, 1, 3, 1]))
    assert list(places) == [Where("s.txt", 1, 1), Where("s.txt", 3, 1)]
    assert places == (Where("s.txt", 1, 1), Where("s.txt", 3, 1))
    assert places != (Where("s.txt", 1, 1),)
