"""Concept masks: colour names of known colours, a partition of the pixels, edges where edges are."""
import pytest
import torch

from interp_gan.analyses.units.concepts import COLOR_NAMES, CONCEPT_NAMES, Segmenter, concept_masks

KNOWN = {  # rgb in [0,1] -> the colour term it must get
    "black": (0.05, 0.05, 0.05), "white": (0.95, 0.95, 0.95), "grey": (0.5, 0.5, 0.52),
    "red": (0.9, 0.1, 0.1), "orange": (1.0, 0.55, 0.05), "yellow": (0.95, 0.9, 0.1),
    "green": (0.1, 0.7, 0.2), "blue": (0.1, 0.2, 0.9), "purple": (0.5, 0.1, 0.8),
    "pink": (1.0, 0.6, 0.7), "brown": (0.45, 0.25, 0.1),
}


def _solid(rgb, size=8):
    return (torch.tensor(rgb).view(1, 3, 1, 1).expand(1, 3, size, size) * 2 - 1).clone()


def test_names_cover_berlin_kay_and_extras():
    assert len(COLOR_NAMES) == 11 and set(KNOWN) == set(COLOR_NAMES)
    assert {"dark", "bright", "edges", "texture"} <= set(CONCEPT_NAMES)


@pytest.mark.parametrize("name", list(KNOWN))
def test_known_colours_get_their_name(name):
    masks, names = concept_masks(_solid(KNOWN[name]))
    assert masks.dtype == torch.bool and masks.shape == (1, len(CONCEPT_NAMES), 8, 8)
    assert bool(masks[0, names.index(name)].all())


def test_colour_terms_partition_the_pixels_and_dark_bright_follow_luma():
    torch.manual_seed(0)
    img = torch.rand(3, 3, 16, 16) * 2 - 1
    masks, names = concept_masks(img)
    colours = masks[:, : len(COLOR_NAMES)]
    assert bool((colours.sum(1) == 1).all())          # every pixel exactly one colour term
    dark, _ = concept_masks(_solid((0.1, 0.1, 0.1)))
    bright, _ = concept_masks(_solid((0.9, 0.9, 0.9)))
    assert bool(dark[0, names.index("dark")].all()) and not bool(dark[0, names.index("bright")].any())
    assert bool(bright[0, names.index("bright")].all()) and not bool(bright[0, names.index("dark")].any())


def test_edges_on_the_step_and_texture_on_the_noisy_half():
    img = -torch.ones(1, 3, 32, 32)
    img[..., 16:] = 1.0                                  # a vertical step at column 16
    masks, names = concept_masks(img)
    edges = masks[0, names.index("edges")]
    cols = edges.any(0).nonzero().flatten().tolist()
    assert cols and all(14 <= c <= 17 for c in cols)
    flat, _ = concept_masks(torch.zeros(1, 3, 32, 32))
    assert not bool(flat[0, names.index("edges")].any())   # a flat image has no edges
    g = torch.Generator().manual_seed(0)
    tex = torch.zeros(1, 3, 32, 32)
    tex[..., :, :16] = torch.rand(1, 1, 32, 16, generator=g) * 2 - 1
    m, _ = concept_masks(tex)
    t = m[0, names.index("texture")]
    assert t[:, :14].float().mean() > 0.3 and not bool(t[:, 19:].any())


class ThreeBands:
    labels = ["top", "middle", "bottom"]

    def __call__(self, images):
        n, _, h, w = images.shape
        lab = torch.arange(h)[None, :, None].expand(n, h, w) * 3 // h
        return lab


def test_segmenter_labels_are_appended():
    seg = ThreeBands()
    assert isinstance(seg, Segmenter)
    masks, names = concept_masks(torch.zeros(2, 3, 9, 9), segmenter=seg)
    assert names[-3:] == ["seg:top", "seg:middle", "seg:bottom"]
    assert bool(masks[:, -3, :3].all()) and not bool(masks[:, -3, 3:].any())


def test_bad_input_says_what_was_expected():
    with pytest.raises(ValueError, match=r"\[N,3,H,W\]"):
        concept_masks(torch.zeros(2, 1, 8, 8))

    class Broken:
        labels = ["a"]

        def __call__(self, images):
            return torch.zeros(1, 2, 2, dtype=torch.long)

    with pytest.raises(ValueError, match="segmenter returned"):
        concept_masks(torch.zeros(2, 3, 8, 8), segmenter=Broken())


def test_resolve_segmenter_from_a_factory_spec(tmp_path):
    from interp_gan.analyses.units.concepts import resolve_segmenter

    assert resolve_segmenter(None) is None
    seg = ThreeBands()
    assert resolve_segmenter(seg) is seg
    f = tmp_path / "my_segs.py"
    f.write_text("import torch\n"
                 "class Halves:\n"
                 "    labels = ['left', 'right']\n"
                 "    def __call__(self, images):\n"
                 "        n, _, h, w = images.shape\n"
                 "        return (torch.arange(w)[None, None, :] * 2 // w).expand(n, h, w)\n"
                 "def make():\n"
                 "    return Halves()\n"
                 "def not_a_segmenter():\n"
                 "    return 42\n")
    seg = resolve_segmenter(f"{f}:make")
    _, names = concept_masks(torch.zeros(1, 3, 4, 4), segmenter=seg)
    assert names[-2:] == ["seg:left", "seg:right"]
    with pytest.raises(TypeError, match=r"not_a_segmenter\(\) must be a callable .* labels"):
        resolve_segmenter(f"{f}:not_a_segmenter")
    with pytest.raises(LookupError, match="no attribute 'missing'"):
        resolve_segmenter(f"{f}:missing")
    with pytest.raises(FileNotFoundError, match="segmenter file"):
        resolve_segmenter(f"{tmp_path / 'nope.py'}:make")
