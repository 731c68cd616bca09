"""A user's own data: unusual image files and folder layouts, each used correctly or skipped and said.

Every image is built here with Pillow; nothing is read from outside the test's tmp_path."""
import io
import os

import numpy as np
import pytest
import torch
from PIL import Image

from interp_gan.config import DataConfig, PipelineConfig
from interp_gan.data import load_data
from interp_gan.data.images import BadImage, decode_image, list_images
from interp_gan.pipeline import analysis_data
from interp_gan.subject.protocol import Subject


def resolve_data_dir(*a):
    from interp_gan.data.folders import resolve_data_dir
    return resolve_data_dir(*a)


def _bytes(im: Image.Image, fmt: str, **kw) -> bytes:
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def _png(path, colour=(10, 200, 30), size=(40, 40)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, "PNG")
    return path


# --- pixel values ------------------------------------------------------------------------------------
def test_float_tiff_is_scaled_by_its_range():
    for values, want in [((0.5, 1.0), (128, 255)),              # [0, 1] floats
                         ((-1.0, 0.0), (0, 128)),               # a normalised [-1, 1] array
                         ((128.0, 255.0), (128, 255)),          # 0..255 floats
                         ((32768.0, 65535.0), (128, 255))]:     # 0..65535 floats: scaled, not clipped to white
        a = np.full((4, 4), values[0], np.float32)
        a[0, 0] = values[1]
        out = decode_image(_bytes(Image.fromarray(a, "F"), "TIFF"))
        assert tuple(out[1, 1]) == (want[0],) * 3 and tuple(out[0, 0]) == (want[1],) * 3, values


def test_rgb_float_and_16bit_tiffs_pillow_cannot_open_are_read():
    tifffile = pytest.importorskip("tifffile")
    for arr, want in [(np.full((4, 4, 3), 0.5, np.float32), (128, 128, 128)),
                      (np.stack([np.full((4, 4), v, np.float32) for v in (0.0, 0.5, 1.0)], -1), (0, 128, 255)),
                      (np.full((4, 4, 4), 65535, np.uint16), (255, 255, 255))]:
        b = io.BytesIO()
        tifffile.imwrite(b, arr, photometric="rgb")
        assert tuple(decode_image(b.getvalue())[2, 2]) == want, arr.dtype
    b = io.BytesIO()
    tifffile.imwrite(b, np.full((4, 4, 3), np.nan, np.float32), photometric="rgb")
    with pytest.raises(BadImage, match="non-finite pixels"):
        decode_image(b.getvalue())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_float_image_with_nan_or_inf_is_skipped_not_black(bad):
    a = np.full((4, 4), 0.5, np.float32)
    a[0, 0] = bad
    with pytest.raises(BadImage) as e:
        decode_image(_bytes(Image.fromarray(a, "F"), "TIFF"))
    assert e.value.reason == "non-finite pixels"


def test_32bit_integer_tiff_keeps_8bit_values():
    a = np.full((4, 4), 200, np.int32)
    im = Image.fromarray(a, "I")
    assert im.mode == "I"
    assert tuple(decode_image(_bytes(im, "TIFF"))[0, 0]) == (200, 200, 200)   # not 200/257 ~ 1


def test_exif_orientation_is_applied():
    im = Image.new("RGB", (16, 8), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 8, 8))                 # left half red
    exif = Image.Exif()
    exif[0x0112] = 6                                    # "rotate 90 CW to display"
    out = decode_image(_bytes(im, "JPEG", exif=exif.tobytes(), quality=100)).astype(int)
    assert out.shape == (16, 8, 3)                      # portrait after rotation
    assert out[2, 4, 0] > 200 and out[13, 4, 2] > 200   # red on top, blue below


