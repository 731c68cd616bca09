"""Folder data sets: style folders, CycleGAN layout, layout errors, load_data shapes and fingerprint."""
import numpy as np
import pytest
import torch
from PIL import Image

from interp_gan.config import DataConfig
from interp_gan.data import load_data


def _img(path, value, size=(20, 24)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[0], size[1], 3), value, np.uint8)).save(path)


@pytest.fixture
def style_tree(tmp_path):
    for i in range(3):
        _img(tmp_path / "photos" / f"p{i}.png", 10 * i)
    _img(tmp_path / "photos" / "nested" / "deep.jpg", 40)
    for i in range(2):
        _img(tmp_path / "styles" / "zebra" / f"z{i}.png", 255)
    for i in range(3):
        _img(tmp_path / "styles" / "apple" / f"a{i}.png", 0)
    return tmp_path


def _cfg(**kw):
    return DataConfig(image_size=16, load_size=16, **kw)


def test_style_folder_loads_labels_and_ranges(style_tree):
    d = load_data(_cfg(source=str(style_tree / "styles"), content=str(style_tree / "photos")))
    assert d.content.shape == (4, 3, 16, 16) and d.content.dtype == torch.float32
    assert d.style.shape == (5, 3, 16, 16)
    assert d.style_names == ["apple", "zebra"]                 # sorted subfolder names
    assert d.style_labels.dtype == torch.int64
    assert d.style_labels.tolist() == [0, 0, 0, 1, 1]
    assert torch.all(d.style[d.style_labels == 0] == -1) and torch.all(d.style[d.style_labels == 1] == 1)
    assert d.content.min() >= -1 and d.content.max() <= 1
    assert d.source == str(style_tree / "styles") and d.skipped == {}
    assert len(d.fingerprint) == 64


def test_style_selection_and_unknown_style(style_tree):
    d = load_data(_cfg(source=str(style_tree / "styles"), content=str(style_tree / "photos"),
                       styles=("zebra",)))
    assert d.style_names == ["zebra"] and d.style_labels.tolist() == [0, 0]
    with pytest.raises(ValueError, match=r"valid names: \['apple', 'zebra'\]"):
        load_data(_cfg(source=str(style_tree / "styles"), content=str(style_tree / "photos"),
                       styles=("monet",)))


def test_fingerprint_tracks_files_and_load_size(style_tree):
    cfg = _cfg(source=str(style_tree / "styles"), content=str(style_tree / "photos"))
    f0 = load_data(cfg).fingerprint
    assert load_data(cfg).fingerprint == f0
    assert load_data(DataConfig(source=cfg.source, content=cfg.content, image_size=16,
                                load_size=20)).fingerprint != f0
    _img(style_tree / "styles" / "apple" / "a0.png", 1)            # one pixel value changes
    assert load_data(cfg).fingerprint != f0


def test_bad_images_in_folders_are_counted(style_tree):
    (style_tree / "styles" / "apple" / "broken.png").write_text("not a png")
    (style_tree / "photos" / "empty.jpg").write_bytes(b"")
    d = load_data(_cfg(source=str(style_tree / "styles"), content=str(style_tree / "photos"),
                       max_bad_fraction=0.3))
    assert d.skipped == {"not an image": 1, "empty file": 1}
    assert d.style.shape[0] == 5 and d.content.shape[0] == 4
    with pytest.raises(ValueError, match=r"content folder .*1 of 5.*max_bad_fraction=0.1"):
        load_data(_cfg(source=str(style_tree / "styles"), content=str(style_tree / "photos"),
                       max_bad_fraction=0.1))
    (style_tree / "photos" / "empty.jpg").unlink()
    with pytest.raises(ValueError, match=r"style 'apple'.*1 of 4.*max_bad_fraction"):
        load_data(_cfg(source=str(style_tree / "styles"), content=str(style_tree / "photos"),
                       max_bad_fraction=0.1))


def test_flat_style_folder_says_expected_layout(tmp_path):
    for i in range(2):
        _img(tmp_path / "styles" / f"s{i}.png", 0)
    _img(tmp_path / "photos" / "p.png", 0)
    with pytest.raises(ValueError) as e:
        load_data(_cfg(source=str(tmp_path / "styles"), content=str(tmp_path / "photos")))
    msg = str(e.value)
    assert "STYLE_DIR/<style_name>/*.png" in msg and "got 2 image file(s)" in msg
    assert "trainA" in msg                                         # mentions the other layout


def test_empty_folders_say_expected_layout(tmp_path):
    (tmp_path / "styles" / "monet").mkdir(parents=True)
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"content folder .* holds no images .*got 1 other file.*"
                                          r"expected STYLE_DIR/<style_name>/\*\.png"):
        load_data(_cfg(source=str(tmp_path / "styles"), content=str(tmp_path / "photos")))
    _img(tmp_path / "photos" / "p.png", 0)
    with pytest.raises(ValueError, match=r"style 'monet' folder .* holds no images"):
        load_data(_cfg(source=str(tmp_path / "styles"), content=str(tmp_path / "photos")))
    with pytest.raises(ValueError, match="does not exist"):
        load_data(_cfg(source=str(tmp_path / "nowhere"), content=str(tmp_path / "photos")))
    with pytest.raises(ValueError, match="data.content must name a folder"):
        _img(tmp_path / "styles" / "monet" / "m.png", 0)
        load_data(_cfg(source=str(tmp_path / "styles")))


def test_cyclegan_layout(tmp_path):
    for i in range(3):
        _img(tmp_path / "h2z" / "trainA" / f"h{i}.jpg", 50)
    for i in range(2):
        _img(tmp_path / "h2z" / "trainB" / f"z{i}.jpg", 200)
    _img(tmp_path / "h2z" / "testA" / "t.jpg", 0)                  # optional, not used
    d = load_data(_cfg(source=str(tmp_path / "h2z")))
    assert d.style_names == ["B"] and d.content.shape[0] == 3 and d.style.shape[0] == 2
    assert d.style_labels.tolist() == [0, 0]
    with pytest.raises(ValueError, match="leave data.content empty"):
        load_data(_cfg(source=str(tmp_path / "h2z"), content=str(tmp_path / "h2z" / "testA")))
    (tmp_path / "half" / "trainA").mkdir(parents=True)
    with pytest.raises(ValueError, match="trainA/ but not the other half"):
        load_data(_cfg(source=str(tmp_path / "half"), content=str(tmp_path / "h2z" / "trainA")))


def test_non_square_images_are_resized_and_centre_cropped(tmp_path):
    a = np.zeros((40, 80, 3), np.uint8)
    a[:, 20:60] = 255                                  # white centre square, black side bands
    (tmp_path / "photos").mkdir()
    Image.fromarray(a).save(tmp_path / "photos" / "wide.png")
    _img(tmp_path / "styles" / "s" / "x.png", 0)
    d = load_data(_cfg(source=str(tmp_path / "styles"), content=str(tmp_path / "photos")))
    assert d.content.shape == (1, 3, 16, 16)
    assert d.content.min() > 0.5     # only the white centre survives (black bands would be -1)


def test_content_only_source(style_tree):
    d = load_data(_cfg(source="", content=str(style_tree / "photos")))
    assert d.content.shape == (4, 3, 16, 16)
    assert d.style.shape == (0, 3, 16, 16) and d.style_labels.shape == (0,) and d.style_names == []
    assert d.source == str(style_tree / "photos")
    with pytest.raises(ValueError, match="data.content names no folder"):
        load_data(_cfg(source=""))
