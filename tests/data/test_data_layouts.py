"""--data folders laid out a little off, as people unpack them: names in another case, ``styles/``
and ``photos/``, the whole layout one folder deeper, style folders named like the model's styles in
another case. Each is read as meant and said; before, their style images were read as content photos."""
import numpy as np
import torch
from PIL import Image

from interp_gan.config import DataConfig, PipelineConfig
from interp_gan.data import load_data
from interp_gan.data.folders import resolve_data_dir
from interp_gan.pipeline import analysis_data
from interp_gan.subject.protocol import Subject


def _pngs(folder, n, value):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.full((20, 20, 3), value, np.uint8)).save(folder / f"{i}.png")


def _counts(kw):
    sd = load_data(DataConfig(**kw, image_size=16, load_size=16))
    return len(sd.content), (0 if sd.style is None else len(sd.style))


def test_cyclegan_halves_in_another_case_are_not_read_as_content(tmp_path):
    d = tmp_path / "h2z"
    _pngs(d / "TrainA", 3, 10)
    _pngs(d / "TrainB", 5, 200)
    kw, notes = resolve_data_dir(d, ["B"])
    assert _counts(kw) == (3, 5)
    assert "read TrainA/ as trainA/, TrainB/ as trainB/" in notes
    kw, _ = resolve_data_dir(d, ["output"])
    assert _counts(kw) == (3, 0)                               # not 3 + 5 content photos


def test_styles_and_photos_folders_are_the_layout(tmp_path):
    d = tmp_path / "mine"
    _pngs(d / "photos", 4, 10)
    _pngs(d / "styles" / "monet", 2, 200)
    kw, notes = resolve_data_dir(d, ["monet"])
    assert kw == {"source": str(d / "styles"), "content": str(d / "photos"), "styles": ("monet",)}
    assert "read photos/ as content/, styles/ as style/" in notes
    assert _counts(kw) == (4, 2)


def test_a_layout_one_folder_deeper_is_read_there(tmp_path):
    d = tmp_path / "download"
    _pngs(d / "mydata" / "content", 4, 10)
    _pngs(d / "mydata" / "style" / "a", 2, 200)
    kw, notes = resolve_data_dir(d, ["a"])
    assert kw["content"] == str(d / "mydata" / "content") and kw["styles"] == ("a",)
    assert any("holds one folder, mydata/, with the data layout" in n for n in notes)
    assert _counts(kw) == (4, 2)
    _pngs(d / "loose", 1, 50)                                  # two folders: a folder of photos, as before
    kw, _ = resolve_data_dir(d, ["a"])
    assert kw == {"source": "", "content": str(d), "styles": ()}


def test_style_folders_in_another_case_stand_for_the_models_styles(tmp_path):
    d = tmp_path / "data"
    for i in range(8):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
            (d / "content").mkdir(parents=True, exist_ok=True) or d / "content" / f"{i}.png")
    _pngs(d / "style" / "Monet", 2, 200)
    _pngs(d / "style" / "VanGogh", 3, 50)
    kw, notes = resolve_data_dir(d, ["monet", "vangogh"])
    assert kw["styles"] == ("Monet", "VanGogh")
    assert any("in another case: Monet as monet, VanGogh as vangogh" in n for n in notes)
    s = Subject.wrap_module(torch.nn.Identity(), style_names=["monet", "vangogh"])
    data = analysis_data(s, PipelineConfig.from_dict({"name": "t", "n_images": 8, "image_size": 16}), str(d))
    assert data.style_labels is not None and sorted(data.style_labels.tolist()) == [0, 0, 1, 1, 1]


def test_too_few_photos_names_adding_images_not_only_n_images():
    import pytest

    from interp_gan.findings.stats import require_samples
    with pytest.raises(ValueError, match="or add images to a --data folder that holds fewer"):
        require_samples(3)