def test_formats_and_first_frames():
    frames = [Image.new("RGB", (8, 8), c) for c in [(255, 0, 0), (0, 255, 0)]]
    gif = _bytes(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert tuple(decode_image(gif)[0, 0]) == (255, 0, 0)
    webp = _bytes(Image.new("RGBA", (8, 8), (10, 20, 30, 0)), "WEBP", lossless=True)
    assert tuple(decode_image(webp)[0, 0]) == (255, 255, 255)          # transparent on white
    bmp = _bytes(Image.new("RGB", (8, 8), (10, 20, 30)), "BMP")
    assert tuple(decode_image(bmp)[0, 0]) == (10, 20, 30)
    tif = _bytes(Image.new("RGB", (8, 8), (1, 2, 3)), "TIFF", save_all=True,
                 append_images=[Image.new("RGB", (8, 8), (9, 9, 9))])
    assert tuple(decode_image(tif)[0, 0]) == (1, 2, 3)                 # page 1 of 2


# --- which files a folder holds -------------------------------------------------------------------
def test_inventory_follows_links_and_counts_what_it_leaves_out(tmp_path):
    root = tmp_path / "photos"
    for name in ["a.png", "B.JPG", "c.PNG", "d.JPEG", "e.TIF", "sub/deeper/f.png", "ünï cödé.png"]:
        _png(root / name)
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "._a.jpg").write_bytes(b"\0\5\x16\7" + b"\0" * 40)
    (root / "notes.txt").write_text("x")
    (root / "photo.heic").write_bytes(b"\0" * 40)
    os.symlink(root / "a.png", root / "again.png")                     # a second name for a.png
    os.symlink(root / "gone.png", root / "broken.png")                 # a link to nothing
    _png(tmp_path / "elsewhere" / "g.png")
    os.symlink(tmp_path / "elsewhere", root / "linked")                # a linked folder
    os.symlink(root, root / "sub" / "loop")                            # a loop
    from interp_gan.data.images import folder_inventory
    files, left = folder_inventory(root)
    names = sorted(p.relative_to(root).as_posix() for p in files)
    assert names == ["B.JPG", "a.png", "broken.png", "c.PNG", "d.JPEG", "e.TIF", "linked/g.png",
                     "sub/deeper/f.png", "ünï cödé.png"]
    assert left == {"hidden": 2, "not an image type (.txt)": 1, "not an image type (.heic)": 1,
                    "link to a file already listed": 1}
    assert list_images(root) == files


def test_load_data_skips_counts_and_says_the_rest(tmp_path):
    c = tmp_path / "content"
    for i in range(8):
        _png(c / f"{i}.png", (i * 30, 0, 0))
    _png(c / "tiny.png", size=(5, 3))
    (c / "zero.jpg").write_bytes(b"")
    os.symlink(c / "nowhere.png", c / "broken.png")
    (c / "readme.txt").write_text("x")
    sd = load_data(DataConfig(source="", content=str(c), image_size=16, load_size=16))
    assert len(sd.content) == 9
    assert sd.skipped == {"empty file": 1, "broken link": 1}
    assert "1 image(s) smaller than 16 px on their short side: upscaled" in sd.notes
    assert "1 file(s) left out (not an image type (.txt) 1)" in sd.notes



def test_transparency_and_first_frames_are_counted_and_said(tmp_path):
    """A fully transparent PNG becomes a white photo and an animation loses its other frames: both said
    (an opaque RGBA image and a palette image without transparency are not counted)."""
    c = tmp_path / "content"
    for i in range(8):
        _png(c / f"{i}.png", (i * 30, 0, 0))
    Image.new("RGBA", (20, 20), (200, 10, 10, 0)).save(c / "clear.png")          # all transparent
    Image.new("LA", (20, 20), (90, 128)).save(c / "half.png")                     # half transparent
    Image.new("RGBA", (20, 20), (200, 10, 10, 255)).save(c / "opaque.png")       # alpha, all opaque
    Image.new("RGB", (20, 20), (5, 5, 5)).convert("P").save(c / "palette.png")    # palette, no transparency
    frames = [Image.new("RGB", (20, 20), col) for col in [(255, 0, 0), (0, 255, 0)]]
    frames[0].save(c / "anim.gif", save_all=True, append_images=frames[1:])
    colour = {}
    assert tuple(decode_image((c / "clear.png").read_bytes(), colour)[0, 0]) == (255, 255, 255)
    assert colour == {"transparency": 1}
    sd = load_data(DataConfig(source="", content=str(c), image_size=16, load_size=16))
    assert len(sd.content) == 13
    assert "2 image(s) with transparent pixels: composited on white" in sd.notes
    assert "1 animated or multi-page image(s): the first frame used" in sd.notes


def test_file_names_that_are_not_utf8_are_read_and_shown_escaped(tmp_path):
    """A Latin-1 file name on a UTF-8 system (Python reads its bytes as surrogates) failed the fingerprint
    ('surrogates not allowed') and then the report; now it is read, and shown with a \\x escape."""
    c = tmp_path / "content"
    for i in range(8):
        _png(c / f"{i}.png", (i * 30, 0, 0))
    root = os.fsencode(c)
    Image.new("RGB", (20, 20), (1, 2, 3)).save(os.fsdecode(root + b"/caf\xe9.png"), "PNG")
    open(root + b"/zero\xfe.png", "wb").close()
    sd = load_data(DataConfig(source="", content=str(c), image_size=16, load_size=16))
    assert len(sd.content) == 9 and sd.skipped == {"empty file": 1}
    assert sd.skipped_files == ["content/zero\\xfe.png"]
    "\n".join(sd.skipped_files + sd.notes).encode("utf-8")        # prints and saves as UTF-8
    assert len(sd.fingerprint) == 64
    os.makedirs(os.fsencode(tmp_path) + b"/style/caf\xe9")               # a style folder named so: its note
    _png(tmp_path / "style" / os.fsdecode(b"caf\xe9") / "1.png")
    cfg = PipelineConfig.from_dict({"name": "t", "n_images": 8, "image_size": 16, "batch_size": 4})
    data = analysis_data(Subject.from_module(torch.nn.Identity(), style_names=["a"]), cfg, str(tmp_path))
    notes = [n for n in data.extra["data_notes"] if "not used" in n]
    assert notes and notes[0].startswith("style folder(s) caf\\xe9 not used"), notes
    "\n".join(data.extra["data_notes"]).encode("utf-8")

