"""``select_styles``: the one choice of style folders that training's data folders (``resolve_folders``)
and a style set's codes (``style_folders``) share; their unknown-style lines stay as they were."""
import re

import pytest

from interp_gan.data.folders import resolve_folders, select_styles
from interp_gan.subject.style_set import style_folders


def _style_dir(tmp_path):
    for name in ("monet", "ukiyoe", "vangogh"):
        (tmp_path / "styles" / name).mkdir(parents=True)
    (tmp_path / "photos").mkdir()
    return tmp_path / "styles"


def test_select_styles_keeps_the_asked_order_once_each(tmp_path):
    avail = {n: tmp_path / n for n in ("a", "b", "c")}
    assert select_styles(avail, ()) is avail
    assert select_styles(avail, None) is avail
    assert list(select_styles(avail, ["c", "a", "c"])) == ["c", "a"]
    with pytest.raises(ValueError, match=re.escape("unknown style(s) ['z']; valid names: ['a', 'b', 'c']")):
        select_styles(avail, ["a", "z"])
    with pytest.raises(ValueError, match=re.escape("unknown style(s) ['z'] in SET; valid")):
        select_styles(avail, ["z"], where="SET")


def test_both_callers_choose_and_refuse_alike(tmp_path):
    styles = _style_dir(tmp_path)
    _, dirs = resolve_folders(styles, tmp_path / "photos", ("vangogh", "monet"))
    assert list(dirs) == ["vangogh", "monet"]
    assert list(style_folders(str(styles), ["vangogh", "monet"])) == ["vangogh", "monet"]
    assert list(style_folders(str(styles), None)) == ["monet", "ukiyoe", "vangogh"]
    with pytest.raises(ValueError, match=re.escape("unknown style(s) ['cubism']; valid names: "
                                                   "['monet', 'ukiyoe', 'vangogh']")):
        resolve_folders(styles, tmp_path / "photos", ("cubism",))
    with pytest.raises(ValueError, match=re.escape(f"unknown style(s) ['cubism'] in {styles}; valid names: "
                                                   "['monet', 'ukiyoe', 'vangogh']")):
        style_folders(str(styles), ["cubism"])
