"""Output names stay inside the output folder (``shell.paths.safe_target``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lumozbatch.shell.paths import safe_join, safe_target


def test_a_name_becomes_a_path_inside_the_folder(tmp_path: Path) -> None:
    assert safe_target(tmp_path, "grid/s1/3.png") == tmp_path / "grid" / "s1" / "3.png"
    assert safe_target(tmp_path, "a..b/c.png") == tmp_path / "a..b" / "c.png"  # dots inside a part are a name


@pytest.mark.parametrize("stem", ["", "/", "/etc/passwd", "..", ".", "../x.png", "a/../../x.png", "a/./x.png",
                                  "a//x.png", "a/", "a/..", "./a"])
def test_a_name_that_would_leave_the_folder_is_refused(tmp_path: Path, stem: str) -> None:
    with pytest.raises(ValueError, match="would leave the output folder"):
        safe_target(tmp_path, stem)
    with pytest.raises(ValueError, match="would leave the output folder"):
        safe_join(str(tmp_path), stem)


def test_the_string_join_names_the_same_file(tmp_path: Path) -> None:
    for stem in ("grid/s1/3.png", "a..b/c.png", ".lumozbatch/objects/ab/ab12.png", "...", "a/.b"):
        assert Path(safe_join(str(tmp_path), stem)) == safe_target(tmp_path, stem)