# --- --data DIR layouts ----------------------------------------------------------------------------
def test_data_dir_errors_name_the_layout(tmp_path):
    (tmp_path / "f.png").write_bytes(b"x")
    (tmp_path / "empty").mkdir()
    _png(tmp_path / "onlystyle" / "style" / "a" / "1.png")
    for d, what in [("nope", "no such folder"), ("f.png", "is a file"), ("empty", "holds no images"),
                    ("onlystyle", "has style/ but no content/")]:
        with pytest.raises(ValueError) as e:
            resolve_data_dir(tmp_path / d, ["a"])
        assert what in str(e.value) and "DIR/content/" in str(e.value) and "\n" not in str(e.value)


def test_data_dir_uses_the_models_styles_only_and_says_which_not(tmp_path):
    d = tmp_path / "data"
    _png(d / "content" / "1.png")
    _png(d / "style" / "a" / "1.png")
    _png(d / "style" / "zzz" / "1.png")
    (d / "style" / "b").mkdir()
    kw, notes = resolve_data_dir(d, ["a", "b", "c"])
    assert kw == {"source": str(d / "style"), "content": str(d / "content"), "styles": ("a",)}
    assert any("zzz not used: not styles of this model (a, b, c)" in n for n in notes)
    assert any("b hold no images" in n for n in notes)
    assert any("no real images of style(s) b, c" in n for n in notes)
    kw, notes = resolve_data_dir(d, ["other"])            # nothing matches: content only
    assert kw == {"source": "", "content": str(d / "content"), "styles": ()}


def test_cyclegan_dir_reads_trainA_as_content_only(tmp_path):
    d = tmp_path / "h2z"
    for i in range(3):
        _png(d / "trainA" / f"{i}.png")
    for i in range(5):
        _png(d / "trainB" / f"{i}.png")
    kw, notes = resolve_data_dir(d, ["output"])
    assert kw["content"] == str(d / "trainA") and kw["source"] == ""
    assert len(load_data(DataConfig(**kw, image_size=16, load_size=16)).content) == 3   # not 3 + 5
    kw, _ = resolve_data_dir(d, ["B"])
    sd = load_data(DataConfig(**kw, image_size=16, load_size=16))
    assert len(sd.content) == 3 and len(sd.style) == 5 and sd.style_names == ["B"]


def test_analysis_data_logs_each_note_once_and_the_report_shows_them(tmp_path, capsys):
    d = tmp_path / "data"
    for i in range(6):
        _png(d / "content" / f"{i}.png", (i * 40, 10, 10))
    (d / "content" / "cut.jpg").write_bytes(_bytes(Image.new("RGB", (64, 64), (1, 2, 3)), "JPEG")[:200])
    (d / "content" / ".DS_Store").write_bytes(b"\0")
    _png(d / "style" / "a" / "1.png")
    _png(d / "style" / "unknown" / "1.png")
    subject = Subject.from_module(torch.nn.Identity(), style_names=["a"])
    # n_images above the 7 files: all are read (a smaller seeded sample need not meet cut.jpg)
    cfg = PipelineConfig.from_dict({"name": "t", "n_images": 8, "image_size": 16, "batch_size": 4})
    data = analysis_data(subject, cfg, str(d))
    out = capsys.readouterr().out
    assert len(data) == 6 and len(data.style_images) == 1
    assert out.count("skipped 1 unreadable image(s) (truncated 1): content/cut.jpg") == 1
    assert out.count("data: style folder(s) unknown not used") == 1
    assert out.count("data: 1 file(s) left out (hidden 1)") == 1
    from interp_gan.reporting.input_notes import input_notes_html
    page = input_notes_html({**data.extra, "model_notes": ["output range [0, 1]"]})
    assert "<strong>1 unreadable image(s) skipped</strong>" in page and "content/cut.jpg" in page
    assert "data: style folder(s) unknown not used" in page and "model: output range [0, 1]" in page
    assert input_notes_html({}) == ""


