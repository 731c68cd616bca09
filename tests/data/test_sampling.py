"""A large --data folder: analysis decodes only the files it uses, chosen by seed before decoding.

Each photo is a 2 x 2 PNG whose colour encodes its index, so the test reads back which files were used."""
import io
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import interp_gan.data.images as images
from interp_gan.config import DataConfig, PipelineConfig
from interp_gan.data import load_data
from interp_gan.pipeline import analysis_data
from interp_gan.subject.protocol import Subject

N_FILES = 3000


def _png(i: int) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (2, 2), (i % 256, i // 256, 77)).save(b, "PNG")
    return b.getvalue()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """DIR/content/ with 3000 photos, DIR/style/a/ with 40 and DIR/style/b/ with 5 images."""
    d = tmp_path_factory.mktemp("big")
    for sub, n in [("content", N_FILES), ("style/a", 40), ("style/b", 5)]:
        (d / sub).mkdir(parents=True)
        for i in range(n):
            (d / sub / f"{i:05d}.png").write_bytes(_png(i))
    return d


def _indices(t: torch.Tensor) -> list[int]:
    """The file index each image's colour encodes."""
    px = torch.round((t[:, :, 0, 0] + 1) / 2 * 255).long()
    return (px[:, 0] + 256 * px[:, 1]).tolist()


def _count_decodes(monkeypatch) -> list[int]:
    calls = [0]
    real = images.decode_image

    def counting(data, *a, **kw):
        calls[0] += 1
        return real(data, *a, **kw)
    monkeypatch.setattr(images, "decode_image", counting)
    return calls


def _cfg(**kw) -> PipelineConfig:
    return PipelineConfig.from_dict({"name": "t", "n_images": 16, "image_size": 16, "batch_size": 8,
                                     "style_images_per_style": 8, **kw})


def test_analysis_decodes_only_the_photos_it_uses_in_the_seeded_order(big, monkeypatch, capsys):
    calls = _count_decodes(monkeypatch)
    subject = Subject.from_module(torch.nn.Identity(), style_names=["a", "b"])
    data = analysis_data(subject, _cfg(), str(big))
    assert calls[0] == 16 + 8 + 5                    # 16 photos, 8 of style a's 40, all 5 of b
    order = torch.randperm(N_FILES, generator=torch.Generator().manual_seed(0))
    assert _indices(data.content) == order[:16].tolist()       # the seeded permutation of the sorted names
    other = analysis_data(subject, _cfg(seed=1), str(big))
    assert _indices(other.content) == torch.randperm(N_FILES, generator=torch.Generator().manual_seed(1))[:16].tolist()
    assert other.fingerprint != data.fingerprint
    out = capsys.readouterr().out
    assert out.count("data: content: 16 of 3,000 photos used (seeded sample)") == 2
    assert "content: 16 of 3,000 photos used (seeded sample)" in data.extra["data_notes"]


def test_the_style_cap_reads_a_seeded_sample_kept_in_file_order(big, monkeypatch):
    subject = Subject.from_module(torch.nn.Identity(), style_names=["a", "b"])
    data = analysis_data(subject, _cfg(), str(big))
    a = data.style_labels == 0
    picked = _indices(data.style_images[a])
    assert len(picked) == 8 and picked == sorted(picked)       # 8 of 40, in file order
    assert picked == sorted(torch.randperm(40, generator=torch.Generator().manual_seed(0))[:8].tolist())
    assert _indices(data.style_images[~a]) == [0, 1, 2, 3, 4]   # b holds fewer than the cap: all of it
    assert "style images: a 8 of 40 used (seeded sample, at most 8 per style)" in data.extra["data_notes"]
    with pytest.raises(ValueError, match="style_images_per_style must be >= 2"):
        _cfg(style_images_per_style=1)


def test_the_fingerprint_covers_exactly_the_files_used(big, tmp_path):
    subject = Subject.from_module(torch.nn.Identity(), style_names=["a", "b"])
    data = analysis_data(subject, _cfg(), str(big))
    used = tmp_path / "used"                        # a folder holding only the files used, read whole
    for sub, idx in [("content", _indices(data.content)),
                     ("style/a", _indices(data.style_images[data.style_labels == 0])),
                     ("style/b", _indices(data.style_images[data.style_labels == 1]))]:
        (used / sub).mkdir(parents=True)
        for i in idx:
            shutil.copy(big / sub / f"{i:05d}.png", used / sub / f"{i:05d}.png")
    whole = load_data(DataConfig(source=str(used / "style"), content=str(used / "content"), image_size=16,
                                 load_size=16))
    assert whole.fingerprint == data.fingerprint
    # a folder holding no more than is used is read whole, as before: same fingerprint as load_data
    small = analysis_data(subject, _cfg(n_images=64, style_images_per_style=512), str(used))
    assert small.fingerprint == whole.fingerprint and len(small) == 16
    assert _indices(small.content) == [sorted(_indices(data.content))[i] for i in
                                       torch.randperm(16, generator=torch.Generator().manual_seed(0)).tolist()]
    assert not any("seeded sample" in n for n in small.extra["data_notes"])


def test_bad_files_in_the_sample_are_skipped_and_counted(tmp_path, monkeypatch):
    c = tmp_path / "photos"
    c.mkdir()
    order = torch.randperm(N_FILES, generator=torch.Generator().manual_seed(0)).tolist()
    bad = {order[0], order[5]}                      # met first and sixth in the seeded order
    for i in range(N_FILES):
        (c / f"{i:05d}.png").write_bytes(b"" if i in bad else _png(i))
    calls = _count_decodes(monkeypatch)
    subject = Subject.from_module(torch.nn.Identity())
    data = analysis_data(subject, _cfg(), str(c))
    # a bad file met: the share is judged on 100 files tried (the good ones past 16 are not kept)
    assert calls[0] == 100 and len(data) == 16
    assert _indices(data.content) == [i for i in order[:18] if i not in bad]
    assert data.extra["skipped_images"] == {"empty file": 2}
    assert sorted(data.extra["skipped_files"]) == sorted(f"content/{i:05d}.png" for i in bad)
    # max_bad_fraction applies to the files tried: 2 of the first 100 is more than 0.01 of them
    with pytest.raises(ValueError, match=r"2 of 100 images tried \(of 3000 listed\) could not be read"):
        analysis_data(subject, _cfg(max_bad_fraction=0.01), str(c))


def test_a_small_sample_does_not_fail_a_folder_by_the_luck_of_its_draw(tmp_path, monkeypatch):
    """2 bad files of 3000, met first and second in the seeded order: 2 of the first 6 tried would
    be over 0.2, but the share is judged on 100 files, where it is 0.02."""
    c = tmp_path / "photos"
    c.mkdir()
    order = torch.randperm(N_FILES, generator=torch.Generator().manual_seed(0)).tolist()
    bad = {order[0], order[1]}
    for i in range(N_FILES):
        (c / f"{i:05d}.png").write_bytes(b"" if i in bad else _png(i))
    subject = Subject.from_module(torch.nn.Identity())
    data = analysis_data(subject, _cfg(n_images=4, max_bad_fraction=0.2), str(c))
    assert len(data) == 4 and _indices(data.content) == order[2:6]
    assert data.extra["skipped_images"] == {"empty file": 2}


def test_listing_a_folder_stats_no_file(big, monkeypatch):
    calls = [0]
    for name in ("stat", "lstat"):
        real = getattr(os, name)

        def counting(*a, _real=real, **kw):
            calls[0] += 1
            return _real(*a, **kw)
        monkeypatch.setattr(os, name, counting)
    files, left = images.image_paths(big / "content")
    assert len(files) == N_FILES and left == {}
    assert calls[0] < 20, calls[0]                   # not one (or two) per file
    assert images.folder_inventory(big / "content")[0][:2] == [big / "content" / "00000.png",
                                                              big / "content" / "00001.png"]
    assert images.has_images(big) and not images.has_images(big, recursive=False)   # big/ holds folders only


def test_the_style_classifiers_cache_follows_the_style_images_alone(big, monkeypatch):
    import interp_gan.training.classifiers as classifiers
    from interp_gan.pipeline import attach_classifiers
    keys = []

    def record(names, images, labels, fingerprint, size):
        keys.append(fingerprint)
        return None, "not trained in this test"
    monkeypatch.setattr(classifiers, "classifiers_for_styles", record)
    subject = Subject.from_module(torch.nn.Identity(), style_names=["a", "b"])
    for n in (16, 32):                             # another content sample, the same style images
        data = analysis_data(subject, _cfg(n_images=n), str(big))
        attach_classifiers(subject, data, 16)
    assert keys[0] == keys[1] and keys[0] == data.extra["style_fingerprint"] != data.fingerprint


def test_the_style_cap_keeps_the_style_images_within_their_memory_budget():
    from interp_gan.pipeline import STYLE_IMAGES_BYTES, _style_cap
    cap, note = _style_cap(_cfg(style_images_per_style=512, image_size=256), 26)
    assert cap == 105 and 26 * cap * 3 * 256 ** 2 * 4 <= STYLE_IMAGES_BYTES
    assert "at most 105 per style" in note and "26 styles at 256 px" in note and "style_images_per_style" in note
    assert _style_cap(_cfg(style_images_per_style=512, image_size=64), 26) == (512, "")   # fits: as configured
    assert _style_cap(_cfg(style_images_per_style=512, image_size=1024), 100)[0] == 64  # never below 64
