"""The embedded offline set: lazy, deterministic, atomic, content/style photos disjoint."""
import json

import pytest
import torch

from interp_gan.config import DataConfig
from interp_gan.data import DEMO_STYLES, EMBEDDED_STYLES, cache_dir, load_data
from interp_gan.data import embedded


@pytest.fixture
def small(monkeypatch):
    """Shrink the build so a test stays in a few seconds (the spec hash changes with it)."""
    monkeypatch.setattr(embedded, "N_CONTENT", 7)
    monkeypatch.setattr(embedded, "N_PER_STYLE", 4)


def test_style_names():
    assert len(EMBEDDED_STYLES) == 29 == len(set(EMBEDDED_STYLES))
    assert EMBEDDED_STYLES[:2] == ["lite00", "lite01"] and EMBEDDED_STYLES[-3:] == ["brick", "grass", "gravel"]
    assert len(DEMO_STYLES) == 4 and set(DEMO_STYLES) <= set(EMBEDDED_STYLES)


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("INTERP_GAN_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("INTERP_GAN_CACHE")
    assert cache_dir().parts[-2:] == (".cache", "interp_gan")


def test_build_is_lazy_and_deterministic(small, tmp_path):
    torch.manual_seed(0)
    cfg = DataConfig(styles=("lite17", "gravel"), image_size=32, load_size=32)
    a = load_data(cfg, cache=tmp_path / "a")
    b = load_data(cfg, cache=tmp_path / "b")                    # a fresh build elsewhere
    assert a.fingerprint == b.fingerprint
    assert torch.equal(a.style, b.style) and torch.equal(a.content, b.content)
    assert a.content.shape == (7, 3, 32, 32) and a.style.shape == (8, 3, 32, 32)
    assert a.style_names == ["lite17", "gravel"] and a.style_labels.tolist() == [0] * 4 + [1] * 4
    assert a.source == "embedded" and a.skipped == {}
    assert -1 <= a.style.min() < a.style.max() <= 1
    gravel = a.style[4:]
    assert torch.equal(gravel[:, 0], gravel[:, 1])              # grey texture -> RGB
    root = embedded.embedded_root(tmp_path / "a")
    assert sorted(p.name for p in (root / "style").iterdir()) == ["gravel", "lite17"]  # only these
    assert not [p for p in root.rglob(".*tmp*")]                # no temp folders left
    assert (root / "manifest.json").is_file()
    # asking for another style later builds only that one and keeps the others
    c = load_data(DataConfig(styles=("lite17", "brick"), image_size=32, load_size=32),
                  cache=tmp_path / "a")
    assert torch.equal(c.style[:4], a.style[:4])
    assert sorted(p.name for p in (root / "style").iterdir()) == ["brick", "gravel", "lite17"]


def test_content_and_style_photos_are_disjoint(small, tmp_path, monkeypatch):
    assert not set(embedded.CONTENT_PHOTOS) & set(embedded.STYLE_PHOTOS)
    used = []
    real = embedded._load_photo
    monkeypatch.setattr(embedded, "_load_photo", lambda name: used.append(name) or real(name))
    root = embedded.embedded_root(tmp_path)
    embedded._build_atomically(root / "content", embedded._fill_content)
    assert set(used) == set(embedded.CONTENT_PHOTOS)
    used.clear()
    embedded.ensure_embedded(["lite03"], cache=tmp_path)        # content exists: style part only
    assert set(used) == set(embedded.STYLE_PHOTOS)
    manifest = json.loads((root / "manifest.json").read_text())  # the split is recorded
    assert manifest["content_photos"] == list(embedded.CONTENT_PHOTOS)
    assert manifest["style_photos"] == list(embedded.STYLE_PHOTOS)


def test_interrupted_build_leaves_no_half_cache(small, tmp_path, monkeypatch):
    calls = []

    def broken(out):
        (out / "0000.png").write_bytes(b"partial")
        calls.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        embedded._build_atomically(tmp_path / "content", broken)
    assert calls and not (tmp_path / "content").exists()
    assert list(tmp_path.iterdir()) == []                       # the temp folder is gone too
    embedded._build_atomically(tmp_path / "content", embedded._fill_content)
    assert len(list((tmp_path / "content").glob("*.png"))) == 7


def test_unknown_embedded_style_lists_valid_names(tmp_path):
    with pytest.raises(ValueError, match=r"unknown embedded style\(s\) \['monet'\]; valid names: .*lite00"):
        load_data(DataConfig(styles=("monet",)), cache=tmp_path)
    assert not any(tmp_path.iterdir())                          # nothing built for a bad request