def test_a_style_set_model_is_told_how_its_own_style_folders_become_styles(tmp_path, capsys):
    """A style predictor's (or AdaIN's) styles are a style set's codes: --data's style folders of other
    names are not used, and the note says how to make them the styles instead of only 'not styles of this
    model'; a model of fixed styles is told nothing more."""
    d = tmp_path / "data"
    for i in range(8):
        _png(d / "content" / f"{i}.png", (i * 30, 10, 10))
    _png(d / "Styles" / "mine" / "1.png")
    cfg = PipelineConfig.from_dict({"name": "t", "n_images": 8, "image_size": 16, "batch_size": 4})
    for model, want in (("onnx", f"add --onnx style_set={d / 'Styles'}"),
                        ("adain", f"load it as 'decoder.pth#vgg=...,style_set={d / 'Styles'}'")):
        subject = Subject.from_module(torch.nn.Identity(), style_names=["lite01"])
        subject.meta = {**subject.meta, "model": {"name": model}, "style_set": {"source": "embedded"}}
        analysis_data(subject, cfg, str(d))
        out = capsys.readouterr().out
        assert f"style folder(s) mine not used: not styles of this model (lite01); to make them its styles, {want}" \
            in out, out
    analysis_data(Subject.from_module(torch.nn.Identity(), style_names=["lite01"]), cfg, str(d))
    assert "style folder(s) mine not used: not styles of this model (lite01)\n" in capsys.readouterr().out


def test_an_analysis_pipeline_sets_its_own_max_bad_fraction(tmp_path):
    c = tmp_path / "photos"
    for i in range(3):
        _png(c / f"{i}.png")
    for i in range(2):
        (c / f"bad{i}.jpg").write_bytes(b"")
    subject = Subject.from_module(torch.nn.Identity())
    cfg = PipelineConfig.from_dict({"name": "t", "n_images": 4, "image_size": 16})
    # a bad file met: the share is judged on every file of so small a folder
    with pytest.raises(ValueError, match=r"2 of 5 images could not be read .*"
                                         r"--set max_bad_fraction=0.5"):
        analysis_data(subject, cfg, str(c))
    cfg = PipelineConfig.from_dict({"name": "t", "n_images": 4, "image_size": 16, "max_bad_fraction": 0.5})
    assert len(analysis_data(subject, cfg, str(c))) == 3


def test_a_very_elongated_image_is_cropped_before_it_is_scaled(monkeypatch):
    from interp_gan.data.transforms import resize_square
    real = Image.Image.resize

    def resize(self, size, *a, **kw):                  # refuse, before allocating, a scaled copy of the whole strip
        assert size[0] * size[1] <= 4 * 64 * 64, f"resampling to {size}"
        return real(self, size, *a, **kw)
    monkeypatch.setattr(Image.Image, "resize", resize)
    strip = np.zeros((1, 200_000, 3), np.uint8)        # a 600 KB file; scaled whole: 64 x 12.8 M pixels
    strip[:, 100_000:] = 255                           # left half black, right half white
    out = resize_square(strip, 64)
    assert out.shape == (64, 64, 3) and out[0, 0, 0] < 10 and out[0, 63, 0] > 245


def test_very_uneven_style_counts_train_balanced_and_report_per_style_accuracy(tmp_path, monkeypatch):
    from interp_gan.training.classifiers import classifiers_for_styles
    monkeypatch.setenv("INTERP_GAN_CACHE", str(tmp_path / "cache"))
    g = torch.Generator().manual_seed(0)
    red = torch.rand(3, 3, 16, 16, generator=g) * 0.3 + torch.tensor([0.7, -0.9, -0.9])[:, None, None]
    blue = torch.rand(30, 3, 16, 16, generator=g) * 0.3 + torch.tensor([-0.9, -0.9, 0.7])[:, None, None]
    images, labels = torch.cat([red, blue]), torch.tensor([0] * 3 + [1] * 30)
    clfs, info = classifiers_for_styles(["red", "blue"], images, labels, "uneven", 16, steps=40, ch=4)
    assert info["style_counts"] == "3 to 30 real images per style: balanced batches"
    assert info["rgb_balanced"] == 1.0                 # the small style is recognised too
    _, even = classifiers_for_styles(["red", "blue"], torch.cat([red, blue[:3]]), torch.tensor([0] * 3 + [1] * 3),
                                     "even", 16, steps=5, ch=4)
    assert "style_counts" not in even and "rgb_balanced" not in even


def test_large_photos_are_resized_as_they_are_read(tmp_path):
    import tracemalloc
    c = tmp_path / "photos"
    for i in range(8):
        _png(c / f"{i}.png", (i * 30, 0, 0), size=(1500, 1000))     # 4.5 MB each once decoded
    tracemalloc.start()
    try:
        sd = load_data(DataConfig(source="", content=str(c), image_size=16, load_size=16))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(sd.content) == 8
    assert peak < 4 * 1500 * 1000 * 3, peak       # a few at full size at a time, never all 8 (36 MB)
