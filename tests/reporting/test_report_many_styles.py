"""A model with 200 styles: the report's figures show an even sample of 26 styles and say so, the
page stays small, and the saved arrays and tables keep every style."""
from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from interp_gan.findings import Finding
from interp_gan.reporting import ReportContext, write_report
from interp_gan.reporting.many_styles import MAX_STYLES_SHOWN, shown_styles
from interp_gan.reporting.section_style_units import selectivity_heatmap

S = 200
NAMES = [f"class{i}" for i in range(S)]


def _overview() -> Finding:
    rng = np.random.default_rng(0)
    gen = rng.integers(0, 255, (S, 6, 16, 16, 3), dtype=np.uint8)
    content = rng.integers(0, 255, (6, 16, 16, 3), dtype=np.uint8)
    real = rng.integers(0, 255, (S, 4, 16, 16, 3), dtype=np.uint8)
    return Finding("overview", {"n_images": 6}, arrays={"generated": gen, "content": content, "real_style": real})


def test_shown_styles_is_an_even_sample_with_first_and_last():
    assert shown_styles(4) == [0, 1, 2, 3]
    keep = shown_styles(S)
    assert len(keep) == MAX_STYLES_SHOWN and keep[0] == 0 and keep[-1] == S - 1 and keep == sorted(set(keep))


def test_overview_of_200_styles_shows_26_rows_says_so_and_keeps_every_style(tmp_path):
    out = write_report(tmp_path / "r", [_overview()], ReportContext(name="many", style_names=NAMES), paper=True)
    page = (out / "index.html").read_text()
    # 6 content + 26 styles x 6 samples + 26 x 4 real, + the teaser's 2 x (1 + 4): 276 (all 200 styles: 2,016)
    assert page.count("<img") <= 6 + MAX_STYLES_SHOWN * 10 + 10
    assert len(page) < 1_000_000                      # all 200 styles: 1.6 MB of this page
    assert f"26 of {S} styles shown" in page and "findings/overview/arrays.npz" in page
    assert "class199" in page and "class1</" not in page   # the last is kept, the second is not shown
    height = Image.open(out / "paper" / "overview_samples.png").size[1]
    width = Image.open(out / "paper" / "overview_samples.png").size[0]
    assert height < 6 * width                         # 27 rows of 6 (all styles: 201 rows, 33x as tall as wide)
    saved = np.load(out / "findings" / "overview" / "arrays.npz")
    assert saved["generated"].shape[0] == S           # the data keep every style


def test_selectivity_heatmap_of_200_styles_has_at_most_26_rows():
    rng = np.random.default_rng(1)
    rows = [dict(layer="l", unit=u, style=n, auroc=rng.random(), cohens_d=rng.normal(), q_value=rng.random())
            for n in NAMES for u in range(8)]
    fig = selectivity_heatmap(pd.DataFrame(rows))
    assert len(fig.data[0].y) == MAX_STYLES_SHOWN and fig.layout.height < 2000
    assert f"{MAX_STYLES_SHOWN} of {S} styles" in fig.layout.title.text


def test_ablation_panels_and_removal_heatmap_of_200_styles_show_26_styles():
    from interp_gan.reporting.section_ablation import ablation_curves
    from interp_gan.reporting.section_style_edits import removal_heatmap
    abl = pd.DataFrame([dict(layer="l", measure="m", style=n, baseline=b, k=k, effect=0.1, ci_low=0.0, ci_high=0.2,
                             units="1,2", n=8) for n in NAMES for b in ("top", "random") for k in (1, 2)])
    fig = ablation_curves(abl, "l", "m")
    assert len(fig.layout.annotations) == MAX_STYLES_SHOWN and fig.layout.height < 2500   # all: 200 panels, 12,160 px
    assert f"{MAX_STYLES_SHOWN} of {S} styles" in fig.layout.title.text
    rem = pd.DataFrame([dict(measure="log_odds", style=r, target_style=t, classifier=c, k=4, effect=0.0, ci_low=-1.0,
                             ci_high=1.0) for r in NAMES for t in NAMES for c in ("rgb", "texture")])
    fig = removal_heatmap(rem)
    for trace in fig.data:                                              # all: 200 x 200 cells per panel
        assert len(trace.y) == MAX_STYLES_SHOWN and len(trace.x) == MAX_STYLES_SHOWN
    assert fig.layout.height < 2500 and f"{MAX_STYLES_SHOWN} of {S} styles" in fig.layout.title.text


def test_style_units_text_lists_at_most_26_styles():
    from interp_gan.reporting.section_style_units import style_units_section
    rows = [dict(layer="l", unit=u, style=n, auroc=0.9 if (u == 0 and i < 3) else 0.5, cohens_d=0.0,
                 q_value=0.001 if (u == 0 and i < 3) else 0.9, p_value=0.5) for i, n in enumerate(NAMES) for u in range(4)]
    f = Finding("style_units", {}, tables={"style_units": pd.DataFrame(rows)})
    text = " ".join(b for b in style_units_section(f, ReportContext(style_names=NAMES)).blocks if isinstance(b, str))
    assert "class0 1" in text and "class150 0" not in text and "the other 174 hold 0 in all" in text


def test_a_model_that_draws_from_z_is_not_said_to_stylise_its_content(tmp_path):
    """A StyleGAN ignores the content photos shown beside its samples: the overview, its samples grid and the
    teaser say so instead of 'stylisation' and 'Content → each style'."""
    rng = np.random.default_rng(2)
    f = Finding("overview", {"n_images": 2}, arrays={"generated": rng.integers(0, 255, (1, 2, 8, 8, 3), dtype=np.uint8),
                                                     "content": rng.integers(0, 255, (2, 8, 8, 3), dtype=np.uint8)},
                provenance={"uses_content": False})
    out = write_report(tmp_path / "r", [f], ReportContext(name="z", style_names=["sample"]))
    page = (out / "index.html").read_text()
    assert "synthesises from seeded z" in page and "Samples synthesised from seeded z" in page
    assert "stylisation" not in page and "Content → each style" not in page
